// The RNN engine: a stack of recurrent layers (vanilla RNN, LSTM, GRU; uni- or bidirectional)
// plus a linear head, run forward and backward on oneDNN 2.6 primitives.
//
// Layouts at this API are PyTorch's with batch_first=True:
//   inputs   [N, T, I]          N sequences of T steps of I features
//   outputs  [N, T, O] per_step head, [N, O] last_step head (raw values or logits)
//   hidden   [N, T, D*H]        top layer output, forward direction first
//   states   [L*D, N, H]        PyTorch's h_0/h_n (and c_0/c_n for LSTM), row l*D+d
// Parameters are a ParameterSet in PyTorch names, shapes and gate order (core/parameters.h);
// the engine keeps them in oneDNN's layout and gate order and converts back when asked.
//
// Thread-safety: a Network is not thread-safe (it caches primitives and scratch buffers per
// shape). Use one per thread; primitives themselves are shared through oneDNN's primitive cache.
#ifndef RECURRENT_CORE_NETWORK_H_
#define RECURRENT_CORE_NETWORK_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/model_spec.h"
#include "core/parameters.h"
#include "core/tensor.h"

namespace recurrent::core {

struct RecurrentState {
  Tensor h;  // [L*D, N, H]
  Tensor c;  // [L*D, N, H] for LSTM; empty for other cells
};

// What the loss compares the head's outputs with.
struct Targets {
  // MSE: same shape as the outputs ([N, T, O] per_step, [N, O] last_step).
  Tensor values;
  // Cross-entropy: one class index in [0, O) per prediction: N*T (row-major over n, t) for a
  // per_step head, N for a last_step head.
  std::vector<int32_t> labels;
  // Optional: one byte per prediction (N*T row-major over n, t for a per_step head, N for a
  // last_step head); 0 marks padding: the loss ignores it (see core/loss.h). Empty: all count.
  std::vector<uint8_t> mask;
};

struct ForwardResult {
  Tensor outputs;              // head outputs, see the layouts above
  Tensor hidden;               // [N, T, D*H]; filled only when ForwardOptions::want_hidden
  RecurrentState final_state;  // h_n (and c_n)
};

struct ForwardOptions {
  bool want_hidden = false;
  // Run the sequence one timestep at a time through Step()'s primitives, so that the result is
  // bit-identical to streaming the same N sequences with Step(). The default path runs each
  // layer over all T steps in one oneDNN primitive, which is faster but groups the GEMMs
  // differently, so it agrees with Step() only to float rounding (~1e-7 relative).
  // Unidirectional models only.
  bool step_consistent = false;
};

struct TrainingOptions {
  // Dropout on the output of every recurrent layer except the top one, as PyTorch's
  // nn.LSTM(dropout=p): probability in [0, 1). Masks come from `dropout_seed` (core/dropout.h):
  // pass a new seed per step for new masks.
  double dropout = 0.0;
  uint64_t dropout_seed = 0;
};

struct TrainingResult {
  double loss = 0.0;           // mean loss over the batch (see LossType)
  Tensor outputs;              // head outputs of the forward pass
  RecurrentState final_state;  // h_n (and c_n), e.g. to carry into the next truncated-BPTT chunk
  ParameterSet gradients;      // d loss / d parameter, PyTorch names and layout
  RecurrentState initial_state_gradients;  // d loss / d h_0 (and c_0), [L*D, N, H]
};

struct EngineLimits {
  int64_t max_batch = 1 << 16;
  int64_t max_steps = 1 << 20;
  int64_t max_elements = int64_t{1} << 30;  // N*T*max(I, D*H, O) for any one tensor
};

enum class Precision {
  kFloat32,
  // Opt-in: weights, layer inputs/outputs and hidden states in bfloat16 inside the recurrent
  // layers (biases, the LSTM cell state, the head, the loss and every gradient stay float32).
  // Needs a CPU with AVX-512 BF16 (or AMX); Create() fails with FailedPrecondition elsewhere.
  // Values at this API are float32 in both modes.
  kBfloat16,
};

struct NetworkOptions {
  EngineLimits limits;
  Precision precision = Precision::kFloat32;
  // OpenMP threads for this network's calls, set on the calling thread before each call.
  // 0 (the default): adaptive, between 1 and the process's OpenMP maximum (OMP_NUM_THREADS):
  // each call shape runs on the count measured fastest for it, which keeps big calls from
  // stalling when another process competes for the cores (core/thread_tuner.h). A positive
  // value fixes the count. Results are bit-identical on any thread count.
  int num_threads = 0;
  // Step() of 1 to 4 float32 streams runs core/small_batch_step.h's kernel (on AVX-512 CPUs),
  // which reads every weight once per call and is ~1.3x faster than oneDNN's primitive there.
  // Its packed copy of the weights is made on the first such step.
  // false keeps oneDNN's primitive for every batch (the benchmarks compare the two).
  bool small_batch_step = true;
};

// OK if this CPU runs networks in `precision` (float32 always; bfloat16 needs AVX-512 BF16 or
// AMX), else FailedPrecondition saying why: what a server checks once at startup, so that a
// bfloat16 deployment on the wrong machine fails there rather than at its first request.
absl::Status CheckPrecisionSupported(Precision precision);

class Network {
 public:
  // Validates `spec` and `params` and converts the weights to oneDNN's layout.
  static absl::StatusOr<std::unique_ptr<Network>> Create(const ModelSpec& spec,
                                                         const ParameterSet& params,
                                                         const NetworkOptions& options = {});
  ~Network();
  Network(const Network&) = delete;
  Network& operator=(const Network&) = delete;

  const ModelSpec& spec() const;

  // The OpenMP thread count the most recent call ran on (see NetworkOptions::num_threads).
  int last_call_threads() const;

  // The current weights in PyTorch layout (a copy).
  ParameterSet GetParameters() const;
  // Replaces every weight; invalidates the reordered copies so they are rebuilt once, lazily.
  absl::Status SetParameters(const ParameterSet& params);

  // Inference over a batch of whole sequences. `initial_state` may be null (zeros).
  absl::Status Forward(const Tensor& inputs, const RecurrentState* initial_state,
                       ForwardResult* result, const ForwardOptions& options = {});

  // Forward training pass, loss and full backward pass through time.
  absl::Status ForwardBackward(const Tensor& inputs, const Targets& targets,
                               const RecurrentState* initial_state, TrainingResult* result,
                               const TrainingOptions& options = {});

  // --- Streaming: advance independent streams by one timestep each. ---
  // A stream's state is one contiguous block of step_state_size() floats:
  // h of layers 0..L-1 ([L, H]) followed, for LSTM, by c of layers 0..L-1 ([L, H]).
  // Zeros are the initial state. Only unidirectional models can be stepped.
  int64_t step_state_size() const;

  // Advances `batch` streams by one step. `inputs` is [batch, I]; `states[i]` points at stream
  // i's state block, read and updated in place; `outputs` receives [batch, O].
  // After a warm-up call with the same (rounded) batch size it performs no heap allocation.
  // Stepping the same N streams T times gives exactly (bitwise) Forward's result with
  // ForwardOptions::step_consistent, and the default Forward's to float rounding. A stream's
  // result can change in the last bits with the batch it is stepped in (GEMM blocking varies with
  // the batch size), as in any batched GEMM-based engine.
  absl::Status Step(const float* inputs, int64_t batch, float* const* states, float* outputs);

 private:
  struct Impl;
  explicit Network(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace recurrent::core

#endif  // RECURRENT_CORE_NETWORK_H_
