#include "core/rnn_layer.h"

#include <omp.h>

#include <cstring>
#include <unordered_map>

#include "core/onednn_layout.h"

namespace recurrent::core {
namespace {

using dnnl::memory;
using Desc = dnnl::memory::desc;
using Tag = dnnl::memory::format_tag;
constexpr auto kF32 = dnnl::memory::data_type::f32;

enum WeightKind { kWeightsLayer = 0, kWeightsIter = 1, kBias = 2 };
constexpr int kWeightArgs[3] = {DNNL_ARG_WEIGHTS_LAYER, DNNL_ARG_WEIGHTS_ITER, DNNL_ARG_BIAS};
constexpr int kDiffWeightArgs[3] = {DNNL_ARG_DIFF_WEIGHTS_LAYER, DNNL_ARG_DIFF_WEIGHTS_ITER,
                                    DNNL_ARG_DIFF_BIAS};

// The memory descriptors of one RNN problem, shared by its forward and backward descriptors.
struct ProblemDescs {
  Desc src_layer, src_iter, src_iter_c, weights_layer, weights_iter, bias, dst_layer, dst_iter,
      dst_iter_c;
};

dnnl::algorithm VanillaActivation(CellType cell) {
  return cell == CellType::kRnnRelu ? dnnl::algorithm::eltwise_relu : dnnl::algorithm::eltwise_tanh;
}

dnnl_rnn_desc_t ForwardOpDesc(CellType cell, dnnl::prop_kind prop, dnnl::rnn_direction direction,
                              const ProblemDescs& d) {
  switch (cell) {
    case CellType::kLstm:
      return dnnl::lstm_forward::desc(prop, direction, d.src_layer, d.src_iter, d.src_iter_c,
                                      d.weights_layer, d.weights_iter, d.bias, d.dst_layer,
                                      d.dst_iter, d.dst_iter_c)
          .data;
    case CellType::kGru:
      return dnnl::lbr_gru_forward::desc(prop, direction, d.src_layer, d.src_iter, d.weights_layer,
                                         d.weights_iter, d.bias, d.dst_layer, d.dst_iter)
          .data;
    case CellType::kRnnTanh:
    case CellType::kRnnRelu:
      break;
  }
  return dnnl::vanilla_rnn_forward::desc(prop, VanillaActivation(cell), direction, d.src_layer,
                                         d.src_iter, d.weights_layer, d.weights_iter, d.bias,
                                         d.dst_layer, d.dst_iter)
      .data;
}

// `g` holds the gradient descriptors, laid out like `d` (weights as `any`).
dnnl_rnn_desc_t BackwardOpDesc(CellType cell, dnnl::rnn_direction direction, const ProblemDescs& d,
                               const ProblemDescs& g) {
  constexpr auto kBackward = dnnl::prop_kind::backward;
  switch (cell) {
    case CellType::kLstm:
      return dnnl::lstm_backward::desc(kBackward, direction, d.src_layer, d.src_iter, d.src_iter_c,
                                       d.weights_layer, d.weights_iter, d.bias, d.dst_layer,
                                       d.dst_iter, d.dst_iter_c, g.src_layer, g.src_iter,
                                       g.src_iter_c, g.weights_layer, g.weights_iter, g.bias,
                                       g.dst_layer, g.dst_iter, g.dst_iter_c)
          .data;
    case CellType::kGru:
      return dnnl::lbr_gru_backward::desc(kBackward, direction, d.src_layer, d.src_iter,
                                          d.weights_layer, d.weights_iter, d.bias, d.dst_layer,
                                          d.dst_iter, g.src_layer, g.src_iter, g.weights_layer,
                                          g.weights_iter, g.bias, g.dst_layer, g.dst_iter)
          .data;
    case CellType::kRnnTanh:
    case CellType::kRnnRelu:
      break;
  }
  return dnnl::vanilla_rnn_backward::desc(
             kBackward, VanillaActivation(cell), direction, d.src_layer, d.src_iter,
             d.weights_layer, d.weights_iter, d.bias, d.dst_layer, d.dst_iter, g.src_layer,
             g.src_iter, g.weights_layer, g.weights_iter, g.bias, g.dst_layer, g.dst_iter)
      .data;
}

void SetHandle(memory& mem, const void* data) {
  if (mem) mem.set_data_handle(const_cast<void*>(data));
}

// The C API takes a flat argument array that the plan builds once; the C++ execute() would copy
// its std::unordered_map into a fresh vector on every call.
std::vector<dnnl_exec_arg_t> FlattenArgs(const std::unordered_map<int, memory>& args) {
  std::vector<dnnl_exec_arg_t> flat;
  flat.reserve(args.size());
  for (const auto& [arg, mem] : args) flat.push_back({arg, mem.get()});
  return flat;
}

void Execute(const dnnl::primitive& primitive, dnnl::stream& stream,
             const std::vector<dnnl_exec_arg_t>& args) {
  dnnl::error::wrap_c_api(dnnl_primitive_execute(primitive.get(), stream.get(),
                                                 static_cast<int>(args.size()), args.data()),
                          "could not execute an RNN primitive");
  stream.wait();
}

// Every primitive gets its own scratchpad (user mode). oneDNN's default library mode shares one
// scratchpad among all primitives of the process (Debian builds oneDNN without
// DNNL_ENABLE_CONCURRENT_EXEC), which forbids running primitives concurrently or on another
// thread than the one that created them; a server runs networks on many threads at once (found by
// bench/colocation_bench.cc: Predict crashed inside oneDNN while a stream stepped).
dnnl::primitive_attr UserScratchpad() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

// A reorder with its own scratchpad, executed from `args` (src, dst, scratchpad).
struct ScratchReorder {
  ScratchReorder() = default;
  ScratchReorder(const memory& src, const memory& dst, const dnnl::engine& engine) {
    const dnnl::reorder::primitive_desc pd(src, dst, UserScratchpad());
    primitive = dnnl::reorder(pd);
    scratchpad = memory(pd.scratchpad_desc(), engine);
  }
  void Execute(dnnl::stream& stream, const memory& src, const memory& dst) const {
    primitive.execute(
        stream, {{DNNL_ARG_FROM, src}, {DNNL_ARG_TO, dst}, {DNNL_ARG_SCRATCHPAD, scratchpad}});
  }
  dnnl::reorder primitive;
  memory scratchpad;
};

void ZeroMemory(const memory& mem) {
  std::memset(mem.get_data_handle(), 0, mem.get_desc().get_size());
}

}  // namespace

struct RnnLayer::WeightSlot {
  int kind;
  Desc desc;
  memory data;
  bool aliases_user;  // desc equals the user layout: the slot reads the user memory directly
  uint64_t version;   // weights_version_ the copy was made from; 0 = never
};

struct RnnLayer::Plan {
  PassKind pass;
  dnnl::primitive forward;
  std::unordered_map<int, memory> forward_args;
  std::vector<dnnl_exec_arg_t> forward_exec_args;
  memory src_layer, src_iter, src_iter_c, dst_layer, dst_iter, dst_iter_c;
  WeightSlot* forward_weights[3] = {};
  // Zeros for absent initial states and for the (zero) gradients of the final states.
  std::vector<float> zero_iter;
  // Sinks for outputs the caller does not want.
  std::vector<float> sink_iter, sink_iter_c, sink_diff_iter, sink_diff_iter_c, sink_diff_layer;
  memory workspace;
  memory forward_scratchpad;  // user-managed: see UserScratchpad()

  dnnl::primitive backward;
  memory backward_scratchpad;
  std::unordered_map<int, memory> backward_args;
  std::vector<dnnl_exec_arg_t> backward_exec_args;
  memory diff_src_layer, diff_src_iter, diff_src_iter_c, diff_dst_layer, diff_dst_iter,
      diff_dst_iter_c;
  memory diff_weights[3];
  WeightSlot* backward_weights[3] = {};
  // Gradients in the user layout, when the backward primitive chose another one.
  memory export_targets[3];
  ScratchReorder export_reorders[3];
};

RnnLayer::RnnLayer(const dnnl::engine& engine, CellType cell, int64_t index, int64_t input_size,
                   int64_t hidden_size, int64_t directions, dnnl::memory::data_type compute_type)
    : engine_(engine),
      cell_(cell),
      index_(index),
      input_size_(input_size),
      hidden_size_(hidden_size),
      directions_(directions),
      compute_type_(compute_type) {
  const int64_t gates = OneDnnWeightGates(cell_);
  user_weights_[kWeightsLayer] =
      memory(Desc({1, directions_, input_size_, gates, hidden_size_}, kF32, Tag::ldigo), engine_);
  user_weights_[kWeightsIter] =
      memory(Desc({1, directions_, hidden_size_, gates, hidden_size_}, kF32, Tag::ldigo), engine_);
  user_weights_[kBias] = memory(
      Desc({1, directions_, OneDnnBiasGates(cell_), hidden_size_}, kF32, Tag::ldgo), engine_);
}

RnnLayer::~RnnLayer() = default;

void RnnLayer::LoadWeights(const ParameterSet& params) {
  const int64_t gates = OneDnnWeightGates(cell_);
  auto* weights_layer = static_cast<float*>(user_weights_[kWeightsLayer].get_data_handle());
  auto* weights_iter = static_cast<float*>(user_weights_[kWeightsIter].get_data_handle());
  auto* bias = static_cast<float*>(user_weights_[kBias].get_data_handle());
  for (int64_t dir = 0; dir < directions_; ++dir) {
    const bool reverse = dir == 1;
    PyTorchWeightToLdigo(
        cell_, params.at(RecurrentParameterName("weight_ih", index_, reverse)).data(), input_size_,
        hidden_size_, weights_layer + dir * input_size_ * gates * hidden_size_);
    PyTorchWeightToLdigo(
        cell_, params.at(RecurrentParameterName("weight_hh", index_, reverse)).data(), hidden_size_,
        hidden_size_, weights_iter + dir * hidden_size_ * gates * hidden_size_);
    PyTorchBiasToLdgo(cell_, params.at(RecurrentParameterName("bias_ih", index_, reverse)).data(),
                      params.at(RecurrentParameterName("bias_hh", index_, reverse)).data(),
                      hidden_size_, bias + dir * OneDnnBiasGates(cell_) * hidden_size_);
  }
  ++weights_version_;
}

RnnLayer::WeightSlot* RnnLayer::SlotFor(int kind, const Desc& desc) {
  for (const auto& slot : slots_) {
    if (slot->kind == kind && slot->desc == desc) return slot.get();
  }
  const bool aliases_user = desc == user_weights_[kind].get_desc();
  slots_.push_back(std::make_unique<WeightSlot>(WeightSlot{
      kind, desc, aliases_user ? user_weights_[kind] : memory(desc, engine_), aliases_user, 0}));
  return slots_.back().get();
}

void RnnLayer::Refresh(WeightSlot* slot, dnnl::stream& stream) {
  if (slot->aliases_user || slot->version == weights_version_) return;
  ScratchReorder(user_weights_[slot->kind], slot->data, engine_)
      .Execute(stream, user_weights_[slot->kind], slot->data);
  stream.wait();
  slot->version = weights_version_;
}

void RnnLayer::ClearPlans() { plans_.clear(); }

RnnLayer::Plan& RnnLayer::GetPlan(PassKind pass, int64_t batch, int64_t steps,
                                  SequenceLayout src_layout, SequenceLayout dst_layout) {
  const PlanKey key{pass, batch, steps, src_layout, dst_layout, omp_get_max_threads()};
  if (auto it = plans_.find(key); it != plans_.end()) return *it->second;

  auto plan = std::make_unique<Plan>();
  plan->pass = pass;
  const bool lstm = cell_ == CellType::kLstm;
  const int64_t gates = OneDnnWeightGates(cell_);
  const auto sequence = [&](int64_t channels, SequenceLayout layout, memory::data_type type) {
    return Desc({steps, batch, channels}, type,
                layout == SequenceLayout::kTnc ? Tag::tnc : Tag::ntc);
  };
  const auto iter = [&](memory::data_type type) {
    return Desc({1, directions_, batch, hidden_size_}, type, Tag::ldnc);
  };
  // The descriptors of one precision: `type` for data and weights, f32 for bias and cell state.
  const auto problem = [&](memory::data_type type) {
    ProblemDescs d;
    d.src_layer = sequence(input_size_, src_layout, type);
    d.src_iter = iter(type);
    d.src_iter_c = lstm ? iter(kF32) : Desc();
    // `any` lets oneDNN choose the fastest weight layout for this primitive (blocked for brgemm).
    d.weights_layer = Desc({1, directions_, input_size_, gates, hidden_size_}, type, Tag::any);
    d.weights_iter = Desc({1, directions_, hidden_size_, gates, hidden_size_}, type, Tag::any);
    d.bias = Desc({1, directions_, OneDnnBiasGates(cell_), hidden_size_}, kF32, Tag::any);
    d.dst_layer = sequence(output_width(), dst_layout, type);
    d.dst_iter = iter(type);
    d.dst_iter_c = lstm ? iter(kF32) : Desc();
    return d;
  };
  ProblemDescs d = problem(compute_type_);
  if (pass == PassKind::kInference && steps > 1 && compute_type_ == kF32) {
    // Plain ldigo weights steer oneDNN 2.6 to its GEMM-based RNN driver instead of brgemm (which
    // needs blocked weights). Measured here over whole float32 sequences: equal at N=32 T=100
    // H=128, and 1.2-1.4x faster at N=64 T=50 H=512; the one-step streaming path keeps brgemm,
    // which is best there, and so does bfloat16, where brgemm is the fast path.
    d.weights_layer =
        Desc({1, directions_, input_size_, gates, hidden_size_}, compute_type_, Tag::ldigo);
    d.weights_iter =
        Desc({1, directions_, hidden_size_, gates, hidden_size_}, compute_type_, Tag::ldigo);
  }

  const auto direction = directions_ == 2 ? dnnl::rnn_direction::bidirectional_concat
                                          : dnnl::rnn_direction::unidirectional_left2right;
  const auto prop = pass == PassKind::kInference ? dnnl::prop_kind::forward_inference
                                                 : dnnl::prop_kind::forward_training;
  const dnnl_rnn_desc_t forward_op = ForwardOpDesc(cell_, prop, direction, d);
  const dnnl::primitive_attr attr = UserScratchpad();
  const dnnl::primitive_desc forward_pd(&forward_op, &attr, engine_, nullptr);
  plan->forward = dnnl::primitive(forward_pd.get());
  plan->forward_scratchpad = memory(forward_pd.scratchpad_desc(), engine_);

  const auto user_memory = [&](const Desc& desc) {
    return desc ? memory(desc, engine_, DNNL_MEMORY_NONE) : memory();
  };
  plan->src_layer = user_memory(d.src_layer);
  plan->src_iter = user_memory(d.src_iter);
  plan->src_iter_c = user_memory(d.src_iter_c);
  plan->dst_layer = user_memory(d.dst_layer);
  plan->dst_iter = user_memory(d.dst_iter);
  plan->dst_iter_c = user_memory(d.dst_iter_c);
  const size_t iter_floats = static_cast<size_t>(directions_ * batch * hidden_size_);
  plan->zero_iter.assign(iter_floats, 0.0f);
  plan->sink_iter.resize(iter_floats);
  if (lstm) plan->sink_iter_c.resize(iter_floats);

  auto& fargs = plan->forward_args;
  fargs[DNNL_ARG_SRC_LAYER] = plan->src_layer;
  fargs[DNNL_ARG_SRC_ITER] = plan->src_iter;
  fargs[DNNL_ARG_DST_LAYER] = plan->dst_layer;
  fargs[DNNL_ARG_DST_ITER] = plan->dst_iter;
  if (lstm) {
    fargs[DNNL_ARG_SRC_ITER_C] = plan->src_iter_c;
    fargs[DNNL_ARG_DST_ITER_C] = plan->dst_iter_c;
  }
  for (int kind = 0; kind < 3; ++kind) {
    plan->forward_weights[kind] =
        SlotFor(kind, forward_pd.query_md(dnnl::query::exec_arg_md, kWeightArgs[kind]));
    fargs[kWeightArgs[kind]] = plan->forward_weights[kind]->data;
  }
  fargs[DNNL_ARG_SCRATCHPAD] = plan->forward_scratchpad;
  // The workspace carries forward state to the backward pass.
  if (pass == PassKind::kTraining) {
    plan->workspace = memory(forward_pd.workspace_desc(), engine_);
    fargs[DNNL_ARG_WORKSPACE] = plan->workspace;

    const ProblemDescs g = problem(kF32);  // gradients: same layouts, always f32
    const dnnl_rnn_desc_t backward_op = BackwardOpDesc(cell_, direction, d, g);
    const dnnl::primitive_desc backward_pd(&backward_op, &attr, engine_, forward_pd.get());
    plan->backward = dnnl::primitive(backward_pd.get());
    plan->backward_scratchpad = memory(backward_pd.scratchpad_desc(), engine_);
    plan->diff_src_layer = user_memory(g.src_layer);
    plan->diff_src_iter = user_memory(g.src_iter);
    plan->diff_src_iter_c = user_memory(g.src_iter_c);
    plan->diff_dst_layer = user_memory(g.dst_layer);
    plan->diff_dst_iter = user_memory(g.dst_iter);
    plan->diff_dst_iter_c = user_memory(g.dst_iter_c);
    plan->sink_diff_iter.resize(iter_floats);
    if (lstm) plan->sink_diff_iter_c.resize(iter_floats);

    auto& bargs = plan->backward_args;
    bargs = fargs;  // same sources, destinations and workspace
    bargs[DNNL_ARG_SCRATCHPAD] = plan->backward_scratchpad;
    for (int kind = 0; kind < 3; ++kind) {
      plan->backward_weights[kind] =
          SlotFor(kind, backward_pd.query_md(dnnl::query::exec_arg_md, kWeightArgs[kind]));
      bargs[kWeightArgs[kind]] = plan->backward_weights[kind]->data;
      plan->diff_weights[kind] =
          memory(backward_pd.query_md(dnnl::query::exec_arg_md, kDiffWeightArgs[kind]), engine_);
      bargs[kDiffWeightArgs[kind]] = plan->diff_weights[kind];
    }
    bargs[DNNL_ARG_DIFF_SRC_LAYER] = plan->diff_src_layer;
    bargs[DNNL_ARG_DIFF_SRC_ITER] = plan->diff_src_iter;
    bargs[DNNL_ARG_DIFF_DST_LAYER] = plan->diff_dst_layer;
    bargs[DNNL_ARG_DIFF_DST_ITER] = plan->diff_dst_iter;
    if (lstm) {
      bargs[DNNL_ARG_DIFF_SRC_ITER_C] = plan->diff_src_iter_c;
      bargs[DNNL_ARG_DIFF_DST_ITER_C] = plan->diff_dst_iter_c;
    }
  }
  plan->forward_exec_args = FlattenArgs(plan->forward_args);
  plan->backward_exec_args = FlattenArgs(plan->backward_args);
  Plan& result = *plan;
  plans_.emplace(key, std::move(plan));
  return result;
}

// Points the plan's forward memories at the caller's buffers (zeros / sinks where absent); the
// backward pass reads the same buffers.
static void BindForwardIo(RnnLayer::Plan& plan, const LayerForwardIo& io) {
  const void* zeros = plan.zero_iter.data();
  SetHandle(plan.src_layer, io.src_layer);
  SetHandle(plan.src_iter, io.src_iter ? io.src_iter : zeros);
  SetHandle(plan.src_iter_c, io.src_iter_c ? io.src_iter_c : zeros);
  SetHandle(plan.dst_layer, io.dst_layer);
  SetHandle(plan.dst_iter, io.dst_iter ? io.dst_iter : plan.sink_iter.data());
  SetHandle(plan.dst_iter_c, io.dst_iter_c ? io.dst_iter_c : plan.sink_iter_c.data());
}

void RnnLayer::Forward(Plan& plan, dnnl::stream& stream, const LayerForwardIo& io) {
  BindForwardIo(plan, io);
  for (WeightSlot* slot : plan.forward_weights) Refresh(slot, stream);
  Execute(plan.forward, stream, plan.forward_exec_args);
}

void RnnLayer::Backward(Plan& plan, dnnl::stream& stream, const LayerForwardIo& forward_io,
                        const LayerBackwardIo& io) {
  BindForwardIo(plan, forward_io);
  const void* zeros = plan.zero_iter.data();
  if (io.diff_src_layer == nullptr && plan.sink_diff_layer.empty()) {
    plan.sink_diff_layer.resize(plan.diff_src_layer.get_desc().get_size() / sizeof(float));
  }
  SetHandle(plan.diff_src_layer,
            io.diff_src_layer ? io.diff_src_layer : plan.sink_diff_layer.data());
  SetHandle(plan.diff_src_iter, io.diff_src_iter ? io.diff_src_iter : plan.sink_diff_iter.data());
  SetHandle(plan.diff_src_iter_c,
            io.diff_src_iter_c ? io.diff_src_iter_c : plan.sink_diff_iter_c.data());
  SetHandle(plan.diff_dst_layer, io.diff_dst_layer);
  SetHandle(plan.diff_dst_iter, zeros);
  SetHandle(plan.diff_dst_iter_c, zeros);
  for (WeightSlot* slot : plan.backward_weights) Refresh(slot, stream);
  // oneDNN accumulates into the weight gradients.
  for (const memory& diff : plan.diff_weights) ZeroMemory(diff);
  Execute(plan.backward, stream, plan.backward_exec_args);
}

void RnnLayer::ExportGradients(Plan& plan, dnnl::stream& stream, ParameterSet* grads) {
  // Bring each gradient into the user layout (ldigo / ldgo), then into PyTorch's. The reference
  // backward pass usually produces the user layout already; otherwise a cached reorder runs.
  const float* user_layout[3];
  for (int kind = 0; kind < 3; ++kind) {
    memory& diff = plan.diff_weights[kind];
    if (diff.get_desc() == user_weights_[kind].get_desc()) {
      user_layout[kind] = static_cast<const float*>(diff.get_data_handle());
      continue;
    }
    if (!plan.export_targets[kind]) {
      plan.export_targets[kind] = memory(user_weights_[kind].get_desc(), engine_);
      plan.export_reorders[kind] = ScratchReorder(diff, plan.export_targets[kind], engine_);
    }
    plan.export_reorders[kind].Execute(stream, diff, plan.export_targets[kind]);
    user_layout[kind] = static_cast<const float*>(plan.export_targets[kind].get_data_handle());
  }
  stream.wait();
  const int64_t gates = OneDnnWeightGates(cell_);
  for (int64_t dir = 0; dir < directions_; ++dir) {
    const bool reverse = dir == 1;
    LdigoToPyTorchWeight(
        cell_, user_layout[kWeightsLayer] + dir * input_size_ * gates * hidden_size_, input_size_,
        hidden_size_, grads->at(RecurrentParameterName("weight_ih", index_, reverse)).data());
    LdigoToPyTorchWeight(
        cell_, user_layout[kWeightsIter] + dir * hidden_size_ * gates * hidden_size_, hidden_size_,
        hidden_size_, grads->at(RecurrentParameterName("weight_hh", index_, reverse)).data());
    LdgoGradToPyTorchBiasGrads(
        cell_, user_layout[kBias] + dir * OneDnnBiasGates(cell_) * hidden_size_, hidden_size_,
        grads->at(RecurrentParameterName("bias_ih", index_, reverse)).data(),
        grads->at(RecurrentParameterName("bias_hh", index_, reverse)).data());
  }
}

}  // namespace recurrent::core
