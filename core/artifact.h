// The model artifact: a trained network (spec, weights, normalization, lineage) as bytes or a file.
//
// Layout (see proto/recurrent/v1/model.proto):
//
//   "RCNTMDL1"                   8-byte magic: identifies the file type at a glance (`head -c8`)
//   ArtifactEnvelope {           serialized protobuf, the rest of the bytes
//     format_version             kArtifactFormatVersion; outside the checksum so that a reader can
//                                refuse a newer format before trusting anything else in it
//     crc32c                     CRC-32C of `artifact` (core/crc32c.h)
//     artifact                   serialized ModelArtifact
//   }
//
// Tensors use PyTorch names, shapes and gate order (core/parameters.h) and are written in
// ParameterLayout order. Serialization is deterministic: the same Model gives the same bytes.
//
// Reading treats the bytes as hostile: every size is bounded by ArtifactLimits before memory is
// allocated for it, shapes are compared to the spec's layout before any product is taken, and
// every failure is a Status, never a crash. Error codes:
//   DataLoss         the bytes are not an intact artifact: empty, bad magic, truncated, CRC
//                    mismatch, unparseable protobuf.
//   InvalidArgument  an intact artifact whose content is wrong (unknown enum, missing/extra/
//                    misshapen tensor, non-finite value, bad normalization), over the limits, or a
//                    format newer than this build reads.
//   (files only)     NotFound, PermissionDenied, ... from the OS error, with the path.
//
// All functions are thread-safe (no shared state); a Model is a plain value.
#ifndef RECURRENT_CORE_ARTIFACT_H_
#define RECURRENT_CORE_ARTIFACT_H_

#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/model_spec.h"
#include "core/parameters.h"
#include "recurrent/v1/model.pb.h"

namespace recurrent::core {

// The format this build writes and the newest it reads. Bump it only for changes an older reader
// would misinterpret; new optional proto fields do not need a bump (old readers ignore them).
inline constexpr uint32_t kArtifactFormatVersion = 1;

inline constexpr absl::string_view kArtifactMagic = "RCNTMDL1";  // 8 bytes, no terminator

// protobuf cannot parse a message of 2 GiB or more, so no artifact can be larger than this,
// whatever ArtifactLimits says.
inline constexpr int64_t kMaxSupportedArtifactBytes =
    static_cast<int64_t>(kArtifactMagic.size()) + std::numeric_limits<int32_t>::max();

// Per-feature standardization fitted on the training split: x' = (x - mean) / std.
// Each pair is either both empty (no normalization) or both of the feature count:
// input_* has spec.input_size entries; target_* has spec.output_size entries and is allowed only
// with LossType::kMse (class labels are not normalized). Every mean is finite; every std is
// finite and > 0.
struct Normalization {
  std::vector<float> input_mean;
  std::vector<float> input_std;
  std::vector<float> target_mean;
  std::vector<float> target_std;

  bool has_input() const { return !input_mean.empty(); }
  bool has_target() const { return !target_mean.empty(); }

  friend bool operator==(const Normalization&, const Normalization&) = default;
};

// Everything needed to rebuild a trained network.
struct Model {
  ModelSpec spec;
  ParameterSet parameters;  // exactly ParameterLayout(spec), finite values
  Normalization normalization;
  // Lineage filled by the trainer (hyperparameters, metrics, loss history, ...). Free-form: the
  // engine never reads it. Kept as the proto message so new fields need no core change.
  recurrent::v1::TrainingMetadata training;
  std::map<std::string, std::string> labels;  // free-form user annotations, UTF-8
};

// Bounds applied to untrusted artifacts, and to written ones so that whatever SerializeModel
// accepts, ParseModel with the same limits reads back.
struct ArtifactLimits {
  // Whole artifact, magic included. The default admits the largest model SpecLimits allows
  // (2^28 float32 parameters = 1 GiB) plus 64 MiB for names, normalization and metadata.
  // Values above kMaxSupportedArtifactBytes act as kMaxSupportedArtifactBytes.
  int64_t max_bytes = (int64_t{1} << 30) + (int64_t{64} << 20);
  SpecLimits spec_limits;
};

// Returns OK iff `model` is self-consistent and within `limits`: ValidateSpec, ValidateParameters,
// the Normalization rules above, and valid UTF-8 in labels and in the metadata's strings
// (protobuf refuses to parse invalid UTF-8 in proto3 strings). InvalidArgument otherwise.
absl::Status ValidateModel(const Model& model, const SpecLimits& limits = {});

// The artifact bytes of `model` (magic + envelope). Fails with InvalidArgument if
// ValidateModel(model, limits.spec_limits) fails or the result would exceed limits.max_bytes.
// Peak memory is about three times the parameter bytes.
absl::StatusOr<std::string> SerializeModel(const Model& model, const ArtifactLimits& limits = {});

// Parses and fully validates artifact bytes (see the error codes at the top of this file).
// `bytes` is only read during the call. Peak memory is about three times bytes.size() on top of
// the input itself; bytes.size() is checked against limits.max_bytes before anything else.
// (A checksummed artifact with invalid UTF-8 in a string also makes protobuf log one line to
// stderr; the result is still just DataLoss.)
absl::StatusOr<Model> ParseModel(absl::string_view bytes, const ArtifactLimits& limits = {});

// Writes SerializeModel(model, limits) to `path` atomically: the bytes go to a new temporary file
// "<path>.tmp.<unique>" in the same directory, which is fsync'ed, renamed over `path`, and the
// directory fsync'ed. Readers see the old file or the new one, never a mix, and after OK the new
// file survives a power loss. On failure `path` is untouched and the temporary file is removed
// (only a crash can leave one behind; "<path>.tmp.*" files are safe to delete), with one
// exception: if only the final directory fsync fails, the new file is already in place but may
// not survive a power loss, and that error is returned. The file is created with mode 0644 minus
// the umask.
absl::Status WriteModelFile(const std::string& path, const Model& model,
                            const ArtifactLimits& limits = {});

// Reads and parses the artifact at `path`. The file size is checked against limits.max_bytes
// before anything is read; a file that is not a regular file is rejected (InvalidArgument).
absl::StatusOr<Model> ReadModelFile(const std::string& path, const ArtifactLimits& limits = {});

}  // namespace recurrent::core

#endif  // RECURRENT_CORE_ARTIFACT_H_
