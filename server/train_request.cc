#include "server/train_request.h"

#include <cmath>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/generators.h"
#include "core/status_macros.h"

namespace recurrent::server {
namespace {

absl::Status Bad(absl::string_view field, double value, absl::string_view rule) {
  return absl::InvalidArgumentError(absl::StrCat(field, " is ", value, "; it must be ", rule));
}

absl::Status CheckRange(absl::string_view field, int64_t value, int64_t low, int64_t high) {
  if (value < low || value > high) {
    return Bad(field, static_cast<double>(value), absl::StrCat("in [", low, ", ", high, "]"));
  }
  return absl::OkStatus();
}

absl::StatusOr<core::OptimizerKind> OptimizerFromProto(v1::OptimizerKind kind) {
  switch (kind) {
    case v1::OPTIMIZER_KIND_UNSPECIFIED:
    case v1::OPTIMIZER_KIND_ADAM:
      return core::OptimizerKind::kAdam;
    case v1::OPTIMIZER_KIND_SGD:
      return core::OptimizerKind::kSgd;
    case v1::OPTIMIZER_KIND_ADAMW:
      return core::OptimizerKind::kAdamW;
    case v1::OPTIMIZER_KIND_RMSPROP:
      return core::OptimizerKind::kRmsprop;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("options.optimizer ", static_cast<int>(kind), " is not a known optimizer"));
  }
}

absl::StatusOr<core::ScheduleKind> ScheduleFromProto(v1::ScheduleKind kind) {
  switch (kind) {
    case v1::SCHEDULE_KIND_UNSPECIFIED:
    case v1::SCHEDULE_KIND_CONSTANT:
      return core::ScheduleKind::kConstant;
    case v1::SCHEDULE_KIND_STEP_DECAY:
      return core::ScheduleKind::kStepDecay;
    case v1::SCHEDULE_KIND_COSINE:
      return core::ScheduleKind::kCosine;
    case v1::SCHEDULE_KIND_REDUCE_ON_PLATEAU:
      return core::ScheduleKind::kReduceOnPlateau;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("options.schedule ", static_cast<int>(kind), " is not a known schedule"));
  }
}

absl::StatusOr<core::TargetKind> TargetKindFromProto(v1::TargetKind kind) {
  switch (kind) {
    case v1::TARGET_KIND_PER_STEP_VALUES:
      return core::TargetKind::kPerStepValues;
    case v1::TARGET_KIND_SEQUENCE_VALUES:
      return core::TargetKind::kSequenceValues;
    case v1::TARGET_KIND_PER_STEP_LABELS:
      return core::TargetKind::kPerStepLabels;
    case v1::TARGET_KIND_SEQUENCE_LABELS:
      return core::TargetKind::kSequenceLabels;
    default:
      return absl::InvalidArgumentError(
          "data.inline.kind must be set (per-step or sequence, values or labels)");
  }
}

absl::StatusOr<core::WindowOptions> WindowFromProto(const v1::WindowSpec& proto,
                                                    absl::string_view field) {
  core::WindowOptions window;
  window.window = proto.window();
  window.horizon = proto.horizon() == 0 ? 1 : proto.horizon();
  window.stride = proto.stride() == 0 ? 1 : proto.stride();
  window.all_horizon_steps = proto.all_horizon_steps();
  window.per_step_targets = proto.per_step_targets();
  if (window.window < 1) return Bad(absl::StrCat(field, ".window"), window.window, ">= 1");
  return window;
}

}  // namespace

absl::StatusOr<core::TrainerOptions> TrainerOptionsFromProto(const v1::TrainingOptions& proto,
                                                             const TrainLimits& limits) {
  core::TrainerOptions options;
  if (proto.has_seed()) options.seed = proto.seed();
  if (proto.batch_size() != 0) options.batch_size = proto.batch_size();
  if (proto.max_epochs() != 0) options.max_epochs = proto.max_epochs();
  options.max_steps = proto.max_steps();
  options.time_budget_seconds = proto.time_budget_seconds();
  RETURN_IF_ERROR(CheckRange("options.batch_size", options.batch_size, 1, limits.max_batch_size));
  RETURN_IF_ERROR(CheckRange("options.max_epochs", options.max_epochs, 1, limits.max_epochs));
  RETURN_IF_ERROR(CheckRange("options.max_steps", options.max_steps, 0, limits.max_steps));

  ASSIGN_OR_RETURN(options.optimizer.kind, OptimizerFromProto(proto.optimizer()));
  if (proto.has_learning_rate()) options.optimizer.learning_rate = proto.learning_rate();
  options.optimizer.momentum = proto.momentum();
  options.optimizer.nesterov = proto.nesterov();
  options.optimizer.weight_decay = proto.weight_decay();

  ASSIGN_OR_RETURN(options.schedule.kind, ScheduleFromProto(proto.schedule()));
  if (proto.schedule_step_size() != 0) options.schedule.step_size = proto.schedule_step_size();
  if (proto.schedule_gamma() != 0) options.schedule.gamma = proto.schedule_gamma();
  if (proto.schedule_t_max() != 0) options.schedule.t_max = proto.schedule_t_max();
  if (proto.schedule_factor() != 0) options.schedule.factor = proto.schedule_factor();
  if (proto.schedule_patience() != 0) options.schedule.patience = proto.schedule_patience();

  options.clip_norm = proto.clip_norm();
  options.clip_value = proto.clip_value();
  options.dropout = proto.dropout();
  options.tbptt_steps = proto.tbptt_steps();
  if (proto.has_forget_gate_bias()) options.forget_gate_bias = proto.forget_gate_bias();
  options.chrono_max_steps = proto.chrono_max_steps();
  options.validation_split = proto.validation_split();
  options.early_stopping.enabled = proto.early_stopping();
  if (proto.early_stopping_patience() != 0) {
    options.early_stopping.patience = proto.early_stopping_patience();
  }
  options.early_stopping.min_delta = proto.early_stopping_min_delta();
  options.normalize_inputs = proto.normalize_inputs();
  options.normalize_targets = proto.normalize_targets();

  // The trainer's own checks, with the request's field names.
  if (absl::Status status = core::ValidateTrainerOptions(options); !status.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("options.", status.message()));
  }
  return options;
}

absl::StatusOr<core::Dataset> DatasetFromSource(const v1::DataSource& source,
                                                const TrainLimits& limits) {
  switch (source.source_case()) {
    case v1::DataSource::kDatasetId:
      return absl::FailedPreconditionError("uploaded data sets are resolved by the data set store");
    case v1::DataSource::kInline: {
      const v1::InlineDataset& inline_data = source.inline_();
      core::Dataset data;
      data.input_size = inline_data.input_size();
      data.target_size = inline_data.target_size();
      ASSIGN_OR_RETURN(data.kind, TargetKindFromProto(inline_data.kind()));
      if (inline_data.sequences_size() > limits.data.max_sequences) {
        return Bad("data.inline.sequences count", inline_data.sequences_size(),
                   absl::StrCat("<= ", limits.data.max_sequences));
      }
      data.sequences.reserve(inline_data.sequences_size());
      for (const v1::LabeledSequence& proto : inline_data.sequences()) {
        core::Sequence sequence;
        sequence.length = proto.steps();
        sequence.inputs.assign(proto.inputs().begin(), proto.inputs().end());
        sequence.targets.assign(proto.targets().begin(), proto.targets().end());
        sequence.labels.assign(proto.labels().begin(), proto.labels().end());
        data.sequences.push_back(std::move(sequence));
      }
      if (absl::Status status = core::ValidateDataset(data, limits.data); !status.ok()) {
        return absl::InvalidArgumentError(absl::StrCat("data.inline: ", status.message()));
      }
      return data;
    }
    case v1::DataSource::kGenerator: {
      const v1::GeneratorSpec& generator = source.generator();
      switch (generator.generator_case()) {
        case v1::GeneratorSpec::kAddingProblem: {
          const v1::AddingProblemSpec& spec = generator.adding_problem();
          RETURN_IF_ERROR(CheckRange("data.generator.adding_problem.sequences", spec.sequences(), 1,
                                     limits.max_generated_sequences));
          RETURN_IF_ERROR(CheckRange("data.generator.adding_problem.length", spec.length(), 2,
                                     limits.max_generated_length));
          return core::MakeAddingProblem(spec.sequences(), spec.length(), generator.seed(),
                                         limits.data);
        }
        case v1::GeneratorSpec::kCopyingMemory: {
          const v1::CopyingMemorySpec& spec = generator.copying_memory();
          RETURN_IF_ERROR(CheckRange("data.generator.copying_memory.sequences", spec.sequences(), 1,
                                     limits.max_generated_sequences));
          RETURN_IF_ERROR(CheckRange("data.generator.copying_memory.delay", spec.delay(), 1,
                                     limits.max_generated_length));
          return core::MakeCopyingMemory(spec.sequences(), spec.delay(), generator.seed(),
                                         limits.data);
        }
        case v1::GeneratorSpec::kMackeyGlass: {
          const v1::MackeyGlassSpec& spec = generator.mackey_glass();
          RETURN_IF_ERROR(CheckRange("data.generator.mackey_glass.series_length",
                                     spec.series_length(), 2, limits.max_generated_length));
          ASSIGN_OR_RETURN(const core::WindowOptions window,
                           WindowFromProto(spec.window(), "data.generator.mackey_glass.window"));
          // The integrator keeps the last tau time units of the series (tau * steps_per_unit
          // values, core/generators.h): unbounded, a 30-byte request (tau 1e7) made it allocate
          // and fill 800 MB.
          if (spec.tau() > static_cast<double>(limits.max_generated_length)) {
            return Bad("data.generator.mackey_glass.tau", spec.tau(),
                       absl::StrCat("<= ", limits.max_generated_length,
                                    " (time units; the longest series a request may ask for)"));
          }
          core::MackeyGlassOptions options;
          if (spec.tau() != 0) options.tau = spec.tau();
          return core::MakeMackeyGlassDataset(spec.series_length(), window, options, limits.data);
        }
        case v1::GeneratorSpec::kNoisySines: {
          const v1::NoisySinesSpec& spec = generator.noisy_sines();
          RETURN_IF_ERROR(CheckRange("data.generator.noisy_sines.series_length",
                                     spec.series_length(), 2, limits.max_generated_length));
          ASSIGN_OR_RETURN(const core::WindowOptions window,
                           WindowFromProto(spec.window(), "data.generator.noisy_sines.window"));
          core::SinesOptions options;
          options.seed = generator.seed();
          if (spec.components() != 0) options.num_components = spec.components();
          options.noise_std = spec.noise_std();
          return core::MakeNoisySinesDataset(spec.series_length(), window, options, limits.data);
        }
        default:
          return absl::InvalidArgumentError(
              "data.generator names no generator (adding_problem, copying_memory, mackey_glass, "
              "noisy_sines)");
      }
    }
    default:
      return absl::InvalidArgumentError(
          "data is empty: give a dataset_id, inline sequences or a generator");
  }
}

void CompleteSpecFromData(const core::Dataset& data, v1::ModelSpec* spec) {
  if (spec->num_layers() == 0) spec->set_num_layers(1);
  if (spec->input_size() == 0) spec->set_input_size(data.input_size);
  if (spec->output_size() == 0) spec->set_output_size(data.target_size);
  if (spec->head() == v1::HEAD_MODE_UNSPECIFIED) {
    spec->set_head(data.per_step() ? v1::HEAD_MODE_PER_STEP : v1::HEAD_MODE_LAST_STEP);
  }
  if (spec->loss() == v1::LOSS_TYPE_UNSPECIFIED) {
    spec->set_loss(data.has_labels() ? v1::LOSS_TYPE_CROSS_ENTROPY : v1::LOSS_TYPE_MSE);
  }
}

v1::ModelSpec SpecWithPlaceholders(const v1::ModelSpec& spec) {
  core::Dataset placeholder;
  placeholder.input_size = 1;
  placeholder.target_size = 2;  // valid for both losses
  v1::ModelSpec completed = spec;
  CompleteSpecFromData(placeholder, &completed);
  return completed;
}

}  // namespace recurrent::server
