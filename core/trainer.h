// The training loop behind the Train RPC: mini-batch training of a Network on a Dataset, with the
// strategies that make recurrent networks train well.
//
//   exploding gradients   clipping by global norm (clip_norm) and by value (clip_value); the
//                         global norm before clipping is reported every step, and a non-finite
//                         loss or norm stops the run (StopReason::kDiverged) without applying it
//   vanishing gradients   gated cells (the spec), forget-gate bias init (LSTM), truncated BPTT
//   / short memory        over chunks of tbptt_steps with the state carried, detached, between
//                         the chunks of a long sequence
//   overfitting           dropout between layers, L2 / decoupled weight decay (the optimizer),
//                         a validation split or set, early stopping that restores the best weights
//   slow training         mini-batches bucketed by length (core/batcher.h) on the oneDNN engine
//
// Determinism: every random draw (initial weights, validation split, epoch order, dropout masks)
// is a function of (seed, epoch, step), and the engine gives the same bits on any thread count,
// so the same seed, data and options give bit-identical weights; a run resumed from a checkpoint
// ends with the same weights as an uninterrupted one.
//
// Train() runs on the calling thread (the engine's OpenMP threads aside) and calls the progress
// callback on it.
#ifndef RECURRENT_CORE_TRAINER_H_
#define RECURRENT_CORE_TRAINER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/artifact.h"
#include "core/checkpoint.h"
#include "core/dataset.h"
#include "core/lr_schedule.h"
#include "core/model_spec.h"
#include "core/network.h"
#include "core/optimizer.h"

namespace recurrent::core {

enum class Monitor {
  kValidationLoss,  // needs validation data (a split or a set)
  kTrainLoss,
};

struct EarlyStoppingOptions {
  bool enabled = false;
  Monitor monitor = Monitor::kValidationLoss;
  int64_t patience = 10;     // epochs without improvement before stopping, >= 1
  double min_delta = 0.0;    // an improvement must lower the monitored loss by more than this
  bool restore_best = true;  // end with the best epoch's weights instead of the last ones
};

struct CheckpointOptions {
  std::string path;            // empty: no checkpoints
  int64_t every_steps = 0;     // 0: not by steps
  double every_seconds = 0.0;  // 0: not by time
  // Checkpoints are also written at every epoch end when either interval is set, and when a run
  // is cancelled at a batch boundary.
};

struct TrainerOptions {
  uint64_t seed = 1;
  int64_t batch_size = 32;
  int64_t max_epochs = 10;
  // Optimizer steps; 0 = no step budget. Checked after each batch, like the time budget (with
  // truncated BPTT a batch makes one step per chunk), so that the run stops at a resumable point.
  int64_t max_steps = 0;
  double time_budget_seconds = 0.0;  // training time, resumed runs included; 0 = none
  OptimizerOptions optimizer;        // includes the learning rate and weight decay
  LrScheduleOptions schedule;
  double clip_norm = 0.0;   // > 0: clip the global gradient norm to this
  double clip_value = 0.0;  // > 0: clip every gradient element to [-clip_value, clip_value]
  double dropout = 0.0;     // between recurrent layers, [0, 1)
  int64_t tbptt_steps = 0;  // > 0: truncated BPTT over chunks of this many steps
  std::optional<double> forget_gate_bias;  // LSTM: initial bias of the forget gate (e.g. 1.0)
  // LSTM chrono initialization (Tallec & Ollivier 2018, "Can recurrent neural networks warp
  // time?"), for dependencies up to this many steps: forget-gate biases log(U[1, T_max - 1]),
  // input-gate biases their negation, so the cells start with memory time scales spread up to
  // T_max instead of ~1 step. 0 = off; > 0 needs T_max >= 3 and replaces forget_gate_bias.
  int64_t chrono_max_steps = 0;
  double validation_split = 0.0;  // [0, 1): share of the data held out for validation
  EarlyStoppingOptions early_stopping;
  bool normalize_inputs = false;   // per-feature standardization fitted on the training split
  bool normalize_targets = false;  // regression targets only
  CheckpointOptions checkpoint;
  NetworkOptions network;  // threads, precision, engine limits
};

// InvalidArgument naming the first bad field.
absl::Status ValidateTrainerOptions(const TrainerOptions& options);

// Every option as text (for the artifact's lineage and for checking a resume).
std::map<std::string, std::string> DescribeTrainerOptions(const TrainerOptions& options);

struct TrainingProgress {
  enum class Event { kStep, kEpochEnd };
  Event event = Event::kStep;
  int64_t epoch = 0;  // 0-based epoch in progress (kEpochEnd: the one that ended)
  int64_t max_epochs = 0;
  int64_t step = 0;            // optimizer steps taken so far
  int64_t batch_in_epoch = 0;  // batches of this epoch done
  int64_t batches_in_epoch = 0;
  double loss = 0.0;                      // kStep: this step's loss; kEpochEnd: the epoch's mean
  std::optional<double> validation_loss;  // kEpochEnd with validation data
  double gradient_norm = 0.0;             // kStep: global norm before clipping
  double learning_rate = 0.0;
  double sequences_per_second = 0.0;  // over the last 64 steps (or the run so far)
  double elapsed_seconds = 0.0;       // training time, resumed runs included
  double eta_seconds = 0.0;           // to the end of max_epochs (or the step budget), at that pace
  // The weights after this step / epoch; valid only during the callback (e.g. to evaluate on a
  // test set without stopping the run).
  const ParameterSet* parameters = nullptr;
};

enum class StopReason {
  kCompleted,     // max_epochs done
  kStepBudget,    // max_steps reached
  kTimeBudget,    // time_budget_seconds reached
  kEarlyStopped,  // the monitored loss stopped improving
  kDiverged,      // a non-finite loss or gradient norm; the weights are the last finite ones
};
absl::string_view StopReasonName(StopReason reason);

struct TrainerHooks {
  std::function<void(const TrainingProgress&)> on_progress;  // may be empty
  // A stop request ends the run within one optimizer step: Train() returns Cancelled, after
  // writing a checkpoint if the run stopped at a batch boundary and checkpoints are configured.
  std::stop_token stop;
  // Fine-tuning: start from these weights (and this normalization, instead of fitting one).
  const Model* initial_model = nullptr;
  // Resume: continue the run saved in this checkpoint file (same spec, data and options; budgets
  // and checkpoint settings may differ).
  std::string resume_from;
};

struct TrainingOutcome {
  Model model;  // spec, final (or best) weights, normalization, lineage in model.training
  StopReason reason = StopReason::kCompleted;
  int64_t epochs = 0;  // epochs completed
  int64_t steps = 0;   // optimizer steps taken
  std::vector<EpochRecord> history;
  std::optional<double> best_loss;  // the best monitored loss (early stopping)
  int64_t best_epoch = -1;
  double final_train_loss = 0.0;
  std::optional<double> final_validation_loss;
  double elapsed_seconds = 0.0;
};

// Trains `spec` on `train` (validated; must match the spec). `validation` may be null; a
// non-null one replaces validation_split (which must then be 0). Errors: InvalidArgument for bad
// options or data, FailedPrecondition for a checkpoint that does not belong to this run,
// Cancelled on a stop request, or the engine's error.
absl::StatusOr<TrainingOutcome> Train(const ModelSpec& spec, const Dataset& train,
                                      const Dataset* validation, const TrainerOptions& options,
                                      const TrainerHooks& hooks = {});

// Mean loss of `network` over `dataset` (already normalized), as training measures it: per
// counted prediction, batched by `batch_size`.
absl::StatusOr<double> EvaluateLoss(Network& network, const Dataset& dataset, int64_t batch_size);

// Sets the LSTM forget-gate bias: bias_ih rows [H, 2H) = value, bias_hh rows [H, 2H) = 0, every
// layer and direction (PyTorch gate order i, f, g, o). No-op for other cells.
void SetForgetGateBias(const ModelSpec& spec, double value, ParameterSet* params);

// Chrono initialization (see TrainerOptions::chrono_max_steps): for every LSTM unit of every
// layer and direction, b_f = log(u) with u ~ U[1, max_steps - 1) from `seed`, b_i = -b_f, in
// bias_ih; the same rows of bias_hh are zeroed. No-op for other cells.
void SetChronoBias(const ModelSpec& spec, int64_t max_steps, uint64_t seed, ParameterSet* params);

}  // namespace recurrent::core

#endif  // RECURRENT_CORE_TRAINER_H_
