#include "server/training_runner.h"

#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/spec_proto.h"
#include "core/status_macros.h"
#include "core/trainer.h"
#include "server/proto_conversions.h"

namespace recurrent::server {
namespace {

v1::JobProgress ProgressToProto(const core::TrainingProgress& progress) {
  v1::JobProgress proto;
  proto.set_epoch(progress.epoch);
  proto.set_max_epochs(progress.max_epochs);
  proto.set_step(progress.step);
  proto.set_batch_in_epoch(progress.batch_in_epoch);
  proto.set_batches_in_epoch(progress.batches_in_epoch);
  proto.set_train_loss(progress.loss);
  if (progress.validation_loss.has_value()) proto.set_validation_loss(*progress.validation_loss);
  proto.set_gradient_norm(progress.gradient_norm);
  proto.set_learning_rate(progress.learning_rate);
  proto.set_sequences_per_second(progress.sequences_per_second);
  proto.set_eta_seconds(progress.eta_seconds);
  proto.set_elapsed_seconds(progress.elapsed_seconds);
  return proto;
}

absl::StatusOr<core::Dataset> ResolveData(const v1::DataSource& source,
                                          const DatasetStore* datasets, const TrainLimits& limits) {
  if (source.has_dataset_id()) {
    if (datasets == nullptr) return absl::FailedPreconditionError("no data set store");
    return datasets->Get(source.dataset_id());
  }
  return DatasetFromSource(source, limits);
}

absl::StatusOr<JobOutcome> Run(const TrainingRunnerOptions& options, ModelRegistry& registry,
                               const DatasetStore* datasets, const v1::TrainRequest& request,
                               JobContext& context) {
  if (absl::Status status = ValidateModelName(request.model_name(), 128); !status.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("model_name: ", status.message()));
  }
  // A job that ran before a crash may have registered its model and died before its end was
  // persisted: then the registered version is its result, not a reason to train again.
  if (context.resume) {
    absl::StatusOr<ModelInfo> existing = registry.GetModel(request.model_name());
    if (existing.ok()) {
      for (const VersionInfo& version : existing->versions) {
        if (version.training.job_id() == context.job_id) {
          const auto& hyperparameters = version.training.hyperparameters();
          const auto reason = hyperparameters.find("stop_reason");
          return JobOutcome{version.version,
                            reason == hyperparameters.end() ? "completed" : reason->second};
        }
      }
    }
  }
  ASSIGN_OR_RETURN(const core::Dataset data, ResolveData(request.data(), datasets, options.limits));
  // The starting point: a registered version (fine-tuning) or the request's spec, completed from
  // the data where it leaves sizes, head or loss open.
  std::shared_ptr<const LoadedModel> start;
  core::ModelSpec spec;
  if (request.has_start_from()) {
    ASSIGN_OR_RETURN(start, registry.Load(ModelRefFromProto(request.start_from())));
    spec = start->model.spec;
  } else {
    v1::ModelSpec completed = request.spec();
    CompleteSpecFromData(data, &completed);
    absl::StatusOr<core::ModelSpec> parsed =
        core::ModelSpecFromProto(completed, options.limits.spec);
    if (!parsed.ok())
      return absl::InvalidArgumentError(absl::StrCat("spec: ", parsed.status().message()));
    spec = *parsed;
  }
  ASSIGN_OR_RETURN(core::TrainerOptions trainer_options,
                   TrainerOptionsFromProto(request.options(), options.limits));
  trainer_options.network.num_threads = options.threads;
  std::optional<core::Dataset> validation;
  if (request.has_validation()) {
    ASSIGN_OR_RETURN(validation, ResolveData(request.validation(), datasets, options.limits));
  }

  const std::string checkpoint =
      absl::StrCat(options.checkpoints_dir, "/", context.job_id, ".ckpt");
  trainer_options.checkpoint.path = checkpoint;
  trainer_options.checkpoint.every_seconds = absl::ToDoubleSeconds(options.checkpoint_interval);
  core::TrainerHooks hooks;
  hooks.stop = context.stop;
  core::Model start_model;
  if (start != nullptr) {
    start_model = start->model;
    hooks.initial_model = &start_model;
  }
  std::error_code error;
  if (context.resume && std::filesystem::exists(checkpoint, error)) hooks.resume_from = checkpoint;
  hooks.on_progress = [&context](const core::TrainingProgress& progress) {
    const v1::JobProgress proto = ProgressToProto(progress);
    if (progress.event == core::TrainingProgress::Event::kEpochEnd) {
      v1::EpochLoss epoch;
      epoch.set_epoch(progress.epoch);
      epoch.set_train_loss(progress.loss);
      epoch.set_has_validation_loss(progress.validation_loss.has_value());
      epoch.set_validation_loss(progress.validation_loss.value_or(0.0));
      context.report(proto, &epoch);
    } else {
      context.report(proto, nullptr);
    }
  };

  std::filesystem::create_directories(options.checkpoints_dir, error);
  ASSIGN_OR_RETURN(core::TrainingOutcome outcome,
                   core::Train(spec, data, validation.has_value() ? &*validation : nullptr,
                               trainer_options, hooks));
  outcome.model.training.set_job_id(context.job_id);
  for (const auto& [key, value] : request.labels()) outcome.model.labels[key] = value;
  if (start != nullptr) {
    outcome.model.labels["fine_tuned_from"] = absl::StrCat(start->name, ":", start->version);
  }
  ASSIGN_OR_RETURN(const int64_t version, registry.Register(request.model_name(), outcome.model));
  std::filesystem::remove(checkpoint, error);  // the job is done; its checkpoint is not needed
  return JobOutcome{version, std::string(core::StopReasonName(outcome.reason))};
}

}  // namespace

JobRunner MakeTrainingRunner(const TrainingRunnerOptions& options, ModelRegistry* registry,
                             const DatasetStore* datasets) {
  return [options, registry, datasets](const v1::TrainRequest& request, JobContext& context) {
    return Run(options, *registry, datasets, request, context);
  };
}

}  // namespace recurrent::server
