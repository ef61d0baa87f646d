// An independent, naive, double-precision reference of the engine's math: the recurrent stack
// (RNN tanh/relu, LSTM, GRU; any depth; uni- or bidirectional), the linear head, the loss, and a
// hand-written backward pass through time. It shares no code with core/network.cc and uses no
// oneDNN; it exists so tests can check the engine against plain loops that read like the
// equations in core/model_spec.h and PyTorch's documentation.
//
// Layouts (all row-major, the same as core/network.h):
//   inputs   [N, T, I]          N sequences of T steps of I features
//   outputs  [N, T, O] per_step head, [N, O] last_step head (raw values or logits)
//   hidden   [N, T, D*H]        top layer output; forward direction in [0, H), reverse in [H, 2H)
//   states   [L*D, N, H]        h_0/h_n (and c_0/c_n for LSTM), row l*D+d
//   params   PyTorch names, shapes and gate order (core/parameters.h)
//
// Semantics are PyTorch's:
//   RNN   h' = act(W_ih x + b_ih + W_hh h + b_hh), act = tanh or relu
//   LSTM  gate rows i,f,g,o: c' = σ(f)*c + σ(i)*tanh(g), h' = σ(o)*tanh(c')
//   GRU   gate rows r,z,n: n = tanh(W_in x + b_in + r*(W_hn h + b_hn)), h' = (1-z)*n + z*h
//   The reverse direction of a layer runs t = T-1..0; layer k > 0 reads layer k-1's output.
//   Head: y = W x + b on every step (per_step) or on hidden[:, T-1, :] (last_step).
//   Loss: MSE = mean over every output element of (y - target)^2; cross-entropy = mean over the
//   predictions (N*T per_step, N last_step) of -log softmax(y)[label].
//
// Everything is a free function on value types; nothing is cached and nothing is thread-hostile.
#ifndef RECURRENT_TESTS_TESTING_REFERENCE_RNN_H_
#define RECURRENT_TESTS_TESTING_REFERENCE_RNN_H_

#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "core/model_spec.h"
#include "core/network.h"
#include "core/parameters.h"
#include "core/tensor.h"

namespace recurrent::testing {

// A dense, row-major float64 tensor: the reference's counterpart of core::Tensor.
struct DoubleTensor {
  DoubleTensor() = default;
  explicit DoubleTensor(std::vector<int64_t> tensor_shape);  // zeros
  DoubleTensor(std::vector<int64_t> tensor_shape, std::vector<double> tensor_values)
      : shape(std::move(tensor_shape)), values(std::move(tensor_values)) {}

  int64_t size() const { return static_cast<int64_t>(values.size()); }
  bool empty() const { return values.empty(); }

  std::vector<int64_t> shape;
  std::vector<double> values;
};

// Named tensors in PyTorch layout, as core::ParameterSet but in double.
using DoubleParams = std::map<std::string, DoubleTensor>;

struct DoubleState {
  DoubleTensor h;  // [L*D, N, H]
  DoubleTensor c;  // [L*D, N, H] for LSTM; empty for other cells
};

struct ReferenceResult {
  DoubleTensor outputs;                 // [N, T, O] per_step, [N, O] last_step
  DoubleTensor hidden;                  // [N, T, D*H], always filled
  DoubleState final_state;              // h_n (and c_n)
  double loss = 0.0;                    // only when targets were given
  DoubleParams gradients;               // d loss / d parameter; only when gradients were asked for
  DoubleState initial_state_gradients;  // d loss / d h_0 (and c_0); idem
  // Smallest |pre-activation| any relu unit saw (+infinity for other cells). A central finite
  // difference with step eps crosses relu's kink, and is then wrong, only when some
  // pre-activation moves by more than this margin; tests assert it is comfortably large.
  double min_relu_margin = std::numeric_limits<double>::infinity();
};

// Inference: outputs, hidden and final state. `initial_state` may be null (zeros).
// Returns InvalidArgument when a shape does not match `spec` or `inputs` is not [N, T, I].
absl::StatusOr<ReferenceResult> ReferenceForward(const core::ModelSpec& spec,
                                                 const DoubleParams& params,
                                                 const DoubleTensor& inputs,
                                                 const DoubleState* initial_state);

// Forward, loss against `targets` (core::Targets' conventions: MSE values shaped like the
// outputs, or one label in [0, O) per prediction) and, when `compute_gradients`, the full
// backward pass: gradients for every parameter and for the initial state (zeros when null).
absl::StatusOr<ReferenceResult> ReferenceForwardBackward(
    const core::ModelSpec& spec, const DoubleParams& params, const DoubleTensor& inputs,
    const core::Targets& targets, const DoubleState* initial_state, bool compute_gradients);

// Training features beyond the plain network: dropout between layers and masked loss rows.
struct ReferenceTrainingExtras {
  // Empty, or L-1 masks [N, T, D*H]: layer k+1 reads layer k's output times between_layers[k]
  // (the mask values are the already scaled 0 or 1/(1-p)); the backward pass multiplies the
  // gradient the same way.
  std::vector<std::vector<double>> between_layers;
};

// As above, with `extras`; `targets.mask` (core::Targets) is honoured by both overloads: masked
// predictions add nothing and the mean is over the counted ones.
absl::StatusOr<ReferenceResult> ReferenceForwardBackward(
    const core::ModelSpec& spec, const DoubleParams& params, const DoubleTensor& inputs,
    const core::Targets& targets, const DoubleState* initial_state, bool compute_gradients,
    const ReferenceTrainingExtras& extras);

// Exact widening from float32, and rounding back to float32.
DoubleTensor ToDouble(const core::Tensor& tensor);
DoubleParams ToDouble(const core::ParameterSet& params);
DoubleState ToDouble(const core::RecurrentState& state);
core::Tensor ToFloat(const DoubleTensor& tensor);
core::ParameterSet ToFloat(const DoubleParams& params);
core::RecurrentState ToFloat(const DoubleState& state);

}  // namespace recurrent::testing

#endif  // RECURRENT_TESTS_TESTING_REFERENCE_RNN_H_
