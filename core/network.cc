#include "core/network.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "core/bfloat16.h"
#include "core/dropout.h"
#include "core/linear_head.h"
#include "core/loss.h"
#include "core/rnn_layer.h"
#include "core/small_batch_step.h"
#include "core/status_macros.h"
#include "core/thread_tuner.h"
#include "oneapi/dnnl/dnnl.hpp"

namespace recurrent::core {
namespace {

// Plans and buffers are cached per shape; past this many shapes the caches are dropped so that
// a long tail of sequence lengths cannot grow memory without bound.
constexpr size_t kMaxCachedShapes = 32;

// Every layer reads and writes [N, T, C] (oneDNN's ntc): the caller's inputs and the head's input
// are used in place, with no transposes. Layouts must not be mixed between layers: oneDNN 2.6's
// reference backward pass returns garbage weight_ih gradients for a unidirectional layer whose
// src is ntc and dst tnc (found by the PyTorch fixtures; ntc->ntc and tnc->tnc are correct).
constexpr SequenceLayout kLayout = SequenceLayout::kNtc;

// Step batches are rounded up so a batcher that sees every batch size from 1 to 256 builds ~25
// primitives, not 256: to a multiple of 4 up to 64 (the common range of StepPredict batching,
// where padding would cost up to a third more compute at coarser buckets), then to 64, 96, 128,
// 192, 256, ... (at most a third more).
int64_t RoundStepBatch(int64_t batch) {
  if (batch <= 8) return batch;
  if (batch <= 64) return (batch + 3) / 4 * 4;
  int64_t bucket = 64;
  while (true) {
    if (bucket >= batch) return bucket;
    if (bucket + bucket / 2 >= batch) return bucket + bucket / 2;
    bucket *= 2;
  }
}

absl::Status DnnlError(const dnnl::error& e) {
  return absl::InternalError(absl::StrCat("oneDNN: ", e.what()));
}

absl::Status CheckStateShape(const char* what, const Tensor& state,
                             const std::vector<int64_t>& expected) {
  if (state.shape != expected || state.size() != Tensor::ElementCount(expected)) {
    return absl::InvalidArgumentError(absl::StrCat("initial state ", what, " has shape ",
                                                   ShapeToString(state.shape), ", expected ",
                                                   ShapeToString(expected)));
  }
  return absl::OkStatus();
}

// Values in the compute precision that the recurrent layers read and write: float, or bfloat16
// bits in bfloat16 mode. Cell states and gradients are always float and live in plain vectors.
class ActivationBuffer {
 public:
  // Makes room for `count` values and returns the start (contents kept where they fit).
  void* Reserve(bool bf16, int64_t count) {
    if (bf16) {
      bf16_.resize(count);
      return bf16_.data();
    }
    f32_.resize(count);
    return f32_.data();
  }
  void* data(bool bf16) { return bf16 ? static_cast<void*>(bf16_.data()) : f32_.data(); }

 private:
  std::vector<float> f32_;
  std::vector<uint16_t> bf16_;
};

// Buffers of one training shape: every layer's output is kept for the backward pass.
struct TrainingBuffers {
  std::vector<ActivationBuffer> layer_outputs;        // layer l: [N, T, D*H]
  std::vector<ActivationBuffer> dropped_outputs;      // with dropout, layer l < L-1 after it
  std::vector<std::vector<float>> dropout_masks;      // with dropout, layer l < L-1: [N, T, D*H]
  std::vector<std::vector<float>> layer_input_grads;  // layer l >= 1: [N, T, in_l]
  std::vector<float> top;                             // bfloat16 mode: top output as float
  std::vector<float> top_grad;                        // [N, T, D*H]
  std::vector<float> output_grad;                     // head outputs' gradient
};

// Buffers of one step batch size: no allocation once built.
struct StepBuffers {
  ActivationBuffer input;                       // [B, I]
  std::vector<ActivationBuffer> h_in, h_out;    // per layer [B, H]
  std::vector<std::vector<float>> c_in, c_out;  // per layer [B, H]
  std::vector<ActivationBuffer> layer_outputs;  // per layer [B, H]
  std::vector<float> top;                       // bfloat16 mode: top output as float [B, H]
};

enum CallKind { kForwardCall, kTrainingCall, kStepCall };

}  // namespace

struct Network::Impl {
  ModelSpec spec;
  NetworkOptions options;
  ParameterSet params;
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
  bool bf16 = false;                   // options.precision == Precision::kBfloat16
  std::unique_ptr<ThreadTuner> tuner;  // null when options.num_threads fixes the count
  int last_threads = 0;
  std::vector<std::unique_ptr<RnnLayer>> layers;
  std::vector<ActivationBuffer> inference_buffers;  // per layer [N, T, D*H], resized per call
  std::vector<float> inference_top;                 // top output as float when not returned
  // bfloat16 mode: inputs, initial and final hidden states in bfloat16.
  ActivationBuffer input_scratch, h0_scratch, hn_scratch;
  std::map<std::tuple<int64_t, int64_t>, TrainingBuffers> training_buffers;
  std::map<int64_t, StepBuffers> step_buffers;
  // Float32 steps of few streams. Built on the first such step (networks that only train or
  // run Predict never pay for its packed copy of the weights), which stays null when disabled,
  // bf16 or unsupported; the packed weights are refreshed on the first step after SetParameters.
  std::unique_ptr<SmallBatchStep> small_step;
  bool small_step_tried = false;
  bool small_step_stale = true;

  // The packed kernel for a step of `batch` streams, or null for oneDNN's primitive.
  SmallBatchStep* SmallStepFor(int64_t batch) {
    if (batch > SmallBatchStep::kMaxStreams) return nullptr;
    if (!small_step_tried) {
      small_step_tried = true;
      if (!bf16 && options.small_batch_step) small_step = SmallBatchStep::Create(spec);
    }
    if (small_step != nullptr && small_step_stale) {
      small_step->LoadWeights(params);
      small_step_stale = false;
    }
    return small_step.get();
  }

  const float* head_weight() const { return params.at("head.weight").data(); }
  const float* head_bias() const { return params.at("head.bias").data(); }

  void TrimCaches() {
    for (auto& layer : layers) {
      if (layer->plan_count() > kMaxCachedShapes) layer->ClearPlans();
    }
    if (training_buffers.size() > kMaxCachedShapes) training_buffers.clear();
  }

  absl::Status ValidateInputs(const Tensor& inputs, const RecurrentState* initial) const {
    if (inputs.shape.size() != 3) {
      return absl::InvalidArgumentError(absl::StrCat("inputs must be [N, T, ", spec.input_size,
                                                     "], got ", ShapeToString(inputs.shape)));
    }
    const int64_t n = inputs.shape[0], t = inputs.shape[1], c = inputs.shape[2];
    if (c != spec.input_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          "inputs have ", c, " features per step, the model expects ", spec.input_size));
    }
    if (n < 1 || n > options.limits.max_batch) {
      return absl::InvalidArgumentError(
          absl::StrCat("batch size ", n, " outside [1, ", options.limits.max_batch, "]"));
    }
    if (t < 1 || t > options.limits.max_steps) {
      return absl::InvalidArgumentError(
          absl::StrCat("sequence length ", t, " outside [1, ", options.limits.max_steps, "]"));
    }
    const int64_t widest = std::max({spec.input_size, spec.top_width(), spec.output_size});
    if (n * t > options.limits.max_elements / widest) {
      return absl::InvalidArgumentError(absl::StrCat("a batch of ", n, " x ", t,
                                                     " steps exceeds the limit of ",
                                                     options.limits.max_elements, " elements"));
    }
    if (inputs.size() != n * t * c) {
      return absl::InvalidArgumentError(absl::StrCat(
          "inputs hold ", inputs.size(), " values for shape ", ShapeToString(inputs.shape)));
    }
    if (initial != nullptr) {
      const std::vector<int64_t> expected = {spec.num_layers * spec.num_directions(), n,
                                             spec.hidden_size};
      RETURN_IF_ERROR(CheckStateShape("h", initial->h, expected));
      if (spec.has_cell_state()) RETURN_IF_ERROR(CheckStateShape("c", initial->c, expected));
    }
    return absl::OkStatus();
  }

  std::vector<int64_t> OutputShape(int64_t n, int64_t t) const {
    return spec.head == HeadMode::kPerStep ? std::vector<int64_t>{n, t, spec.output_size}
                                           : std::vector<int64_t>{n, spec.output_size};
  }

  // Runs the head on the top layer's [N, T, D*H] output.
  HeadShape HeadShapeFor(int64_t n, int64_t t) const {
    return spec.head == HeadMode::kPerStep
               ? HeadShape{n * t, spec.top_width(), spec.output_size, spec.top_width()}
               : HeadShape{n, spec.top_width(), spec.output_size, t * spec.top_width()};
  }
  // Offset of the head's first input row within the top layer's output.
  int64_t HeadInputOffset(int64_t t) const {
    return spec.head == HeadMode::kPerStep ? 0 : (t - 1) * spec.top_width();
  }

  // `count` floats in the compute precision: the floats themselves, or a bfloat16 copy.
  const void* ToCompute(const float* src, int64_t count, ActivationBuffer& scratch) const {
    if (!bf16) return src;
    auto* converted = static_cast<uint16_t*>(scratch.Reserve(true, count));
    FloatToBfloat16(src, converted, count);
    return converted;
  }
  // The address `elements` values past `base` in the compute precision.
  const void* Advance(const void* base, int64_t elements) const {
    if (base == nullptr) return nullptr;
    return static_cast<const char*>(base) + elements * (bf16 ? 2 : 4);
  }
  void* Advance(void* base, int64_t elements) const {
    return const_cast<void*>(Advance(static_cast<const void*>(base), elements));
  }
  int64_t StateOffset(int64_t layer, int64_t n) const {
    return layer * spec.num_directions() * n * spec.hidden_size;
  }

  const float* StatePtr(const Tensor& state, int64_t layer, int64_t n) const {
    return state.empty() ? nullptr
                         : state.data() + layer * spec.num_directions() * n * spec.hidden_size;
  }
  float* StatePtr(Tensor& state, int64_t layer, int64_t n) const {
    return state.empty() ? nullptr
                         : state.data() + layer * spec.num_directions() * n * spec.hidden_size;
  }

  // Forward by stepping: bit-identical to Step() for the same N streams.
  absl::Status StepConsistentForward(Network& network, const Tensor& inputs,
                                     const RecurrentState* initial, ForwardResult* result,
                                     const ForwardOptions& options) const {
    const int64_t n = inputs.shape[0], t = inputs.shape[1];
    const int64_t num_layers = spec.num_layers, hidden = spec.hidden_size;
    const int64_t in = spec.input_size, out = spec.output_size;
    const int64_t state_size = network.step_state_size();
    const bool lstm = spec.has_cell_state();
    std::vector<float> states(n * state_size, 0.0f);
    std::vector<float*> stream_states(n);
    for (int64_t i = 0; i < n; ++i) stream_states[i] = states.data() + i * state_size;
    // [L, N, H] state tensors <-> per-stream blocks [h of L layers, c of L layers].
    const auto stream_row = [&](int64_t stream, int kind, int64_t layer) {
      return stream_states[stream] + (kind * num_layers + layer) * hidden;
    };
    const auto tensor_offset = [&](int64_t stream, int64_t layer) {
      return (layer * n + stream) * hidden;
    };
    if (initial != nullptr) {
      for (int64_t l = 0; l < num_layers; ++l) {
        for (int64_t i = 0; i < n; ++i) {
          std::memcpy(stream_row(i, 0, l), initial->h.data() + tensor_offset(i, l),
                      sizeof(float) * hidden);
          if (lstm) {
            std::memcpy(stream_row(i, 1, l), initial->c.data() + tensor_offset(i, l),
                        sizeof(float) * hidden);
          }
        }
      }
    }
    if (options.want_hidden) result->hidden = Tensor({n, t, hidden});
    std::vector<float> step_inputs(n * in), step_outputs(n * out);
    for (int64_t step = 0; step < t; ++step) {
      for (int64_t i = 0; i < n; ++i) {
        std::memcpy(step_inputs.data() + i * in, inputs.data() + (i * t + step) * in,
                    sizeof(float) * in);
      }
      RETURN_IF_ERROR(
          network.Step(step_inputs.data(), n, stream_states.data(), step_outputs.data()));
      for (int64_t i = 0; i < n; ++i) {
        if (spec.head == HeadMode::kPerStep) {
          std::memcpy(result->outputs.data() + (i * t + step) * out, step_outputs.data() + i * out,
                      sizeof(float) * out);
        } else if (step + 1 == t) {
          std::memcpy(result->outputs.data() + i * out, step_outputs.data() + i * out,
                      sizeof(float) * out);
        }
        if (options.want_hidden) {
          std::memcpy(result->hidden.data() + (i * t + step) * hidden,
                      stream_states[i] + (num_layers - 1) * hidden, sizeof(float) * hidden);
        }
      }
    }
    for (int64_t l = 0; l < num_layers; ++l) {
      for (int64_t i = 0; i < n; ++i) {
        std::memcpy(result->final_state.h.data() + tensor_offset(i, l), stream_row(i, 0, l),
                    sizeof(float) * hidden);
        if (lstm) {
          std::memcpy(result->final_state.c.data() + tensor_offset(i, l), stream_row(i, 1, l),
                      sizeof(float) * hidden);
        }
      }
    }
    return absl::OkStatus();
  }

  absl::Status LoadParameters(const ParameterSet& new_params) {
    RETURN_IF_ERROR(ValidateParameters(spec, new_params));
    params = new_params;
    for (auto& layer : layers) layer->LoadWeights(params);
    small_step_stale = true;
    return absl::OkStatus();
  }
};

namespace {

// Runs one engine call on the thread count the tuner (or the options) chose, and reports the
// call's wall time back to the tuner.
class ThreadScope {
 public:
  ThreadScope(ThreadTuner* tuner, int fixed_threads, int* last_threads, CallKind kind,
              int64_t batch, int64_t steps)
      : tuner_(tuner), key_(kind, batch, steps) {
    threads_ = tuner_ != nullptr ? tuner_->ThreadsFor(key_) : fixed_threads;
    *last_threads = threads_;
    omp_set_num_threads(threads_);
    start_ = std::chrono::steady_clock::now();
  }
  ~ThreadScope() {
    if (tuner_ == nullptr) return;
    const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start_;
    tuner_->Record(key_, threads_, elapsed.count());
  }
  ThreadScope(const ThreadScope&) = delete;
  ThreadScope& operator=(const ThreadScope&) = delete;

 private:
  ThreadTuner* tuner_;
  ThreadTuner::CallKey key_;
  int threads_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace

Network::Network(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Network::~Network() = default;

absl::StatusOr<std::unique_ptr<Network>> Network::Create(const ModelSpec& spec,
                                                         const ParameterSet& params,
                                                         const NetworkOptions& options) {
  RETURN_IF_ERROR(ValidateSpec(spec));
  try {
    auto impl = std::make_unique<Impl>();
    impl->spec = spec;
    impl->options = options;
    impl->bf16 = options.precision == Precision::kBfloat16;
    if (options.num_threads <= 0) {
      impl->tuner = std::make_unique<ThreadTuner>(omp_get_max_threads());
    }
    const auto compute_type =
        impl->bf16 ? dnnl::memory::data_type::bf16 : dnnl::memory::data_type::f32;
    for (int64_t layer = 0; layer < spec.num_layers; ++layer) {
      impl->layers.push_back(std::make_unique<RnnLayer>(
          impl->engine, spec.cell, layer, layer == 0 ? spec.input_size : spec.top_width(),
          spec.hidden_size, spec.num_directions(), compute_type));
    }
    RETURN_IF_ERROR(impl->LoadParameters(params));
    if (impl->bf16) {
      // Building one primitive tells whether this CPU runs bfloat16 RNNs (oneDNN has no
      // reference fallback for them).
      try {
        impl->layers[0]->GetPlan(PassKind::kTraining, 1, 1, kLayout, kLayout);
      } catch (const dnnl::error& e) {
        return absl::FailedPreconditionError(absl::StrCat(
            "bfloat16 precision is not supported on this CPU (oneDNN: ", e.what(), ")"));
      }
    }
    return std::unique_ptr<Network>(new Network(std::move(impl)));
  } catch (const dnnl::error& e) {
    return DnnlError(e);
  }
}

const ModelSpec& Network::spec() const { return impl_->spec; }

int Network::last_call_threads() const { return impl_->last_threads; }

ParameterSet Network::GetParameters() const { return impl_->params; }

absl::Status Network::SetParameters(const ParameterSet& params) {
  try {
    return impl_->LoadParameters(params);
  } catch (const dnnl::error& e) {
    return DnnlError(e);
  }
}

absl::Status Network::Forward(const Tensor& inputs, const RecurrentState* initial_state,
                              ForwardResult* result, const ForwardOptions& options) {
  Impl& m = *impl_;
  RETURN_IF_ERROR(m.ValidateInputs(inputs, initial_state));
  const ModelSpec& spec = m.spec;
  const int64_t n = inputs.shape[0], t = inputs.shape[1];
  const int64_t num_layers = spec.num_layers;
  const std::vector<int64_t> state_shape = {num_layers * spec.num_directions(), n,
                                            spec.hidden_size};
  if (options.step_consistent && spec.bidirectional) {
    return absl::FailedPreconditionError(
        "step_consistent needs a unidirectional model: a bidirectional one cannot be stepped");
  }
  try {
    const ThreadScope threads(m.tuner.get(), m.options.num_threads, &m.last_threads, kForwardCall,
                              n, t);
    m.TrimCaches();
    result->outputs = Tensor(m.OutputShape(n, t));
    result->final_state.h = Tensor(state_shape);
    result->final_state.c = spec.has_cell_state() ? Tensor(state_shape) : Tensor();
    if (options.step_consistent) {
      result->hidden = Tensor();
      return m.StepConsistentForward(*this, inputs, initial_state, result, options);
    }
    const int64_t hidden_floats = n * t * spec.top_width();
    const int64_t state_floats = Tensor::ElementCount(state_shape);
    m.inference_buffers.resize(num_layers);
    float* top = nullptr;  // the top layer's output as float, the head's input
    if (options.want_hidden) {
      result->hidden = Tensor({n, t, spec.top_width()});
      top = result->hidden.data();
    } else {
      result->hidden = Tensor();
      m.inference_top.resize(hidden_floats);
      top = m.inference_top.data();
    }
    const bool bf16 = m.bf16;
    const void* layer_input = m.ToCompute(inputs.data(), inputs.size(), m.input_scratch);
    const void* h0 =
        initial_state ? m.ToCompute(initial_state->h.data(), state_floats, m.h0_scratch) : nullptr;
    const Tensor empty;
    const Tensor& c0 = initial_state ? initial_state->c : empty;
    void* hn = bf16 ? m.hn_scratch.Reserve(true, state_floats) : result->final_state.h.data();
    for (int64_t l = 0; l < num_layers; ++l) {
      const bool last = l + 1 == num_layers;
      RnnLayer::Plan& plan = m.layers[l]->GetPlan(PassKind::kInference, n, t, kLayout, kLayout);
      void* layer_output = last && !bf16 ? static_cast<void*>(top)
                                         : m.inference_buffers[l].Reserve(bf16, hidden_floats);
      m.layers[l]->Forward(
          plan, m.stream,
          {layer_input, m.Advance(h0, m.StateOffset(l, n)), m.StatePtr(c0, l, n), layer_output,
           m.Advance(hn, m.StateOffset(l, n)), m.StatePtr(result->final_state.c, l, n)});
      layer_input = layer_output;
    }
    if (bf16) {
      Bfloat16ToFloat(static_cast<const uint16_t*>(layer_input), top, hidden_floats);
      Bfloat16ToFloat(static_cast<const uint16_t*>(hn), result->final_state.h.data(), state_floats);
    }
    LinearHeadForward(m.HeadShapeFor(n, t), top + m.HeadInputOffset(t), m.head_weight(),
                      m.head_bias(), result->outputs.data());
    return absl::OkStatus();
  } catch (const dnnl::error& e) {
    return DnnlError(e);
  }
}

absl::Status Network::ForwardBackward(const Tensor& inputs, const Targets& targets,
                                      const RecurrentState* initial_state, TrainingResult* result,
                                      const TrainingOptions& options) {
  Impl& m = *impl_;
  RETURN_IF_ERROR(m.ValidateInputs(inputs, initial_state));
  const ModelSpec& spec = m.spec;
  const int64_t n = inputs.shape[0], t = inputs.shape[1];
  const int64_t num_layers = spec.num_layers;
  const std::vector<int64_t> output_shape = m.OutputShape(n, t);
  const int64_t predictions = spec.head == HeadMode::kPerStep ? n * t : n;
  if (spec.loss == LossType::kMse) {
    if (targets.values.shape != output_shape ||
        targets.values.size() != Tensor::ElementCount(output_shape)) {
      return absl::InvalidArgumentError(absl::StrCat("targets have shape ",
                                                     ShapeToString(targets.values.shape),
                                                     ", expected ", ShapeToString(output_shape)));
    }
  } else if (static_cast<int64_t>(targets.labels.size()) != predictions) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected ", predictions, " class labels, got ", targets.labels.size()));
  }
  if (!targets.mask.empty() && static_cast<int64_t>(targets.mask.size()) != predictions) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected ", predictions, " mask entries, got ", targets.mask.size()));
  }
  if (!(options.dropout >= 0.0 && options.dropout < 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("dropout probability ", options.dropout, " outside [0, 1)"));
  }
  const bool dropout = options.dropout > 0.0 && num_layers > 1;
  const std::vector<int64_t> state_shape = {num_layers * spec.num_directions(), n,
                                            spec.hidden_size};
  try {
    const ThreadScope threads(m.tuner.get(), m.options.num_threads, &m.last_threads, kTrainingCall,
                              n, t);
    m.TrimCaches();
    const bool bf16 = m.bf16;
    const int64_t hidden_floats = n * t * spec.top_width();
    const int64_t state_floats = Tensor::ElementCount(state_shape);
    TrainingBuffers& buffers = m.training_buffers[{n, t}];
    buffers.layer_outputs.resize(num_layers);
    buffers.layer_input_grads.resize(num_layers);
    for (int64_t l = 0; l < num_layers; ++l) {
      buffers.layer_outputs[l].Reserve(bf16, hidden_floats);
      if (l > 0) buffers.layer_input_grads[l].resize(n * t * m.layers[l]->input_size());
    }
    if (dropout) {
      buffers.dropped_outputs.resize(num_layers - 1);
      buffers.dropout_masks.resize(num_layers - 1);
      for (int64_t l = 0; l + 1 < num_layers; ++l) {
        buffers.dropped_outputs[l].Reserve(bf16, hidden_floats);
        buffers.dropout_masks[l].resize(hidden_floats);
        MakeDropoutMask(options.dropout_seed, l, options.dropout, buffers.dropout_masks[l].data(),
                        hidden_floats);
      }
    }
    buffers.top_grad.assign(hidden_floats, 0.0f);
    buffers.output_grad.resize(Tensor::ElementCount(output_shape));

    result->outputs = Tensor(output_shape);
    result->final_state.h = Tensor(state_shape);
    result->final_state.c = spec.has_cell_state() ? Tensor(state_shape) : Tensor();
    result->initial_state_gradients.h = Tensor(state_shape);
    result->initial_state_gradients.c = spec.has_cell_state() ? Tensor(state_shape) : Tensor();
    const void* h0 =
        initial_state ? m.ToCompute(initial_state->h.data(), state_floats, m.h0_scratch) : nullptr;
    const Tensor empty;
    const Tensor& c0 = initial_state ? initial_state->c : empty;
    void* hn = bf16 ? m.hn_scratch.Reserve(true, state_floats) : result->final_state.h.data();

    std::vector<LayerForwardIo> forward_io(num_layers);
    std::vector<RnnLayer::Plan*> plans(num_layers);
    const void* layer_input = m.ToCompute(inputs.data(), inputs.size(), m.input_scratch);
    for (int64_t l = 0; l < num_layers; ++l) {
      plans[l] = &m.layers[l]->GetPlan(PassKind::kTraining, n, t, kLayout, kLayout);
      forward_io[l] = {layer_input,
                       m.Advance(h0, m.StateOffset(l, n)),
                       m.StatePtr(c0, l, n),
                       buffers.layer_outputs[l].data(bf16),
                       m.Advance(hn, m.StateOffset(l, n)),
                       m.StatePtr(result->final_state.c, l, n)};
      m.layers[l]->Forward(*plans[l], m.stream, forward_io[l]);
      layer_input = buffers.layer_outputs[l].data(bf16);
      if (dropout && l + 1 < num_layers) {
        // The layer keeps its own output for its backward pass; the next layer reads a copy.
        ApplyDropoutMask(buffers.dropout_masks[l].data(), layer_input,
                         buffers.dropped_outputs[l].data(bf16), hidden_floats, bf16);
        layer_input = buffers.dropped_outputs[l].data(bf16);
      }
    }
    const float* top = static_cast<const float*>(layer_input);
    if (bf16) {
      buffers.top.resize(hidden_floats);
      Bfloat16ToFloat(static_cast<const uint16_t*>(layer_input), buffers.top.data(), hidden_floats);
      Bfloat16ToFloat(static_cast<const uint16_t*>(hn), result->final_state.h.data(), state_floats);
      top = buffers.top.data();
    }

    const HeadShape head = m.HeadShapeFor(n, t);
    const int64_t head_offset = m.HeadInputOffset(t);
    LinearHeadForward(head, top + head_offset, m.head_weight(), m.head_bias(),
                      result->outputs.data());
    const uint8_t* mask = targets.mask.empty() ? nullptr : targets.mask.data();
    if (spec.loss == LossType::kMse) {
      result->loss = MeanSquaredError(result->outputs.data(), targets.values.data(), predictions,
                                      spec.output_size, mask, buffers.output_grad.data());
    } else {
      ASSIGN_OR_RETURN(result->loss, SoftmaxCrossEntropy(result->outputs.data(), predictions,
                                                         spec.output_size, targets.labels.data(),
                                                         mask, buffers.output_grad.data()));
    }
    if (result->gradients.size() != m.params.size()) result->gradients = ZeroParameters(spec);
    LinearHeadBackward(head, top + head_offset, m.head_weight(), buffers.output_grad.data(),
                       buffers.top_grad.data() + head_offset,
                       result->gradients.at("head.weight").data(),
                       result->gradients.at("head.bias").data());

    const float* diff_output = buffers.top_grad.data();
    for (int64_t l = num_layers - 1; l >= 0; --l) {
      float* diff_input = l > 0 ? buffers.layer_input_grads[l].data() : nullptr;
      m.layers[l]->Backward(
          *plans[l], m.stream, forward_io[l],
          {diff_output, diff_input, m.StatePtr(result->initial_state_gradients.h, l, n),
           m.StatePtr(result->initial_state_gradients.c, l, n)});
      m.layers[l]->ExportGradients(*plans[l], m.stream, &result->gradients);
      if (diff_input != nullptr && dropout) {
        ScaleByDropoutMask(buffers.dropout_masks[l - 1].data(), diff_input, hidden_floats);
      }
      diff_output = diff_input;
    }
    return absl::OkStatus();
  } catch (const dnnl::error& e) {
    return DnnlError(e);
  }
}

int64_t Network::step_state_size() const {
  const ModelSpec& spec = impl_->spec;
  return spec.num_layers * spec.hidden_size * (spec.has_cell_state() ? 2 : 1);
}

absl::Status CheckPrecisionSupported(Precision precision) {
  if (precision == Precision::kFloat32) return absl::OkStatus();
  ModelSpec probe;  // the smallest network: Create() builds one bfloat16 primitive to find out
  probe.hidden_size = 1;
  NetworkOptions options;
  options.precision = precision;
  options.num_threads = 1;
  return Network::Create(probe, ZeroParameters(probe), options).status();
}

absl::Status Network::Step(const float* inputs, int64_t batch, float* const* states,
                           float* outputs) {
  Impl& m = *impl_;
  const ModelSpec& spec = m.spec;
  if (spec.bidirectional) {
    return absl::FailedPreconditionError(
        "a bidirectional model needs the whole sequence; it cannot be stepped");
  }
  if (batch < 1 || batch > m.options.limits.max_batch) {
    return absl::InvalidArgumentError(
        absl::StrCat("step batch ", batch, " outside [1, ", m.options.limits.max_batch, "]"));
  }
  if (SmallBatchStep* small_step = m.SmallStepFor(batch); small_step != nullptr) {
    const ThreadScope threads(m.tuner.get(), m.options.num_threads, &m.last_threads, kStepCall,
                              batch, 1);
    small_step->Step(inputs, batch, states);
    LinearHeadForward({batch, spec.hidden_size, spec.output_size, small_step->top_stride()},
                      small_step->top_hidden(), m.head_weight(), m.head_bias(), outputs);
    return absl::OkStatus();
  }
  const int64_t rows = RoundStepBatch(batch);
  const int64_t hidden = spec.hidden_size;
  const int64_t num_layers = spec.num_layers;
  const bool lstm = spec.has_cell_state();
  try {
    const ThreadScope threads(m.tuner.get(), m.options.num_threads, &m.last_threads, kStepCall,
                              rows, 1);
    const bool bf16 = m.bf16;
    auto [it, inserted] = m.step_buffers.try_emplace(rows);
    StepBuffers& buffers = it->second;
    if (inserted) {
      // Padding rows stay zero forever: only the first `batch` rows are ever written.
      // (Zero bits are 0.0 in bfloat16 too.)
      std::memset(buffers.input.Reserve(bf16, rows * spec.input_size), 0,
                  rows * spec.input_size * (bf16 ? 2 : 4));
      for (auto* per_layer : {&buffers.h_in, &buffers.h_out, &buffers.layer_outputs}) {
        per_layer->resize(num_layers);
        for (ActivationBuffer& buffer : *per_layer) {
          std::memset(buffer.Reserve(bf16, rows * hidden), 0, rows * hidden * (bf16 ? 2 : 4));
        }
      }
      if (lstm) {
        buffers.c_in.assign(num_layers, std::vector<float>(rows * hidden, 0.0f));
        buffers.c_out.assign(num_layers, std::vector<float>(rows * hidden, 0.0f));
      }
      if (bf16) buffers.top.assign(rows * hidden, 0.0f);
    }
    // Float rows -> compute-precision rows, and back.
    const auto load = [bf16](const float* src, void* dst, int64_t count) {
      if (bf16) {
        FloatToBfloat16(src, static_cast<uint16_t*>(dst), count);
      } else {
        std::memcpy(dst, src, sizeof(float) * count);
      }
    };
    const auto store = [bf16](const void* src, float* dst, int64_t count) {
      if (bf16) {
        Bfloat16ToFloat(static_cast<const uint16_t*>(src), dst, count);
      } else {
        std::memcpy(dst, src, sizeof(float) * count);
      }
    };
    load(inputs, buffers.input.data(bf16), batch * spec.input_size);
    for (int64_t i = 0; i < batch; ++i) {
      const float* state = states[i];
      for (int64_t l = 0; l < num_layers; ++l) {
        load(state + l * hidden, m.Advance(buffers.h_in[l].data(bf16), i * hidden), hidden);
        if (lstm) {
          std::memcpy(buffers.c_in[l].data() + i * hidden, state + (num_layers + l) * hidden,
                      sizeof(float) * hidden);
        }
      }
    }
    const void* layer_input = buffers.input.data(bf16);
    for (int64_t l = 0; l < num_layers; ++l) {
      RnnLayer::Plan& plan = m.layers[l]->GetPlan(PassKind::kInference, rows, 1, kLayout, kLayout);
      m.layers[l]->Forward(
          plan, m.stream,
          {layer_input, buffers.h_in[l].data(bf16), lstm ? buffers.c_in[l].data() : nullptr,
           buffers.layer_outputs[l].data(bf16), buffers.h_out[l].data(bf16),
           lstm ? buffers.c_out[l].data() : nullptr});
      layer_input = buffers.layer_outputs[l].data(bf16);
    }
    for (int64_t i = 0; i < batch; ++i) {
      float* state = states[i];
      for (int64_t l = 0; l < num_layers; ++l) {
        store(m.Advance(buffers.h_out[l].data(bf16), i * hidden), state + l * hidden, hidden);
        if (lstm) {
          std::memcpy(state + (num_layers + l) * hidden, buffers.c_out[l].data() + i * hidden,
                      sizeof(float) * hidden);
        }
      }
    }
    const float* top = static_cast<const float*>(layer_input);
    if (bf16) {
      store(layer_input, buffers.top.data(), batch * hidden);
      top = buffers.top.data();
    }
    LinearHeadForward({batch, hidden, spec.output_size, hidden}, top, m.head_weight(),
                      m.head_bias(), outputs);
    return absl::OkStatus();
  } catch (const dnnl::error& e) {
    return DnnlError(e);
  }
}

}  // namespace recurrent::core
