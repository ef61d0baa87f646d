// The oneDNN engine (core/network.h, float32) against the independent double-precision
// reference (tests/testing/reference_rnn.h), whose own gradients are proven against finite
// differences in reference_gradient_test.cc. Both see bit-identical float32 parameters, inputs
// and initial states, so every difference is the engine's rounding or the engine's bug.
//
// Tolerance, per tensor: ||engine - reference||_2 <= kRelTol * ||reference||_2 + kAbsTol *
// sqrt(size), with kRelTol = 1e-5. A norm-wise bound is the defensible one for float32: an
// element that is tiny because of cancellation (a head-bias gradient summed over N*T terms of
// both signs) carries float32 noise relative to its terms, not to itself, and would fail any
// element-wise relative test although the tensor is right to float precision; a real bug (a
// swapped gate, a missing direction, a dropped time step) moves the whole norm by far more than
// 1e-5. kAbsTol only matters for tensors whose reference norm is (nearly) zero.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/model_spec.h"
#include "core/network.h"
#include "core/parameters.h"
#include "core/tensor.h"
#include "gtest/gtest.h"
#include "tests/testing/reference_rnn.h"
#include "tests/testing/tensor_testing.h"

namespace recurrent::testing {
namespace {

using core::CellType;
using core::HeadMode;
using core::LossType;
using core::ModelSpec;
using core::Network;

constexpr double kRelTol = 1e-5;
constexpr double kAbsTol = 1e-9;

// EXPECTs TensorNear and records the norm-wise relative error as a test property (kept in
// --gtest_output=xml reports), so tolerance headroom can be reviewed without a failure.
void ExpectNear(absl::string_view what, const core::Tensor& actual, const DoubleTensor& expected) {
  EXPECT_TRUE(TensorNear(what, actual, expected, kRelTol, kAbsTol));
  const TensorError error = MeasureError(actual.values, expected.values);
  ::testing::Test::RecordProperty(absl::StrCat("relative_error ", what),
                                  absl::StrCat(error.relative_error()));
}

struct EngineCase {
  CellType cell;
  int64_t layers;
  bool bidirectional;
  int64_t steps;  // T
  int64_t batch;  // N
  int64_t input_size;
  int64_t hidden_size;
  int64_t output_size;
  HeadMode head;
  LossType loss;
  bool given_initial_state;  // false: the engine gets nullptr, the reference zeros
};

std::string Describe(const EngineCase& c) {
  return absl::StrCat(core::CellTypeName(c.cell), "_L", c.layers, c.bidirectional ? "_bi" : "_uni",
                      "_T", c.steps, "_N", c.batch, "_I", c.input_size, "H", c.hidden_size, "O",
                      c.output_size, "_", core::HeadModeName(c.head), "_",
                      core::LossTypeName(c.loss), c.given_initial_state ? "_h0" : "_zero_h0");
}
std::string CaseName(const ::testing::TestParamInfo<EngineCase>& info) {
  return Describe(info.param);
}
void PrintTo(const EngineCase& c, std::ostream* os) { *os << Describe(c); }

ModelSpec SpecOf(const EngineCase& c) {
  ModelSpec spec;
  spec.cell = c.cell;
  spec.input_size = c.input_size;
  spec.hidden_size = c.hidden_size;
  spec.num_layers = c.layers;
  spec.bidirectional = c.bidirectional;
  spec.head = c.head;
  spec.output_size = c.output_size;
  spec.loss = c.loss;
  return spec;
}

// Every cell x 1..3 layers x uni/bidirectional x T in {1, 50}: 48 cases. The remaining axes
// (batch, sizes, head and loss, initial state) rotate with Latin-square style offsets so that,
// for every cell, each head/loss pair meets both T values and both directions, each size set
// appears, and batch and initial state vary independently of head/loss.
std::vector<EngineCase> AllEngineCases() {
  struct Sizes {
    int64_t input, hidden, output;
  };
  // Odd sizes, the degenerate 1-wide case, and a wider one (H = 16, a whole SIMD vector).
  const Sizes sizes[] = {{3, 5, 2}, {1, 1, 1}, {7, 16, 3}};
  const std::pair<HeadMode, LossType> head_losses[] = {
      {HeadMode::kPerStep, LossType::kMse},
      {HeadMode::kLastStep, LossType::kCrossEntropy},
      {HeadMode::kPerStep, LossType::kCrossEntropy},
      {HeadMode::kLastStep, LossType::kMse},
  };
  const CellType cells[] = {CellType::kRnnTanh, CellType::kRnnRelu, CellType::kLstm,
                            CellType::kGru};
  std::vector<EngineCase> cases;
  for (int c = 0; c < 4; ++c) {
    for (int l = 0; l < 3; ++l) {
      for (int b = 0; b < 2; ++b) {
        for (int t = 0; t < 2; ++t) {
          const int j = l * 4 + b * 2 + t;
          const Sizes& size = sizes[(j + c) % 3];
          const auto& [head, loss] = head_losses[(l + b + 2 * t + c) % 4];
          EngineCase engine_case;
          engine_case.cell = cells[c];
          engine_case.layers = l + 1;
          engine_case.bidirectional = b == 1;
          engine_case.steps = t == 0 ? 1 : 50;
          engine_case.batch = (l + t + c) % 2 == 0 ? 3 : 1;
          engine_case.input_size = size.input;
          engine_case.hidden_size = size.hidden;
          // Cross-entropy needs two classes at least.
          engine_case.output_size =
              loss == LossType::kCrossEntropy ? std::max<int64_t>(size.output, 2) : size.output;
          engine_case.head = head;
          engine_case.loss = loss;
          engine_case.given_initial_state = (b + t + c) % 2 == 0;
          cases.push_back(engine_case);
        }
      }
    }
  }
  return cases;
}

// Builds the network, the random problem and the reference's answer for one case.
class EngineReferenceTest : public ::testing::TestWithParam<EngineCase> {
 protected:
  void SetUp() override {
    const EngineCase& c = GetParam();
    spec_ = SpecOf(c);
    ASSERT_TRUE(core::ValidateSpec(spec_).ok()) << core::DescribeSpec(spec_);
    const uint64_t seed = 1000 * static_cast<uint64_t>(c.cell) + 100 * c.layers +
                          10 * c.bidirectional + c.steps + 7 * c.batch;
    params_ = core::InitParameters(spec_, seed);
    absl::StatusOr<std::unique_ptr<Network>> network = Network::Create(spec_, params_);
    ASSERT_TRUE(network.ok()) << network.status();
    network_ = *std::move(network);

    const int64_t N = c.batch, T = c.steps;
    inputs_ = RandomTensor({N, T, c.input_size}, 1.0, seed + 1);
    const int64_t rows = c.layers * spec_.num_directions();
    if (c.given_initial_state) {
      initial_.h = RandomTensor({rows, N, c.hidden_size}, 0.5, seed + 2);
      if (spec_.has_cell_state())
        initial_.c = RandomTensor({rows, N, c.hidden_size}, 0.5, seed + 3);
      reference_initial_ = ToDouble(initial_);
    } else {
      // What "null" means: zeros.
      reference_initial_.h = DoubleTensor({rows, N, c.hidden_size});
      if (spec_.has_cell_state()) reference_initial_.c = DoubleTensor({rows, N, c.hidden_size});
    }
    const bool per_step = c.head == HeadMode::kPerStep;
    if (c.loss == LossType::kMse) {
      targets_.values = per_step ? RandomTensor({N, T, c.output_size}, 1.0, seed + 4)
                                 : RandomTensor({N, c.output_size}, 1.0, seed + 4);
    } else {
      targets_.labels = RandomLabels(per_step ? N * T : N, c.output_size, seed + 5);
    }
    absl::StatusOr<ReferenceResult> reference =
        ReferenceForwardBackward(spec_, ToDouble(params_), ToDouble(inputs_), targets_,
                                 &reference_initial_, /*compute_gradients=*/true);
    ASSERT_TRUE(reference.ok()) << reference.status();
    reference_ = *std::move(reference);
    // relu's derivative jumps at 0: a pre-activation within float32 rounding of 0 may take the
    // other branch in the engine, a legitimate difference this test must not see. Margins are
    // ~1e-4 for these seeds; a change of seed that broke this would fail here, not mysteriously.
    RecordProperty("min_relu_margin", absl::StrCat(reference_.min_relu_margin));
    ASSERT_GT(reference_.min_relu_margin, 1e-6);
  }

  const core::RecurrentState* engine_initial() const {
    return GetParam().given_initial_state ? &initial_ : nullptr;
  }

  ModelSpec spec_;
  core::ParameterSet params_;
  std::unique_ptr<Network> network_;
  core::Tensor inputs_;
  core::RecurrentState initial_;
  DoubleState reference_initial_;
  core::Targets targets_;
  ReferenceResult reference_;
};

TEST_P(EngineReferenceTest, ForwardMatchesTheReference) {
  core::ForwardResult result;
  core::ForwardOptions options;
  options.want_hidden = true;
  ASSERT_TRUE(network_->Forward(inputs_, engine_initial(), &result, options).ok());
  ExpectNear("outputs", result.outputs, reference_.outputs);
  ExpectNear("hidden", result.hidden, reference_.hidden);
  ExpectNear("h_n", result.final_state.h, reference_.final_state.h);
  if (spec_.has_cell_state()) {
    ExpectNear("c_n", result.final_state.c, reference_.final_state.c);
  } else {
    EXPECT_TRUE(result.final_state.c.empty());
  }
}

TEST_P(EngineReferenceTest, ForwardBackwardMatchesTheReference) {
  core::TrainingResult result;
  const absl::Status status =
      network_->ForwardBackward(inputs_, targets_, engine_initial(), &result);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_NEAR(result.loss, reference_.loss, kRelTol * std::abs(reference_.loss) + kAbsTol)
      << "relative error " << std::abs(result.loss - reference_.loss) / reference_.loss;
  ExpectNear("outputs", result.outputs, reference_.outputs);
  ExpectNear("h_n", result.final_state.h, reference_.final_state.h);
  if (spec_.has_cell_state()) {
    ExpectNear("c_n", result.final_state.c, reference_.final_state.c);
  }

  EXPECT_EQ(result.gradients.size(), reference_.gradients.size());
  for (const auto& [name, expected] : reference_.gradients) {
    const auto it = result.gradients.find(name);
    if (it == result.gradients.end()) {
      ADD_FAILURE() << "no gradient for " << name;
      continue;
    }
    ExpectNear(absl::StrCat("d ", name), it->second, expected);
  }
  ExpectNear("d h_0", result.initial_state_gradients.h, reference_.initial_state_gradients.h);
  if (spec_.has_cell_state()) {
    ExpectNear("d c_0", result.initial_state_gradients.c, reference_.initial_state_gradients.c);
  }
}

INSTANTIATE_TEST_SUITE_P(CellsLayersDirectionsLengths, EngineReferenceTest,
                         ::testing::ValuesIn(AllEngineCases()), CaseName);

// --- Parameters in and out. ---

ModelSpec SmallSpec(CellType cell) {
  ModelSpec spec;
  spec.cell = cell;
  spec.input_size = 3;
  spec.hidden_size = 5;
  spec.num_layers = 2;
  spec.output_size = 2;
  return spec;
}

TEST(EngineParametersTest, GetParametersReturnsExactlyWhatCreateWasGiven) {
  for (const CellType cell :
       {CellType::kRnnTanh, CellType::kRnnRelu, CellType::kLstm, CellType::kGru}) {
    ModelSpec spec = SmallSpec(cell);
    spec.bidirectional = true;
    const core::ParameterSet params = core::InitParameters(spec, 3);
    absl::StatusOr<std::unique_ptr<Network>> network = Network::Create(spec, params);
    ASSERT_TRUE(network.ok()) << network.status();
    const core::ParameterSet back = (*network)->GetParameters();
    ASSERT_EQ(back.size(), params.size()) << core::CellTypeName(cell);
    for (const auto& [name, tensor] : params) {
      ASSERT_TRUE(back.count(name)) << name;
      EXPECT_EQ(back.at(name).shape, tensor.shape) << name;
      EXPECT_EQ(back.at(name).values, tensor.values) << core::CellTypeName(cell) << " " << name;
    }
  }
}

TEST(EngineParametersTest, ForwardUsesWeightsReplacedBySetParameters) {
  for (const CellType cell : {CellType::kLstm, CellType::kGru}) {
    const ModelSpec spec = SmallSpec(cell);
    absl::StatusOr<std::unique_ptr<Network>> network =
        Network::Create(spec, core::InitParameters(spec, 1));
    ASSERT_TRUE(network.ok()) << network.status();
    const core::Tensor inputs = RandomTensor({2, 6, 3}, 1.0, 5);
    core::ForwardResult before;
    ASSERT_TRUE((*network)->Forward(inputs, nullptr, &before).ok());  // builds the cached copies
    const core::ParameterSet replaced = core::InitParameters(spec, 2);
    ASSERT_TRUE((*network)->SetParameters(replaced).ok());
    core::ForwardResult after;
    ASSERT_TRUE((*network)->Forward(inputs, nullptr, &after).ok());
    absl::StatusOr<ReferenceResult> reference =
        ReferenceForward(spec, ToDouble(replaced), ToDouble(inputs), nullptr);
    ASSERT_TRUE(reference.ok());
    ExpectNear("outputs", after.outputs, reference->outputs);
  }
}

TEST(EngineParametersTest, CreateRejectsMissingOrMisshapenParameters) {
  const ModelSpec spec = SmallSpec(CellType::kGru);
  core::ParameterSet params = core::InitParameters(spec, 1);
  params.erase("weight_hh_l1");
  EXPECT_EQ(Network::Create(spec, params).status().code(), absl::StatusCode::kInvalidArgument);
  params = core::InitParameters(spec, 1);
  params.at("head.weight") = core::Tensor({2, 4});
  EXPECT_EQ(Network::Create(spec, params).status().code(), absl::StatusCode::kInvalidArgument);
}

// --- Streaming: Step against Forward and the reference. ---

// What stepping N streams T times from zero state produced, in Forward's layouts.
struct Stepped {
  core::Tensor outputs;              // [N, T, O] per_step; [N, O] (the last step's) last_step
  core::RecurrentState final_state;  // [L, N, H] rebuilt from the per-stream state blocks
};

absl::StatusOr<Stepped> StepThrough(Network& network, const core::Tensor& inputs) {
  const ModelSpec& spec = network.spec();
  const int64_t N = inputs.shape[0], T = inputs.shape[1];
  const int64_t I = spec.input_size, H = spec.hidden_size, O = spec.output_size;
  const int64_t L = spec.num_layers;
  const bool per_step = spec.head == HeadMode::kPerStep;
  std::vector<std::vector<float>> states(N, std::vector<float>(network.step_state_size(), 0.0f));
  std::vector<float*> state_ptrs;
  for (auto& state : states) state_ptrs.push_back(state.data());
  std::vector<float> step_inputs(N * I), step_outputs(N * O);
  Stepped stepped;
  stepped.outputs = per_step ? core::Tensor({N, T, O}) : core::Tensor({N, O});
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t n = 0; n < N; ++n) {
      for (int64_t i = 0; i < I; ++i) step_inputs[n * I + i] = inputs.values[(n * T + t) * I + i];
    }
    const absl::Status status =
        network.Step(step_inputs.data(), N, state_ptrs.data(), step_outputs.data());
    if (!status.ok()) return status;
    if (!per_step && t != T - 1) continue;
    for (int64_t n = 0; n < N; ++n) {
      for (int64_t o = 0; o < O; ++o) {
        stepped.outputs.values[(per_step ? n * T + t : n) * O + o] = step_outputs[n * O + o];
      }
    }
  }
  // A state block is h of layers 0..L-1, then c of layers 0..L-1; state rows are l (D = 1).
  stepped.final_state.h = core::Tensor({L, N, H});
  if (spec.has_cell_state()) stepped.final_state.c = core::Tensor({L, N, H});
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t l = 0; l < L; ++l) {
      for (int64_t j = 0; j < H; ++j) {
        stepped.final_state.h.values[(l * N + n) * H + j] = states[n][l * H + j];
        if (spec.has_cell_state()) {
          stepped.final_state.c.values[(l * N + n) * H + j] = states[n][L * H + l * H + j];
        }
      }
    }
  }
  return stepped;
}

struct StepCase {
  CellType cell;
  HeadMode head;
  int64_t batch;  // N streams
  int64_t steps;  // T
};

std::string Describe(const StepCase& c) {
  return absl::StrCat(core::CellTypeName(c.cell), "_L3_", core::HeadModeName(c.head), "_N", c.batch,
                      "_T", c.steps);
}
void PrintTo(const StepCase& c, std::ostream* os) { *os << Describe(c); }

class EngineStepTest : public ::testing::TestWithParam<StepCase> {
 protected:
  void SetUp() override {
    spec_ = SmallSpec(GetParam().cell);
    spec_.num_layers = 3;
    spec_.head = GetParam().head;
    params_ = core::InitParameters(spec_, 77);
    absl::StatusOr<std::unique_ptr<Network>> network = Network::Create(spec_, params_);
    ASSERT_TRUE(network.ok()) << network.status();
    network_ = *std::move(network);
    ASSERT_EQ(network_->step_state_size(),
              (spec_.has_cell_state() ? 2 : 1) * spec_.num_layers * spec_.hidden_size);
    inputs_ = RandomTensor({GetParam().batch, GetParam().steps, spec_.input_size}, 1.0, 78);
    absl::StatusOr<Stepped> stepped = StepThrough(*network_, inputs_);
    ASSERT_TRUE(stepped.ok()) << stepped.status();
    stepped_ = *std::move(stepped);
  }

  ModelSpec spec_;
  core::ParameterSet params_;
  std::unique_ptr<Network> network_;
  core::Tensor inputs_;
  Stepped stepped_;
};

// Streaming and step-consistent batch inference must not disagree in any bit (network.h).
TEST_P(EngineStepTest, SteppingEqualsStepConsistentForwardBitwise) {
  core::ForwardOptions options;
  options.step_consistent = true;
  core::ForwardResult forward;
  const absl::Status status = network_->Forward(inputs_, nullptr, &forward, options);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_TRUE(BitwiseEqual("outputs", stepped_.outputs, forward.outputs));
  EXPECT_TRUE(BitwiseEqual("h_n", stepped_.final_state.h, forward.final_state.h));
  if (spec_.has_cell_state()) {
    EXPECT_TRUE(BitwiseEqual("c_n", stepped_.final_state.c, forward.final_state.c));
  }
}

// The default (whole-sequence) Forward agrees with stepping to float rounding, and both with
// the reference: this is what checks Step's own math, head included.
TEST_P(EngineStepTest, SteppingMatchesDefaultForwardAndTheReference) {
  core::ForwardResult forward;
  ASSERT_TRUE(network_->Forward(inputs_, nullptr, &forward).ok());
  ExpectNear("outputs vs Forward", stepped_.outputs, ToDouble(forward.outputs));
  ExpectNear("h_n vs Forward", stepped_.final_state.h, ToDouble(forward.final_state.h));
  absl::StatusOr<ReferenceResult> reference =
      ReferenceForward(spec_, ToDouble(params_), ToDouble(inputs_), nullptr);
  ASSERT_TRUE(reference.ok());
  ExpectNear("outputs vs reference", stepped_.outputs, reference->outputs);
  ExpectNear("h_n vs reference", stepped_.final_state.h, reference->final_state.h);
  if (spec_.has_cell_state()) {
    ExpectNear("c_n vs reference", stepped_.final_state.c, reference->final_state.c);
  }
}

std::vector<StepCase> AllStepCases() {
  std::vector<StepCase> cases;
  for (const CellType cell :
       {CellType::kRnnTanh, CellType::kRnnRelu, CellType::kLstm, CellType::kGru}) {
    for (const HeadMode head : {HeadMode::kPerStep, HeadMode::kLastStep}) {
      // Batches of 1-4 run the packed kernel (core/small_batch_step.h), larger ones oneDNN.
      cases.push_back({cell, head, /*batch=*/3, /*steps=*/9});
      cases.push_back({cell, head, /*batch=*/1, /*steps=*/4});
      cases.push_back({cell, head, /*batch=*/6, /*steps=*/5});
    }
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(UnidirectionalThreeLayerCells, EngineStepTest,
                         ::testing::ValuesIn(AllStepCases()),
                         [](const ::testing::TestParamInfo<StepCase>& info) {
                           return Describe(info.param);
                         });

TEST(EngineStepValidationTest, StepRejectsBidirectionalModels) {
  ModelSpec spec = SmallSpec(CellType::kLstm);
  spec.bidirectional = true;
  absl::StatusOr<std::unique_ptr<Network>> network =
      Network::Create(spec, core::InitParameters(spec, 1));
  ASSERT_TRUE(network.ok()) << network.status();
  // Buffers big enough for any layout, so a wrong acceptance cannot also corrupt memory.
  const int64_t big = 4 * spec.num_layers * spec.hidden_size;
  std::vector<float> inputs(spec.input_size, 0.5f), state(big, 0.0f), outputs(spec.output_size);
  float* states[] = {state.data()};
  const absl::Status status = (*network)->Step(inputs.data(), 1, states, outputs.data());
  EXPECT_TRUE(status.code() == absl::StatusCode::kFailedPrecondition ||
              status.code() == absl::StatusCode::kInvalidArgument)
      << status;
  // Nor can a bidirectional model be run "step-consistently".
  core::ForwardOptions options;
  options.step_consistent = true;
  core::ForwardResult result;
  EXPECT_FALSE(
      (*network)
          ->Forward(RandomTensor({1, 3, spec.input_size}, 1.0, 1), nullptr, &result, options)
          .ok());
}

// --- Input validation. ---

class EngineValidationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    spec_ = SmallSpec(CellType::kLstm);
    spec_.loss = LossType::kCrossEntropy;
    spec_.output_size = 3;
    absl::StatusOr<std::unique_ptr<Network>> network =
        Network::Create(spec_, core::InitParameters(spec_, 1));
    ASSERT_TRUE(network.ok()) << network.status();
    network_ = *std::move(network);
    inputs_ = RandomTensor({kN, kT, spec_.input_size}, 1.0, 2);
  }

  absl::StatusCode ForwardCode(const core::Tensor& inputs, const core::RecurrentState* state) {
    core::ForwardResult result;
    return network_->Forward(inputs, state, &result).code();
  }
  absl::StatusCode TrainCode(const core::Targets& targets) {
    core::TrainingResult result;
    return network_->ForwardBackward(inputs_, targets, nullptr, &result).code();
  }
  core::RecurrentState State(int64_t rows, int64_t batch, int64_t hidden) const {
    return {core::Tensor({rows, batch, hidden}), core::Tensor({rows, batch, hidden})};
  }

  static constexpr int64_t kN = 2, kT = 4;
  ModelSpec spec_;
  std::unique_ptr<Network> network_;
  core::Tensor inputs_;
};

TEST_F(EngineValidationTest, AcceptsWellFormedCalls) {
  const core::RecurrentState state = State(2, kN, 5);
  EXPECT_EQ(ForwardCode(inputs_, &state), absl::StatusCode::kOk);
  core::Targets targets;
  targets.labels = RandomLabels(kN * kT, 3, 1);
  EXPECT_EQ(TrainCode(targets), absl::StatusCode::kOk);
}

TEST_F(EngineValidationTest, ForwardRejectsInputsOfTheWrongRank) {
  EXPECT_EQ(ForwardCode(core::Tensor({kN * kT, 3}), nullptr), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ForwardCode(core::Tensor({1, kN, kT, 3}), nullptr), absl::StatusCode::kInvalidArgument);
}

TEST_F(EngineValidationTest, ForwardRejectsTheWrongChannelCount) {
  EXPECT_EQ(ForwardCode(core::Tensor({kN, kT, 4}), nullptr), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ForwardCode(core::Tensor({kN, kT, 1}), nullptr), absl::StatusCode::kInvalidArgument);
}

TEST_F(EngineValidationTest, ForwardRejectsValuesThatDoNotFillTheShape) {
  core::Tensor short_inputs = inputs_;
  short_inputs.values.pop_back();
  EXPECT_EQ(ForwardCode(short_inputs, nullptr), absl::StatusCode::kInvalidArgument);
}

TEST_F(EngineValidationTest, ForwardRejectsInitialStatesOfTheWrongShape) {
  core::RecurrentState state = State(1, kN, 5);  // needs L*D = 2 rows
  EXPECT_EQ(ForwardCode(inputs_, &state), absl::StatusCode::kInvalidArgument);
  state = State(2, kN + 1, 5);  // batch mismatch
  EXPECT_EQ(ForwardCode(inputs_, &state), absl::StatusCode::kInvalidArgument);
  state = State(2, kN, 6);  // hidden mismatch
  EXPECT_EQ(ForwardCode(inputs_, &state), absl::StatusCode::kInvalidArgument);
  state = State(2, kN, 5);
  state.c = core::Tensor({2, kN, 4});  // LSTM's c must match h
  EXPECT_EQ(ForwardCode(inputs_, &state), absl::StatusCode::kInvalidArgument);
  state.c = core::Tensor();  // and must be there
  EXPECT_EQ(ForwardCode(inputs_, &state), absl::StatusCode::kInvalidArgument);
}

TEST_F(EngineValidationTest, ForwardBackwardRejectsLabelsOutOfRangeOrMiscounted) {
  core::Targets targets;
  targets.labels = RandomLabels(kN * kT, 3, 1);
  targets.labels[3] = 3;  // == O
  EXPECT_EQ(TrainCode(targets), absl::StatusCode::kInvalidArgument);
  targets.labels[3] = -1;
  EXPECT_EQ(TrainCode(targets), absl::StatusCode::kInvalidArgument);
  targets.labels = RandomLabels(kN * kT - 1, 3, 1);
  EXPECT_EQ(TrainCode(targets), absl::StatusCode::kInvalidArgument);
}

TEST(EngineValidationMseTest, ForwardBackwardRejectsTargetsOfTheWrongShape) {
  ModelSpec spec = SmallSpec(CellType::kGru);
  absl::StatusOr<std::unique_ptr<Network>> network =
      Network::Create(spec, core::InitParameters(spec, 1));
  ASSERT_TRUE(network.ok()) << network.status();
  const core::Tensor inputs = RandomTensor({2, 4, 3}, 1.0, 2);
  core::Targets targets;
  core::TrainingResult result;
  targets.values = RandomTensor({2, 4, 2}, 1.0, 3);
  EXPECT_TRUE((*network)->ForwardBackward(inputs, targets, nullptr, &result).ok());
  targets.values = RandomTensor({2, 2}, 1.0, 3);  // last_step's shape on a per_step head
  EXPECT_EQ((*network)->ForwardBackward(inputs, targets, nullptr, &result).code(),
            absl::StatusCode::kInvalidArgument);
  targets.values = RandomTensor({2, 4, 3}, 1.0, 3);
  EXPECT_EQ((*network)->ForwardBackward(inputs, targets, nullptr, &result).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace recurrent::testing
