// One recurrent layer (both directions when bidirectional) on oneDNN 2.6 RNN primitives.
//
// The layer owns its weights in oneDNN's user layout (ldigo / ldgo, see core/onednn_layout.h) and,
// per primitive that wants another layout (format_tag::any lets oneDNN pick blocked layouts for
// brgemm or ldgoi for backward), a reordered copy that is refreshed only after LoadWeights.
// Primitives and their memories are built once per (pass, N, T, layouts) and cached in Plans.
//
// Layouts at this interface: sequences [T, N, C] (tnc) or [N, T, C] (ntc) as the plan says,
// states [D, N, H]. Methods throw dnnl::error; core/network.cc turns that into a Status.
// Not thread-safe.
#ifndef RECURRENT_CORE_RNN_LAYER_H_
#define RECURRENT_CORE_RNN_LAYER_H_

#include <cstdint>
#include <map>
#include <memory>
#include <tuple>
#include <vector>

#include "core/model_spec.h"
#include "core/parameters.h"
#include "oneapi/dnnl/dnnl.hpp"

namespace recurrent::core {

enum class SequenceLayout { kTnc, kNtc };
enum class PassKind { kInference, kTraining };

// Buffers of one forward execution. Null src_iter / src_iter_c mean zeros; null dst_iter /
// dst_iter_c mean "not needed" (written to plan scratch). Layer inputs/outputs and hidden states
// are in the layer's compute type (float or bfloat16 bits); the LSTM cell state is always float.
struct LayerForwardIo {
  const void* src_layer = nullptr;    // [T, N, in] or [N, T, in]
  const void* src_iter = nullptr;     // [D, N, H]
  const float* src_iter_c = nullptr;  // [D, N, H], LSTM only
  void* dst_layer = nullptr;          // [T, N, D*H] or [N, T, D*H]
  void* dst_iter = nullptr;           // [D, N, H]
  float* dst_iter_c = nullptr;        // [D, N, H], LSTM only
};

// Buffers of one backward execution (after a training forward with the same LayerForwardIo).
// Null diff_src_iter / diff_src_iter_c mean "not needed". Gradients of the final states are zero.
// Gradients are float in both precisions (oneDNN 2.6 rejects bfloat16 gradients).
struct LayerBackwardIo {
  const float* diff_dst_layer = nullptr;  // layout of dst_layer
  float* diff_src_layer = nullptr;        // layout of src_layer
  float* diff_src_iter = nullptr;         // [D, N, H]
  float* diff_src_iter_c = nullptr;       // [D, N, H], LSTM only
};

class RnnLayer {
 public:
  // `compute_type` is f32 or bf16: the type of weights, layer inputs/outputs and hidden states
  // inside the primitives. Biases, the LSTM cell state and all gradients stay f32.
  RnnLayer(const dnnl::engine& engine, CellType cell, int64_t index, int64_t input_size,
           int64_t hidden_size, int64_t directions, dnnl::memory::data_type compute_type);
  ~RnnLayer();
  RnnLayer(const RnnLayer&) = delete;
  RnnLayer& operator=(const RnnLayer&) = delete;

  int64_t input_size() const { return input_size_; }
  int64_t output_width() const { return directions_ * hidden_size_; }

  // Copies this layer's tensors (weight_ih_l{index}, ...) from PyTorch layout. The parameters
  // must have been validated against the spec.
  void LoadWeights(const ParameterSet& params);

  struct Plan;
  // The cached plan for this shape and the calling thread's OpenMP thread count, built on first
  // use.
  Plan& GetPlan(PassKind pass, int64_t batch, int64_t steps, SequenceLayout src_layout,
                SequenceLayout dst_layout);
  // Number of cached plans; ClearPlans() drops them all (bounding memory across many shapes).
  size_t plan_count() const { return plans_.size(); }
  void ClearPlans();

  void Forward(Plan& plan, dnnl::stream& stream, const LayerForwardIo& io);
  // Requires a kTraining plan whose Forward ran last with the same `forward_io`.
  void Backward(Plan& plan, dnnl::stream& stream, const LayerForwardIo& forward_io,
                const LayerBackwardIo& backward_io);
  // Adds nothing: overwrites grads[weight_ih_l{index}...] (PyTorch layout) from the last Backward.
  void ExportGradients(Plan& plan, dnnl::stream& stream, ParameterSet* grads);

 private:
  struct WeightSlot;
  // The OpenMP thread count is part of the key: some oneDNN implementations (brgemm) fix their
  // parallel split when the primitive is built, so a plan serves only the count it was built on.
  using PlanKey = std::tuple<PassKind, int64_t, int64_t, SequenceLayout, SequenceLayout, int>;

  // A copy of the weights in layout `desc`, reordered from the user layout when stale.
  WeightSlot* SlotFor(int which, const dnnl::memory::desc& desc);
  void Refresh(WeightSlot* slot, dnnl::stream& stream);

  dnnl::engine engine_;
  const CellType cell_;
  const int64_t index_;
  const int64_t input_size_;
  const int64_t hidden_size_;
  const int64_t directions_;
  const dnnl::memory::data_type compute_type_;
  // Weights in oneDNN's user layout: ldigo (layer), ldigo (iter), ldgo (bias).
  dnnl::memory user_weights_[3];
  uint64_t weights_version_ = 1;
  std::vector<std::unique_ptr<WeightSlot>> slots_;
  std::map<PlanKey, std::unique_ptr<Plan>> plans_;
};

}  // namespace recurrent::core

#endif  // RECURRENT_CORE_RNN_LAYER_H_
