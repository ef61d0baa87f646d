// Losses over the head's outputs, with the gradient PyTorch's mean reduction gives.
#ifndef RECURRENT_CORE_LOSS_H_
#define RECURRENT_CORE_LOSS_H_

#include <cstdint>

#include "absl/status/statusor.h"

namespace recurrent::core {

// `mask` (optional, may be null = every row counts): one byte per row (prediction); rows with 0
// are padding: they add nothing to the loss, get a zero gradient, and are not counted in the mean.
// With every row masked the loss is 0 and every gradient 0.

// mean((y - target)^2) over the `width` elements of every counted row of y [rows, width]; writes
// d loss / d y into `dy`.
double MeanSquaredError(const float* y, const float* target, int64_t rows, int64_t width,
                        const uint8_t* mask, float* dy);

// Softmax cross-entropy: `logits` [rows, classes], one label per row; returns the mean over
// counted rows of -log softmax(logits)[label] and writes d loss / d logits into `dlogits`.
// InvalidArgument if a counted row's label is outside [0, classes) (masked rows' labels are not
// read).
absl::StatusOr<double> SoftmaxCrossEntropy(const float* logits, int64_t rows, int64_t classes,
                                           const int32_t* labels, const uint8_t* mask,
                                           float* dlogits);

}  // namespace recurrent::core

#endif  // RECURRENT_CORE_LOSS_H_
