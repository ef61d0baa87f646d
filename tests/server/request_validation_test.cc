#include "server/request_validation.h"

#include <limits>

#include "gtest/gtest.h"

namespace recurrent::server {
namespace {

core::ModelSpec TwoInputs() {
  core::ModelSpec spec;
  spec.input_size = 2;
  return spec;
}

v1::InputSequence Sequence(int64_t steps, std::vector<float> values) {
  v1::InputSequence sequence;
  sequence.set_steps(steps);
  sequence.mutable_values()->Add(values.begin(), values.end());
  return sequence;
}

void ExpectInvalid(const absl::Status& status, absl::string_view message) {
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_EQ(status.message(), message);
}

TEST(ValidatePredictRequestTest, AcceptsSequencesThatFitTheModel) {
  v1::PredictRequest request;
  *request.add_sequences() = Sequence(2, {1, 2, 3, 4});
  *request.add_sequences() = Sequence(1, {-1, 0});
  EXPECT_TRUE(ValidatePredictRequest(request, TwoInputs(), PredictLimits{}).ok());
}

TEST(ValidatePredictRequestTest, NamesTheSequenceAndTheLimit) {
  v1::PredictRequest request;
  ExpectInvalid(ValidatePredictRequest(request, TwoInputs(), PredictLimits{}),
                "sequences is empty: send at least one sequence");
  *request.add_sequences() = Sequence(1, {1, 2});
  *request.add_sequences() = Sequence(0, {});
  ExpectInvalid(ValidatePredictRequest(request, TwoInputs(), PredictLimits{}),
                "sequences[1].steps is 0; it must be in [1, 100000]");
  ExpectInvalid(ValidatePredictRequest(request, TwoInputs(), PredictLimits{1, 10, 100}),
                "2 sequences, over --max_predict_sequences=1");
  *request.mutable_sequences(1) = Sequence(2, {1, 2, 3});
  ExpectInvalid(ValidatePredictRequest(request, TwoInputs(), PredictLimits{}),
                "sequences[1] has 3 values; 2 steps of the model's 2 inputs need 4");
  *request.mutable_sequences(1) = Sequence(1, {1, std::numeric_limits<float>::infinity()});
  ExpectInvalid(ValidatePredictRequest(request, TwoInputs(), PredictLimits{}),
                "sequences[1] value 1 is not finite");
  *request.mutable_sequences(1) = Sequence(1, {1, 2});
  ExpectInvalid(ValidatePredictRequest(request, TwoInputs(), PredictLimits{4, 10, 3}),
                "the request holds more than --max_predict_values=3 input values");
}

TEST(ValidatePredictRequestTest, SurvivesAStepCountWhoseValueCountOverflows) {
  v1::PredictRequest request;
  *request.add_sequences() = Sequence(int64_t{1} << 62, {1});
  const PredictLimits no_step_limit{4, std::numeric_limits<int64_t>::max(), 100};
  const absl::Status status = ValidatePredictRequest(request, TwoInputs(), no_step_limit);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("need more than 2^63"), absl::string_view::npos) << status;
}

TEST(ValidateStepInputTest, ChecksStepsValuesAndFiniteness) {
  v1::StepInput step;
  step.set_steps(2);
  for (const float value : {1, 2, 3, 4}) step.add_values(value);
  EXPECT_TRUE(ValidateStepInput(step, TwoInputs(), 1024).ok());
  ExpectInvalid(ValidateStepInput(step, TwoInputs(), 1),
                "step.steps is 2; it must be in [1, 1] (--max_steps_per_message)");
  step.mutable_values()->Add(5);
  ExpectInvalid(ValidateStepInput(step, TwoInputs(), 1024),
                "step has 5 values; 2 steps of 2 inputs need 4");
  step.mutable_values()->RemoveLast();
  step.set_values(3, std::numeric_limits<float>::quiet_NaN());
  ExpectInvalid(ValidateStepInput(step, TwoInputs(), 1024), "step value 3 is not finite");
}

TEST(ValidateOpenRequestTest, OnlyOpenMayStartAStream) {
  v1::StepRequest request;
  request.set_reset(true);
  ExpectInvalid(ValidateOpenRequest(request),
                "the first StepPredict message must be `open` (a model, or a snapshot)");
  request.mutable_open();
  EXPECT_TRUE(ValidateOpenRequest(request).ok());
}

TEST(ValidateResumedStateTest, TheStateMustFitTheModel) {
  EXPECT_TRUE(ValidateResumedState(16, 16).ok());
  ExpectInvalid(ValidateResumedState(15, 16),
                "resume_from holds a state of the wrong size for its model");
}

}  // namespace
}  // namespace recurrent::server
