#include "core/loss.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace recurrent::core {

double MeanSquaredError(const float* y, const float* target, int64_t count, float* dy) {
  double sum = 0.0;
  const float scale = 2.0f / static_cast<float>(count);
  for (int64_t i = 0; i < count; ++i) {
    const float diff = y[i] - target[i];
    sum += static_cast<double>(diff) * diff;
    dy[i] = scale * diff;
  }
  return sum / static_cast<double>(count);
}

absl::StatusOr<double> SoftmaxCrossEntropy(const float* logits, int64_t rows, int64_t classes,
                                           const int32_t* labels, float* dlogits) {
  double sum = 0.0;
  const float inv_rows = 1.0f / static_cast<float>(rows);
  for (int64_t r = 0; r < rows; ++r) {
    const int32_t label = labels[r];
    if (label < 0 || label >= classes) {
      return absl::InvalidArgumentError(
          absl::StrCat("label ", label, " at prediction ", r, " is outside [0, ", classes, ")"));
    }
    const float* row = logits + r * classes;
    float* grad = dlogits + r * classes;
    // Subtracting the max keeps exp() finite for any logits.
    const float max_logit = *std::max_element(row, row + classes);
    double total = 0.0;
    for (int64_t c = 0; c < classes; ++c) {
      grad[c] = std::exp(row[c] - max_logit);
      total += grad[c];
    }
    const float inv_total = static_cast<float>(1.0 / total);
    for (int64_t c = 0; c < classes; ++c) grad[c] *= inv_total * inv_rows;
    grad[label] -= inv_rows;
    sum += std::log(total) - (row[label] - max_logit);
  }
  return sum / static_cast<double>(rows);
}

}  // namespace recurrent::core
