#include "server/request_validation.h"

#include <cmath>
#include <string>

#include "absl/strings/str_cat.h"

namespace recurrent::server {
namespace {

absl::Status Invalid(absl::string_view message) { return absl::InvalidArgumentError(message); }

// steps * input_size, the values a sequence needs, as text for the error messages. `steps` is
// bounded by a server flag of any size, so the product is computed without overflow.
bool NeededValues(int64_t steps, int64_t input_size, int64_t* needed) {
  return !__builtin_mul_overflow(steps, input_size, needed);
}

std::string NeededText(bool fits, int64_t needed) {
  return fits ? absl::StrCat(needed) : std::string("more than 2^63");
}

}  // namespace

absl::Status ValidatePredictRequest(const v1::PredictRequest& request, const core::ModelSpec& spec,
                                    const PredictLimits& limits) {
  const int64_t count = request.sequences_size();
  if (count == 0) return Invalid("sequences is empty: send at least one sequence");
  if (count > limits.max_sequences) {
    return Invalid(
        absl::StrCat(count, " sequences, over --max_predict_sequences=", limits.max_sequences));
  }
  int64_t total_values = 0;
  for (int64_t i = 0; i < count; ++i) {
    const v1::InputSequence& sequence = request.sequences(static_cast<int>(i));
    if (sequence.steps() < 1 || sequence.steps() > limits.max_steps) {
      return Invalid(absl::StrCat("sequences[", i, "].steps is ", sequence.steps(),
                                  "; it must be in [1, ", limits.max_steps, "]"));
    }
    int64_t needed = 0;
    const bool fits = NeededValues(sequence.steps(), spec.input_size, &needed);
    if (!fits || sequence.values_size() != needed) {
      return Invalid(absl::StrCat("sequences[", i, "] has ", sequence.values_size(), " values; ",
                                  sequence.steps(), " steps of the model's ", spec.input_size,
                                  " inputs need ", NeededText(fits, needed)));
    }
    for (int v = 0; v < sequence.values_size(); ++v) {
      if (!std::isfinite(sequence.values(v))) {
        return Invalid(absl::StrCat("sequences[", i, "] value ", v, " is not finite"));
      }
    }
    total_values += sequence.values_size();
    if (total_values > limits.max_values) {
      return Invalid(absl::StrCat(
          "the request holds more than --max_predict_values=", limits.max_values, " input values"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateOpenRequest(const v1::StepRequest& request) {
  if (!request.has_open()) {
    return Invalid("the first StepPredict message must be `open` (a model, or a snapshot)");
  }
  return absl::OkStatus();
}

absl::Status ValidateResumedState(int64_t snapshot_floats, int64_t model_state_floats) {
  if (snapshot_floats != model_state_floats) {
    return Invalid("resume_from holds a state of the wrong size for its model");
  }
  return absl::OkStatus();
}

absl::Status ValidateStepInput(const v1::StepInput& step, const core::ModelSpec& spec,
                               int64_t max_steps) {
  if (step.steps() < 1 || step.steps() > max_steps) {
    return Invalid(absl::StrCat("step.steps is ", step.steps(), "; it must be in [1, ", max_steps,
                                "] (--max_steps_per_message)"));
  }
  int64_t needed = 0;
  const bool fits = NeededValues(step.steps(), spec.input_size, &needed);
  if (!fits || step.values_size() != needed) {
    return Invalid(absl::StrCat("step has ", step.values_size(), " values; ", step.steps(),
                                " steps of ", spec.input_size, " inputs need ",
                                NeededText(fits, needed)));
  }
  for (int v = 0; v < step.values_size(); ++v) {
    if (!std::isfinite(step.values(v))) {
      return Invalid(absl::StrCat("step value ", v, " is not finite"));
    }
  }
  return absl::OkStatus();
}

}  // namespace recurrent::server
