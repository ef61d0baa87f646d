// Losses over the head's outputs, with the gradient PyTorch's mean reduction gives.
#ifndef RECURRENT_CORE_LOSS_H_
#define RECURRENT_CORE_LOSS_H_

#include <cstdint>

#include "absl/status/statusor.h"

namespace recurrent::core {

// mean((y - target)^2) over `count` elements; writes d loss / d y into `dy`.
double MeanSquaredError(const float* y, const float* target, int64_t count, float* dy);

// Softmax cross-entropy: `logits` [rows, classes], one label in [0, classes) per row; returns
// the mean over rows of -log softmax(logits)[label] and writes d loss / d logits into `dlogits`.
// InvalidArgument if a label is out of range.
absl::StatusOr<double> SoftmaxCrossEntropy(const float* logits, int64_t rows, int64_t classes,
                                           const int32_t* labels, float* dlogits);

}  // namespace recurrent::core

#endif  // RECURRENT_CORE_LOSS_H_
