// Whole-file reads and crash-safe writes, shared by the model artifact and training checkpoints.
#ifndef RECURRENT_CORE_FILE_UTIL_H_
#define RECURRENT_CORE_FILE_UTIL_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace recurrent::core {

// Writes `data` to `path` atomically: the bytes go to a new temporary file "<path>.tmp.<unique>"
// in the same directory, which is fsync'ed, renamed over `path`, and the directory fsync'ed.
// Readers see the old file or the new one, never a mix, and after OK the new file survives a power
// loss. On failure `path` is untouched and the temporary file is removed (only a crash can leave
// one behind; "<path>.tmp.*" files are safe to delete), with one exception: if only the final
// directory fsync fails, the new file is already in place but may not survive a power loss, and
// that error is returned. Mode 0644 minus the umask. Errors carry the OS error and the path.
absl::Status WriteFileAtomically(const std::string& path, absl::string_view data);

// Writes all of `data` to `fd` (retrying short writes and EINTR); errors name `path`.
absl::Status WriteAll(int fd, absl::string_view data, const std::string& path);

// fsyncs `directory`, so that entries created or renamed in it survive a power loss. A filesystem
// that cannot sync directories (EINVAL: some network and FUSE filesystems) is not an error.
absl::Status SyncDirectory(const std::string& directory);

// Reads the whole regular file at `path`. Its size is checked against `max_bytes` before anything
// is read (InvalidArgument when over, naming `what`); a file that is not a regular file (a FIFO, a
// directory) is InvalidArgument; a file that shrinks while read is DataLoss; OS errors keep their
// errno mapping (NotFound, PermissionDenied, ...) and name the path.
absl::StatusOr<std::string> ReadFileBounded(const std::string& path, int64_t max_bytes,
                                            absl::string_view what);

}  // namespace recurrent::core

#endif  // RECURRENT_CORE_FILE_UTIL_H_
