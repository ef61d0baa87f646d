// The trainer's optimizers: SGD, Adam, AdamW and RMSprop, reproducing PyTorch 1.13's torch.optim
// single-tensor (foreach=False) float32 updates operation by operation, so that from the same
// parameters, gradients and learning rates both produce the same bits.
//
// How exact, and where it can differ. Every update is float32 arithmetic in PyTorch's order, with
// PyTorch's Python scalars (lr, betas, 1 - beta, bias corrections) computed in double and rounded
// to float where a kernel consumes them. PyTorch's AVX2 and AVX512 CPU kernels (what it runs on
// any x86 CPU of the last decade) evaluate add(x, alpha=a) and addcmul as one fused multiply-add;
// this code does the same with std::fma, which rounds once on every CPU, so it matches them bit
// for bit (tests/core/optimizer_test.cc, against fixtures from scripts/gen_optim_fixtures.py).
// PyTorch forced to ATEN_CPU_CAPABILITY=default rounds those products separately and differs by
// an ulp or so per step. Adam's bias corrections use the C library's pow(), as Python does; a
// libm whose pow() rounds differently could move a parameter by 1 ulp.
//
// Non-finite gradients are not rejected: like PyTorch, they propagate into the parameters and the
// slots. The trainer checks the gradient norm (core/grad_clip.h) before stepping.
#ifndef RECURRENT_CORE_OPTIMIZER_H_
#define RECURRENT_CORE_OPTIMIZER_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/parameters.h"

namespace recurrent::core {

enum class OptimizerKind {
  kSgd,      // torch.optim.SGD: momentum, dampening, nesterov, L2 weight decay
  kAdam,     // torch.optim.Adam: L2 weight decay added to the gradient
  kAdamW,    // torch.optim.AdamW: decoupled weight decay, param *= 1 - lr * weight_decay
  kRmsprop,  // torch.optim.RMSprop: optionally centered, with momentum
};

absl::string_view OptimizerKindName(OptimizerKind kind);  // "sgd", "adam", "adamw", "rmsprop"
// InvalidArgument for any other name.
absl::StatusOr<OptimizerKind> ParseOptimizerKind(absl::string_view name);

// Hyperparameters, named and defaulted like torch.optim's constructor arguments. A field that the
// kind does not use is ignored (and not validated).
struct OptimizerOptions {
  OptimizerKind kind = OptimizerKind::kAdam;
  // The base learning rate, for the schedule (core/lr_schedule.h) to start from. Step() takes the
  // rate of each step explicitly and does not read this field.
  double learning_rate = 1e-3;
  double momentum = 0.0;   // SGD, RMSprop; 0 = none
  double dampening = 0.0;  // SGD
  bool nesterov = false;   // SGD; needs momentum > 0 and dampening == 0, as in PyTorch
  double beta1 = 0.9;      // Adam, AdamW
  double beta2 = 0.999;    // Adam, AdamW
  double epsilon = 1e-8;   // Adam, AdamW, RMSprop
  double rmsprop_alpha = 0.99;
  bool rmsprop_centered = false;
  // SGD, Adam, RMSprop: L2, weight_decay * param added to the gradient (PyTorch's weight_decay).
  // AdamW: decoupled, param *= 1 - lr * weight_decay before the update. Note torch.optim.AdamW
  // defaults to 1e-2; here every kind defaults to 0, so AdamW without it is Adam.
  double weight_decay = 0.0;
  bool amsgrad = false;  // Adam, AdamW: normalize by the running maximum of exp_avg_sq
};

// OK iff the fields `options.kind` uses are in the ranges PyTorch accepts, and finite:
// learning_rate >= 0; momentum >= 0; nesterov only with momentum > 0 and dampening == 0;
// beta1, beta2 in [0, 1); epsilon >= 0; rmsprop_alpha >= 0; weight_decay >= 0. InvalidArgument
// naming the first offending field otherwise.
absl::Status ValidateOptimizerOptions(const OptimizerOptions& options);

// Names of the per-parameter state tensors ("slots"), each shaped like its parameter.
inline constexpr char kMomentumBufferSlot[] = "momentum_buffer";  // SGD, RMSprop with momentum
inline constexpr char kExpAvgSlot[] = "exp_avg";                  // Adam, AdamW
inline constexpr char kExpAvgSqSlot[] = "exp_avg_sq";             // Adam, AdamW
inline constexpr char kMaxExpAvgSqSlot[] = "max_exp_avg_sq";      // Adam, AdamW with amsgrad
inline constexpr char kSquareAvgSlot[] = "square_avg";            // RMSprop
inline constexpr char kGradAvgSlot[] = "grad_avg";                // RMSprop centered

// The slots `options` keeps for every parameter, sorted by name; empty for plain SGD.
std::vector<std::string> OptimizerSlotNames(const OptimizerOptions& options);

// Everything an optimizer carries from one step to the next: what a checkpoint stores.
struct OptimizerState {
  // Steps taken. SGD's momentum buffer is meaningless (PyTorch's None) while this is 0: the first
  // step sets it to the gradient, undampened.
  int64_t steps = 0;
  // parameter name -> slot name -> values (row-major, the parameter's element count).
  std::map<std::string, std::map<std::string, std::vector<float>>> slots;
};

// One optimizer over one fixed set of named parameters. Not thread-safe.
class Optimizer {
 public:
  // Validates `options` and records the names and shapes of `params` (which must be non-empty,
  // each tensor holding as many values as its shape says); the slots start at zero.
  // InvalidArgument otherwise.
  static absl::StatusOr<std::unique_ptr<Optimizer>> Create(const OptimizerOptions& options,
                                                           const ParameterSet& params);

  // For Create only (through std::make_unique): outside the class PrivateTag can be neither
  // named nor built from {}.
 private:
  struct PrivateTag {
    explicit PrivateTag() = default;
  };

 public:
  Optimizer(PrivateTag, const OptimizerOptions& options,
            std::map<std::string, std::vector<int64_t>> shapes, OptimizerState state);

  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // One torch.optim step with rate `learning_rate`: updates `params` in place from `grads`.
  // Both must hold exactly the tensors, names and shapes given to Create. InvalidArgument, with
  // nothing changed, if they do not or if the rate is negative or not finite.
  absl::Status Step(const ParameterSet& grads, double learning_rate, ParameterSet* params);

  const OptimizerOptions& options() const { return options_; }
  const OptimizerState& state() const { return state_; }

  // Replaces the state with `state` (from state() of an optimizer with the same options and
  // parameters), so training continues bit-identically. InvalidArgument, with nothing changed, if
  // steps < 0 or the parameter names, slot names or slot sizes are not those this optimizer keeps.
  absl::Status RestoreState(const OptimizerState& state);

 private:
  absl::Status CheckTensors(const ParameterSet& tensors, absl::string_view what) const;

  const OptimizerOptions options_;
  const std::map<std::string, std::vector<int64_t>> shapes_;  // parameter name -> shape
  OptimizerState state_;
};

}  // namespace recurrent::core

#endif  // RECURRENT_CORE_OPTIMIZER_H_
