// libFuzzer target: StepPredict message validation (server/request_validation.h), as
// StepSession (server/step_session.cc) runs it.
//
// The bytes are a serialized v1::StepRequest (bytes protobuf cannot parse are skipped). Each
// message is taken both ways a session can see it, against a few small fixed unidirectional
// models:
//   - as the first message: ValidateOpenRequest; for `open` with resume_from, DecodeSnapshot and
//     ValidateResumedState against each model; an accepted state is stepped once from;
//   - as a later message: for `step`, ValidateStepInput, and an accepted one runs its timesteps
//     through Network::Step from a zero state (normalization applied and undone, as the session
//     does); `snapshot` encodes and decodes a state.
// Errors must be InvalidArgument.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/network.h"
#include "core/normalization.h"
#include "recurrent/v1/service.pb.h"
#include "server/request_validation.h"
#include "server/stream_snapshot.h"
#include "tests/fuzz/fuzz_util.h"

namespace recurrent::fuzz {
namespace {

// InferenceLimits::max_steps_per_message's default.
constexpr int64_t kMaxStepsPerMessage = 1024;

void ExpectInvalid(const absl::Status& status) {
  FUZZ_CHECK(status.ok() || status.code() == absl::StatusCode::kInvalidArgument,
             "unexpected error code: %s", status.ToString().c_str());
}

// StepSession::SubmitStep / OnStepDone for `steps` timesteps of `values`, one stream.
void RunSteps(Engine& engine, const float* values, int64_t steps, std::vector<float>& state) {
  const core::ModelSpec& spec = engine.model.spec;
  std::vector<float> input(spec.input_size);
  std::vector<float> output(spec.output_size);
  float* states[] = {state.data()};
  for (int64_t t = 0; t < steps; ++t) {
    std::memcpy(input.data(), values + t * spec.input_size, sizeof(float) * spec.input_size);
    core::NormalizeInputs(engine.model.normalization, input.data(), 1);
    const absl::Status step = engine.network->Step(input.data(), 1, states, output.data());
    FUZZ_CHECK(step.ok(), "Step failed on a valid message: %s", step.ToString().c_str());
    core::DenormalizeOutputs(engine.model.normalization, output.data(), 1);
  }
}

void Resume(absl::string_view snapshot) {
  absl::StatusOr<server::StreamState> resumed =
      server::DecodeSnapshot(snapshot, server::kMaxSnapshotStateFloats);
  ExpectInvalid(resumed.status());
  if (!resumed.ok()) return;
  for (Engine& engine : Engines(/*steppable=*/true)) {
    const absl::Status fits = server::ValidateResumedState(
        static_cast<int64_t>(resumed->state.size()), engine.network->step_state_size());
    ExpectInvalid(fits);
    if (!fits.ok()) continue;
    std::vector<float> state = resumed->state;
    const std::vector<float> zeros(engine.model.spec.input_size, 0.0f);
    RunSteps(engine, zeros.data(), 1, state);
  }
}

void AsFirstMessage(const v1::StepRequest& request) {
  const absl::Status open = server::ValidateOpenRequest(request);
  ExpectInvalid(open);
  FUZZ_CHECK(open.ok() == request.has_open(), "only `open` may start a stream");
  if (!open.ok() || request.open().resume_from().empty()) return;
  // A mutated snapshot rarely keeps its checksum: also try it with the checksum recomputed.
  WithAndWithoutChecksumFix(request.open().resume_from(), server::kSnapshotMagic, Resume);
}

void AsLaterMessage(const v1::StepRequest& request) {
  if (request.has_snapshot()) {
    const server::StreamState state{"fuzz", 1, 7, {0.5f, -1.0f}};
    absl::StatusOr<server::StreamState> decoded =
        server::DecodeSnapshot(server::EncodeSnapshot(state), server::kMaxSnapshotStateFloats);
    FUZZ_CHECK(decoded.ok() && decoded->state == state.state, "snapshot round trip");
    return;
  }
  if (!request.has_step()) return;  // open, reset, empty: answered without validation
  for (Engine& engine : Engines(/*steppable=*/true)) {
    const absl::Status valid =
        server::ValidateStepInput(request.step(), engine.model.spec, kMaxStepsPerMessage);
    ExpectInvalid(valid);
    if (!valid.ok()) continue;
    std::vector<float> state(engine.network->step_state_size(), 0.0f);
    RunSteps(engine, request.step().values().data(), request.step().steps(), state);
  }
}

}  // namespace
}  // namespace recurrent::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  recurrent::v1::StepRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return 0;
  recurrent::fuzz::AsFirstMessage(request);
  recurrent::fuzz::AsLaterMessage(request);
  return 0;
}
