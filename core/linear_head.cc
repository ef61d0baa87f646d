#include "core/linear_head.h"

#include <omp.h>

#include "oneapi/dnnl/dnnl.h"

namespace recurrent::core {

namespace {

constexpr int kLanes = 16;

// A dot product whose summation order depends only on `n`: 16 running partial sums, then a fixed
// pairwise tree. The same row therefore gives the same bits whether it is one of 1 or 10,000
// rows, which sgemm does not promise (its kernels vary with M). This is what makes Step()
// bit-identical to Forward(). GCC only fuses multiply-adds under -ffp-contract=fast, which ISO
// C++ mode leaves off, so every target clone rounds identically.
//
// The clones are picked by an ifunc resolver that runs while the dynamic loader relocates the
// binary, before a sanitizer runtime is up; ThreadSanitizer instruments that resolver and
// crashes at startup, so sanitizer builds use the one portable version. (GCC announces
// sanitizers with __SANITIZE_*__ macros, clang 14 only through __has_feature.)
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define RECURRENT_SANITIZER_BUILD 1
#endif
#endif
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__) || defined(RECURRENT_TSAN) || \
    defined(RECURRENT_SANITIZER_BUILD)
#define RECURRENT_DOT_CLONES
#else
#define RECURRENT_DOT_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#endif
RECURRENT_DOT_CLONES float DeterministicDot(const float* a, const float* b, int64_t n) {
  float lanes[kLanes] = {};
  int64_t k = 0;
  for (; k + kLanes <= n; k += kLanes) {
    for (int j = 0; j < kLanes; ++j) lanes[j] += a[k + j] * b[k + j];
  }
  for (int j = 0; k + j < n; ++j) lanes[j] += a[k + j] * b[k + j];
  for (int width = kLanes / 2; width > 0; width /= 2) {
    for (int j = 0; j < width; ++j) lanes[j] += lanes[j + width];
  }
  return lanes[0];
}

}  // namespace

void LinearHeadForward(const HeadShape& shape, const float* x, const float* weight,
                       const float* bias, float* y) {
  for (int64_t r = 0; r < shape.rows; ++r) {
    const float* row = x + r * shape.x_stride;
    float* out = y + r * shape.out;
    for (int64_t o = 0; o < shape.out; ++o) {
      out[o] = DeterministicDot(row, weight + o * shape.in, shape.in) + bias[o];
    }
  }
}

void LinearHeadBackward(const HeadShape& shape, const float* x, const float* weight,
                        const float* dy, float* dx, float* weight_grad, float* bias_grad) {
  dnnl_sgemm('N', 'N', shape.rows, shape.in, shape.out, 1.0f, dy, shape.out, weight, shape.in, 0.0f,
             dx, shape.x_stride);
  // This product sums over every row; a multi-threaded sgemm splits that sum by thread count,
  // which would make gradients depend on it. One thread keeps them bit-identical on any count
  // (the head is a sliver of the work).
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  dnnl_sgemm('T', 'N', shape.out, shape.in, shape.rows, 1.0f, dy, shape.out, x, shape.x_stride,
             0.0f, weight_grad, shape.in);
  omp_set_num_threads(threads);
  for (int64_t o = 0; o < shape.out; ++o) bias_grad[o] = 0.0f;
  for (int64_t r = 0; r < shape.rows; ++r) {
    const float* row = dy + r * shape.out;
    for (int64_t o = 0; o < shape.out; ++o) bias_grad[o] += row[o];
  }
}

}  // namespace recurrent::core
