#include "core/dropout.h"

#include "core/bfloat16.h"
#include "core/random.h"

namespace recurrent::core {

void MakeDropoutMask(uint64_t seed, int64_t layer, double probability, float* mask, int64_t count) {
  const float keep_scale = static_cast<float>(1.0 / (1.0 - probability));
  // Compare 53-bit uniforms with p in double: the drop rate is exact to 2^-53.
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < count; ++i) {
    const double uniform =
        static_cast<double>(HashToU64(seed, static_cast<uint64_t>(layer), i) >> 11) * 0x1.0p-53;
    mask[i] = uniform < probability ? 0.0f : keep_scale;
  }
}

void ApplyDropoutMask(const float* mask, const void* src, void* dst, int64_t count, bool bf16) {
  if (bf16) {
    const auto* in = static_cast<const uint16_t*>(src);
    auto* out = static_cast<uint16_t*>(dst);
    for (int64_t i = 0; i < count; ++i) {
      float value;
      Bfloat16ToFloat(in + i, &value, 1);
      value *= mask[i];
      FloatToBfloat16(&value, out + i, 1);
    }
    return;
  }
  const auto* in = static_cast<const float*>(src);
  auto* out = static_cast<float*>(dst);
  for (int64_t i = 0; i < count; ++i) out[i] = in[i] * mask[i];
}

void ScaleByDropoutMask(const float* mask, float* values, int64_t count) {
  for (int64_t i = 0; i < count; ++i) values[i] *= mask[i];
}

}  // namespace recurrent::core
