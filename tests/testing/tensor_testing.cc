#include "tests/testing/tensor_testing.h"

#include <cmath>
#include <iomanip>
#include <random>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace recurrent::testing {

core::Tensor RandomTensor(std::vector<int64_t> shape, double bound, uint64_t seed) {
  std::mt19937_64 rng(seed);
  core::Tensor tensor(std::move(shape));
  for (float& v : tensor.values) {
    const double unit = static_cast<double>(rng() >> 11) * 0x1.0p-53;  // [0, 1)
    v = static_cast<float>((2.0 * unit - 1.0) * bound);
  }
  return tensor;
}

std::vector<int32_t> RandomLabels(int64_t count, int64_t num_classes, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int32_t> labels(count);
  for (int32_t& label : labels) label = static_cast<int32_t>(rng() % num_classes);
  return labels;
}

double TensorError::relative_error() const {
  if (expected_norm == 0.0) return error_norm == 0.0 ? 0.0 : INFINITY;
  return error_norm / expected_norm;
}

TensorError MeasureError(const std::vector<float>& actual, const std::vector<double>& expected) {
  TensorError error;
  double error_sq = 0.0, expected_sq = 0.0;
  for (size_t i = 0; i < actual.size() && i < expected.size(); ++i) {
    const double diff = std::abs(static_cast<double>(actual[i]) - expected[i]);
    if (error.worst_index < 0 || diff > error.max_abs_error) {
      error.max_abs_error = diff;
      error.worst_index = static_cast<int64_t>(i);
    }
    error_sq += diff * diff;
    expected_sq += expected[i] * expected[i];
  }
  error.error_norm = std::sqrt(error_sq);
  error.expected_norm = std::sqrt(expected_sq);
  return error;
}

::testing::AssertionResult TensorNear(absl::string_view what, const core::Tensor& actual,
                                      const DoubleTensor& expected, double rtol, double atol) {
  if (actual.shape != expected.shape || actual.values.size() != expected.values.size()) {
    return ::testing::AssertionFailure()
           << what << ": shape " << core::ShapeToString(actual.shape) << " ("
           << actual.values.size() << " values), expected " << core::ShapeToString(expected.shape)
           << " (" << expected.values.size() << ")";
  }
  const TensorError error = MeasureError(actual.values, expected.values);
  const double bound =
      rtol * error.expected_norm + atol * std::sqrt(static_cast<double>(expected.size()));
  const std::string details = absl::StrCat(
      what, ": ||err|| = ", error.error_norm, ", ||ref|| = ", error.expected_norm,
      ", relative = ", error.relative_error(), ", max |err| = ", error.max_abs_error, " at index ",
      error.worst_index,
      error.worst_index >= 0 ? absl::StrCat(" (engine ", actual.values[error.worst_index],
                                            ", reference ", expected.values[error.worst_index], ")")
                             : "");
  if (error.error_norm <= bound && std::isfinite(error.error_norm)) {
    return ::testing::AssertionSuccess() << details;
  }
  return ::testing::AssertionFailure() << details << "; allowed ||err|| <= " << bound;
}

::testing::AssertionResult BitwiseEqual(absl::string_view what, const core::Tensor& actual,
                                        const core::Tensor& expected) {
  if (actual.shape != expected.shape || actual.values.size() != expected.values.size()) {
    return ::testing::AssertionFailure() << what << ": shape " << core::ShapeToString(actual.shape)
                                         << ", expected " << core::ShapeToString(expected.shape);
  }
  int64_t differing = 0, first = -1, worst = -1;
  double max_diff = 0.0;
  for (size_t i = 0; i < actual.values.size(); ++i) {
    if (actual.values[i] == expected.values[i]) continue;
    ++differing;
    const double diff = std::abs(static_cast<double>(actual.values[i]) - expected.values[i]);
    if (first < 0) first = static_cast<int64_t>(i);
    if (worst < 0 || diff > max_diff || std::isnan(diff)) {
      max_diff = diff;
      worst = static_cast<int64_t>(i);
    }
  }
  if (differing == 0) return ::testing::AssertionSuccess();
  std::ostringstream message;
  message << std::setprecision(9) << what << ": " << differing << " of " << actual.size()
          << " elements differ; first at index " << first << " (" << actual.values[first] << " vs "
          << expected.values[first] << "), largest |diff| " << std::setprecision(3) << max_diff
          << " at index " << worst << std::setprecision(9) << " (" << actual.values[worst] << " vs "
          << expected.values[worst] << ", relative " << std::setprecision(3)
          << max_diff / std::abs(expected.values[worst]) << ")";
  return ::testing::AssertionFailure() << message.str();
}

}  // namespace recurrent::testing
