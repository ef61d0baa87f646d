#include "core/file_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/status_macros.h"

namespace recurrent::core {
namespace {

// Closes a file descriptor on scope exit; for paths where the close result does not matter.
class FdCloser {
 public:
  explicit FdCloser(int fd) : fd_(fd) {}
  FdCloser(const FdCloser&) = delete;
  FdCloser& operator=(const FdCloser&) = delete;
  ~FdCloser() {
    if (fd_ >= 0) ::close(fd_);
  }

 private:
  int fd_;
};

absl::Status OsError(int error, absl::string_view what, const std::string& path) {
  return absl::ErrnoToStatus(error, absl::StrCat(what, " ", path));
}

std::string DirectoryOf(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// Creates a new, empty file next to `path` with O_EXCL and returns its fd and name.
absl::StatusOr<std::pair<int, std::string>> CreateTempFile(const std::string& path) {
  // pid + per-process counter is unique among live writers; O_EXCL skips leftovers of a crash.
  static std::atomic<uint64_t> counter{0};
  constexpr int kAttempts = 100;
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    std::string temp_path = absl::StrCat(path, ".tmp.", ::getpid(), ".", counter.fetch_add(1));
    const int fd = ::open(temp_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd >= 0) return std::make_pair(fd, std::move(temp_path));
    if (errno != EEXIST && errno != EINTR) {
      return OsError(errno, "cannot create temporary file", temp_path);
    }
  }
  return absl::AlreadyExistsError(
      absl::StrCat("cannot create a temporary file next to ", path, ": all names taken"));
}

}  // namespace

absl::Status WriteAll(int fd, absl::string_view data, const std::string& path) {
  while (!data.empty()) {
    // Linux writes at most about 2 GiB per call; chunking keeps the arithmetic obvious.
    const size_t chunk = std::min<size_t>(data.size(), size_t{1} << 30);
    const ssize_t written = ::write(fd, data.data(), chunk);
    if (written < 0) {
      if (errno == EINTR) continue;
      return OsError(errno, "cannot write", path);
    }
    data.remove_prefix(static_cast<size_t>(written));
  }
  return absl::OkStatus();
}

absl::Status SyncDirectory(const std::string& directory) {
  const int fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return OsError(errno, "cannot open directory", directory);
  FdCloser closer(fd);
  // EINVAL: the filesystem cannot sync directories (some network and FUSE filesystems); the
  // rename is then as durable as that filesystem makes it.
  if (::fsync(fd) != 0 && errno != EINVAL)
    return OsError(errno, "cannot fsync directory", directory);
  return absl::OkStatus();
}

absl::Status WriteFileAtomically(const std::string& path, absl::string_view data) {
  ASSIGN_OR_RETURN(auto temp, CreateTempFile(path));
  auto [fd, temp_path] = std::move(temp);
  absl::Status status = WriteAll(fd, data, temp_path);
  if (status.ok() && ::fsync(fd) != 0) status = OsError(errno, "cannot fsync", temp_path);
  if (::close(fd) != 0 && status.ok()) status = OsError(errno, "cannot close", temp_path);
  if (status.ok() && ::rename(temp_path.c_str(), path.c_str()) != 0) {
    status = OsError(errno, absl::StrCat("cannot rename ", temp_path, " to"), path);
  }
  if (!status.ok()) {
    ::unlink(temp_path.c_str());
    return status;
  }
  return SyncDirectory(DirectoryOf(path));
}

absl::StatusOr<std::string> ReadFileBounded(const std::string& path, int64_t max_bytes,
                                            absl::string_view what) {
  // O_NONBLOCK: opening a FIFO must not wait for a writer; fstat below rejects it anyway.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return OsError(errno, absl::StrCat("cannot open ", what), path);
  FdCloser closer(fd);
  struct stat info;
  if (::fstat(fd, &info) != 0) return OsError(errno, absl::StrCat("cannot stat ", what), path);
  if (!S_ISREG(info.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat(path, " is not a regular file"));
  }
  if (info.st_size > max_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " ", path, " is ", info.st_size, " bytes, over the limit of ", max_bytes, " bytes"));
  }
  std::string bytes(static_cast<size_t>(info.st_size), '\0');
  size_t filled = 0;
  while (filled < bytes.size()) {
    const ssize_t got = ::read(fd, bytes.data() + filled, bytes.size() - filled);
    if (got < 0) {
      if (errno == EINTR) continue;
      return OsError(errno, absl::StrCat("cannot read ", what), path);
    }
    if (got == 0) {
      return absl::DataLossError(absl::StrCat(what, " ", path, " shrank from ", bytes.size(),
                                              " to ", filled, " bytes while being read"));
    }
    filled += static_cast<size_t>(got);
  }
  return bytes;
}

}  // namespace recurrent::core
