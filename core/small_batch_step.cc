#include "core/small_batch_step.h"

// GCC 12's AVX-512 headers build "undefined" vectors by self-initialization, which -Wall reports
// wherever they are inlined (GCC bug 105593, fixed in GCC 13).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#pragma GCC diagnostic pop
#include <omp.h>

#include <cstdint>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"

namespace recurrent::core {
namespace {

constexpr int64_t kLanes = 16;
constexpr int64_t kAlignFloats = 16;  // 64 bytes

// Only the kernels are compiled for AVX-512F; Create() checks the CPU before any of them runs.
#define RECURRENT_AVX512 __attribute__((target("avx512f")))
#define RECURRENT_AVX512_INLINE __attribute__((target("avx512f"), always_inline)) inline

// GRU keeps the n gate's input and hidden parts apart (n = tanh(W_in x + b_in + r * (W_hn h +
// b_hn))), so it has one bias row more than gates.
int64_t BiasRowsOf(CellType cell, int64_t gates) {
  return gates + (cell == CellType::kGru ? 1 : 0);
}

float* AlignedStart(std::vector<float>& storage, int64_t floats) {
  storage.assign(floats + kAlignFloats, 0.0f);
  const auto address = reinterpret_cast<uintptr_t>(storage.data());
  const uintptr_t misalignment = address % (kAlignFloats * sizeof(float));
  const int64_t skip =
      misalignment == 0
          ? 0
          : static_cast<int64_t>((kAlignFloats * sizeof(float) - misalignment) / sizeof(float));
  return storage.data() + skip;
}

// e^x, Cephes' expf: x = n ln2 + r with |r| <= ln2/2, a degree-7 polynomial for e^r, then
// scaled by 2^n. Inputs are clamped to [-87, 88] (finite, normal results).
RECURRENT_AVX512_INLINE __m512 Exp(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.0f)), _mm512_set1_ps(88.0f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  const __m512 r2 = _mm512_mul_ps(r, r);
  const __m512 y = _mm512_add_ps(_mm512_fmadd_ps(p, r2, r), _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(y, n);
}

RECURRENT_AVX512_INLINE __m512 Sigmoid(__m512 x) {
  const __m512 one = _mm512_set1_ps(1.0f);
  return _mm512_div_ps(one, _mm512_add_ps(one, Exp(_mm512_sub_ps(_mm512_setzero_ps(), x))));
}

// tanh: Cephes' odd polynomial below |x| = 0.625 (where 1 - 2 / (e^2x + 1) would lose relative
// precision to cancellation), 1 - 2 / (e^2|x| + 1) with the sign restored above.
RECURRENT_AVX512_INLINE __m512 Tanh(__m512 x) {
  // (Bit operations on integers: the float forms need AVX-512DQ.)
  const __m512i sign_bit = _mm512_set1_epi32(INT32_MIN);
  const __m512i x_bits = _mm512_castps_si512(x);
  const __m512 magnitude = _mm512_castsi512_ps(_mm512_andnot_epi32(sign_bit, x_bits));
  const __m512 one = _mm512_set1_ps(1.0f);
  const __m512 e = Exp(_mm512_add_ps(magnitude, magnitude));
  const __m512 large_magnitude =
      _mm512_sub_ps(one, _mm512_div_ps(_mm512_set1_ps(2.0f), _mm512_add_ps(e, one)));
  const __m512 large = _mm512_castsi512_ps(
      _mm512_or_epi32(_mm512_castps_si512(large_magnitude), _mm512_and_epi32(sign_bit, x_bits)));
  const __m512 z = _mm512_mul_ps(x, x);
  __m512 p = _mm512_set1_ps(-5.70498872745e-3f);
  p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(2.06390887954e-2f));
  p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(-5.37397155531e-2f));
  p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(1.33314422036e-1f));
  p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(-3.33332819422e-1f));
  const __m512 small = _mm512_fmadd_ps(_mm512_mul_ps(p, z), x, x);
  const __mmask16 is_small = _mm512_cmp_ps_mask(magnitude, _mm512_set1_ps(0.625f), _CMP_LT_OQ);
  return _mm512_mask_blend_ps(is_small, large, small);
}

// Everything one block of 16 hidden units needs for up to kMaxStreams streams.
struct BlockIo {
  const float* weights = nullptr;  // this block's [input_size + hidden][gates][16]
  const float* biases = nullptr;   // this block's [bias rows][16]
  int64_t input_size = 0;
  int64_t hidden = 0;
  __mmask16 valid = 0;  // lanes that are real hidden units (the last block may be partial)
  const float* x[SmallBatchStep::kMaxStreams] = {};       // layer input rows
  const float* h[SmallBatchStep::kMaxStreams] = {};       // previous h rows (whole)
  const float* h_unit[SmallBatchStep::kMaxStreams] = {};  // previous h at the block's first unit
  const float* c_unit[SmallBatchStep::kMaxStreams] = {};  // previous c at the block's first unit
  float* new_h[SmallBatchStep::kMaxStreams] = {};         // at the block's first unit
  float* new_c[SmallBatchStep::kMaxStreams] = {};
};

// A load into a register that the compiler may not fold into each multiply-add as a memory
// operand: folded, a weight vector is loaded once per stream, and 512-bit loads (one per cycle on
// Zen 4) then limit 3-4 streams more than the multiply-adds do (3 streams: 56 us against 43 us).
RECURRENT_AVX512_INLINE __m512 LoadOnce(const float* p) {
  __m512 value = _mm512_load_ps(p);
  asm("" : "+v"(value));
  return value;
}

// acc[s][g] = bias + sum over the input columns and the hidden columns of weight * value.
// With kSplitLast (GRU), the last gate's hidden part goes to acc_hidden_last instead.
template <int kGates, int kStreams, bool kSplitLast>
RECURRENT_AVX512_INLINE void Accumulate(const BlockIo& io, __m512 (&acc)[kStreams][kGates],
                                        __m512 (&acc_hidden_last)[kStreams]) {
  for (int s = 0; s < kStreams; ++s) {
    for (int g = 0; g < kGates; ++g) acc[s][g] = _mm512_load_ps(io.biases + g * kLanes);
    if (kSplitLast) acc_hidden_last[s] = _mm512_load_ps(io.biases + kGates * kLanes);
  }
  const float* w = io.weights;
  for (int64_t k = 0; k < io.input_size; ++k, w += kGates * kLanes) {
    __m512 value[kStreams];
    for (int s = 0; s < kStreams; ++s) value[s] = _mm512_set1_ps(io.x[s][k]);
    for (int g = 0; g < kGates; ++g) {
      const __m512 weight = LoadOnce(w + g * kLanes);
      for (int s = 0; s < kStreams; ++s) acc[s][g] = _mm512_fmadd_ps(weight, value[s], acc[s][g]);
    }
  }
  for (int64_t k = 0; k < io.hidden; ++k, w += kGates * kLanes) {
    __m512 value[kStreams];
    for (int s = 0; s < kStreams; ++s) value[s] = _mm512_set1_ps(io.h[s][k]);
    for (int g = 0; g < kGates; ++g) {
      const __m512 weight = LoadOnce(w + g * kLanes);
      for (int s = 0; s < kStreams; ++s) {
        if (kSplitLast && g == kGates - 1) {
          acc_hidden_last[s] = _mm512_fmadd_ps(weight, value[s], acc_hidden_last[s]);
        } else {
          acc[s][g] = _mm512_fmadd_ps(weight, value[s], acc[s][g]);
        }
      }
    }
  }
}

template <int kStreams>
RECURRENT_AVX512 void LstmBlock(const BlockIo& io) {
  __m512 acc[kStreams][4];
  __m512 unused[kStreams];
  Accumulate<4, kStreams, false>(io, acc, unused);
  for (int s = 0; s < kStreams; ++s) {
    const __m512 input_gate = Sigmoid(acc[s][0]);
    const __m512 forget_gate = Sigmoid(acc[s][1]);
    const __m512 candidate = Tanh(acc[s][2]);
    const __m512 output_gate = Sigmoid(acc[s][3]);
    const __m512 c_prev = _mm512_maskz_loadu_ps(io.valid, io.c_unit[s]);
    const __m512 c = _mm512_fmadd_ps(forget_gate, c_prev, _mm512_mul_ps(input_gate, candidate));
    _mm512_store_ps(io.new_c[s], c);
    _mm512_store_ps(io.new_h[s], _mm512_mul_ps(output_gate, Tanh(c)));
  }
}

template <int kStreams>
RECURRENT_AVX512 void GruBlock(const BlockIo& io) {
  __m512 acc[kStreams][3];
  __m512 hidden_n[kStreams];
  Accumulate<3, kStreams, true>(io, acc, hidden_n);
  for (int s = 0; s < kStreams; ++s) {
    const __m512 reset = Sigmoid(acc[s][0]);
    const __m512 update = Sigmoid(acc[s][1]);
    const __m512 candidate = Tanh(_mm512_fmadd_ps(reset, hidden_n[s], acc[s][2]));
    const __m512 h_prev = _mm512_maskz_loadu_ps(io.valid, io.h_unit[s]);
    // (1 - z) * n + z * h, as PyTorch writes it.
    const __m512 keep = _mm512_sub_ps(_mm512_set1_ps(1.0f), update);
    _mm512_store_ps(io.new_h[s], _mm512_fmadd_ps(keep, candidate, _mm512_mul_ps(update, h_prev)));
  }
}

template <int kStreams, bool kRelu>
RECURRENT_AVX512 void RnnBlock(const BlockIo& io) {
  __m512 acc[kStreams][1];
  __m512 unused[kStreams];
  Accumulate<1, kStreams, false>(io, acc, unused);
  for (int s = 0; s < kStreams; ++s) {
    const __m512 h = kRelu ? _mm512_max_ps(acc[s][0], _mm512_setzero_ps()) : Tanh(acc[s][0]);
    _mm512_store_ps(io.new_h[s], h);
  }
}

using BlockKernel = void (*)(const BlockIo&);

template <int kStreams>
BlockKernel KernelFor(CellType cell) {
  switch (cell) {
    case CellType::kLstm:
      return &LstmBlock<kStreams>;
    case CellType::kGru:
      return &GruBlock<kStreams>;
    case CellType::kRnnTanh:
      return &RnnBlock<kStreams, false>;
    case CellType::kRnnRelu:
      return &RnnBlock<kStreams, true>;
  }
  return nullptr;
}

BlockKernel KernelFor(CellType cell, int64_t streams) {
  switch (streams) {
    case 1:
      return KernelFor<1>(cell);
    case 2:
      return KernelFor<2>(cell);
    case 3:
      return KernelFor<3>(cell);
    default:
      return KernelFor<4>(cell);
  }
}

}  // namespace

std::unique_ptr<SmallBatchStep> SmallBatchStep::Create(const ModelSpec& spec) {
  if (spec.bidirectional || !__builtin_cpu_supports("avx512f")) return nullptr;
  return std::unique_ptr<SmallBatchStep>(new SmallBatchStep(spec));
}

SmallBatchStep::SmallBatchStep(const ModelSpec& spec)
    : cell_(spec.cell),
      num_layers_(spec.num_layers),
      hidden_(spec.hidden_size),
      padded_hidden_((spec.hidden_size + kLanes - 1) / kLanes * kLanes),
      blocks_(padded_hidden_ / kLanes),
      gates_(spec.num_gates()) {
  int64_t weight_floats = 0, bias_floats = 0;
  for (int64_t l = 0; l < num_layers_; ++l) {
    Layer layer;
    layer.input_size = l == 0 ? spec.input_size : hidden_;
    layer.weight_offset = weight_floats;
    layer.bias_offset = bias_floats;
    weight_floats += blocks_ * (layer.input_size + hidden_) * gates_ * kLanes;
    bias_floats += blocks_ * BiasRowsOf(cell_, gates_) * kLanes;
    layers_.push_back(layer);
  }
  weights_ = AlignedStart(weight_storage_, weight_floats);
  biases_ = AlignedStart(bias_storage_, bias_floats);
  new_state_ = AlignedStart(state_storage_, 2 * num_layers_ * kMaxStreams * padded_hidden_);
}

SmallBatchStep::~SmallBatchStep() = default;

void SmallBatchStep::LoadWeights(const ParameterSet& params) {
  const int64_t bias_rows = BiasRowsOf(cell_, gates_);
  for (int64_t l = 0; l < num_layers_; ++l) {
    const Layer& layer = layers_[l];
    const std::string suffix = absl::StrCat("_l", l);
    const float* weight_ih = params.at("weight_ih" + suffix).data();  // [G*H, in]
    const float* weight_hh = params.at("weight_hh" + suffix).data();  // [G*H, H]
    const float* bias_ih = params.at("bias_ih" + suffix).data();      // [G*H]
    const float* bias_hh = params.at("bias_hh" + suffix).data();      // [G*H]
    const int64_t columns = layer.input_size + hidden_;
    for (int64_t b = 0; b < blocks_; ++b) {
      float* block = weights_ + layer.weight_offset + b * columns * gates_ * kLanes;
      float* bias = biases_ + layer.bias_offset + b * bias_rows * kLanes;
      for (int64_t u = 0; u < kLanes; ++u) {
        const int64_t unit = b * kLanes + u;
        const bool real = unit < hidden_;
        for (int64_t g = 0; g < gates_; ++g) {
          const int64_t row = g * hidden_ + unit;
          for (int64_t k = 0; k < columns; ++k) {
            float value = 0.0f;
            if (real) {
              value = k < layer.input_size ? weight_ih[row * layer.input_size + k]
                                           : weight_hh[row * hidden_ + (k - layer.input_size)];
            }
            block[(k * gates_ + g) * kLanes + u] = value;
          }
          const bool split = cell_ == CellType::kGru && g == gates_ - 1;
          if (!real) {
            bias[g * kLanes + u] = 0.0f;
            if (split) bias[gates_ * kLanes + u] = 0.0f;
          } else if (split) {
            bias[g * kLanes + u] = bias_ih[row];
            bias[gates_ * kLanes + u] = bias_hh[row];
          } else {
            bias[g * kLanes + u] = bias_ih[row] + bias_hh[row];
          }
        }
      }
    }
  }
}

const float* SmallBatchStep::top_hidden() const {
  return new_state_ + ((num_layers_ - 1) * kMaxStreams) * padded_hidden_;
}

void SmallBatchStep::RunBlock(int64_t l, int64_t block, int64_t batch, const float* inputs,
                              float* const* states) {
  const Layer& layer = layers_[l];
  const int64_t unit = block * kLanes;
  BlockIo io;
  io.weights =
      weights_ + layer.weight_offset + block * (layer.input_size + hidden_) * gates_ * kLanes;
  io.biases = biases_ + layer.bias_offset + block * BiasRowsOf(cell_, gates_) * kLanes;
  io.input_size = layer.input_size;
  io.hidden = hidden_;
  const int64_t valid_units = std::min<int64_t>(kLanes, hidden_ - unit);
  io.valid = static_cast<__mmask16>((1u << valid_units) - 1);
  for (int64_t s = 0; s < batch; ++s) {
    io.x[s] = l == 0 ? inputs + s * layer.input_size : NewHidden(l - 1, s);
    io.h[s] = states[s] + l * hidden_;
    io.h_unit[s] = io.h[s] + unit;
    io.new_h[s] = NewHidden(l, s) + unit;
    if (cell_ == CellType::kLstm) {  // other cells' state blocks end after h
      io.c_unit[s] = states[s] + (num_layers_ + l) * hidden_ + unit;
      io.new_c[s] = NewCell(l, s) + unit;
    }
  }
  KernelFor(cell_, batch)(io);
}

void SmallBatchStep::Step(const float* inputs, int64_t batch, float* const* states) {
#if defined(RECURRENT_TSAN)
  // ThreadSanitizer cannot see libgomp's barriers (libgomp is not instrumented) and would report
  // the next layer's reads of this layer's results as races; its builds step serially, which
  // gives the same bits (blocks are independent of the thread count).
  const int threads = 1;
#else
  const int threads = static_cast<int>(std::min<int64_t>(omp_get_max_threads(), blocks_));
#endif
  if (threads <= 1) {
    for (int64_t l = 0; l < num_layers_; ++l) {
      for (int64_t b = 0; b < blocks_; ++b) RunBlock(l, b, batch, inputs, states);
    }
  } else {
    // Blocks own whole hidden units, so a layer needs only the barrier at the end of the loop
    // (the next layer reads all of this layer's new h). Static scheduling: a block's result
    // does not depend on which thread computes it.
#pragma omp parallel num_threads(threads)
    for (int64_t l = 0; l < num_layers_; ++l) {
#pragma omp for schedule(static)
      for (int64_t b = 0; b < blocks_; ++b) RunBlock(l, b, batch, inputs, states);
    }
  }
  const bool lstm = cell_ == CellType::kLstm;
  for (int64_t s = 0; s < batch; ++s) {
    for (int64_t l = 0; l < num_layers_; ++l) {
      std::memcpy(states[s] + l * hidden_, NewHidden(l, s), sizeof(float) * hidden_);
      if (lstm) {
        std::memcpy(states[s] + (num_layers_ + l) * hidden_, NewCell(l, s),
                    sizeof(float) * hidden_);
      }
    }
  }
}

}  // namespace recurrent::core
