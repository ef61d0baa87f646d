// A dense, row-major float32 tensor: the currency of the engine's public API.
#ifndef RECURRENT_CORE_TENSOR_H_
#define RECURRENT_CORE_TENSOR_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace recurrent::core {

struct Tensor {
  Tensor() = default;
  explicit Tensor(std::vector<int64_t> tensor_shape)
      : shape(std::move(tensor_shape)), values(ElementCount(shape), 0.0f) {}
  Tensor(std::vector<int64_t> tensor_shape, std::vector<float> tensor_values)
      : shape(std::move(tensor_shape)), values(std::move(tensor_values)) {}

  // Number of elements a tensor of `dims` holds (1 for a scalar shape {}).
  static int64_t ElementCount(const std::vector<int64_t>& dims) {
    int64_t count = 1;
    for (const int64_t d : dims) count *= d;
    return count;
  }

  int64_t size() const { return static_cast<int64_t>(values.size()); }
  bool empty() const { return values.empty(); }
  float* data() { return values.data(); }
  const float* data() const { return values.data(); }

  std::vector<int64_t> shape;
  std::vector<float> values;
};

// "[2, 3, 4]": for error messages.
std::string ShapeToString(const std::vector<int64_t>& shape);

}  // namespace recurrent::core

#endif  // RECURRENT_CORE_TENSOR_H_
