// libFuzzer target: Train request conversion and validation (server/train_request.h), without
// training.
//
// The bytes are a serialized v1::TrainRequest (bytes protobuf cannot parse are skipped). Every
// check TrainingServiceImpl::Train (submit time) and the training runner (job time) make is run,
// each on its own so that a failing early one does not hide a later one: the model name, the spec
// with placeholders, the trainer options, the data and validation sources (inline data and the
// generators, capped small; a dataset_id needs the data set store and must be refused with
// FailedPrecondition), the spec completed from the data and CheckDatasetMatchesSpec. When all of
// them accept a small request, the trainer's preparation runs (the normalization it fits must
// make a valid model) and its first mini-batch runs through the engine's forward and backward
// pass (no optimizer step), proving that accepted data and spec are safe together.
// Errors must be InvalidArgument (FailedPrecondition for dataset_id). Nothing touches the disk.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "core/batcher.h"
#include "core/dataset.h"
#include "core/network.h"
#include "core/normalization.h"
#include "core/spec_proto.h"
#include "recurrent/v1/service.pb.h"
#include "server/model_registry.h"
#include "server/train_request.h"
#include "tests/fuzz/fuzz_util.h"

namespace recurrent::fuzz {
namespace {

// Requests up to these sizes also run one mini-batch through the engine.
constexpr int64_t kMaxEngineParameters = 1 << 14;
constexpr int64_t kMaxEngineBatch = 8;
constexpr int64_t kMaxEngineValues = 1 << 14;  // per batch: N * T * max(C, D*H, O)

server::TrainLimits FuzzLimits() {
  server::TrainLimits limits;  // the service's defaults, with the generators capped small
  limits.max_generated_sequences = 64;
  limits.max_generated_length = 512;
  limits.data.max_total_values = 1 << 18;
  return limits;
}

void ExpectCode(const absl::Status& status, absl::StatusCode code, const char* stage) {
  FUZZ_CHECK(status.ok() || status.code() == code, "%s: unexpected error %s", stage,
             status.ToString().c_str());
}

std::optional<core::Dataset> Data(const v1::DataSource& source, const server::TrainLimits& limits,
                                  const char* stage) {
  absl::StatusOr<core::Dataset> data = server::DatasetFromSource(source, limits);
  if (source.has_dataset_id()) {
    FUZZ_CHECK(data.status().code() == absl::StatusCode::kFailedPrecondition,
               "%s: a dataset_id must be left to the data set store: %s", stage,
               data.status().ToString().c_str());
    return std::nullopt;
  }
  ExpectCode(data.status(), absl::StatusCode::kInvalidArgument, stage);
  if (!data.ok()) return std::nullopt;
  const absl::Status valid = core::ValidateDataset(*data, limits.data);
  FUZZ_CHECK(valid.ok(), "%s: an accepted data set is invalid: %s", stage,
             valid.ToString().c_str());
  return *std::move(data);
}

// The trainer's preparation and first mini-batch, forward and backward: the normalization it
// fits must make a valid model, and the batch must run.
void RunFirstBatch(const core::ModelSpec& spec, core::Dataset data,
                   const core::TrainerOptions& options) {
  if (core::ParameterCount(spec) > kMaxEngineParameters) return;
  core::Model model;
  model.spec = spec;
  model.parameters = core::InitParameters(spec, options.seed);
  if (options.normalize_inputs || options.normalize_targets) {
    absl::StatusOr<core::Normalization> normalization =
        core::FitNormalization(data, options.normalize_inputs, options.normalize_targets);
    ExpectCode(normalization.status(), absl::StatusCode::kInvalidArgument, "normalization");
    if (!normalization.ok()) return;
    model.normalization = *std::move(normalization);
    core::NormalizeDataset(model.normalization, &data);
  }
  const absl::Status valid = core::ValidateModel(model);
  FUZZ_CHECK(valid.ok(), "the model before training is invalid: %s", valid.ToString().c_str());
  std::vector<int64_t> members(data.sequences.size());
  for (size_t i = 0; i < members.size(); ++i) members[i] = static_cast<int64_t>(i);
  const std::vector<std::vector<int64_t>> plan =
      core::PlanEpoch(data, members, std::min(options.batch_size, kMaxEngineBatch),
                      core::AllowsPadding(spec), /*shuffle=*/true, options.seed, /*epoch=*/0);
  FUZZ_CHECK(!plan.empty() && !plan[0].empty(), "an epoch without batches");
  core::Batch batch;
  core::AssembleBatch(data, plan[0], &batch);
  const int64_t width = std::max({spec.input_size, spec.top_width(), spec.output_size});
  if (core::Tensor::ElementCount(batch.inputs.shape) / spec.input_size * width > kMaxEngineValues) {
    return;
  }
  core::NetworkOptions network_options;
  network_options.num_threads = 1;
  absl::StatusOr<std::unique_ptr<core::Network>> network =
      core::Network::Create(spec, model.parameters, network_options);
  FUZZ_CHECK(network.ok(), "an accepted spec does not build: %s",
             network.status().ToString().c_str());
  core::TrainingResult result;
  core::TrainingOptions training;
  training.dropout = options.dropout;
  const absl::Status step =
      (*network)->ForwardBackward(batch.inputs, batch.targets, nullptr, &result, training);
  FUZZ_CHECK(step.ok(), "ForwardBackward failed on an accepted request: %s",
             step.ToString().c_str());
}

void Check(const v1::TrainRequest& request) {
  const server::TrainLimits limits = FuzzLimits();
  bool accepted = true;

  const absl::Status name = server::ValidateModelName(request.model_name(), 128);
  ExpectCode(name, absl::StatusCode::kInvalidArgument, "model_name");
  accepted &= name.ok();

  if (!request.has_start_from()) {
    const absl::StatusOr<core::ModelSpec> submitted =
        core::ModelSpecFromProto(server::SpecWithPlaceholders(request.spec()), limits.spec);
    ExpectCode(submitted.status(), absl::StatusCode::kInvalidArgument, "spec");
    accepted &= submitted.ok();
  }

  const absl::StatusOr<core::TrainerOptions> options =
      server::TrainerOptionsFromProto(request.options(), limits);
  ExpectCode(options.status(), absl::StatusCode::kInvalidArgument, "options");
  if (options.ok()) {
    FUZZ_CHECK(core::ValidateTrainerOptions(*options).ok(), "accepted options are invalid");
  }
  accepted &= options.ok();

  const std::optional<core::Dataset> data = Data(request.data(), limits, "data");
  std::optional<core::Dataset> validation;
  if (request.has_validation()) {
    validation = Data(request.validation(), limits, "validation");
    accepted &= validation.has_value();
  }
  if (!data.has_value()) return;

  // Job time: the spec completed from the data (a fine-tuning request uses its start's spec).
  v1::ModelSpec completed = request.spec();
  server::CompleteSpecFromData(*data, &completed);
  v1::ModelSpec twice = completed;
  server::CompleteSpecFromData(*data, &twice);
  FUZZ_CHECK(twice.SerializeAsString() == completed.SerializeAsString(),
             "CompleteSpecFromData is not idempotent");
  const absl::StatusOr<core::ModelSpec> spec = core::ModelSpecFromProto(completed, limits.spec);
  ExpectCode(spec.status(), absl::StatusCode::kInvalidArgument, "completed spec");
  if (!spec.ok()) return;
  const absl::Status matches = core::CheckDatasetMatchesSpec(*data, *spec);
  ExpectCode(matches, absl::StatusCode::kInvalidArgument, "data vs spec");
  accepted &= matches.ok();
  if (validation.has_value()) {
    const absl::Status also = core::CheckDatasetMatchesSpec(*validation, *spec);
    ExpectCode(also, absl::StatusCode::kInvalidArgument, "validation vs spec");
    accepted &= also.ok();
  }
  if (accepted && !request.has_start_from()) RunFirstBatch(*spec, *data, *options);
}

}  // namespace
}  // namespace recurrent::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  recurrent::v1::TrainRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return 0;
  recurrent::fuzz::Check(request);
  return 0;
}
