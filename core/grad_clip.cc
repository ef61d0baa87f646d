#include "core/grad_clip.h"

#include <algorithm>
#include <cmath>

namespace recurrent::core {

double GlobalNorm(const ParameterSet& grads) {
  double sum_of_squares = 0.0;
  for (const auto& [name, grad] : grads) {
    for (const float value : grad.values) {
      const double v = value;
      sum_of_squares += v * v;
    }
  }
  return std::sqrt(sum_of_squares);
}

double ClipByGlobalNorm(ParameterSet* grads, double max_norm) {
  const double norm = GlobalNorm(*grads);
  if (!std::isfinite(norm)) return norm;
  // clip_coef = max_norm / (total_norm + 1e-6) on a float32 tensor: Tensor.__rtruediv__ is
  // reciprocal() followed by a multiply, two roundings.
  const float shifted_norm = static_cast<float>(norm) + static_cast<float>(1e-6);
  const float clip_coef = (1.0f / shifted_norm) * static_cast<float>(max_norm);
  // PyTorch multiplies by min(clip_coef, 1) unconditionally; multiplying by 1 changes nothing.
  if (!(clip_coef < 1.0f)) return norm;
  for (auto& [name, grad] : *grads) {
    for (float& value : grad.values) value *= clip_coef;
  }
  return norm;
}

void ClipByValue(ParameterSet* grads, double clip_value) {
  const float low = static_cast<float>(-clip_value);
  const float high = static_cast<float>(clip_value);
  for (auto& [name, grad] : *grads) {
    for (float& value : grad.values) {
      // clamp_(min=-clip_value, max=clip_value): max with the low bound first, NaN kept.
      if (!std::isnan(value)) value = std::min(std::max(value, low), high);
    }
  }
}

}  // namespace recurrent::core
