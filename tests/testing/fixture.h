// Reader for the PyTorch parity fixtures written by scripts/gen_fixtures.py (format v1, defined
// in that script's docstring; keep the two in sync). A fixture is one network run forward and
// backward by PyTorch: its spec, parameters, inputs, initial states, targets, and every value the
// engine must reproduce.
#ifndef RECURRENT_TESTS_TESTING_FIXTURE_H_
#define RECURRENT_TESTS_TESTING_FIXTURE_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/model_spec.h"
#include "core/parameters.h"
#include "core/tensor.h"

namespace recurrent::testing {

struct Fixture {
  core::ModelSpec spec;
  core::ParameterSet parameters;  // `param` records: PyTorch state_dict names and layout
  core::ParameterSet gradients;   // `grad` records: d loss / d parameter, same names
  // `tensor` records: inputs, h0, c0, targets, outputs, hidden, h_n, c_n, grad_h0, grad_c0.
  std::map<std::string, core::Tensor> tensors;
  std::vector<int32_t> labels;            // cross-entropy class indices; empty for mse
  std::map<std::string, double> scalars;  // loss

  // The named `tensor` record, or NotFound.
  absl::StatusOr<const core::Tensor*> GetTensor(const std::string& name) const;
  // The named scalar, or NotFound.
  absl::StatusOr<double> GetScalar(const std::string& name) const;
};

// Parses fixture text. Returns InvalidArgument naming the line and the problem when the text is
// not format v1: a missing or wrong header, an unknown record, a malformed or incomplete spec, a
// value count that does not match the shape, an unparsable number, a duplicate name; or when
// the spec is invalid (core::ValidateSpec) or the parameters or gradients do not match it
// (core::ValidateParameters).
absl::StatusOr<Fixture> ParseFixture(absl::string_view text);

// Reads and parses the file at `path`; errors name the path.
absl::StatusOr<Fixture> ReadFixture(const std::string& path);

// The *.txt files directly inside `directory`, sorted by name; empty if there is no such
// directory.
std::vector<std::string> ListFixtureFiles(const std::string& directory);

}  // namespace recurrent::testing

#endif  // RECURRENT_TESTS_TESTING_FIXTURE_H_
