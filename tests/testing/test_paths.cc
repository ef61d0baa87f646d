#include "tests/testing/test_paths.h"

namespace recurrent::testing {

std::string SourcePath(const std::string& relative) {
  return std::string(RECURRENT_SOURCE_DIR) + "/" + relative;
}

}  // namespace recurrent::testing
