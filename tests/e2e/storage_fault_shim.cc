// An LD_PRELOAD library for storage_fault_test: it makes the file system under one directory
// behave as full (ENOSPC) or read-only (EROFS) while a control file says so, so that the test can
// fill and free "the disk" of a running recurrentd at will. Tests run as root in CI, where
// permission bits do not stop writes and nothing can be mounted, hence this interposer.
//
//   RECURRENT_FS_FAULT_DIR      the directory (absolute path) whose files are affected
//   RECURRENT_FS_FAULT_CONTROL  a file holding "ENOSPC", "EROFS" or nothing (no fault)
//
// Intercepted: write/pwrite (ENOSPC on regular files under the directory), open/openat for
// writing, mkdir, rename and unlink (EROFS; mkdir also ENOSPC). Reads always work.
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

enum class Fault { kNone, kFull, kReadOnly };

// Read with raw system calls: the shim must not re-enter its own wrappers.
Fault CurrentFault() {
  const char* control = std::getenv("RECURRENT_FS_FAULT_CONTROL");
  if (control == nullptr) return Fault::kNone;
  const int fd = static_cast<int>(syscall(SYS_openat, AT_FDCWD, control, O_RDONLY | O_CLOEXEC));
  if (fd < 0) return Fault::kNone;
  char text[16] = {};
  const long got = syscall(SYS_read, fd, text, sizeof(text) - 1);
  syscall(SYS_close, fd);
  if (got <= 0) return Fault::kNone;
  if (std::strncmp(text, "ENOSPC", 6) == 0) return Fault::kFull;
  if (std::strncmp(text, "EROFS", 5) == 0) return Fault::kReadOnly;
  return Fault::kNone;
}

bool UnderFaultDir(const char* path) {
  const char* dir = std::getenv("RECURRENT_FS_FAULT_DIR");
  if (dir == nullptr || path == nullptr) return false;
  const size_t length = std::strlen(dir);
  return std::strncmp(path, dir, length) == 0 && (path[length] == '/' || path[length] == '\0');
}

bool FdUnderFaultDir(int fd) {
  char link[64];
  std::snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
  char target[4096];
  const long length = syscall(SYS_readlink, link, target, sizeof(target) - 1);
  if (length <= 0) return false;
  target[length] = '\0';
  return UnderFaultDir(target);
}

template <typename Function>
Function Next(const char* name) {
  return reinterpret_cast<Function>(dlsym(RTLD_NEXT, name));
}

// The errno for a write-like call on `path`, or 0 to let it through.
int RefusalFor(const char* path, bool creates_entry) {
  if (!UnderFaultDir(path)) return 0;
  switch (CurrentFault()) {
    case Fault::kReadOnly:
      return EROFS;
    case Fault::kFull:
      return creates_entry ? ENOSPC : 0;
    case Fault::kNone:
      return 0;
  }
  return 0;
}

int OpenRefusal(const char* path, int flags) {
  const bool writes = (flags & (O_WRONLY | O_RDWR | O_CREAT | O_TRUNC)) != 0;
  if (!writes || !UnderFaultDir(path)) return 0;
  // A full disk still opens files (it fails the writes); a read-only one refuses the open.
  return CurrentFault() == Fault::kReadOnly ? EROFS : 0;
}

// open(2)'s third argument, passed only when the call may create a file.
mode_t CreationMode(int flags, va_list args) {
  const bool creates = (flags & O_CREAT) != 0 || (flags & O_TMPFILE) == O_TMPFILE;
  return creates ? static_cast<mode_t>(va_arg(args, int)) : 0;
}

// open and openat: fail with the fault's errno, or call the next definition.
template <typename OpenNext>
int OpenUnlessRefused(const char* path, int flags, OpenNext open_next) {
  if (const int refusal = OpenRefusal(path, flags); refusal != 0) {
    errno = refusal;
    return -1;
  }
  return open_next();
}

}  // namespace

extern "C" {

ssize_t write(int fd, const void* data, size_t size) {
  static auto next = Next<ssize_t (*)(int, const void*, size_t)>("write");
  if (size > 0 && CurrentFault() == Fault::kFull && FdUnderFaultDir(fd)) {
    errno = ENOSPC;
    return -1;
  }
  return next(fd, data, size);
}

ssize_t pwrite(int fd, const void* data, size_t size, off_t offset) {
  static auto next = Next<ssize_t (*)(int, const void*, size_t, off_t)>("pwrite");
  if (size > 0 && CurrentFault() == Fault::kFull && FdUnderFaultDir(fd)) {
    errno = ENOSPC;
    return -1;
  }
  return next(fd, data, size, offset);
}

int open(const char* path, int flags, ...) {
  static auto next = Next<int (*)(const char*, int, ...)>("open");
  va_list args;
  va_start(args, flags);
  const mode_t mode = CreationMode(flags, args);
  va_end(args);
  return OpenUnlessRefused(path, flags, [&] { return next(path, flags, mode); });
}

int openat(int dirfd, const char* path, int flags, ...) {
  static auto next = Next<int (*)(int, const char*, int, ...)>("openat");
  va_list args;
  va_start(args, flags);
  const mode_t mode = CreationMode(flags, args);
  va_end(args);
  return OpenUnlessRefused(path, flags, [&] { return next(dirfd, path, flags, mode); });
}

int mkdir(const char* path, mode_t mode) {
  static auto next = Next<int (*)(const char*, mode_t)>("mkdir");
  // Linux answers EEXIST for an existing entry even on a full or read-only file system.
  struct stat existing;
  const bool exists = syscall(SYS_newfstatat, AT_FDCWD, path, &existing, 0) == 0;
  if (const int refusal = exists ? 0 : RefusalFor(path, /*creates_entry=*/true); refusal != 0) {
    errno = refusal;
    return -1;
  }
  return next(path, mode);
}

int rename(const char* from, const char* to) {
  static auto next = Next<int (*)(const char*, const char*)>("rename");
  if (const int refusal = RefusalFor(to, /*creates_entry=*/false); refusal != 0) {
    errno = refusal;
    return -1;
  }
  return next(from, to);
}

int unlink(const char* path) {
  static auto next = Next<int (*)(const char*)>("unlink");
  if (const int refusal = RefusalFor(path, /*creates_entry=*/false); refusal != 0) {
    errno = refusal;
    return -1;
  }
  return next(path);
}

}  // extern "C"
