// Validation of InferenceService requests against the model they run on, before any engine time is
// spent: Predict's sequences and StepPredict's `open` and `step` messages. gRPC-free (protobuf
// messages in, absl::Status out) so that the fuzz targets (tests/fuzz/) can drive exactly the
// checks the services run; the services convert with ToGrpcStatus (server/grpc_status.h).
//
// Every error is InvalidArgument with a message naming the field and, for a limit, the server flag
// that sets it (e.g. "sequences[2].steps is 0; it must be in [1, 100000]"). Whatever these accept
// is safe to hand to core::Network for `spec`: sizes match the spec, counts are within the limits,
// every value is finite. All functions are thread-safe (no shared state).
#ifndef RECURRENT_SERVER_REQUEST_VALIDATION_H_
#define RECURRENT_SERVER_REQUEST_VALIDATION_H_

#include <cstdint>

#include "absl/status/status.h"
#include "core/model_spec.h"
#include "recurrent/v1/service.pb.h"

namespace recurrent::server {

// Predict's bounds (InferenceLimits' fields of the same names; server flags).
struct PredictLimits {
  int64_t max_sequences = 4096;           // per request (--max_predict_sequences)
  int64_t max_steps = 100'000;            // per sequence
  int64_t max_values = int64_t{1} << 26;  // inputs in one request (--max_predict_values)
};

// OK iff `request` holds 1..max_sequences sequences, each of 1..max_steps steps with exactly
// steps * spec.input_size values, all finite, and at most max_values values in all. The model
// reference is not checked here (the registry resolves it).
absl::Status ValidatePredictRequest(const v1::PredictRequest& request, const core::ModelSpec& spec,
                                    const PredictLimits& limits);

// The largest snapshot state StepPredict decodes (floats); a model's state is far smaller.
inline constexpr int64_t kMaxSnapshotStateFloats = int64_t{1} << 26;

// OK iff `request`, the first message of a StepPredict stream, is `open`.
absl::Status ValidateOpenRequest(const v1::StepRequest& request);

// OK iff a state decoded from `resume_from` (server/stream_snapshot.h) holds `snapshot_floats`
// floats where the model it names steps `model_state_floats` (core::Network::step_state_size()).
absl::Status ValidateResumedState(int64_t snapshot_floats, int64_t model_state_floats);

// OK iff `step` has 1..max_steps steps (--max_steps_per_message) with exactly
// steps * spec.input_size values, all finite.
absl::Status ValidateStepInput(const v1::StepInput& step, const core::ModelSpec& spec,
                               int64_t max_steps);

}  // namespace recurrent::server

#endif  // RECURRENT_SERVER_REQUEST_VALIDATION_H_
