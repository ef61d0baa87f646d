// Random tensors and tolerance checks for tests that compare the float32 engine with the double
// reference (tests/testing/reference_rnn.h).
#ifndef RECURRENT_TESTS_TESTING_TENSOR_TESTING_H_
#define RECURRENT_TESTS_TESTING_TENSOR_TESTING_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "core/tensor.h"
#include "gtest/gtest.h"
#include "tests/testing/reference_rnn.h"

namespace recurrent::testing {

// Values uniform in [-bound, bound), the same for a given seed on every platform (our own
// mapping of mt19937_64 bits, as core::InitParameters does).
core::Tensor RandomTensor(std::vector<int64_t> shape, double bound, uint64_t seed);

// `count` class indices uniform in [0, num_classes).
std::vector<int32_t> RandomLabels(int64_t count, int64_t num_classes, uint64_t seed);

// How far a float32 tensor is from its double reference, over the whole tensor.
struct TensorError {
  double max_abs_error = 0.0;     // max_i |actual_i - expected_i|
  int64_t worst_index = -1;       // where that maximum is; -1 when both are empty
  double error_norm = 0.0;        // ||actual - expected||_2
  double expected_norm = 0.0;     // ||expected||_2
  double relative_error() const;  // error_norm / expected_norm (0 when both are 0)
};
TensorError MeasureError(const std::vector<float>& actual, const std::vector<double>& expected);

// Passes iff the shapes are equal and, over the whole tensor,
//   ||actual - expected||_2 <= rtol * ||expected||_2 + atol * sqrt(size).
// The norm-wise form is the tolerance of choice for float32 against double: one element that is
// small only because of cancellation must not fail a tensor computed to float precision, while
// any systematic error (a wrong gate, a missing term) moves the whole norm. The atol term only
// matters for tensors whose reference is (nearly) zero. The failure message names `what`, both
// norms, the relative error and the worst element.
::testing::AssertionResult TensorNear(absl::string_view what, const core::Tensor& actual,
                                      const DoubleTensor& expected, double rtol, double atol);

// Passes iff the shapes are equal and every element compares equal as a float (so -0 == 0 and
// NaN fails). On failure, says how many elements differ, the largest difference and the first
// differing element, printed with enough digits to show the differing bits.
::testing::AssertionResult BitwiseEqual(absl::string_view what, const core::Tensor& actual,
                                        const core::Tensor& expected);

}  // namespace recurrent::testing

#endif  // RECURRENT_TESTS_TESTING_TENSOR_TESTING_H_
