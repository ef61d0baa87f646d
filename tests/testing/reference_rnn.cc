#include "tests/testing/reference_rnn.h"

#include <algorithm>
#include <cmath>
#include <cstddef>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace recurrent::testing {
namespace {

using core::CellType;
using core::HeadMode;
using core::LossType;
using core::ModelSpec;

double Sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// The tensors of one (layer, direction) cell in PyTorch layout: W_ih [G*H, in], W_hh [G*H, H],
// b_ih and b_hh [G*H].
struct CellWeights {
  const double* w_ih;
  const double* w_hh;
  const double* b_ih;
  const double* b_hh;
  int64_t in_width;
};

// Where that cell's gradients accumulate (same layouts).
struct CellGradients {
  double* w_ih;
  double* w_hh;
  double* b_ih;
  double* b_hh;
};

// What one (layer, direction) keeps of its forward pass for the backward pass. Every buffer is
// indexed by true time t (not by processing order), then by sequence n: [T, N, ...].
struct DirectionTape {
  std::vector<double> h_prev;  // [T, N, H] the state the step at t started from
  std::vector<double> c_prev;  // [T, N, H] LSTM only
  std::vector<double> gates;   // [T, N, G*H] RNN: pre-activation; LSTM, GRU: activated gates
  std::vector<double> hh_n;    // [T, N, H] GRU only: W_hn h + b_hn, the term r scales
  std::vector<double> c_new;   // [T, N, H] LSTM only
  std::vector<double> h_new;   // [T, N, H]
};

// The problem's sizes, fixed for one call.
struct Dims {
  int64_t n;  // batch
  int64_t t;  // steps
  int64_t h;  // hidden
  int64_t g;  // gates
  int64_t d;  // directions
  int64_t l;  // layers
};

// Timestep that a direction processes at position `s` of its sweep.
int64_t TimeAt(const Dims& dims, bool reverse, int64_t s) { return reverse ? dims.t - 1 - s : s; }

double Dot(const double* a, const double* b, int64_t count) {
  double sum = 0.0;
  for (int64_t i = 0; i < count; ++i) sum += a[i] * b[i];
  return sum;
}

// Runs one direction of one layer over the whole sequence.
//   layer_in   [N, T, in_width]
//   h0, c0     [N, H] (c0 only for LSTM)
//   layer_out  [N, T, D*H]; this direction writes columns [column, column + H)
//   h_n, c_n   [N, H] final state (c_n only for LSTM)
void ForwardDirection(const ModelSpec& spec, const Dims& dims, const CellWeights& w,
                      const double* layer_in, bool reverse, const double* h0, const double* c0,
                      int64_t column, double* layer_out, double* h_n, double* c_n,
                      DirectionTape* tape, double* min_relu_margin) {
  const int64_t H = dims.h;
  const int64_t GH = dims.g * H;
  const int64_t out_width = dims.d * H;
  const int64_t in = w.in_width;
  tape->h_prev.assign(dims.t * dims.n * H, 0.0);
  tape->h_new.assign(dims.t * dims.n * H, 0.0);
  tape->gates.assign(dims.t * dims.n * GH, 0.0);
  if (spec.cell == CellType::kLstm) {
    tape->c_prev.assign(dims.t * dims.n * H, 0.0);
    tape->c_new.assign(dims.t * dims.n * H, 0.0);
  }
  if (spec.cell == CellType::kGru) tape->hh_n.assign(dims.t * dims.n * H, 0.0);

  std::vector<double> h(h0, h0 + dims.n * H);
  std::vector<double> c;
  if (spec.cell == CellType::kLstm) c.assign(c0, c0 + dims.n * H);
  std::vector<double> a_ih(GH), a_hh(GH);

  for (int64_t s = 0; s < dims.t; ++s) {
    const int64_t t = TimeAt(dims, reverse, s);
    for (int64_t n = 0; n < dims.n; ++n) {
      const double* x = layer_in + (n * dims.t + t) * in;
      double* hn = h.data() + n * H;
      const int64_t slot = t * dims.n + n;
      for (int64_t r = 0; r < GH; ++r) {
        a_ih[r] = w.b_ih[r] + Dot(w.w_ih + r * in, x, in);
        a_hh[r] = w.b_hh[r] + Dot(w.w_hh + r * H, hn, H);
      }
      std::copy(hn, hn + H, tape->h_prev.begin() + slot * H);
      double* gates = tape->gates.data() + slot * GH;
      double* h_out = tape->h_new.data() + slot * H;
      switch (spec.cell) {
        case CellType::kRnnTanh:
        case CellType::kRnnRelu:
          for (int64_t j = 0; j < H; ++j) {
            const double pre = a_ih[j] + a_hh[j];
            gates[j] = pre;
            if (spec.cell == CellType::kRnnTanh) {
              h_out[j] = std::tanh(pre);
            } else {
              h_out[j] = pre > 0.0 ? pre : 0.0;
              *min_relu_margin = std::min(*min_relu_margin, std::abs(pre));
            }
          }
          break;
        case CellType::kLstm: {
          double* cn = c.data() + n * H;
          std::copy(cn, cn + H, tape->c_prev.begin() + slot * H);
          double* c_out = tape->c_new.data() + slot * H;
          for (int64_t j = 0; j < H; ++j) {
            const double i_gate = Sigmoid(a_ih[j] + a_hh[j]);
            const double f_gate = Sigmoid(a_ih[H + j] + a_hh[H + j]);
            const double g_gate = std::tanh(a_ih[2 * H + j] + a_hh[2 * H + j]);
            const double o_gate = Sigmoid(a_ih[3 * H + j] + a_hh[3 * H + j]);
            gates[j] = i_gate;
            gates[H + j] = f_gate;
            gates[2 * H + j] = g_gate;
            gates[3 * H + j] = o_gate;
            c_out[j] = f_gate * cn[j] + i_gate * g_gate;
            h_out[j] = o_gate * std::tanh(c_out[j]);
          }
          std::copy(c_out, c_out + H, cn);
          break;
        }
        case CellType::kGru: {
          double* hh_n = tape->hh_n.data() + slot * H;
          for (int64_t j = 0; j < H; ++j) {
            const double r_gate = Sigmoid(a_ih[j] + a_hh[j]);
            const double z_gate = Sigmoid(a_ih[H + j] + a_hh[H + j]);
            hh_n[j] = a_hh[2 * H + j];
            const double n_gate = std::tanh(a_ih[2 * H + j] + r_gate * hh_n[j]);
            gates[j] = r_gate;
            gates[H + j] = z_gate;
            gates[2 * H + j] = n_gate;
            h_out[j] = (1.0 - z_gate) * n_gate + z_gate * hn[j];
          }
          break;
        }
      }
      std::copy(h_out, h_out + H, hn);
      std::copy(h_out, h_out + H, layer_out + (n * dims.t + t) * out_width + column);
    }
  }
  std::copy(h.begin(), h.end(), h_n);
  if (spec.cell == CellType::kLstm) std::copy(c.begin(), c.end(), c_n);
}

// Backward through time for one direction of one layer, the mirror of ForwardDirection.
//   d_layer_out  [N, T, D*H] d loss / d layer output; this direction reads its columns
//   d_layer_in   [N, T, in_width] accumulates d loss / d layer input
//   dh0, dc0     [N, H] receive d loss / d initial state (dc0 only for LSTM)
void BackwardDirection(const ModelSpec& spec, const Dims& dims, const CellWeights& w,
                       const CellGradients& grad, const double* layer_in, bool reverse,
                       const DirectionTape& tape, const double* d_layer_out, int64_t column,
                       double* d_layer_in, double* dh0, double* dc0) {
  const int64_t H = dims.h;
  const int64_t GH = dims.g * H;
  const int64_t out_width = dims.d * H;
  const int64_t in = w.in_width;
  // Gradients flowing into the state that the step being processed produced.
  std::vector<double> dh_carry(dims.n * H, 0.0);
  std::vector<double> dc_carry(dims.n * H, 0.0);
  std::vector<double> dh(H), dc(H), d_ih(GH), d_hh(GH), dh_prev(H);

  // Steps in the opposite order of the forward sweep.
  for (int64_t s = dims.t - 1; s >= 0; --s) {
    const int64_t t = TimeAt(dims, reverse, s);
    for (int64_t n = 0; n < dims.n; ++n) {
      const int64_t slot = t * dims.n + n;
      const double* d_out = d_layer_out + (n * dims.t + t) * out_width + column;
      for (int64_t j = 0; j < H; ++j) dh[j] = dh_carry[n * H + j] + d_out[j];
      const double* gates = tape.gates.data() + slot * GH;
      const double* h_out = tape.h_new.data() + slot * H;
      const double* hp = tape.h_prev.data() + slot * H;
      std::fill(dh_prev.begin(), dh_prev.end(), 0.0);
      switch (spec.cell) {
        case CellType::kRnnTanh:
        case CellType::kRnnRelu:
          for (int64_t j = 0; j < H; ++j) {
            const double derivative = spec.cell == CellType::kRnnTanh
                                          ? 1.0 - h_out[j] * h_out[j]
                                          : (gates[j] > 0.0 ? 1.0 : 0.0);
            d_ih[j] = d_hh[j] = dh[j] * derivative;
          }
          break;
        case CellType::kLstm: {
          const double* cp = tape.c_prev.data() + slot * H;
          const double* c_out = tape.c_new.data() + slot * H;
          for (int64_t j = 0; j < H; ++j) {
            const double i_gate = gates[j], f_gate = gates[H + j];
            const double g_gate = gates[2 * H + j], o_gate = gates[3 * H + j];
            const double tanh_c = std::tanh(c_out[j]);
            const double dc_total = dc_carry[n * H + j] + dh[j] * o_gate * (1.0 - tanh_c * tanh_c);
            const double d_i = dc_total * g_gate;
            const double d_f = dc_total * cp[j];
            const double d_g = dc_total * i_gate;
            const double d_o = dh[j] * tanh_c;
            d_ih[j] = d_i * i_gate * (1.0 - i_gate);
            d_ih[H + j] = d_f * f_gate * (1.0 - f_gate);
            d_ih[2 * H + j] = d_g * (1.0 - g_gate * g_gate);
            d_ih[3 * H + j] = d_o * o_gate * (1.0 - o_gate);
            dc[j] = dc_total * f_gate;
          }
          std::copy(d_ih.begin(), d_ih.end(), d_hh.begin());
          std::copy(dc.begin(), dc.end(), dc_carry.begin() + n * H);
          break;
        }
        case CellType::kGru: {
          const double* hh_n = tape.hh_n.data() + slot * H;
          for (int64_t j = 0; j < H; ++j) {
            const double r_gate = gates[j], z_gate = gates[H + j], n_gate = gates[2 * H + j];
            const double d_n_pre = dh[j] * (1.0 - z_gate) * (1.0 - n_gate * n_gate);
            const double d_z = dh[j] * (hp[j] - n_gate);
            const double d_r = d_n_pre * hh_n[j];
            d_ih[j] = d_hh[j] = d_r * r_gate * (1.0 - r_gate);
            d_ih[H + j] = d_hh[H + j] = d_z * z_gate * (1.0 - z_gate);
            d_ih[2 * H + j] = d_n_pre;
            d_hh[2 * H + j] = d_n_pre * r_gate;
            dh_prev[j] = dh[j] * z_gate;  // h' = ... + z*h
          }
          break;
        }
      }
      const double* x = layer_in + (n * dims.t + t) * in;
      double* dx = d_layer_in + (n * dims.t + t) * in;
      for (int64_t r = 0; r < GH; ++r) {
        grad.b_ih[r] += d_ih[r];
        grad.b_hh[r] += d_hh[r];
        for (int64_t k = 0; k < in; ++k) {
          grad.w_ih[r * in + k] += d_ih[r] * x[k];
          dx[k] += w.w_ih[r * in + k] * d_ih[r];
        }
        for (int64_t k = 0; k < H; ++k) {
          grad.w_hh[r * H + k] += d_hh[r] * hp[k];
          dh_prev[k] += w.w_hh[r * H + k] * d_hh[r];
        }
      }
      std::copy(dh_prev.begin(), dh_prev.end(), dh_carry.begin() + n * H);
    }
  }
  std::copy(dh_carry.begin(), dh_carry.end(), dh0);
  if (spec.cell == CellType::kLstm) std::copy(dc_carry.begin(), dc_carry.end(), dc0);
}

absl::Status CheckShape(absl::string_view what, const std::vector<int64_t>& shape, int64_t size,
                        const std::vector<int64_t>& expected) {
  if (shape != expected || size != core::Tensor::ElementCount(expected)) {
    return absl::InvalidArgumentError(
        absl::StrCat("reference: ", what, " has shape ", core::ShapeToString(shape), " (", size,
                     " values), expected ", core::ShapeToString(expected)));
  }
  return absl::OkStatus();
}

#define REFERENCE_RETURN_IF_ERROR(expr)  \
  do {                                   \
    const absl::Status status_ = (expr); \
    if (!status_.ok()) return status_;   \
  } while (false)

absl::Status ValidateCall(const ModelSpec& spec, const DoubleParams& params,
                          const DoubleTensor& inputs, const core::Targets* targets,
                          const DoubleState* initial_state) {
  REFERENCE_RETURN_IF_ERROR(core::ValidateSpec(spec));
  const std::vector<core::ParameterInfo> layout = core::ParameterLayout(spec);
  for (const core::ParameterInfo& info : layout) {
    const auto it = params.find(info.name);
    if (it == params.end()) {
      return absl::InvalidArgumentError(absl::StrCat("reference: missing parameter ", info.name));
    }
    REFERENCE_RETURN_IF_ERROR(
        CheckShape(info.name, it->second.shape, it->second.size(), info.shape));
  }
  if (params.size() != layout.size()) {
    return absl::InvalidArgumentError("reference: unexpected extra parameters");
  }
  if (inputs.shape.size() != 3 || inputs.shape[0] < 1 || inputs.shape[1] < 1) {
    return absl::InvalidArgumentError(absl::StrCat("reference: inputs must be [N, T, I], got ",
                                                   core::ShapeToString(inputs.shape)));
  }
  const int64_t N = inputs.shape[0], T = inputs.shape[1];
  REFERENCE_RETURN_IF_ERROR(
      CheckShape("inputs", inputs.shape, inputs.size(), {N, T, spec.input_size}));
  if (initial_state != nullptr) {
    const std::vector<int64_t> state_shape = {spec.num_layers * spec.num_directions(), N,
                                              spec.hidden_size};
    REFERENCE_RETURN_IF_ERROR(
        CheckShape("initial h", initial_state->h.shape, initial_state->h.size(), state_shape));
    if (spec.has_cell_state()) {
      REFERENCE_RETURN_IF_ERROR(
          CheckShape("initial c", initial_state->c.shape, initial_state->c.size(), state_shape));
    } else if (!initial_state->c.empty()) {
      return absl::InvalidArgumentError("reference: initial c given for a cell without one");
    }
  }
  if (targets != nullptr) {
    const bool per_step = spec.head == HeadMode::kPerStep;
    if (spec.loss == LossType::kMse) {
      const std::vector<int64_t> output_shape = per_step
                                                    ? std::vector<int64_t>{N, T, spec.output_size}
                                                    : std::vector<int64_t>{N, spec.output_size};
      REFERENCE_RETURN_IF_ERROR(
          CheckShape("targets", targets->values.shape, targets->values.size(), output_shape));
    } else {
      const int64_t predictions = per_step ? N * T : N;
      if (static_cast<int64_t>(targets->labels.size()) != predictions) {
        return absl::InvalidArgumentError(absl::StrCat(
            "reference: ", targets->labels.size(), " labels for ", predictions, " predictions"));
      }
      for (const int32_t label : targets->labels) {
        if (label < 0 || label >= spec.output_size) {
          return absl::InvalidArgumentError(
              absl::StrCat("reference: label ", label, " out of range"));
        }
      }
    }
  }
  return absl::OkStatus();
}

CellWeights WeightsOf(const ModelSpec& spec, const DoubleParams& params, int64_t layer,
                      bool reverse) {
  const auto get = [&](absl::string_view kind) {
    return params.at(core::RecurrentParameterName(kind, layer, reverse)).values.data();
  };
  return {get("weight_ih"), get("weight_hh"), get("bias_ih"), get("bias_hh"),
          layer == 0 ? spec.input_size : spec.top_width()};
}

CellGradients GradientsOf(DoubleParams& grads, int64_t layer, bool reverse) {
  const auto get = [&](absl::string_view kind) {
    return grads.at(core::RecurrentParameterName(kind, layer, reverse)).values.data();
  };
  return {get("weight_ih"), get("weight_hh"), get("bias_ih"), get("bias_hh")};
}

// The whole computation; `targets` null means inference only.
absl::StatusOr<ReferenceResult> Run(const ModelSpec& spec, const DoubleParams& params,
                                    const DoubleTensor& inputs, const core::Targets* targets,
                                    const DoubleState* initial_state, bool compute_gradients,
                                    const ReferenceTrainingExtras& extras) {
  REFERENCE_RETURN_IF_ERROR(ValidateCall(spec, params, inputs, targets, initial_state));
  const Dims dims = {inputs.shape[0],  inputs.shape[1],       spec.hidden_size,
                     spec.num_gates(), spec.num_directions(), spec.num_layers};
  const int64_t H = dims.h, DH = dims.d * H, O = spec.output_size;
  const int64_t rows = dims.l * dims.d;  // state rows l*D+d
  const bool lstm = spec.has_cell_state();
  const bool per_step = spec.head == HeadMode::kPerStep;

  ReferenceResult result;
  result.final_state.h = DoubleTensor({rows, dims.n, H});
  if (lstm) result.final_state.c = DoubleTensor({rows, dims.n, H});
  const std::vector<double> zero_state(rows * dims.n * H, 0.0);
  const double* h0 = initial_state != nullptr ? initial_state->h.values.data() : zero_state.data();
  const double* c0 =
      initial_state != nullptr && lstm ? initial_state->c.values.data() : zero_state.data();

  // Layer k reads layer_in[k] (the network input, or layer k-1's output) and writes
  // layer_out[k], both [N, T, width].
  std::vector<const std::vector<double>*> layer_in(dims.l);
  std::vector<std::vector<double>> layer_out(dims.l, std::vector<double>(dims.n * dims.t * DH));
  std::vector<DirectionTape> tapes(rows);
  const bool dropout = !extras.between_layers.empty();
  if (dropout && static_cast<int64_t>(extras.between_layers.size()) != dims.l - 1) {
    return absl::InvalidArgumentError("between_layers needs one mask per layer boundary");
  }
  std::vector<std::vector<double>> dropped(dropout ? dims.l - 1 : 0);
  for (int64_t l = 0; l < dims.l; ++l) {
    layer_in[l] = l == 0 ? &inputs.values : &layer_out[l - 1];
    if (l > 0 && dropout) {
      dropped[l - 1] = layer_out[l - 1];
      for (size_t i = 0; i < dropped[l - 1].size(); ++i) {
        dropped[l - 1][i] *= extras.between_layers[l - 1][i];
      }
      layer_in[l] = &dropped[l - 1];
    }
    for (int64_t d = 0; d < dims.d; ++d) {
      const int64_t row = l * dims.d + d;
      const int64_t offset = row * dims.n * H;
      ForwardDirection(spec, dims, WeightsOf(spec, params, l, d == 1), layer_in[l]->data(), d == 1,
                       h0 + offset, c0 + offset, d * H, layer_out[l].data(),
                       result.final_state.h.values.data() + offset,
                       lstm ? result.final_state.c.values.data() + offset : nullptr, &tapes[row],
                       &result.min_relu_margin);
    }
  }
  const std::vector<double>& top = layer_out.back();
  result.hidden = DoubleTensor({dims.n, dims.t, DH}, top);

  // Head: one prediction row per (n, t) for per_step, per n for last_step.
  const int64_t predictions = per_step ? dims.n * dims.t : dims.n;
  const auto head_input = [&](int64_t p) {  // the top-layer vector prediction p reads
    const int64_t n = per_step ? p / dims.t : p;
    const int64_t t = per_step ? p % dims.t : dims.t - 1;
    return top.data() + (n * dims.t + t) * DH;
  };
  const double* head_w = params.at("head.weight").values.data();
  const double* head_b = params.at("head.bias").values.data();
  result.outputs = per_step ? DoubleTensor({dims.n, dims.t, O}) : DoubleTensor({dims.n, O});
  for (int64_t p = 0; p < predictions; ++p) {
    for (int64_t o = 0; o < O; ++o) {
      result.outputs.values[p * O + o] = head_b[o] + Dot(head_w + o * DH, head_input(p), DH);
    }
  }
  if (targets == nullptr) return result;

  // Loss and d loss / d outputs.
  std::vector<double> d_outputs(predictions * O, 0.0);
  const auto counted = [&](int64_t p) { return targets->mask.empty() || targets->mask[p] != 0; };
  int64_t counted_predictions = 0;
  for (int64_t p = 0; p < predictions; ++p) counted_predictions += counted(p) ? 1 : 0;
  if (counted_predictions == 0) counted_predictions = 1;  // everything masked: loss 0, grads 0
  if (spec.loss == LossType::kMse) {
    const double count = static_cast<double>(counted_predictions * O);
    for (int64_t i = 0; i < predictions * O; ++i) {
      if (!counted(i / O)) continue;
      const double diff = result.outputs.values[i] - targets->values.values[i];
      result.loss += diff * diff / count;
      d_outputs[i] = 2.0 * diff / count;
    }
  } else {
    for (int64_t p = 0; p < predictions; ++p) {
      if (!counted(p)) continue;
      const double* logits = result.outputs.values.data() + p * O;
      const double max_logit = *std::max_element(logits, logits + O);
      double sum = 0.0;
      for (int64_t o = 0; o < O; ++o) sum += std::exp(logits[o] - max_logit);
      const double log_sum_exp = max_logit + std::log(sum);
      const int32_t label = targets->labels[p];
      result.loss += (log_sum_exp - logits[label]) / static_cast<double>(counted_predictions);
      for (int64_t o = 0; o < O; ++o) {
        const double probability = std::exp(logits[o] - log_sum_exp);
        d_outputs[p * O + o] =
            (probability - (o == label ? 1.0 : 0.0)) / static_cast<double>(counted_predictions);
      }
    }
  }
  if (!compute_gradients) return result;

  for (const core::ParameterInfo& info : core::ParameterLayout(spec)) {
    result.gradients.emplace(info.name, DoubleTensor(info.shape));
  }
  result.initial_state_gradients.h = DoubleTensor({rows, dims.n, H});
  if (lstm) result.initial_state_gradients.c = DoubleTensor({rows, dims.n, H});

  // Head backward.
  std::vector<double> d_top(dims.n * dims.t * DH, 0.0);
  double* d_head_w = result.gradients.at("head.weight").values.data();
  double* d_head_b = result.gradients.at("head.bias").values.data();
  for (int64_t p = 0; p < predictions; ++p) {
    const double* x = head_input(p);
    double* dx = d_top.data() + (x - top.data());
    for (int64_t o = 0; o < O; ++o) {
      const double dy = d_outputs[p * O + o];
      d_head_b[o] += dy;
      for (int64_t k = 0; k < DH; ++k) {
        d_head_w[o * DH + k] += dy * x[k];
        dx[k] += head_w[o * DH + k] * dy;
      }
    }
  }

  // Layers, top to bottom; each one's input gradient is the next one down's output gradient.
  std::vector<double> d_out = std::move(d_top);
  for (int64_t l = dims.l - 1; l >= 0; --l) {
    const int64_t in_width = l == 0 ? spec.input_size : DH;
    std::vector<double> d_in(dims.n * dims.t * in_width, 0.0);
    for (int64_t d = 0; d < dims.d; ++d) {
      const int64_t row = l * dims.d + d;
      const int64_t offset = row * dims.n * H;
      BackwardDirection(spec, dims, WeightsOf(spec, params, l, d == 1),
                        GradientsOf(result.gradients, l, d == 1), layer_in[l]->data(), d == 1,
                        tapes[row], d_out.data(), d * H, d_in.data(),
                        result.initial_state_gradients.h.values.data() + offset,
                        lstm ? result.initial_state_gradients.c.values.data() + offset : nullptr);
    }
    if (l > 0 && dropout) {
      for (size_t i = 0; i < d_in.size(); ++i) d_in[i] *= extras.between_layers[l - 1][i];
    }
    d_out = std::move(d_in);
  }
  return result;
}

}  // namespace

DoubleTensor::DoubleTensor(std::vector<int64_t> tensor_shape)
    : shape(std::move(tensor_shape)), values(core::Tensor::ElementCount(shape), 0.0) {}

absl::StatusOr<ReferenceResult> ReferenceForward(const ModelSpec& spec, const DoubleParams& params,
                                                 const DoubleTensor& inputs,
                                                 const DoubleState* initial_state) {
  return Run(spec, params, inputs, /*targets=*/nullptr, initial_state,
             /*compute_gradients=*/false, ReferenceTrainingExtras{});
}

absl::StatusOr<ReferenceResult> ReferenceForwardBackward(
    const ModelSpec& spec, const DoubleParams& params, const DoubleTensor& inputs,
    const core::Targets& targets, const DoubleState* initial_state, bool compute_gradients) {
  return Run(spec, params, inputs, &targets, initial_state, compute_gradients,
             ReferenceTrainingExtras{});
}

absl::StatusOr<ReferenceResult> ReferenceForwardBackward(
    const ModelSpec& spec, const DoubleParams& params, const DoubleTensor& inputs,
    const core::Targets& targets, const DoubleState* initial_state, bool compute_gradients,
    const ReferenceTrainingExtras& extras) {
  return Run(spec, params, inputs, &targets, initial_state, compute_gradients, extras);
}

DoubleTensor ToDouble(const core::Tensor& tensor) {
  return DoubleTensor(tensor.shape,
                      std::vector<double>(tensor.values.begin(), tensor.values.end()));
}

DoubleParams ToDouble(const core::ParameterSet& params) {
  DoubleParams result;
  for (const auto& [name, tensor] : params) result.emplace(name, ToDouble(tensor));
  return result;
}

DoubleState ToDouble(const core::RecurrentState& state) {
  return {ToDouble(state.h), ToDouble(state.c)};
}

core::Tensor ToFloat(const DoubleTensor& tensor) {
  std::vector<float> values(tensor.values.size());
  for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>(tensor.values[i]);
  return core::Tensor(tensor.shape, std::move(values));
}

core::ParameterSet ToFloat(const DoubleParams& params) {
  core::ParameterSet result;
  for (const auto& [name, tensor] : params) result.emplace(name, ToFloat(tensor));
  return result;
}

core::RecurrentState ToFloat(const DoubleState& state) {
  return {ToFloat(state.h), ToFloat(state.c)};
}

}  // namespace recurrent::testing
