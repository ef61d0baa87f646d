// libFuzzer target: the model artifact loader (core/artifact.h).
//
// Feeds the bytes to ParseModel as they are, and again with the envelope's checksum recomputed so
// that mutations reach the content checks. Whatever ParseModel accepts must be usable:
//   - SerializeModel accepts it, and its bytes parse back to the same model, deterministically;
//   - a core::Network builds from it and runs a 2-step Forward (small models only, to keep each
//     input fast).
// Any other outcome must be DataLoss or InvalidArgument (artifact.h's contract).
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/artifact.h"
#include "core/model_spec.h"
#include "core/network.h"
#include "core/normalization.h"
#include "tests/fuzz/fuzz_util.h"

namespace recurrent::fuzz {
namespace {

// Models up to this many parameters are also run through the engine.
constexpr int64_t kMaxEngineParameters = 1 << 14;

void CheckRoundTrip(const core::Model& model, const core::ArtifactLimits& limits) {
  absl::StatusOr<std::string> bytes = core::SerializeModel(model, limits);
  FUZZ_CHECK(bytes.ok(), "an accepted model does not serialize: %s",
             std::string(bytes.status().message()).c_str());
  absl::StatusOr<core::Model> again = core::ParseModel(*bytes, limits);
  FUZZ_CHECK(again.ok(), "serialized bytes do not parse: %s",
             std::string(again.status().message()).c_str());
  FUZZ_CHECK(again->spec == model.spec, "spec changed in a round trip");
  FUZZ_CHECK(again->normalization == model.normalization, "normalization changed");
  FUZZ_CHECK(again->labels == model.labels, "labels changed");
  FUZZ_CHECK(again->parameters.size() == model.parameters.size(), "parameter count changed");
  for (const auto& [name, tensor] : model.parameters) {
    const auto it = again->parameters.find(name);
    FUZZ_CHECK(it != again->parameters.end(), "parameter %s lost", name.c_str());
    FUZZ_CHECK(it->second.shape == tensor.shape, "shape of %s changed", name.c_str());
    FUZZ_CHECK(it->second.values == tensor.values, "values of %s changed", name.c_str());
  }
  absl::StatusOr<std::string> bytes_again = core::SerializeModel(*again, limits);
  FUZZ_CHECK(bytes_again.ok() && *bytes_again == *bytes, "serialization is not deterministic");
}

void CheckUsable(const core::Model& model) {
  const core::ModelSpec& spec = model.spec;
  if (core::ParameterCount(spec) > kMaxEngineParameters) return;
  core::NetworkOptions options;
  options.num_threads = 1;
  absl::StatusOr<std::unique_ptr<core::Network>> network =
      core::Network::Create(spec, model.parameters, options);
  FUZZ_CHECK(network.ok(), "an accepted model does not build a network: %s",
             std::string(network.status().message()).c_str());
  constexpr int64_t kSteps = 2;
  core::Tensor inputs({1, kSteps, spec.input_size});  // N = 1
  for (size_t i = 0; i < inputs.values.size(); ++i) inputs.values[i] = 0.25f * (i % 5);
  core::NormalizeInputs(model.normalization, inputs.data(), kSteps);
  core::ForwardResult result;
  const absl::Status forward = (*network)->Forward(inputs, nullptr, &result);
  FUZZ_CHECK(forward.ok(), "Forward failed on an accepted model: %s",
             std::string(forward.message()).c_str());
  const int64_t rows = spec.head == core::HeadMode::kPerStep ? kSteps : 1;
  FUZZ_CHECK(static_cast<int64_t>(result.outputs.values.size()) == rows * spec.output_size,
             "Forward returned %zu outputs", result.outputs.values.size());
  core::DenormalizeOutputs(model.normalization, result.outputs.data(), rows);
}

void ParseOne(absl::string_view bytes) {
  const core::ArtifactLimits limits;  // the registry's defaults
  absl::StatusOr<core::Model> model = core::ParseModel(bytes, limits);
  if (!model.ok()) {
    FUZZ_CHECK(IsExpectedError(model.status(),
                               {absl::StatusCode::kDataLoss, absl::StatusCode::kInvalidArgument}),
               "unexpected error code: %s", model.status().ToString().c_str());
    return;
  }
  FUZZ_CHECK(core::ValidateModel(*model).ok(), "ParseModel returned an invalid model");
  CheckRoundTrip(*model, limits);
  CheckUsable(*model);
}

}  // namespace
}  // namespace recurrent::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  recurrent::fuzz::WithAndWithoutChecksumFix(bytes, recurrent::core::kArtifactMagic,
                                             recurrent::fuzz::ParseOne);
  return 0;
}
