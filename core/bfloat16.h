// bfloat16 <-> float conversion for the engine's opt-in bfloat16 mode: bfloat16 is the upper half
// of an IEEE float32 (8-bit exponent, 7-bit mantissa), so conversion is a rounding shift.
#ifndef RECURRENT_CORE_BFLOAT16_H_
#define RECURRENT_CORE_BFLOAT16_H_

#include <cstdint>

namespace recurrent::core {

// Round to nearest, ties to even (as oneDNN and PyTorch do); NaN stays NaN.
void FloatToBfloat16(const float* src, uint16_t* dst, int64_t count);
void Bfloat16ToFloat(const uint16_t* src, float* dst, int64_t count);

}  // namespace recurrent::core

#endif  // RECURRENT_CORE_BFLOAT16_H_
