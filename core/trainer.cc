#include "core/trainer.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <limits>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/batcher.h"
#include "core/grad_clip.h"
#include "core/loss.h"
#include "core/normalization.h"
#include "core/random.h"
#include "core/status_macros.h"

namespace recurrent::core {
namespace {

using Clock = std::chrono::steady_clock;

// Streams of the trainer's random draws (HashToU64's second word), kept apart so that changing
// one use never shifts another.
constexpr uint64_t kSplitStream = 0x5b17;
constexpr uint64_t kDropoutStream = 0xd509;
constexpr uint64_t kChronoStream = 0xc4c0;

// Options a resumed run may change: budgets and where checkpoints go.
bool MayChangeOnResume(const std::string& key) {
  return key == "max_epochs" || key == "max_steps" || key == "time_budget_seconds" ||
         key.starts_with("checkpoint.") || key == "network.num_threads";
}

double Seconds(Clock::duration duration) { return std::chrono::duration<double>(duration).count(); }

// The training and validation data, normalized, as the loop uses them.
struct PreparedData {
  Dataset train;
  Dataset validation;  // no sequences: no validation
  Normalization normalization;
};

Dataset Subset(const Dataset& dataset, const std::vector<int64_t>& members) {
  Dataset subset;
  subset.input_size = dataset.input_size;
  subset.target_size = dataset.target_size;
  subset.kind = dataset.kind;
  subset.input_names = dataset.input_names;
  subset.target_names = dataset.target_names;
  subset.sequences.reserve(members.size());
  for (const int64_t index : members) subset.sequences.push_back(dataset.sequences[index]);
  return subset;
}

absl::StatusOr<PreparedData> Prepare(const Dataset& train, const Dataset* validation,
                                     const TrainerOptions& options, const Model* initial_model,
                                     const Normalization* resumed_normalization) {
  PreparedData data;
  if (validation != nullptr) {
    data.train = train;
    data.validation = *validation;
  } else if (options.validation_split > 0.0) {
    const int64_t count = static_cast<int64_t>(train.sequences.size());
    const int64_t held_out = static_cast<int64_t>(std::floor(options.validation_split * count));
    if (held_out < 1 || held_out >= count) {
      return absl::InvalidArgumentError(absl::StrCat(
          "validation_split ", options.validation_split, " of ", count,
          " sequences leaves no validation or no training data; use more data or another split"));
    }
    std::vector<int64_t> order(count);
    for (int64_t i = 0; i < count; ++i) order[i] = i;
    Random(HashToU64(options.seed, 0, kSplitStream)).Shuffle(order);
    std::vector<int64_t> train_members(order.begin(), order.end() - held_out);
    std::vector<int64_t> validation_members(order.end() - held_out, order.end());
    // Keep the data's own order within each part: deterministic and easy to reason about.
    std::sort(train_members.begin(), train_members.end());
    std::sort(validation_members.begin(), validation_members.end());
    data.train = Subset(train, train_members);
    data.validation = Subset(train, validation_members);
  } else {
    data.train = train;
  }
  if (resumed_normalization != nullptr) {
    data.normalization = *resumed_normalization;
  } else if (initial_model != nullptr) {
    data.normalization = initial_model->normalization;
  } else if (options.normalize_inputs || options.normalize_targets) {
    ASSIGN_OR_RETURN(data.normalization, FitNormalization(data.train, options.normalize_inputs,
                                                          options.normalize_targets));
  }
  NormalizeDataset(data.normalization, &data.train);
  NormalizeDataset(data.normalization, &data.validation);
  return data;
}

std::vector<int64_t> AllMembers(const Dataset& dataset) {
  std::vector<int64_t> members(dataset.sequences.size());
  for (size_t i = 0; i < members.size(); ++i) members[i] = static_cast<int64_t>(i);
  return members;
}

// A batch cut into chunks of tbptt_steps steps (one chunk without truncated BPTT). A chunk holds
// the inputs of its steps and, for a per-step head, their targets and mask; a last-step head's
// targets stay whole (only the last chunk computes a loss).
class TruncatedBatch {
 public:
  TruncatedBatch(const Batch& batch, bool per_step, int64_t tbptt_steps)
      : batch_(batch), per_step_(per_step) {
    const int64_t t = batch.inputs.shape[1];
    const int64_t chunk = tbptt_steps > 0 ? tbptt_steps : t;
    for (int64_t begin = 0; begin < t; begin += chunk) {
      bounds_.emplace_back(begin, std::min(t, begin + chunk));
    }
  }
  int64_t chunks() const { return static_cast<int64_t>(bounds_.size()); }
  // Chunk `index` as a batch; the whole batch when there is one chunk.
  const Batch& Chunk(int64_t index) {
    if (bounds_.size() == 1) return batch_;
    SliceSteps(batch_, per_step_, bounds_[index].first, bounds_[index].second, &chunk_);
    return chunk_;
  }

 private:
  const Batch& batch_;
  const bool per_step_;
  std::vector<std::pair<int64_t, int64_t>> bounds_;
  Batch chunk_;
};

bool IsFinite(double value) { return std::isfinite(value); }

class TrainingRun {
 public:
  TrainingRun(const ModelSpec& spec, const TrainerOptions& options, const TrainerHooks& hooks,
              PreparedData data, std::string fingerprint)
      : spec_(spec),
        options_(options),
        hooks_(hooks),
        data_(std::move(data)),
        fingerprint_(std::move(fingerprint)),
        allow_padding_(AllowsPadding(spec)),
        train_members_(AllMembers(data_.train)) {}

  absl::Status Start(const ParameterSet& initial, const TrainingCheckpoint* resumed) {
    ASSIGN_OR_RETURN(network_, Network::Create(spec_, initial, options_.network));
    parameters_ = initial;
    ASSIGN_OR_RETURN(optimizer_, Optimizer::Create(options_.optimizer, parameters_));
    ASSIGN_OR_RETURN(LrSchedule schedule,
                     LrSchedule::Create(options_.schedule, options_.optimizer.learning_rate));
    schedule_ = std::make_unique<LrSchedule>(schedule);
    if (resumed != nullptr) {
      RETURN_IF_ERROR(optimizer_->RestoreState(resumed->optimizer));
      const ScheduleSnapshot& s = resumed->schedule;
      RETURN_IF_ERROR(schedule_->Restore(
          {s.epoch, s.learning_rate, s.best, s.num_bad_epochs, s.cooldown_counter}));
      epoch_ = resumed->epoch;
      batch_in_epoch_ = resumed->batch_in_epoch;
      step_ = resumed->global_step;
      epoch_loss_sum_ = resumed->epoch_loss_sum;
      epoch_loss_weight_ = resumed->epoch_loss_weight;
      history_ = resumed->loss_history;
      if (resumed->best_model.has_value()) best_parameters_ = resumed->best_model->parameters;
      best_metric_ = resumed->best_metric;
      best_epoch_ = resumed->best_epoch;
      epochs_without_improvement_ = resumed->epochs_without_improvement;
      elapsed_before_ = resumed->elapsed_seconds;
    }
    // This run's pace and checkpoint intervals count from where it starts.
    first_step_ = step_;
    last_checkpoint_step_ = step_;
    return absl::OkStatus();
  }

  absl::StatusOr<TrainingOutcome> Run() {
    start_ = Clock::now();
    last_checkpoint_ = start_;
    std::optional<StopReason> reason;
    while (!reason.has_value() && epoch_ < options_.max_epochs) {
      const std::vector<std::vector<int64_t>> plan =
          PlanEpoch(data_.train, train_members_, options_.batch_size, allow_padding_,
                    /*shuffle=*/true, options_.seed, epoch_);
      batches_in_epoch_ = static_cast<int64_t>(plan.size());
      while (batch_in_epoch_ < batches_in_epoch_) {
        if (hooks_.stop.stop_requested()) return Cancel(/*at_batch_boundary=*/true);
        ASSIGN_OR_RETURN(const bool finite, RunBatch(plan[batch_in_epoch_]));
        if (!finite) {
          reason = StopReason::kDiverged;
          break;
        }
        ++batch_in_epoch_;
        if (cancelled_mid_batch_) return Cancel(/*at_batch_boundary=*/false);
        RETURN_IF_ERROR(MaybeCheckpoint(/*force=*/false));
        if (options_.max_steps > 0 && step_ >= options_.max_steps) {
          reason = StopReason::kStepBudget;
          break;
        }
        if (OverTimeBudget()) {
          reason = StopReason::kTimeBudget;
          break;
        }
      }
      if (reason == StopReason::kDiverged) break;
      if (batch_in_epoch_ < batches_in_epoch_) break;  // a budget ended the run mid-epoch
      ASSIGN_OR_RETURN(const bool stop_early, EndEpoch());
      if (stop_early) reason = StopReason::kEarlyStopped;
      RETURN_IF_ERROR(MaybeCheckpoint(/*force=*/CheckpointsEnabled()));
    }
    return Finish(reason.value_or(StopReason::kCompleted));
  }

 private:
  bool CheckpointsEnabled() const {
    return !options_.checkpoint.path.empty() &&
           (options_.checkpoint.every_steps > 0 || options_.checkpoint.every_seconds > 0.0);
  }

  double Elapsed() const { return elapsed_before_ + Seconds(Clock::now() - start_); }

  bool OverTimeBudget() const {
    return options_.time_budget_seconds > 0.0 && Elapsed() >= options_.time_budget_seconds;
  }

  // One batch: one optimizer step, or one per chunk with truncated BPTT on a per-step head.
  // Returns false, with the weights untouched by the bad step, on a non-finite loss or norm.
  absl::StatusOr<bool> RunBatch(const std::vector<int64_t>& members) {
    AssembleBatch(data_.train, members, &batch_);
    const bool per_step = spec_.head == HeadMode::kPerStep;
    TruncatedBatch chunks(batch_, per_step, options_.tbptt_steps);
    RecurrentState carried;
    bool have_state = false;
    for (int64_t c = 0; c < chunks.chunks(); ++c) {
      if (c > 0 && hooks_.stop.stop_requested()) {
        cancelled_mid_batch_ = true;
        return true;
      }
      const Batch& chunk = chunks.Chunk(c);
      const RecurrentState* initial = have_state ? &carried : nullptr;
      if (!per_step && c + 1 < chunks.chunks()) {
        // A last-step head has no loss before the last chunk: run forward only and carry the
        // state (detached, as truncated BPTT does).
        RETURN_IF_ERROR(network_->Forward(chunk.inputs, initial, &forward_));
        carried = std::move(forward_.final_state);
        have_state = true;
        continue;
      }
      const TrainingOptions training{
          options_.dropout, HashToU64(options_.seed, static_cast<uint64_t>(step_), kDropoutStream)};
      RETURN_IF_ERROR(
          network_->ForwardBackward(chunk.inputs, chunk.targets, initial, &result_, training));
      const double norm = GlobalNorm(result_.gradients);
      if (!IsFinite(result_.loss) || !IsFinite(norm)) {
        return false;
      }
      if (options_.clip_value > 0.0) ClipByValue(&result_.gradients, options_.clip_value);
      if (options_.clip_norm > 0.0) ClipByGlobalNorm(&result_.gradients, options_.clip_norm);
      const double learning_rate = schedule_->learning_rate();
      RETURN_IF_ERROR(optimizer_->Step(result_.gradients, learning_rate, &parameters_));
      RETURN_IF_ERROR(network_->SetParameters(parameters_));
      ++step_;
      const double weight = static_cast<double>(chunk.predictions);
      epoch_loss_sum_ += result_.loss * weight;
      epoch_loss_weight_ += weight;
      if (c + 1 == chunks.chunks()) {
        sequences_this_run_ += static_cast<int64_t>(members.size());
        ++batches_this_run_;
      }
      carried = std::move(result_.final_state);
      have_state = true;
      last_loss_ = result_.loss;
      Report(TrainingProgress::Event::kStep, result_.loss, std::nullopt, norm, learning_rate);
    }
    return true;
  }

  // Validation, history, schedule and early stopping at the end of an epoch. Returns true to stop.
  absl::StatusOr<bool> EndEpoch() {
    const double train_loss = epoch_loss_weight_ > 0.0 ? epoch_loss_sum_ / epoch_loss_weight_ : 0.0;
    std::optional<double> validation_loss;
    if (!data_.validation.sequences.empty()) {
      ASSIGN_OR_RETURN(validation_loss,
                       EvaluateLoss(*network_, data_.validation, options_.batch_size));
    }
    history_.push_back({epoch_, train_loss, validation_loss});
    const double monitored =
        options_.early_stopping.monitor == Monitor::kValidationLoss && validation_loss.has_value()
            ? *validation_loss
            : train_loss;
    schedule_->EndEpoch(monitored);
    bool stop = false;
    if (options_.early_stopping.enabled) {
      if (best_epoch_ < 0 || monitored < best_metric_ - options_.early_stopping.min_delta) {
        best_metric_ = monitored;
        best_epoch_ = epoch_;
        best_parameters_ = parameters_;
        epochs_without_improvement_ = 0;
      } else if (++epochs_without_improvement_ >= options_.early_stopping.patience) {
        stop = true;
      }
    }
    Report(TrainingProgress::Event::kEpochEnd, train_loss, validation_loss, 0.0,
           schedule_->learning_rate());
    ++epoch_;
    batch_in_epoch_ = 0;
    epoch_loss_sum_ = 0.0;
    epoch_loss_weight_ = 0.0;
    return stop;
  }

  void Report(TrainingProgress::Event event, double loss, std::optional<double> validation_loss,
              double norm, double learning_rate) {
    if (!hooks_.on_progress) return;
    TrainingProgress progress;
    progress.event = event;
    progress.epoch = epoch_;
    progress.max_epochs = options_.max_epochs;
    progress.step = step_;
    progress.batch_in_epoch = batch_in_epoch_ + (event == TrainingProgress::Event::kStep ? 1 : 0);
    progress.batches_in_epoch = batches_in_epoch_;
    progress.loss = loss;
    progress.validation_loss = validation_loss;
    progress.gradient_norm = norm;
    progress.learning_rate = learning_rate;
    progress.parameters = &parameters_;
    const Clock::time_point now = Clock::now();
    const double run_seconds = Seconds(now - start_);
    progress.elapsed_seconds = elapsed_before_ + run_seconds;
    // Pace over the last kPaceWindow steps (the run's first steps build primitives and are slow,
    // so a whole-run average would lag for a long time), or over the run until there are that
    // many.
    if (event == TrainingProgress::Event::kStep) {
      pace_[pace_next_] = {now, step_, sequences_this_run_, batches_this_run_};
      pace_next_ = (pace_next_ + 1) % kPaceWindow;
      pace_count_ = std::min(pace_count_ + 1, kPaceWindow);
    }
    PaceSample oldest{start_, first_step_, 0};
    if (pace_count_ == kPaceWindow) oldest = pace_[pace_next_];
    const double window_seconds = Seconds(now - oldest.time);
    if (window_seconds > 0.0) {
      progress.sequences_per_second =
          static_cast<double>(sequences_this_run_ - oldest.sequences) / window_seconds;
    }
    // ETA at that pace: batches left to max_epochs, or optimizer steps left to the step budget,
    // whichever ends first. The two differ under truncated BPTT (a step per chunk of a batch).
    const int64_t window_steps = step_ - oldest.step;
    const int64_t window_batches = batches_this_run_ - oldest.batches;
    if (window_batches > 0 && batches_in_epoch_ > 0) {
      const int64_t batches_left =
          (options_.max_epochs - epoch_) * batches_in_epoch_ - batch_in_epoch_;
      progress.eta_seconds =
          std::max<int64_t>(0, batches_left) * window_seconds / static_cast<double>(window_batches);
      if (options_.max_steps > 0 && window_steps > 0) {
        const double budget_eta = std::max<int64_t>(0, options_.max_steps - step_) *
                                  window_seconds / static_cast<double>(window_steps);
        progress.eta_seconds = std::min(progress.eta_seconds, budget_eta);
      }
    }
    hooks_.on_progress(progress);
  }

  absl::StatusOr<TrainingCheckpoint> MakeCheckpoint() const {
    TrainingCheckpoint checkpoint;
    checkpoint.model.spec = spec_;
    checkpoint.model.parameters = parameters_;
    checkpoint.model.normalization = data_.normalization;
    checkpoint.hyperparameters = DescribeTrainerOptions(options_);
    checkpoint.dataset_fingerprint = fingerprint_;
    checkpoint.optimizer = optimizer_->state();
    const LrScheduleState& s = schedule_->state();
    checkpoint.schedule = {s.epoch, s.learning_rate, s.best, s.num_bad_epochs, s.cooldown_counter};
    checkpoint.seed = options_.seed;
    checkpoint.epoch = epoch_;
    checkpoint.batch_in_epoch = batch_in_epoch_;
    checkpoint.global_step = step_;
    checkpoint.epoch_loss_sum = epoch_loss_sum_;
    checkpoint.epoch_loss_weight = epoch_loss_weight_;
    checkpoint.loss_history = history_;
    if (best_parameters_.has_value()) {
      Model best;
      best.spec = spec_;
      best.parameters = *best_parameters_;
      best.normalization = data_.normalization;
      checkpoint.best_model = std::move(best);
    }
    checkpoint.best_metric = best_metric_;
    checkpoint.best_epoch = best_epoch_;
    checkpoint.epochs_without_improvement = epochs_without_improvement_;
    checkpoint.elapsed_seconds = Elapsed();
    return checkpoint;
  }

  absl::Status MaybeCheckpoint(bool force) {
    if (options_.checkpoint.path.empty()) return absl::OkStatus();
    const CheckpointOptions& every = options_.checkpoint;
    const bool by_steps =
        every.every_steps > 0 && step_ - last_checkpoint_step_ >= every.every_steps;
    const bool by_time = every.every_seconds > 0.0 &&
                         Seconds(Clock::now() - last_checkpoint_) >= every.every_seconds;
    if (!force && !by_steps && !by_time) return absl::OkStatus();
    ASSIGN_OR_RETURN(const TrainingCheckpoint checkpoint, MakeCheckpoint());
    RETURN_IF_ERROR(WriteCheckpointFile(every.path, checkpoint));
    last_checkpoint_ = Clock::now();
    last_checkpoint_step_ = step_;
    return absl::OkStatus();
  }

  absl::Status Cancel(bool at_batch_boundary) {
    if (at_batch_boundary && !options_.checkpoint.path.empty()) {
      RETURN_IF_ERROR(MaybeCheckpoint(/*force=*/true));
      return absl::CancelledError(absl::StrCat("training cancelled at step ", step_,
                                               "; checkpoint written to ",
                                               options_.checkpoint.path));
    }
    return absl::CancelledError(absl::StrCat("training cancelled at step ", step_));
  }

  absl::StatusOr<TrainingOutcome> Finish(StopReason reason) {
    TrainingOutcome outcome;
    outcome.reason = reason;
    outcome.epochs = epoch_;
    outcome.steps = step_;
    outcome.history = history_;
    outcome.elapsed_seconds = Elapsed();
    if (best_epoch_ >= 0) {
      outcome.best_loss = best_metric_;
      outcome.best_epoch = best_epoch_;
    }
    const bool restore = options_.early_stopping.enabled && options_.early_stopping.restore_best &&
                         best_parameters_.has_value();
    outcome.model.spec = spec_;
    outcome.model.parameters = restore ? *best_parameters_ : parameters_;
    outcome.model.normalization = data_.normalization;
    if (!history_.empty()) {
      outcome.final_train_loss = history_.back().train_loss;
      outcome.final_validation_loss = history_.back().validation_loss;
    } else {
      outcome.final_train_loss = last_loss_;
    }
    recurrent::v1::TrainingMetadata& metadata = outcome.model.training;
    for (const auto& [key, value] : DescribeTrainerOptions(options_)) {
      (*metadata.mutable_hyperparameters())[key] = value;
    }
    const auto add_metric = [](auto* list, const std::string& name, double value) {
      recurrent::v1::MetricValue* metric = list->Add();
      metric->set_name(name);
      metric->set_value(value);
    };
    add_metric(metadata.mutable_final_metrics(), "train_loss", outcome.final_train_loss);
    if (outcome.final_validation_loss.has_value()) {
      add_metric(metadata.mutable_final_metrics(), "validation_loss",
                 *outcome.final_validation_loss);
    }
    add_metric(metadata.mutable_final_metrics(), "epochs", static_cast<double>(outcome.epochs));
    add_metric(metadata.mutable_final_metrics(), "steps", static_cast<double>(outcome.steps));
    if (reason == StopReason::kDiverged) {
      add_metric(metadata.mutable_final_metrics(), "diverged_at_step",
                 static_cast<double>(step_ + 1));
    }
    if (outcome.best_loss.has_value()) {
      add_metric(metadata.mutable_best_metrics(), "monitored_loss", *outcome.best_loss);
      add_metric(metadata.mutable_best_metrics(), "epoch", static_cast<double>(best_epoch_));
    }
    for (const EpochRecord& record : history_) {
      recurrent::v1::EpochLoss* entry = metadata.add_loss_history();
      entry->set_epoch(record.epoch);
      entry->set_train_loss(record.train_loss);
      entry->set_has_validation_loss(record.validation_loss.has_value());
      entry->set_validation_loss(record.validation_loss.value_or(0.0));
    }
    metadata.set_dataset_fingerprint(fingerprint_);
    metadata.set_training_seconds(outcome.elapsed_seconds);
    (*metadata.mutable_hyperparameters())["stop_reason"] = std::string(StopReasonName(reason));
    return outcome;
  }

  const ModelSpec spec_;
  const TrainerOptions options_;
  const TrainerHooks& hooks_;
  PreparedData data_;
  const std::string fingerprint_;
  const bool allow_padding_;
  const std::vector<int64_t> train_members_;

  std::unique_ptr<Network> network_;
  ParameterSet parameters_;
  std::unique_ptr<Optimizer> optimizer_;
  std::unique_ptr<LrSchedule> schedule_;
  Batch batch_;
  ForwardResult forward_;
  TrainingResult result_;

  int64_t epoch_ = 0;
  int64_t batch_in_epoch_ = 0;
  int64_t batches_in_epoch_ = 0;
  int64_t step_ = 0;
  int64_t first_step_ = 0;
  double epoch_loss_sum_ = 0.0;
  double epoch_loss_weight_ = 0.0;
  std::vector<EpochRecord> history_;
  std::optional<ParameterSet> best_parameters_;
  double best_metric_ = 0.0;
  int64_t best_epoch_ = -1;
  int64_t epochs_without_improvement_ = 0;
  double elapsed_before_ = 0.0;
  double last_loss_ = 0.0;
  int64_t sequences_this_run_ = 0;
  int64_t batches_this_run_ = 0;
  struct PaceSample {
    Clock::time_point time;
    int64_t step = 0;
    int64_t sequences = 0;
    int64_t batches = 0;
  };
  static constexpr int kPaceWindow = 64;
  std::array<PaceSample, kPaceWindow> pace_{};
  int pace_next_ = 0;
  int pace_count_ = 0;
  bool cancelled_mid_batch_ = false;
  Clock::time_point start_;
  Clock::time_point last_checkpoint_;
  int64_t last_checkpoint_step_ = 0;
};

absl::Status CheckResumable(const TrainingCheckpoint& checkpoint, const ModelSpec& spec,
                            const std::map<std::string, std::string>& options,
                            const std::string& fingerprint) {
  if (!(checkpoint.model.spec == spec)) {
    return absl::FailedPreconditionError(absl::StrCat("checkpoint is for a ",
                                                      DescribeSpec(checkpoint.model.spec),
                                                      ", not a ", DescribeSpec(spec)));
  }
  if (checkpoint.dataset_fingerprint != fingerprint) {
    return absl::FailedPreconditionError(absl::StrCat("checkpoint was trained on data set ",
                                                      checkpoint.dataset_fingerprint, ", not ",
                                                      fingerprint));
  }
  for (const auto& [key, value] : options) {
    if (MayChangeOnResume(key)) continue;
    const auto saved = checkpoint.hyperparameters.find(key);
    if (saved == checkpoint.hyperparameters.end() || saved->second != value) {
      return absl::FailedPreconditionError(
          absl::StrCat("option ", key, " is ", value, " but the checkpoint's run used ",
                       saved == checkpoint.hyperparameters.end() ? "(unset)" : saved->second,
                       "; a resumed run must use the same options"));
    }
  }
  return absl::OkStatus();
}

std::string FormatDouble(double value) { return absl::StrCat(value); }

}  // namespace

absl::string_view StopReasonName(StopReason reason) {
  switch (reason) {
    case StopReason::kCompleted:
      return "completed";
    case StopReason::kStepBudget:
      return "step_budget";
    case StopReason::kTimeBudget:
      return "time_budget";
    case StopReason::kEarlyStopped:
      return "early_stopped";
    case StopReason::kDiverged:
      return "diverged";
  }
  return "unknown";
}

absl::Status ValidateTrainerOptions(const TrainerOptions& options) {
  const auto bad = [](absl::string_view field, auto value, absl::string_view rule) {
    return absl::InvalidArgumentError(absl::StrCat(field, " is ", value, "; it must be ", rule));
  };
  if (options.batch_size < 1) return bad("batch_size", options.batch_size, ">= 1");
  if (options.max_epochs < 1) return bad("max_epochs", options.max_epochs, ">= 1");
  if (options.max_steps < 0) return bad("max_steps", options.max_steps, ">= 0 (0: no budget)");
  if (!(options.time_budget_seconds >= 0.0) || std::isinf(options.time_budget_seconds)) {
    return bad("time_budget_seconds", options.time_budget_seconds, "finite and >= 0");
  }
  if (!(options.clip_norm >= 0.0) || std::isinf(options.clip_norm)) {
    return bad("clip_norm", options.clip_norm, "finite and >= 0 (0: off)");
  }
  if (!(options.clip_value >= 0.0) || std::isinf(options.clip_value)) {
    return bad("clip_value", options.clip_value, "finite and >= 0 (0: off)");
  }
  if (!(options.dropout >= 0.0 && options.dropout < 1.0)) {
    return bad("dropout", options.dropout, "in [0, 1)");
  }
  if (options.tbptt_steps < 0) return bad("tbptt_steps", options.tbptt_steps, ">= 0 (0: off)");
  if (options.chrono_max_steps != 0 && options.chrono_max_steps < 3) {
    return bad("chrono_max_steps", options.chrono_max_steps, "0 (off) or >= 3");
  }
  if (options.forget_gate_bias.has_value() && !std::isfinite(*options.forget_gate_bias)) {
    return bad("forget_gate_bias", *options.forget_gate_bias, "finite");
  }
  if (!(options.validation_split >= 0.0 && options.validation_split < 1.0)) {
    return bad("validation_split", options.validation_split, "in [0, 1)");
  }
  if (options.early_stopping.enabled && options.early_stopping.patience < 1) {
    return bad("early_stopping.patience", options.early_stopping.patience, ">= 1");
  }
  if (!(options.early_stopping.min_delta >= 0.0) || std::isinf(options.early_stopping.min_delta)) {
    return bad("early_stopping.min_delta", options.early_stopping.min_delta, "finite and >= 0");
  }
  if (options.checkpoint.every_steps < 0) {
    return bad("checkpoint.every_steps", options.checkpoint.every_steps, ">= 0");
  }
  if (!(options.checkpoint.every_seconds >= 0.0)) {
    return bad("checkpoint.every_seconds", options.checkpoint.every_seconds, ">= 0");
  }
  RETURN_IF_ERROR(ValidateOptimizerOptions(options.optimizer));
  return ValidateLrScheduleOptions(options.schedule);
}

std::map<std::string, std::string> DescribeTrainerOptions(const TrainerOptions& options) {
  std::map<std::string, std::string> out;
  const OptimizerOptions& opt = options.optimizer;
  const LrScheduleOptions& sched = options.schedule;
  out["seed"] = absl::StrCat(options.seed);
  out["batch_size"] = absl::StrCat(options.batch_size);
  out["max_epochs"] = absl::StrCat(options.max_epochs);
  out["max_steps"] = absl::StrCat(options.max_steps);
  out["time_budget_seconds"] = FormatDouble(options.time_budget_seconds);
  out["optimizer"] = std::string(OptimizerKindName(opt.kind));
  out["learning_rate"] = FormatDouble(opt.learning_rate);
  out["momentum"] = FormatDouble(opt.momentum);
  out["dampening"] = FormatDouble(opt.dampening);
  out["nesterov"] = opt.nesterov ? "true" : "false";
  out["beta1"] = FormatDouble(opt.beta1);
  out["beta2"] = FormatDouble(opt.beta2);
  out["epsilon"] = FormatDouble(opt.epsilon);
  out["rmsprop_alpha"] = FormatDouble(opt.rmsprop_alpha);
  out["rmsprop_centered"] = opt.rmsprop_centered ? "true" : "false";
  out["weight_decay"] = FormatDouble(opt.weight_decay);
  out["amsgrad"] = opt.amsgrad ? "true" : "false";
  out["schedule"] = std::string(ScheduleKindName(sched.kind));
  out["schedule.step_size"] = absl::StrCat(sched.step_size);
  out["schedule.gamma"] = FormatDouble(sched.gamma);
  out["schedule.t_max"] = absl::StrCat(sched.t_max);
  out["schedule.eta_min"] = FormatDouble(sched.eta_min);
  out["schedule.factor"] = FormatDouble(sched.factor);
  out["schedule.patience"] = absl::StrCat(sched.patience);
  out["schedule.threshold"] = FormatDouble(sched.threshold);
  out["schedule.cooldown"] = absl::StrCat(sched.cooldown);
  out["schedule.min_lr"] = FormatDouble(sched.min_lr);
  out["clip_norm"] = FormatDouble(options.clip_norm);
  out["clip_value"] = FormatDouble(options.clip_value);
  out["dropout"] = FormatDouble(options.dropout);
  out["tbptt_steps"] = absl::StrCat(options.tbptt_steps);
  out["forget_gate_bias"] =
      options.forget_gate_bias.has_value() ? FormatDouble(*options.forget_gate_bias) : "default";
  out["chrono_max_steps"] = absl::StrCat(options.chrono_max_steps);
  out["validation_split"] = FormatDouble(options.validation_split);
  out["early_stopping"] = options.early_stopping.enabled ? "true" : "false";
  out["early_stopping.monitor"] =
      options.early_stopping.monitor == Monitor::kValidationLoss ? "validation_loss" : "train_loss";
  out["early_stopping.patience"] = absl::StrCat(options.early_stopping.patience);
  out["early_stopping.min_delta"] = FormatDouble(options.early_stopping.min_delta);
  out["early_stopping.restore_best"] = options.early_stopping.restore_best ? "true" : "false";
  out["normalize_inputs"] = options.normalize_inputs ? "true" : "false";
  out["normalize_targets"] = options.normalize_targets ? "true" : "false";
  out["checkpoint.every_steps"] = absl::StrCat(options.checkpoint.every_steps);
  out["checkpoint.every_seconds"] = FormatDouble(options.checkpoint.every_seconds);
  out["network.precision"] =
      options.network.precision == Precision::kBfloat16 ? "bfloat16" : "float32";
  out["network.num_threads"] = absl::StrCat(options.network.num_threads);
  return out;
}

void SetForgetGateBias(const ModelSpec& spec, double value, ParameterSet* params) {
  if (spec.cell != CellType::kLstm) return;
  const int64_t h = spec.hidden_size;
  for (int64_t layer = 0; layer < spec.num_layers; ++layer) {
    for (int64_t d = 0; d < spec.num_directions(); ++d) {
      float* ih = params->at(RecurrentParameterName("bias_ih", layer, d == 1)).data();
      float* hh = params->at(RecurrentParameterName("bias_hh", layer, d == 1)).data();
      std::fill(ih + h, ih + 2 * h, static_cast<float>(value));
      std::fill(hh + h, hh + 2 * h, 0.0f);
    }
  }
}

void SetChronoBias(const ModelSpec& spec, int64_t max_steps, uint64_t seed, ParameterSet* params) {
  if (spec.cell != CellType::kLstm) return;
  const int64_t h = spec.hidden_size;
  Random random(seed);
  for (int64_t layer = 0; layer < spec.num_layers; ++layer) {
    for (int64_t d = 0; d < spec.num_directions(); ++d) {
      float* ih = params->at(RecurrentParameterName("bias_ih", layer, d == 1)).data();
      float* hh = params->at(RecurrentParameterName("bias_hh", layer, d == 1)).data();
      for (int64_t unit = 0; unit < h; ++unit) {
        const double forget = std::log(random.Uniform(1.0, static_cast<double>(max_steps - 1)));
        ih[unit] = static_cast<float>(-forget);     // input gate, rows [0, H)
        ih[h + unit] = static_cast<float>(forget);  // forget gate, rows [H, 2H)
        hh[unit] = 0.0f;
        hh[h + unit] = 0.0f;
      }
    }
  }
}

absl::StatusOr<double> EvaluateLoss(Network& network, const Dataset& dataset, int64_t batch_size) {
  const ModelSpec& spec = network.spec();
  const std::vector<std::vector<int64_t>> plan =
      PlanEpoch(dataset, AllMembers(dataset), batch_size, AllowsPadding(spec), /*shuffle=*/false,
                /*seed=*/0, /*epoch=*/0);
  Batch batch;
  ForwardResult forward;
  std::vector<float> scratch;
  double sum = 0.0, weight = 0.0;
  for (const std::vector<int64_t>& members : plan) {
    AssembleBatch(dataset, members, &batch);
    RETURN_IF_ERROR(network.Forward(batch.inputs, nullptr, &forward));
    const int64_t rows = forward.outputs.size() / spec.output_size;
    scratch.resize(forward.outputs.size());
    const uint8_t* mask = batch.targets.mask.empty() ? nullptr : batch.targets.mask.data();
    double loss = 0.0;
    if (spec.loss == LossType::kMse) {
      loss = MeanSquaredError(forward.outputs.data(), batch.targets.values.data(), rows,
                              spec.output_size, mask, scratch.data());
    } else {
      ASSIGN_OR_RETURN(loss,
                       SoftmaxCrossEntropy(forward.outputs.data(), rows, spec.output_size,
                                           batch.targets.labels.data(), mask, scratch.data()));
    }
    sum += loss * static_cast<double>(batch.predictions);
    weight += static_cast<double>(batch.predictions);
  }
  return weight > 0.0 ? sum / weight : 0.0;
}

absl::StatusOr<TrainingOutcome> Train(const ModelSpec& spec, const Dataset& train,
                                      const Dataset* validation, const TrainerOptions& options,
                                      const TrainerHooks& hooks) {
  RETURN_IF_ERROR(ValidateSpec(spec));
  RETURN_IF_ERROR(ValidateTrainerOptions(options));
  RETURN_IF_ERROR(ValidateDataset(train));
  RETURN_IF_ERROR(CheckDatasetMatchesSpec(train, spec));
  if (validation != nullptr) {
    if (options.validation_split > 0.0) {
      return absl::InvalidArgumentError(
          "give either a validation data set or a validation_split, not both");
    }
    RETURN_IF_ERROR(ValidateDataset(*validation));
    RETURN_IF_ERROR(CheckDatasetMatchesSpec(*validation, spec));
  }
  if (options.normalize_targets && train.has_labels()) {
    return absl::InvalidArgumentError("normalize_targets needs regression targets, not labels");
  }
  if (options.early_stopping.enabled &&
      options.early_stopping.monitor == Monitor::kValidationLoss && validation == nullptr &&
      options.validation_split == 0.0) {
    return absl::InvalidArgumentError(
        "early stopping on the validation loss needs validation data (validation_split or a "
        "validation set)");
  }
  if (hooks.initial_model != nullptr) {
    if (!(hooks.initial_model->spec == spec)) {
      return absl::InvalidArgumentError(absl::StrCat("the starting model is a ",
                                                     DescribeSpec(hooks.initial_model->spec),
                                                     ", not a ", DescribeSpec(spec)));
    }
    RETURN_IF_ERROR(ValidateModel(*hooks.initial_model));
  }
  const std::string fingerprint = DatasetFingerprint(train);

  std::optional<TrainingCheckpoint> resumed;
  if (!hooks.resume_from.empty()) {
    ASSIGN_OR_RETURN(resumed, ReadCheckpointFile(hooks.resume_from));
    RETURN_IF_ERROR(CheckResumable(*resumed, spec, DescribeTrainerOptions(options), fingerprint));
  }
  ASSIGN_OR_RETURN(PreparedData data,
                   Prepare(train, validation, options, hooks.initial_model,
                           resumed.has_value() ? &resumed->model.normalization : nullptr));

  ParameterSet initial;
  if (resumed.has_value()) {
    initial = resumed->model.parameters;
  } else if (hooks.initial_model != nullptr) {
    initial = hooks.initial_model->parameters;
  } else {
    initial = InitParameters(spec, options.seed);
    if (options.chrono_max_steps > 0) {
      SetChronoBias(spec, options.chrono_max_steps, HashToU64(options.seed, 0, kChronoStream),
                    &initial);
    } else if (options.forget_gate_bias.has_value()) {
      SetForgetGateBias(spec, *options.forget_gate_bias, &initial);
    }
  }
  TrainingRun run(spec, options, hooks, std::move(data), fingerprint);
  RETURN_IF_ERROR(run.Start(initial, resumed.has_value() ? &*resumed : nullptr));
  return run.Run();
}

}  // namespace recurrent::core
