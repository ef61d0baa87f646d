#include "core/loss.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace recurrent::core {

namespace {

int64_t CountedRows(int64_t rows, const uint8_t* mask) {
  if (mask == nullptr) return rows;
  return std::count_if(mask, mask + rows, [](uint8_t m) { return m != 0; });
}

}  // namespace

double MeanSquaredError(const float* y, const float* target, int64_t rows, int64_t width,
                        const uint8_t* mask, float* dy) {
  const int64_t count = CountedRows(rows, mask) * width;
  if (count == 0) {
    std::fill(dy, dy + rows * width, 0.0f);
    return 0.0;
  }
  double sum = 0.0;
  const float scale = 2.0f / static_cast<float>(count);
  for (int64_t r = 0; r < rows; ++r) {
    if (mask != nullptr && mask[r] == 0) {
      std::fill(dy + r * width, dy + (r + 1) * width, 0.0f);
      continue;
    }
    for (int64_t i = r * width; i < (r + 1) * width; ++i) {
      const float diff = y[i] - target[i];
      sum += static_cast<double>(diff) * diff;
      dy[i] = scale * diff;
    }
  }
  return sum / static_cast<double>(count);
}

absl::StatusOr<double> SoftmaxCrossEntropy(const float* logits, int64_t rows, int64_t classes,
                                           const int32_t* labels, const uint8_t* mask,
                                           float* dlogits) {
  const int64_t counted = CountedRows(rows, mask);
  if (counted == 0) {
    std::fill(dlogits, dlogits + rows * classes, 0.0f);
    return 0.0;
  }
  double sum = 0.0;
  const float inv_rows = 1.0f / static_cast<float>(counted);
  for (int64_t r = 0; r < rows; ++r) {
    if (mask != nullptr && mask[r] == 0) {
      std::fill(dlogits + r * classes, dlogits + (r + 1) * classes, 0.0f);
      continue;
    }
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
  return sum / static_cast<double>(counted);
}

}  // namespace recurrent::core
