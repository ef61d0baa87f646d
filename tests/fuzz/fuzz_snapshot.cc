// libFuzzer target: the StepPredict state snapshot decoder (server/stream_snapshot.h).
//
// Feeds the bytes to DecodeSnapshot as they are, and again with the envelope's checksum
// recomputed (so that mutations reach the payload checks), under a small and under the service's
// state bound. Errors must be InvalidArgument; an accepted snapshot must respect the bound, hold
// only finite values, a version >= 1 and steps >= 0, and survive EncodeSnapshot -> DecodeSnapshot
// unchanged.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>

#include "server/request_validation.h"
#include "server/stream_snapshot.h"
#include "tests/fuzz/fuzz_util.h"

namespace recurrent::fuzz {
namespace {

void DecodeOne(absl::string_view bytes, int64_t max_state_floats) {
  absl::StatusOr<server::StreamState> state = server::DecodeSnapshot(bytes, max_state_floats);
  if (!state.ok()) {
    FUZZ_CHECK(state.status().code() == absl::StatusCode::kInvalidArgument,
               "unexpected error code: %s", state.status().ToString().c_str());
    return;
  }
  FUZZ_CHECK(static_cast<int64_t>(state->state.size()) <= max_state_floats, "state over the bound");
  FUZZ_CHECK(state->model_version >= 1 && state->steps_taken >= 0, "out-of-range fields");
  for (const float value : state->state) FUZZ_CHECK(std::isfinite(value), "non-finite state");

  const std::string encoded = server::EncodeSnapshot(*state);
  absl::StatusOr<server::StreamState> again = server::DecodeSnapshot(encoded, max_state_floats);
  FUZZ_CHECK(again.ok(), "an encoded snapshot does not decode: %s",
             again.status().ToString().c_str());
  FUZZ_CHECK(again->model_name == state->model_name &&
                 again->model_version == state->model_version &&
                 again->steps_taken == state->steps_taken && again->state == state->state,
             "a snapshot changed in a round trip");
  FUZZ_CHECK(server::EncodeSnapshot(*again) == encoded, "encoding is not deterministic");
}

void DecodeAll(absl::string_view bytes) {
  DecodeOne(bytes, /*max_state_floats=*/64);
  DecodeOne(bytes, server::kMaxSnapshotStateFloats);
}

}  // namespace
}  // namespace recurrent::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  recurrent::fuzz::WithAndWithoutChecksumFix(bytes, recurrent::server::kSnapshotMagic,
                                             recurrent::fuzz::DecodeAll);
  return 0;
}
