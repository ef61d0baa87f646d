// Gradient clipping as torch.nn.utils (PyTorch 1.13) does it: by the global L2 norm
// (clip_grad_norm_ with norm_type=2) and by value (clip_grad_value_).
//
// Differences from PyTorch, both deliberate:
//   - The norm is accumulated in double, PyTorch's in float32. It is therefore at least as
//     accurate; rounded to float it may differ from PyTorch's norm in the last bit or two, and so
//     may the clipped gradients (the tests allow 1e-6 relative). PyTorch's float32 sum of squares
//     also overflows to inf for gradients beyond ~1e19 that this norm still measures.
//   - A non-finite norm (a NaN or infinite gradient) leaves the gradients untouched. PyTorch
//     would scale them by NaN (NaN norm) or by 0 (infinite norm, turning infinities into NaN);
//     the norm is returned either way, and the trainer should skip the step when it is not finite.
#ifndef RECURRENT_CORE_GRAD_CLIP_H_
#define RECURRENT_CORE_GRAD_CLIP_H_

#include "core/parameters.h"

namespace recurrent::core {

// The L2 norm of all values of all tensors, as if concatenated: sqrt(sum of g^2), summed in
// double. 0 for an empty set; NaN if any value is NaN; +inf if any is infinite and none NaN.
double GlobalNorm(const ParameterSet& grads);

// Returns GlobalNorm(*grads), the norm before clipping. If it is finite and PyTorch's
// clip_coef = max_norm / (norm + 1e-6) (in float32, as PyTorch computes it) is below 1,
// multiplies every gradient value by clip_coef in float32, so the norm becomes ~max_norm;
// otherwise changes nothing. `max_norm` should be >= 0 (a negative one flips the signs, as in
// PyTorch).
double ClipByGlobalNorm(ParameterSet* grads, double max_norm);

// Clamps every gradient value into [-clip_value, clip_value] (float32 bounds); NaN stays NaN.
// `clip_value` should be >= 0 (a negative one sets every value to clip_value, as PyTorch's
// clamp does when min > max).
void ClipByValue(ParameterSet* grads, double clip_value);

}  // namespace recurrent::core

#endif  // RECURRENT_CORE_GRAD_CLIP_H_
