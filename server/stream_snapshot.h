// Opaque, checksummed snapshots of a StepPredict stream's state, so that a client can close a
// stream and continue it later on any replica that can load the same model version.
//
// Decoding treats the bytes as hostile: INVALID_ARGUMENT for anything that is not an intact
// snapshot (wrong magic, truncated, checksum mismatch, unparseable, newer format, a state of the
// wrong size is checked by the caller against the model).
#ifndef RECURRENT_SERVER_STREAM_SNAPSHOT_H_
#define RECURRENT_SERVER_STREAM_SNAPSHOT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace recurrent::server {

struct StreamState {
  std::string model_name;
  int64_t model_version = 0;
  int64_t steps_taken = 0;
  std::vector<float> state;
};

// The first bytes of every snapshot (then an ArtifactEnvelope, as in a model artifact).
inline constexpr absl::string_view kSnapshotMagic = "RCNTSNP1";

std::string EncodeSnapshot(const StreamState& state);
// `max_state_floats` bounds the state before it is copied.
absl::StatusOr<StreamState> DecodeSnapshot(absl::string_view bytes, int64_t max_state_floats);

}  // namespace recurrent::server

#endif  // RECURRENT_SERVER_STREAM_SNAPSHOT_H_
