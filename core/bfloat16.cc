#include "core/bfloat16.h"

#include <cstring>

namespace recurrent::core {

void FloatToBfloat16(const float* src, uint16_t* dst, int64_t count) {
  for (int64_t i = 0; i < count; ++i) {
    uint32_t bits;
    std::memcpy(&bits, &src[i], sizeof(bits));
    if ((bits & 0x7fffffffu) > 0x7f800000u) {
      dst[i] = static_cast<uint16_t>((bits >> 16) | 0x40u);  // quiet NaN
      continue;
    }
    const uint32_t rounding = 0x7fffu + ((bits >> 16) & 1u);
    dst[i] = static_cast<uint16_t>((bits + rounding) >> 16);
  }
}

void Bfloat16ToFloat(const uint16_t* src, float* dst, int64_t count) {
  for (int64_t i = 0; i < count; ++i) {
    const uint32_t bits = static_cast<uint32_t>(src[i]) << 16;
    std::memcpy(&dst[i], &bits, sizeof(bits));
  }
}

}  // namespace recurrent::core
