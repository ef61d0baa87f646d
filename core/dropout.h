// Dropout between recurrent layers, as PyTorch's nn.RNN/LSTM/GRU(dropout=p) applies it: during
// training every value of a layer's output (except the top layer's) is zeroed with probability p
// and the survivors are scaled by 1 / (1 - p), so the expected input of the next layer is the same
// as at inference, when nothing is dropped.
//
// Masks are a pure function of (seed, layer, element index), not of a generator's call order, so
// they are the same on any thread count and can be built in parallel; a trainer passes a fresh
// seed per step (drawn from its own seeded generator) to get fresh masks.
#ifndef RECURRENT_CORE_DROPOUT_H_
#define RECURRENT_CORE_DROPOUT_H_

#include <cstdint>

namespace recurrent::core {

// Writes `count` mask values: 0 with probability `probability` in [0, 1), else
// 1 / (1 - probability).
void MakeDropoutMask(uint64_t seed, int64_t layer, double probability, float* mask, int64_t count);

// dst[i] = src[i] * mask[i] over float values, or over bfloat16 bits when `bf16`.
void ApplyDropoutMask(const float* mask, const void* src, void* dst, int64_t count, bool bf16);

// values[i] *= mask[i]: the backward pass of ApplyDropoutMask.
void ScaleByDropoutMask(const float* mask, float* values, int64_t count);

}  // namespace recurrent::core

#endif  // RECURRENT_CORE_DROPOUT_H_
