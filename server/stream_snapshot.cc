#include "server/stream_snapshot.h"

#include <cmath>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/crc32c.h"
#include "recurrent/v1/model.pb.h"
#include "recurrent/v1/snapshot.pb.h"

namespace recurrent::server {
namespace {

constexpr uint32_t kFormatVersion = 1;

absl::Status Bad(absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("resume_from is not a valid snapshot: ", why));
}

}  // namespace

std::string EncodeSnapshot(const StreamState& state) {
  v1::StreamSnapshot snapshot;
  snapshot.set_format_version(kFormatVersion);
  snapshot.set_model_name(state.model_name);
  snapshot.set_model_version(state.model_version);
  snapshot.set_steps_taken(state.steps_taken);
  snapshot.mutable_state()->Add(state.state.begin(), state.state.end());
  v1::ArtifactEnvelope envelope;
  envelope.set_format_version(kFormatVersion);
  envelope.set_artifact(snapshot.SerializeAsString());
  envelope.set_crc32c(core::Crc32c(envelope.artifact()));
  return absl::StrCat(kSnapshotMagic, envelope.SerializeAsString());
}

absl::StatusOr<StreamState> DecodeSnapshot(absl::string_view bytes, int64_t max_state_floats) {
  if (!absl::StartsWith(bytes, kSnapshotMagic)) return Bad("wrong magic");
  const absl::string_view body = bytes.substr(kSnapshotMagic.size());
  // A state of max_state_floats floats plus names and framing.
  if (static_cast<int64_t>(body.size()) > 4 * max_state_floats + 4096) return Bad("too large");
  v1::ArtifactEnvelope envelope;
  if (!envelope.ParseFromArray(body.data(), static_cast<int>(body.size()))) {
    return Bad("truncated or corrupt");
  }
  if (envelope.format_version() != kFormatVersion) {
    return Bad(absl::StrCat("format version ", envelope.format_version()));
  }
  if (core::Crc32c(envelope.artifact()) != envelope.crc32c()) return Bad("checksum mismatch");
  v1::StreamSnapshot snapshot;
  if (!snapshot.ParseFromString(envelope.artifact())) return Bad("unparseable payload");
  if (snapshot.state_size() > max_state_floats || snapshot.model_version() < 1 ||
      snapshot.steps_taken() < 0) {
    return Bad("out-of-range fields");
  }
  StreamState state;
  state.model_name = snapshot.model_name();
  state.model_version = snapshot.model_version();
  state.steps_taken = snapshot.steps_taken();
  state.state.assign(snapshot.state().begin(), snapshot.state().end());
  for (const float value : state.state) {
    if (!std::isfinite(value)) return Bad("non-finite state");
  }
  return state;
}

}  // namespace recurrent::server
