// Uploaded data sets, one checksummed file each in <data_dir>/datasets/<id>.ds, written
// atomically. The id is derived from the content's fingerprint, so uploading the same data twice
// gives the same id (and one file). Thread-safe: files are immutable once written.
#ifndef RECURRENT_SERVER_DATASET_STORE_H_
#define RECURRENT_SERVER_DATASET_STORE_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "core/dataset.h"
#include "recurrent/v1/service.pb.h"

namespace recurrent::server {

class DatasetStore {
 public:
  static absl::StatusOr<std::unique_ptr<DatasetStore>> Open(std::string directory,
                                                            int64_t max_file_bytes);

  // Validates and stores `data` under a name; returns its info (id, counts, fingerprint).
  absl::StatusOr<v1::DatasetInfo> Put(const std::string& name, const core::Dataset& data);
  // NOT_FOUND for an unknown id, DATA_LOSS for a damaged file.
  absl::StatusOr<core::Dataset> Get(const std::string& id) const;
  // Whether `id` names a stored data set (cheap: no read).
  bool Contains(const std::string& id) const;

 private:
  DatasetStore(std::string directory, int64_t max_file_bytes)
      : directory_(std::move(directory)), max_file_bytes_(max_file_bytes) {}
  std::string PathOf(const std::string& id) const;

  const std::string directory_;
  const int64_t max_file_bytes_;
};

// Conversions shared with the Train request path.
v1::InlineDataset DatasetToProto(const core::Dataset& data);

}  // namespace recurrent::server

#endif  // RECURRENT_SERVER_DATASET_STORE_H_
