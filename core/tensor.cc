#include "core/tensor.h"

#include "absl/strings/str_join.h"

namespace recurrent::core {

std::string ShapeToString(const std::vector<int64_t>& shape) {
  return "[" + absl::StrJoin(shape, ", ") + "]";
}

}  // namespace recurrent::core
