#include "core/lr_schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"

namespace recurrent::core {
namespace {

// a * b rounded and hidden from the optimizer: Python rounds the product before adding to it, so
// the sum must not become an FMA (GCC contracts across statements wherever the target has FMA).
double RoundedProduct(double a, double b) {
  const volatile double product = a * b;
  return product;
}

absl::Status CheckNonNegative(double value, absl::string_view name) {
  if (!(std::isfinite(value) && value >= 0)) {
    return absl::InvalidArgumentError(absl::StrCat(name, " must be finite and >= 0, got ", value));
  }
  return absl::OkStatus();
}

absl::Status CheckAtLeast(int64_t value, int64_t minimum, absl::string_view name) {
  if (value < minimum) {
    return absl::InvalidArgumentError(absl::StrCat(name, " must be >= ", minimum, ", got ", value));
  }
  return absl::OkStatus();
}

}  // namespace

absl::string_view ScheduleKindName(ScheduleKind kind) {
  switch (kind) {
    case ScheduleKind::kConstant:
      return "constant";
    case ScheduleKind::kStepDecay:
      return "step";
    case ScheduleKind::kCosine:
      return "cosine";
    case ScheduleKind::kReduceOnPlateau:
      return "plateau";
  }
  return "unknown";
}

absl::StatusOr<ScheduleKind> ParseScheduleKind(absl::string_view name) {
  for (const ScheduleKind kind : {ScheduleKind::kConstant, ScheduleKind::kStepDecay,
                                  ScheduleKind::kCosine, ScheduleKind::kReduceOnPlateau}) {
    if (name == ScheduleKindName(kind)) return kind;
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown learning-rate schedule \"", name,
                                                 "\" (want constant, step, cosine or plateau)"));
}

absl::Status ValidateLrScheduleOptions(const LrScheduleOptions& o) {
  switch (o.kind) {
    case ScheduleKind::kConstant:
      break;
    case ScheduleKind::kStepDecay:
      RETURN_IF_ERROR(CheckAtLeast(o.step_size, 1, "step_size"));
      if (!(std::isfinite(o.gamma) && o.gamma > 0)) {
        return absl::InvalidArgumentError(
            absl::StrCat("gamma must be finite and > 0, got ", o.gamma));
      }
      break;
    case ScheduleKind::kCosine:
      RETURN_IF_ERROR(CheckAtLeast(o.t_max, 1, "t_max"));
      RETURN_IF_ERROR(CheckNonNegative(o.eta_min, "eta_min"));
      break;
    case ScheduleKind::kReduceOnPlateau:
      if (!(o.factor > 0 && o.factor < 1)) {
        return absl::InvalidArgumentError(absl::StrCat("factor must be in (0, 1), got ", o.factor));
      }
      RETURN_IF_ERROR(CheckAtLeast(o.patience, 0, "patience"));
      RETURN_IF_ERROR(CheckNonNegative(o.threshold, "threshold"));
      RETURN_IF_ERROR(CheckAtLeast(o.cooldown, 0, "cooldown"));
      RETURN_IF_ERROR(CheckNonNegative(o.min_lr, "min_lr"));
      RETURN_IF_ERROR(CheckNonNegative(o.min_lr_change, "min_lr_change"));
      break;
    default:
      return absl::InvalidArgumentError("unknown learning-rate schedule kind");
  }
  return absl::OkStatus();
}

absl::StatusOr<LrSchedule> LrSchedule::Create(const LrScheduleOptions& options,
                                              double base_learning_rate) {
  RETURN_IF_ERROR(ValidateLrScheduleOptions(options));
  RETURN_IF_ERROR(CheckNonNegative(base_learning_rate, "base learning rate"));
  return LrSchedule(options, base_learning_rate);
}

LrSchedule::LrSchedule(const LrScheduleOptions& options, double base_learning_rate)
    : options_(options), base_learning_rate_(base_learning_rate) {
  state_.learning_rate = base_learning_rate;
}

void LrSchedule::EndEpoch(double monitored_loss) {
  const int64_t epoch = ++state_.epoch;  // PyTorch's last_epoch after step()
  double& lr = state_.learning_rate;
  switch (options_.kind) {
    case ScheduleKind::kConstant:
      break;

    case ScheduleKind::kStepDecay:
      // StepLR.get_lr()
      if (epoch % options_.step_size == 0) lr = lr * options_.gamma;
      break;

    case ScheduleKind::kCosine: {
      // CosineAnnealingLR.get_lr(), in Python's evaluation order.
      constexpr double kPi = std::numbers::pi;
      const double t_max = static_cast<double>(options_.t_max);
      const double eta_min = options_.eta_min;
      if ((epoch - 1 - options_.t_max) % (2 * options_.t_max) == 0) {
        // The restart epoch after a minimum, where the recurrence below would divide by
        // 1 + cos(pi) = 0.
        lr = lr + (base_learning_rate_ - eta_min) * (1 - std::cos(kPi / t_max)) / 2;
      } else {
        const double ratio = (1 + std::cos(kPi * static_cast<double>(epoch) / t_max)) /
                             (1 + std::cos(kPi * static_cast<double>(epoch - 1) / t_max));
        lr = RoundedProduct(ratio, lr - eta_min) + eta_min;
      }
      break;
    }

    case ScheduleKind::kReduceOnPlateau: {
      // ReduceLROnPlateau.step(metrics) with mode="min", threshold_mode="rel".
      if (monitored_loss < state_.best * (1.0 - options_.threshold)) {
        state_.best = monitored_loss;
        state_.num_bad_epochs = 0;
      } else {
        ++state_.num_bad_epochs;
      }
      if (state_.cooldown_counter > 0) {
        --state_.cooldown_counter;
        state_.num_bad_epochs = 0;  // bad epochs during cooldown are ignored
      }
      if (state_.num_bad_epochs > options_.patience) {
        const double new_lr = std::max(lr * options_.factor, options_.min_lr);
        if (lr - new_lr > options_.min_lr_change) lr = new_lr;
        state_.cooldown_counter = options_.cooldown;
        state_.num_bad_epochs = 0;
      }
      break;
    }
  }
}

absl::Status LrSchedule::Restore(const LrScheduleState& state) {
  RETURN_IF_ERROR(CheckAtLeast(state.epoch, 0, "epoch"));
  RETURN_IF_ERROR(CheckNonNegative(state.learning_rate, "learning_rate"));
  if (std::isnan(state.best)) return absl::InvalidArgumentError("best is NaN");
  RETURN_IF_ERROR(CheckAtLeast(state.num_bad_epochs, 0, "num_bad_epochs"));
  RETURN_IF_ERROR(CheckAtLeast(state.cooldown_counter, 0, "cooldown_counter"));
  state_ = state;
  return absl::OkStatus();
}

}  // namespace recurrent::core
