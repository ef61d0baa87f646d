// libFuzzer target: Predict request validation (server/request_validation.h).
//
// The bytes are a serialized v1::PredictRequest (bytes protobuf cannot parse are skipped: its
// parser is not ours to fuzz). The request is validated against a few small fixed models, under
// the service's default limits and under tight ones. Errors must be InvalidArgument; a request
// accepted by both is run as InferenceServiceImpl::Predict runs it (sequences of one length share a
// Forward call, normalization applied and undone), proving that what validation lets through is
// safe for the engine.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <vector>

#include "core/network.h"
#include "core/normalization.h"
#include "recurrent/v1/service.pb.h"
#include "server/request_validation.h"
#include "tests/fuzz/fuzz_util.h"

namespace recurrent::fuzz {
namespace {

// InferenceServiceImpl::Predict's engine part, for one model.
void Run(const v1::PredictRequest& request, Engine& engine) {
  const core::ModelSpec& spec = engine.model.spec;
  std::map<int64_t, std::vector<int>> by_length;
  for (int i = 0; i < request.sequences_size(); ++i) {
    by_length[request.sequences(i).steps()].push_back(i);
  }
  for (const auto& [steps, members] : by_length) {
    const int64_t n = static_cast<int64_t>(members.size());
    core::Tensor inputs({n, steps, spec.input_size});
    for (int64_t b = 0; b < n; ++b) {
      const v1::InputSequence& sequence = request.sequences(members[b]);
      std::memcpy(inputs.data() + b * steps * spec.input_size, sequence.values().data(),
                  sizeof(float) * sequence.values_size());
    }
    core::NormalizeInputs(engine.model.normalization, inputs.data(), n * steps);
    core::ForwardResult result;
    const absl::Status forward = engine.network->Forward(inputs, nullptr, &result);
    FUZZ_CHECK(forward.ok(), "Forward failed on a valid request: %s", forward.ToString().c_str());
    const int64_t rows = spec.head == core::HeadMode::kPerStep ? steps : 1;
    FUZZ_CHECK(result.outputs.size() == n * rows * spec.output_size, "%ld outputs",
               result.outputs.size());
    core::DenormalizeOutputs(engine.model.normalization, result.outputs.data(), n * rows);
    const int64_t state_values = spec.num_layers * spec.num_directions() * n * spec.hidden_size;
    FUZZ_CHECK(result.final_state.h.size() == state_values, "%ld state values",
               result.final_state.h.size());
  }
}

}  // namespace
}  // namespace recurrent::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace recurrent;  // NOLINT: a fuzzer entry point
  v1::PredictRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return 0;
  // Small enough to run on every input: the engine's shapes stay few, each input fast.
  const server::PredictLimits tight{/*max_sequences=*/8, /*max_steps=*/32, /*max_values=*/1024};
  for (fuzz::Engine& engine : fuzz::Engines(/*steppable=*/false)) {
    const absl::Status valid =
        server::ValidatePredictRequest(request, engine.model.spec, server::PredictLimits{});
    const absl::Status small = server::ValidatePredictRequest(request, engine.model.spec, tight);
    for (const absl::Status* status : {&valid, &small}) {
      FUZZ_CHECK(status->ok() || status->code() == absl::StatusCode::kInvalidArgument,
                 "unexpected error code: %s", status->ToString().c_str());
    }
    FUZZ_CHECK(valid.ok() || !small.ok(), "tighter limits accepted what the defaults refused");
    if (small.ok()) fuzz::Run(request, engine);
  }
  return 0;
}
