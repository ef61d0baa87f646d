#include "core/optimizer.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"
#include "core/tensor.h"

namespace recurrent::core {
namespace {

// a * b rounded to float and hidden from the optimizer. Where PyTorch rounds a product in one
// kernel (mul_) and adds to it in the next, the sum must not become an FMA; GCC contracts across
// statements by default wherever the target has FMA (aarch64, -march=native).
float RoundedProduct(float a, float b) {
  const volatile float product = a * b;
  return product;
}

double RoundedProduct(double a, double b) {
  const volatile double product = a * b;
  return product;
}

// The comments in the Update* functions quote torch/optim/*.py (1.13, _single_tensor_*). A Python
// scalar reaches a float32 kernel rounded to float; `add_(x, alpha=a)` is fma(x, a, self) and
// `addcmul_(t1, t2, value=v)` is fma(v * t1, t2, self) in PyTorch's AVX2/AVX512 kernels, while
// `addcdiv_(t1, t2, value=v)` is self + (v * t1) / t2 and `mul_` rounds on its own.

void UpdateSgd(const OptimizerOptions& o, bool first_step, double lr, int64_t n, const float* grad,
               float* param, float* momentum_buffer) {
  const float weight_decay = static_cast<float>(o.weight_decay);
  const float momentum = static_cast<float>(o.momentum);
  const float one_minus_dampening = static_cast<float>(1.0 - o.dampening);
  const float neg_lr = static_cast<float>(-lr);
  for (int64_t i = 0; i < n; ++i) {
    float d_p = grad[i];
    // d_p = d_p.add(param, alpha=weight_decay)
    if (o.weight_decay != 0) d_p = std::fma(param[i], weight_decay, d_p);
    if (o.momentum != 0) {
      // buf = torch.clone(d_p) on the first step, else buf.mul_(momentum).add_(d_p,
      // alpha=1 - dampening)
      momentum_buffer[i] =
          first_step ? d_p : std::fma(d_p, one_minus_dampening, momentum_buffer[i] * momentum);
      // d_p = d_p.add(buf, alpha=momentum) if nesterov else buf
      d_p = o.nesterov ? std::fma(momentum_buffer[i], momentum, d_p) : momentum_buffer[i];
    }
    // param.add_(d_p, alpha=-lr)
    param[i] = std::fma(d_p, neg_lr, param[i]);
  }
}

// Adam and AdamW; `decoupled` selects AdamW's weight decay.
void UpdateAdam(const OptimizerOptions& o, bool decoupled, int64_t step, double lr, int64_t n,
                const float* grad, float* param, float* exp_avg, float* exp_avg_sq,
                float* max_exp_avg_sq) {
  // Python scalars, in double as PyTorch computes them (step is a float32 tensor's .item()).
  const double bias_correction1 = 1 - std::pow(o.beta1, static_cast<double>(step));
  const double bias_correction2 = 1 - std::pow(o.beta2, static_cast<double>(step));
  const double step_size = lr / bias_correction1;
  const double bias_correction2_sqrt = std::sqrt(bias_correction2);
  const float decay = static_cast<float>(1 - RoundedProduct(lr, o.weight_decay));

  const float weight_decay = static_cast<float>(o.weight_decay);
  const float beta1 = static_cast<float>(o.beta1);
  const float one_minus_beta1 = static_cast<float>(1 - o.beta1);
  const float beta2 = static_cast<float>(o.beta2);
  const float one_minus_beta2 = static_cast<float>(1 - o.beta2);
  const float correction2_sqrt = static_cast<float>(bias_correction2_sqrt);
  const float eps = static_cast<float>(o.epsilon);
  const float neg_step_size = static_cast<float>(-step_size);
  for (int64_t i = 0; i < n; ++i) {
    float g = grad[i];
    float p = param[i];
    if (decoupled) {
      // param.mul_(1 - lr * weight_decay), applied even when weight_decay is 0 (a no-op).
      p = RoundedProduct(p, decay);
    } else if (o.weight_decay != 0) {
      // grad = grad.add(param, alpha=weight_decay)
      g = std::fma(p, weight_decay, g);
    }
    // exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
    exp_avg[i] = std::fma(g, one_minus_beta1, exp_avg[i] * beta1);
    // exp_avg_sq.mul_(beta2).addcmul_(grad, grad.conj(), value=1 - beta2)
    exp_avg_sq[i] = std::fma(one_minus_beta2 * g, g, exp_avg_sq[i] * beta2);
    float second_moment = exp_avg_sq[i];
    if (o.amsgrad) {
      // torch.maximum(max_exp_avg_sqs[i], exp_avg_sq, out=max_exp_avg_sqs[i]); NaN propagates.
      const float running_max = max_exp_avg_sq[i];
      max_exp_avg_sq[i] = std::isnan(running_max) || std::isnan(second_moment)
                              ? std::numeric_limits<float>::quiet_NaN()
                              : std::max(running_max, second_moment);
      second_moment = max_exp_avg_sq[i];
    }
    // denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
    const float denom = std::sqrt(second_moment) / correction2_sqrt + eps;
    // param.addcdiv_(exp_avg, denom, value=-step_size)
    param[i] = p + (neg_step_size * exp_avg[i]) / denom;
  }
}

void UpdateRmsprop(const OptimizerOptions& o, double lr, int64_t n, const float* grad, float* param,
                   float* square_avg, float* grad_avg, float* momentum_buffer) {
  const float weight_decay = static_cast<float>(o.weight_decay);
  const float alpha = static_cast<float>(o.rmsprop_alpha);
  const float one_minus_alpha = static_cast<float>(1 - o.rmsprop_alpha);
  const float eps = static_cast<float>(o.epsilon);
  const float momentum = static_cast<float>(o.momentum);
  const float neg_lr = static_cast<float>(-lr);
  for (int64_t i = 0; i < n; ++i) {
    float g = grad[i];
    // grad = grad.add(param, alpha=weight_decay)
    if (o.weight_decay != 0) g = std::fma(param[i], weight_decay, g);
    // square_avg.mul_(alpha).addcmul_(grad, grad, value=1 - alpha)
    square_avg[i] = std::fma(one_minus_alpha * g, g, square_avg[i] * alpha);
    float avg;
    if (o.rmsprop_centered) {
      // grad_avg.mul_(alpha).add_(grad, alpha=1 - alpha)
      grad_avg[i] = std::fma(g, one_minus_alpha, grad_avg[i] * alpha);
      // avg = square_avg.addcmul(grad_avg, grad_avg, value=-1).sqrt_()
      avg = std::sqrt(std::fma(-grad_avg[i], grad_avg[i], square_avg[i]));
    } else {
      avg = std::sqrt(square_avg[i]);
    }
    // avg = avg.add_(eps)
    avg += eps;
    if (o.momentum > 0) {
      // buf.mul_(momentum).addcdiv_(grad, avg); param.add_(buf, alpha=-lr)
      momentum_buffer[i] = RoundedProduct(momentum_buffer[i], momentum) + g / avg;
      param[i] = std::fma(momentum_buffer[i], neg_lr, param[i]);
    } else {
      // param.addcdiv_(grad, avg, value=-lr)
      param[i] = param[i] + (neg_lr * g) / avg;
    }
  }
}

absl::Status CheckFinite(double value, absl::string_view name) {
  if (!std::isfinite(value)) return absl::InvalidArgumentError(absl::StrCat(name, " not finite"));
  return absl::OkStatus();
}

absl::Status CheckNonNegative(double value, absl::string_view name) {
  RETURN_IF_ERROR(CheckFinite(value, name));
  if (value < 0) {
    return absl::InvalidArgumentError(absl::StrCat(name, " must be >= 0, got ", value));
  }
  return absl::OkStatus();
}

absl::Status CheckBeta(double value, absl::string_view name) {
  if (!(value >= 0 && value < 1)) {
    return absl::InvalidArgumentError(absl::StrCat(name, " must be in [0, 1), got ", value));
  }
  return absl::OkStatus();
}

float* SlotData(std::map<std::string, std::vector<float>>& slots, const char* name) {
  const auto it = slots.find(name);
  return it == slots.end() ? nullptr : it->second.data();
}

}  // namespace

absl::string_view OptimizerKindName(OptimizerKind kind) {
  switch (kind) {
    case OptimizerKind::kSgd:
      return "sgd";
    case OptimizerKind::kAdam:
      return "adam";
    case OptimizerKind::kAdamW:
      return "adamw";
    case OptimizerKind::kRmsprop:
      return "rmsprop";
  }
  return "unknown";
}

absl::StatusOr<OptimizerKind> ParseOptimizerKind(absl::string_view name) {
  for (const OptimizerKind kind : {OptimizerKind::kSgd, OptimizerKind::kAdam, OptimizerKind::kAdamW,
                                   OptimizerKind::kRmsprop}) {
    if (name == OptimizerKindName(kind)) return kind;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown optimizer \"", name, "\" (want sgd, adam, adamw or rmsprop)"));
}

absl::Status ValidateOptimizerOptions(const OptimizerOptions& o) {
  RETURN_IF_ERROR(CheckNonNegative(o.learning_rate, "learning_rate"));
  RETURN_IF_ERROR(CheckNonNegative(o.weight_decay, "weight_decay"));
  switch (o.kind) {
    case OptimizerKind::kSgd:
      RETURN_IF_ERROR(CheckNonNegative(o.momentum, "momentum"));
      RETURN_IF_ERROR(CheckFinite(o.dampening, "dampening"));
      if (o.nesterov && (o.momentum <= 0 || o.dampening != 0)) {
        return absl::InvalidArgumentError("nesterov requires momentum > 0 and dampening == 0");
      }
      break;
    case OptimizerKind::kAdam:
    case OptimizerKind::kAdamW:
      RETURN_IF_ERROR(CheckBeta(o.beta1, "beta1"));
      RETURN_IF_ERROR(CheckBeta(o.beta2, "beta2"));
      RETURN_IF_ERROR(CheckNonNegative(o.epsilon, "epsilon"));
      break;
    case OptimizerKind::kRmsprop:
      RETURN_IF_ERROR(CheckNonNegative(o.momentum, "momentum"));
      RETURN_IF_ERROR(CheckNonNegative(o.epsilon, "epsilon"));
      RETURN_IF_ERROR(CheckNonNegative(o.rmsprop_alpha, "rmsprop_alpha"));
      break;
    default:
      return absl::InvalidArgumentError("unknown optimizer kind");
  }
  return absl::OkStatus();
}

std::vector<std::string> OptimizerSlotNames(const OptimizerOptions& o) {
  std::vector<std::string> names;
  switch (o.kind) {
    case OptimizerKind::kSgd:
      if (o.momentum != 0) names.emplace_back(kMomentumBufferSlot);
      break;
    case OptimizerKind::kAdam:
    case OptimizerKind::kAdamW:
      names = {kExpAvgSlot, kExpAvgSqSlot};
      if (o.amsgrad) names.emplace_back(kMaxExpAvgSqSlot);
      break;
    case OptimizerKind::kRmsprop:
      names.emplace_back(kSquareAvgSlot);
      if (o.momentum > 0) names.emplace_back(kMomentumBufferSlot);
      if (o.rmsprop_centered) names.emplace_back(kGradAvgSlot);
      break;
  }
  std::sort(names.begin(), names.end());
  return names;
}

absl::StatusOr<std::unique_ptr<Optimizer>> Optimizer::Create(const OptimizerOptions& options,
                                                             const ParameterSet& params) {
  RETURN_IF_ERROR(ValidateOptimizerOptions(options));
  if (params.empty()) return absl::InvalidArgumentError("optimizer got no parameters");
  const std::vector<std::string> slot_names = OptimizerSlotNames(options);
  std::map<std::string, std::vector<int64_t>> shapes;
  OptimizerState state;
  for (const auto& [name, tensor] : params) {
    if (tensor.size() != Tensor::ElementCount(tensor.shape)) {
      return absl::InvalidArgumentError(absl::StrCat("parameter ", name, " has ", tensor.size(),
                                                     " values for shape ",
                                                     ShapeToString(tensor.shape)));
    }
    shapes[name] = tensor.shape;
    auto& slots = state.slots[name];
    for (const std::string& slot : slot_names) slots[slot].assign(tensor.values.size(), 0.0f);
  }
  return std::make_unique<Optimizer>(PrivateTag(), options, std::move(shapes), std::move(state));
}

Optimizer::Optimizer(PrivateTag, const OptimizerOptions& options,
                     std::map<std::string, std::vector<int64_t>> shapes, OptimizerState state)
    : options_(options), shapes_(std::move(shapes)), state_(std::move(state)) {}

absl::Status Optimizer::CheckTensors(const ParameterSet& tensors, absl::string_view what) const {
  for (const auto& [name, tensor] : tensors) {
    const auto it = shapes_.find(name);
    if (it == shapes_.end()) {
      return absl::InvalidArgumentError(absl::StrCat(what, " ", name, " is not a parameter"));
    }
    if (tensor.shape != it->second || tensor.size() != Tensor::ElementCount(it->second)) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " ", name, " has shape ", ShapeToString(tensor.shape), " and ",
                       tensor.size(), " values, want shape ", ShapeToString(it->second)));
    }
  }
  if (tensors.size() != shapes_.size()) {
    for (const auto& [name, shape] : shapes_) {
      if (!tensors.contains(name)) {
        return absl::InvalidArgumentError(absl::StrCat(what, " ", name, " is missing"));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status Optimizer::Step(const ParameterSet& grads, double learning_rate,
                             ParameterSet* params) {
  RETURN_IF_ERROR(CheckNonNegative(learning_rate, "learning_rate"));
  if (params == nullptr) return absl::InvalidArgumentError("params is null");
  RETURN_IF_ERROR(CheckTensors(*params, "parameter"));
  RETURN_IF_ERROR(CheckTensors(grads, "gradient"));

  const bool first_step = state_.steps == 0;
  const int64_t step = state_.steps + 1;
  for (auto& [name, param] : *params) {
    const Tensor& grad = grads.find(name)->second;  // CheckTensors: present
    auto& slots = state_.slots.find(name)->second;  // one entry per parameter
    const int64_t n = param.size();
    switch (options_.kind) {
      case OptimizerKind::kSgd:
        UpdateSgd(options_, first_step, learning_rate, n, grad.data(), param.data(),
                  SlotData(slots, kMomentumBufferSlot));
        break;
      case OptimizerKind::kAdam:
      case OptimizerKind::kAdamW:
        UpdateAdam(options_, /*decoupled=*/options_.kind == OptimizerKind::kAdamW, step,
                   learning_rate, n, grad.data(), param.data(), SlotData(slots, kExpAvgSlot),
                   SlotData(slots, kExpAvgSqSlot), SlotData(slots, kMaxExpAvgSqSlot));
        break;
      case OptimizerKind::kRmsprop:
        UpdateRmsprop(options_, learning_rate, n, grad.data(), param.data(),
                      SlotData(slots, kSquareAvgSlot), SlotData(slots, kGradAvgSlot),
                      SlotData(slots, kMomentumBufferSlot));
        break;
    }
  }
  state_.steps = step;
  return absl::OkStatus();
}

absl::Status Optimizer::RestoreState(const OptimizerState& state) {
  if (state.steps < 0) {
    return absl::InvalidArgumentError(absl::StrCat("state has ", state.steps, " steps"));
  }
  if (state.slots.size() != shapes_.size()) {
    return absl::InvalidArgumentError(absl::StrCat("state has slots for ", state.slots.size(),
                                                   " parameters, want ", shapes_.size()));
  }
  const std::vector<std::string> slot_names = OptimizerSlotNames(options_);
  for (const auto& [name, slots] : state.slots) {
    const auto shape = shapes_.find(name);
    if (shape == shapes_.end()) {
      return absl::InvalidArgumentError(absl::StrCat("state names unknown parameter ", name));
    }
    if (slots.size() != slot_names.size()) {
      return absl::InvalidArgumentError(absl::StrCat("state of ", name, " has ", slots.size(),
                                                     " slots, want ", slot_names.size()));
    }
    const int64_t count = Tensor::ElementCount(shape->second);
    for (const std::string& slot : slot_names) {
      const auto values = slots.find(slot);
      if (values == slots.end()) {
        return absl::InvalidArgumentError(absl::StrCat("state of ", name, " lacks ", slot));
      }
      if (static_cast<int64_t>(values->second.size()) != count) {
        return absl::InvalidArgumentError(absl::StrCat(
            "state ", name, ".", slot, " has ", values->second.size(), " values, want ", count));
      }
    }
  }
  state_ = state;
  return absl::OkStatus();
}

}  // namespace recurrent::core
