// The network's output layer, y = x W^T + b (PyTorch nn.Linear). The forward pass is a
// row-independent kernel (see LinearHeadForward); the backward pass uses oneDNN's sgemm.
// Rows of x may be strided so the last_step head reads the last timestep of [N, T, D*H] in place.
#ifndef RECURRENT_CORE_LINEAR_HEAD_H_
#define RECURRENT_CORE_LINEAR_HEAD_H_

#include <cstdint>

namespace recurrent::core {

struct HeadShape {
  int64_t rows;      // number of predictions
  int64_t in;        // input width (D*H)
  int64_t out;       // output width (O)
  int64_t x_stride;  // floats between consecutive rows of x (>= in)
};

// y [rows, out] = x W^T + b, with W [out, in] and b [out] in PyTorch layout. Each row's result
// is bit-identical however many rows are computed together.
void LinearHeadForward(const HeadShape& shape, const float* x, const float* weight,
                       const float* bias, float* y);

// Given dy [rows, out]: dx (rows written with x_stride, other memory untouched) = dy W;
// weight_grad [out, in] = dy^T x and bias_grad [out] = column sums of dy (both overwritten).
void LinearHeadBackward(const HeadShape& shape, const float* x, const float* weight,
                        const float* dy, float* dx, float* weight_grad, float* bias_grad);

}  // namespace recurrent::core

#endif  // RECURRENT_CORE_LINEAR_HEAD_H_
