#include "server/dataset_store.h"

#include <filesystem>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/crc32c.h"
#include "core/file_util.h"
#include "recurrent/v1/model.pb.h"
#include "recurrent/v1/storage.pb.h"
#include "server/train_request.h"

namespace recurrent::server {
namespace {

constexpr absl::string_view kMagic = "RCNTDAT1";
constexpr uint32_t kFormatVersion = 1;

v1::TargetKind KindToProto(core::TargetKind kind) {
  switch (kind) {
    case core::TargetKind::kPerStepValues:
      return v1::TARGET_KIND_PER_STEP_VALUES;
    case core::TargetKind::kSequenceValues:
      return v1::TARGET_KIND_SEQUENCE_VALUES;
    case core::TargetKind::kPerStepLabels:
      return v1::TARGET_KIND_PER_STEP_LABELS;
    case core::TargetKind::kSequenceLabels:
      return v1::TARGET_KIND_SEQUENCE_LABELS;
  }
  return v1::TARGET_KIND_UNSPECIFIED;
}

// Ids are file names: "ds-" and the fingerprint's hex digits only.
bool IsValidId(const std::string& id) {
  if (!absl::StartsWith(id, "ds-") || id.size() != 19) return false;
  for (size_t i = 3; i < id.size(); ++i) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(id[i]))) return false;
  }
  return true;
}

}  // namespace

v1::InlineDataset DatasetToProto(const core::Dataset& data) {
  v1::InlineDataset proto;
  proto.set_input_size(data.input_size);
  proto.set_target_size(data.target_size);
  proto.set_kind(KindToProto(data.kind));
  for (const core::Sequence& sequence : data.sequences) {
    v1::LabeledSequence* out = proto.add_sequences();
    out->set_steps(sequence.length);
    out->mutable_inputs()->Add(sequence.inputs.begin(), sequence.inputs.end());
    out->mutable_targets()->Add(sequence.targets.begin(), sequence.targets.end());
    out->mutable_labels()->Add(sequence.labels.begin(), sequence.labels.end());
  }
  return proto;
}

absl::StatusOr<std::unique_ptr<DatasetStore>> DatasetStore::Open(std::string directory,
                                                                 int64_t max_file_bytes) {
  std::error_code error;
  std::filesystem::create_directories(directory, error);
  if (error) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot create ", directory, ": ", error.message()));
  }
  return std::unique_ptr<DatasetStore>(new DatasetStore(std::move(directory), max_file_bytes));
}

std::string DatasetStore::PathOf(const std::string& id) const {
  return absl::StrCat(directory_, "/", id, ".ds");
}

bool DatasetStore::Contains(const std::string& id) const {
  std::error_code error;
  return IsValidId(id) && std::filesystem::exists(PathOf(id), error);
}

absl::StatusOr<v1::DatasetInfo> DatasetStore::Put(const std::string& name,
                                                  const core::Dataset& data) {
  if (absl::Status status = core::ValidateDataset(data); !status.ok()) return status;
  const std::string fingerprint = core::DatasetFingerprint(data);
  v1::StoredDataset stored;
  v1::DatasetInfo& info = *stored.mutable_info();
  info.set_id(absl::StrCat("ds-", fingerprint.substr(fingerprint.find(':') + 1)));
  info.set_name(name);
  info.set_sequences(static_cast<int64_t>(data.sequences.size()));
  info.set_input_size(data.input_size);
  info.set_target_size(data.target_size);
  info.set_kind(KindToProto(data.kind));
  info.set_fingerprint(fingerprint);
  const int64_t now = absl::ToUnixSeconds(absl::Now());
  info.mutable_created()->set_seconds(now);
  *stored.mutable_data() = DatasetToProto(data);
  v1::ArtifactEnvelope envelope;
  envelope.set_format_version(kFormatVersion);
  envelope.set_artifact(stored.SerializeAsString());
  envelope.set_crc32c(core::Crc32c(envelope.artifact()));
  const std::string bytes = absl::StrCat(kMagic, envelope.SerializeAsString());
  if (static_cast<int64_t>(bytes.size()) > max_file_bytes_) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the data set is ", bytes.size(), " bytes stored, over the limit of ", max_file_bytes_));
  }
  info.set_bytes(static_cast<int64_t>(bytes.size()));
  if (absl::Status status = core::WriteFileAtomically(PathOf(info.id()), bytes); !status.ok()) {
    return status;
  }
  return info;
}

absl::StatusOr<core::Dataset> DatasetStore::Get(const std::string& id) const {
  if (!IsValidId(id)) return absl::NotFoundError(absl::StrCat("no data set ", id));
  absl::StatusOr<std::string> bytes =
      core::ReadFileBounded(PathOf(id), max_file_bytes_, "data set");
  if (!bytes.ok()) {
    if (absl::IsNotFound(bytes.status())) {
      return absl::NotFoundError(absl::StrCat("no data set ", id));
    }
    return bytes.status();
  }
  v1::ArtifactEnvelope envelope;
  v1::StoredDataset stored;
  if (!absl::StartsWith(*bytes, kMagic) ||
      !envelope.ParseFromArray(bytes->data() + kMagic.size(),
                               static_cast<int>(bytes->size() - kMagic.size())) ||
      core::Crc32c(envelope.artifact()) != envelope.crc32c() ||
      !stored.ParseFromString(envelope.artifact())) {
    return absl::DataLossError(absl::StrCat("data set ", id, " is damaged on disk"));
  }
  v1::DataSource source;
  *source.mutable_inline_() = std::move(*stored.mutable_data());
  return DatasetFromSource(source, TrainLimits());
}

}  // namespace recurrent::server
