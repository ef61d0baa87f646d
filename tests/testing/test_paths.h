// Where tests find files committed in the repository (fixtures, seed corpora).
#ifndef RECURRENT_TESTS_TESTING_TEST_PATHS_H_
#define RECURRENT_TESTS_TESTING_TEST_PATHS_H_

#include <string>

namespace recurrent::testing {

// Absolute path of `relative` (e.g. "tests/core/fixtures/lstm.txt") inside the source tree.
std::string SourcePath(const std::string& relative);

}  // namespace recurrent::testing

#endif  // RECURRENT_TESTS_TESTING_TEST_PATHS_H_
