// Learning-rate schedules stepped once per epoch, reproducing PyTorch 1.13's
// torch.optim.lr_scheduler: StepLR, CosineAnnealingLR and ReduceLROnPlateau.
//
// Each follows PyTorch's own recurrence in double, operation for operation, so the rates equal
// PyTorch's printed values exactly wherever cos() rounds as glibc's does (the tests allow 1e-12
// relative). In particular the cosine schedule is PyTorch's recursive get_lr(), which drifts
// from the closed form eta_min + (base - eta_min) * (1 + cos(pi * epoch / t_max)) / 2 in the last
// bits, and like PyTorch it does not stop at t_max: the rate climbs back to the base rate over
// the next t_max epochs, and so on.
//
// No warmup: PyTorch 1.13 builds one from LinearLR and SequentialLR, stepped per batch; nothing
// here needs it yet.
#ifndef RECURRENT_CORE_LR_SCHEDULE_H_
#define RECURRENT_CORE_LR_SCHEDULE_H_

#include <cstdint>
#include <limits>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace recurrent::core {

enum class ScheduleKind {
  kConstant,         // the base rate throughout
  kStepDecay,        // StepLR: rate *= gamma after every step_size epochs
  kCosine,           // CosineAnnealingLR: from the base rate down to eta_min over t_max epochs
  kReduceOnPlateau,  // ReduceLROnPlateau(mode="min", threshold_mode="rel"): rate *= factor when
                     // the monitored loss stops improving
};

absl::string_view ScheduleKindName(ScheduleKind kind);  // "constant", "step", "cosine", "plateau"
// InvalidArgument for any other name.
absl::StatusOr<ScheduleKind> ParseScheduleKind(absl::string_view name);

// Named and defaulted like the PyTorch constructor arguments. A field the kind does not use is
// ignored (and not validated).
struct LrScheduleOptions {
  ScheduleKind kind = ScheduleKind::kConstant;

  // kStepDecay.
  int64_t step_size = 1;  // epochs, >= 1
  double gamma = 0.1;     // > 0

  // kCosine.
  int64_t t_max = 1;     // epochs from the base rate to eta_min, >= 1
  double eta_min = 0.0;  // >= 0

  // kReduceOnPlateau. A loss improves on the best so far iff loss < best * (1 - threshold).
  double factor = 0.1;          // in (0, 1)
  int64_t patience = 10;        // bad epochs tolerated; the rate drops on the one after
  double threshold = 1e-4;      // relative, >= 0
  int64_t cooldown = 0;         // epochs after a drop during which bad epochs are not counted
  double min_lr = 0.0;          // the rate never drops below this, >= 0
  double min_lr_change = 1e-8;  // a drop smaller than this is skipped (PyTorch's eps), >= 0
};

// OK iff the fields `options.kind` uses are finite and in the ranges documented above;
// InvalidArgument naming the first offending field otherwise.
absl::Status ValidateLrScheduleOptions(const LrScheduleOptions& options);

// Everything a schedule carries from one epoch to the next: what a checkpoint stores.
struct LrScheduleState {
  int64_t epoch = 0;           // epochs ended (PyTorch's last_epoch)
  double learning_rate = 0.0;  // the rate for epoch `epoch` (0-based)
  // kReduceOnPlateau only; the others leave these at their defaults.
  double best = std::numeric_limits<double>::infinity();  // lowest loss that counted as better
  int64_t num_bad_epochs = 0;
  int64_t cooldown_counter = 0;  // cooldown epochs left
};

// A copyable value; not thread-safe.
class LrSchedule {
 public:
  // Validates `options` and the base rate (finite, >= 0), which is the rate of epoch 0.
  static absl::StatusOr<LrSchedule> Create(const LrScheduleOptions& options,
                                           double base_learning_rate);

  // The rate for the current epoch: pass it to every Optimizer::Step of the epoch.
  double learning_rate() const { return state_.learning_rate; }

  // Ends the current epoch (PyTorch's scheduler.step(), after the epoch's optimizer steps) and
  // computes the next epoch's rate. `monitored_loss` (the validation loss, say) is read by
  // kReduceOnPlateau only; a NaN loss counts as a bad epoch, as in PyTorch.
  void EndEpoch(double monitored_loss);

  const LrScheduleOptions& options() const { return options_; }
  double base_learning_rate() const { return base_learning_rate_; }
  const LrScheduleState& state() const { return state_; }

  // Replaces the state with `state` (from state() of a schedule with the same options and base
  // rate), so the schedule continues exactly. InvalidArgument, with nothing changed, for a negative
  // epoch or counter, a negative or non-finite rate, or a NaN best.
  absl::Status Restore(const LrScheduleState& state);

 private:
  LrSchedule(const LrScheduleOptions& options, double base_learning_rate);

  LrScheduleOptions options_;
  double base_learning_rate_;
  LrScheduleState state_;
};

}  // namespace recurrent::core

#endif  // RECURRENT_CORE_LR_SCHEDULE_H_
