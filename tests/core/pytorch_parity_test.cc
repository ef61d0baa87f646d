// The engine against PyTorch 1.13: every fixture in tests/core/fixtures (written by
// scripts/gen_fixtures.py) is one network run forward and backward by PyTorch in float32; the
// engine must reproduce its outputs, top-layer hidden sequence, final states, loss, parameter
// gradients and initial-state gradients, and stepping a unidirectional network one timestep at a
// time must reproduce its Forward.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "core/model_spec.h"
#include "core/network.h"
#include "core/parameters.h"
#include "core/tensor.h"
#include "gtest/gtest.h"
#include "tests/testing/fixture.h"
#include "tests/testing/test_paths.h"

namespace recurrent::core {
namespace {

namespace fixtures = ::recurrent::testing;

constexpr char kFixtureDirectory[] = "tests/core/fixtures";

// PyTorch's float32 result is itself only accurate to a few ulps, and the engine sums in another
// order (oneDNN GEMMs, fused biases): the toolchain check measured <= 3e-6 for LSTM and GRU. The
// bound scales with the tensor's magnitude so that large gradients are not held to an absolute
// error their own rounding exceeds.
constexpr double kRelativeTolerance = 1e-5;

double MaxAbs(const Tensor& tensor) {
  double max_abs = 0.0;
  for (const float v : tensor.values) max_abs = std::max(max_abs, std::fabs(double{v}));
  return max_abs;
}

// Collects every comparison of one test so that the worst one can be reported even when all pass.
class Comparator {
 public:
  explicit Comparator(std::string fixture) : fixture_(std::move(fixture)) {}

  ~Comparator() {
    if (worst_name_.empty()) return;
    std::cout << "[ parity   ] " << fixture_ << ": " << compared_ << " tensors, worst "
              << worst_name_ << " max|a-b|=" << worst_error_ << " (" << worst_ratio_
              << " of its tolerance)" << std::endl;
  }

  // Adds a failure unless `actual` has `expected`'s shape and max|a-b| <= tolerance, where the
  // tolerance is kRelativeTolerance * max(1, max|expected|).
  void Expect(const std::string& name, const Tensor& actual, const Tensor& expected) {
    if (actual.shape != expected.shape || actual.size() != expected.size()) {
      ADD_FAILURE() << fixture_ << ": " << name << " has shape " << ShapeToString(actual.shape)
                    << " with " << actual.size() << " values, PyTorch's is "
                    << ShapeToString(expected.shape);
      return;
    }
    double max_error = 0.0;
    int64_t worst_index = 0;
    for (int64_t i = 0; i < expected.size(); ++i) {
      const double error = std::fabs(double{actual.values[i]} - double{expected.values[i]});
      // A NaN counts as an infinite error, so that it fails and is reported.
      if (std::isnan(error) || error > max_error) {
        max_error = std::isnan(error) ? INFINITY : error;
        worst_index = i;
      }
    }
    Record(name, max_error, std::max(1.0, MaxAbs(expected)));
    if (!(max_error <= Tolerance(expected))) {
      ADD_FAILURE() << fixture_ << ": " << name << " " << ShapeToString(expected.shape)
                    << " differs from PyTorch by max|a-b|=" << max_error << " > tolerance "
                    << Tolerance(expected) << "; at flat index " << worst_index << " engine "
                    << actual.values[worst_index] << " vs PyTorch " << expected.values[worst_index];
    }
  }

  void ExpectScalar(const std::string& name, double actual, double expected) {
    const double scale = std::max(1.0, std::fabs(expected));
    const double error = std::fabs(actual - expected);
    Record(name, error, scale);
    if (!(error <= kRelativeTolerance * scale)) {
      ADD_FAILURE() << fixture_ << ": " << name << " " << actual << " differs from PyTorch's "
                    << expected << " by " << error;
    }
  }

 private:
  static double Tolerance(const Tensor& expected) {
    return kRelativeTolerance * std::max(1.0, MaxAbs(expected));
  }

  void Record(const std::string& name, double error, double scale) {
    ++compared_;
    const double ratio = error / (kRelativeTolerance * scale);
    if (worst_name_.empty() || !(ratio <= worst_ratio_)) {
      worst_name_ = name;
      worst_error_ = error;
      worst_ratio_ = ratio;
    }
  }

  std::string fixture_;
  int compared_ = 0;
  std::string worst_name_;
  double worst_error_ = 0.0;
  double worst_ratio_ = 0.0;
};

// Fixture stems ("lstm", "gru_3layer_per_step_ce", ...): the test parameter and test name.
std::vector<std::string> FixtureNames() {
  std::vector<std::string> names;
  for (const std::string& path :
       fixtures::ListFixtureFiles(fixtures::SourcePath(kFixtureDirectory))) {
    names.push_back(std::filesystem::path(path).stem().string());
  }
  return names;
}

class PyTorchParityTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    const std::string path =
        fixtures::SourcePath(absl::StrCat(kFixtureDirectory, "/", GetParam(), ".txt"));
    absl::StatusOr<fixtures::Fixture> loaded = fixtures::ReadFixture(path);
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    fixture_ = *std::move(loaded);
  }

  // The named tensor; fails the test (and returns an empty tensor) when the fixture lacks it.
  const Tensor& Get(const std::string& name) {
    static const Tensor* const kEmpty = new Tensor();
    const absl::StatusOr<const Tensor*> tensor = fixture_.GetTensor(name);
    if (!tensor.ok()) {
      ADD_FAILURE() << GetParam() << ": " << tensor.status();
      return *kEmpty;
    }
    return **tensor;
  }

  RecurrentState InitialState() {
    RecurrentState state;
    state.h = Get("h0");
    if (fixture_.spec.has_cell_state()) state.c = Get("c0");
    return state;
  }

  Targets MakeTargets() {
    Targets targets;
    if (fixture_.spec.loss == LossType::kMse) {
      targets.values = Get("targets");
    } else {
      targets.labels = fixture_.labels;
    }
    return targets;
  }

  fixtures::Fixture fixture_;
};

// Guards the fixtures themselves, independently of the engine: the generator wrote every record
// the other tests read, in the shapes core/network.h documents.
TEST_P(PyTorchParityTest, FixtureHoldsEveryRecordInTheDocumentedShapes) {
  const ModelSpec& spec = fixture_.spec;
  const Tensor& inputs = Get("inputs");
  ASSERT_EQ(inputs.shape.size(), 3u);
  ASSERT_EQ(inputs.shape[2], spec.input_size);
  const int64_t n = inputs.shape[0];
  const int64_t t = inputs.shape[1];
  const std::vector<int64_t> state_shape = {spec.num_layers * spec.num_directions(), n,
                                            spec.hidden_size};
  const std::vector<int64_t> output_shape = spec.head == HeadMode::kPerStep
                                                ? std::vector<int64_t>{n, t, spec.output_size}
                                                : std::vector<int64_t>{n, spec.output_size};
  EXPECT_EQ(Get("outputs").shape, output_shape);
  EXPECT_EQ(Get("hidden").shape, (std::vector<int64_t>{n, t, spec.top_width()}));
  std::vector<std::string> state_names = {"h0", "h_n", "grad_h0"};
  if (spec.has_cell_state()) state_names.insert(state_names.end(), {"c0", "c_n", "grad_c0"});
  for (const std::string& name : state_names) EXPECT_EQ(Get(name).shape, state_shape) << name;
  if (!spec.has_cell_state()) {
    EXPECT_FALSE(fixture_.GetTensor("c0").ok());
    EXPECT_FALSE(fixture_.GetTensor("grad_c0").ok());
  }
  if (spec.loss == LossType::kMse) {
    EXPECT_EQ(Get("targets").shape, output_shape);
    EXPECT_TRUE(fixture_.labels.empty());
  } else {
    EXPECT_EQ(static_cast<int64_t>(fixture_.labels.size()),
              Tensor::ElementCount(output_shape) / spec.output_size);
  }
  EXPECT_TRUE(fixture_.GetScalar("loss").ok());
}

TEST_P(PyTorchParityTest, ForwardMatchesOutputsHiddenAndFinalState) {
  absl::StatusOr<std::unique_ptr<Network>> created =
      Network::Create(fixture_.spec, fixture_.parameters);
  ASSERT_TRUE(created.ok()) << GetParam() << ": " << created.status();
  Network& network = **created;
  const RecurrentState initial_state = InitialState();
  ForwardResult result;
  ForwardOptions options;
  options.want_hidden = true;
  const absl::Status status = network.Forward(Get("inputs"), &initial_state, &result, options);
  ASSERT_TRUE(status.ok()) << GetParam() << ": " << status;

  Comparator compare(absl::StrCat(GetParam(), " Forward"));
  compare.Expect("outputs", result.outputs, Get("outputs"));
  compare.Expect("hidden", result.hidden, Get("hidden"));
  compare.Expect("h_n", result.final_state.h, Get("h_n"));
  if (fixture_.spec.has_cell_state()) compare.Expect("c_n", result.final_state.c, Get("c_n"));
}

TEST_P(PyTorchParityTest, ForwardBackwardMatchesLossAndEveryGradient) {
  absl::StatusOr<std::unique_ptr<Network>> created =
      Network::Create(fixture_.spec, fixture_.parameters);
  ASSERT_TRUE(created.ok()) << GetParam() << ": " << created.status();
  Network& network = **created;
  const RecurrentState initial_state = InitialState();
  TrainingResult result;
  const absl::Status status =
      network.ForwardBackward(Get("inputs"), MakeTargets(), &initial_state, &result);
  ASSERT_TRUE(status.ok()) << GetParam() << ": " << status;

  Comparator compare(absl::StrCat(GetParam(), " ForwardBackward"));
  compare.ExpectScalar("loss", result.loss, *fixture_.GetScalar("loss"));
  compare.Expect("outputs", result.outputs, Get("outputs"));
  compare.Expect("h_n", result.final_state.h, Get("h_n"));
  if (fixture_.spec.has_cell_state()) compare.Expect("c_n", result.final_state.c, Get("c_n"));
  for (const auto& [name, expected] : fixture_.gradients) {
    const auto it = result.gradients.find(name);
    if (it == result.gradients.end()) {
      ADD_FAILURE() << GetParam() << ": no gradient for " << name;
      continue;
    }
    compare.Expect(absl::StrCat("grad ", name), it->second, expected);
  }
  EXPECT_EQ(result.gradients.size(), fixture_.gradients.size());
  compare.Expect("grad_h0", result.initial_state_gradients.h, Get("grad_h0"));
  if (fixture_.spec.has_cell_state()) {
    compare.Expect("grad_c0", result.initial_state_gradients.c, Get("grad_c0"));
  }
}

// Step's state block per stream (core/network.h): h of layers 0..L-1 ([L, H]), then for LSTM c
// of layers 0..L-1. Stepping every stream T times from h0/c0 must give Forward's outputs (every
// step for per_step, the last step for last_step) and h_n/c_n.
TEST_P(PyTorchParityTest, SteppingTimestepByTimestepReproducesForward) {
  const ModelSpec& spec = fixture_.spec;
  if (spec.bidirectional) GTEST_SKIP() << "only unidirectional models can be stepped";
  absl::StatusOr<std::unique_ptr<Network>> created =
      Network::Create(fixture_.spec, fixture_.parameters);
  ASSERT_TRUE(created.ok()) << GetParam() << ": " << created.status();
  Network& network = **created;

  const Tensor& inputs = Get("inputs");
  const int64_t n = inputs.shape[0];
  const int64_t t = inputs.shape[1];
  const int64_t in = spec.input_size;
  const int64_t layers = spec.num_layers;
  const int64_t h = spec.hidden_size;
  const int64_t o = spec.output_size;
  const bool has_c = spec.has_cell_state();
  const int64_t block = layers * h * (has_c ? 2 : 1);
  ASSERT_EQ(network.step_state_size(), block);

  const Tensor& h0 = Get("h0");
  const Tensor& c0 = has_c ? Get("c0") : h0;
  std::vector<std::vector<float>> states(n, std::vector<float>(block));
  std::vector<float*> state_pointers;
  for (int64_t s = 0; s < n; ++s) {
    for (int64_t l = 0; l < layers; ++l) {
      for (int64_t j = 0; j < h; ++j) {
        states[s][l * h + j] = h0.values[(l * n + s) * h + j];
        if (has_c) states[s][(layers + l) * h + j] = c0.values[(l * n + s) * h + j];
      }
    }
    state_pointers.push_back(states[s].data());
  }

  Tensor stepped_outputs({n, t, o});
  std::vector<float> step_inputs(n * in);
  std::vector<float> step_outputs(n * o);
  for (int64_t step = 0; step < t; ++step) {
    for (int64_t s = 0; s < n; ++s) {
      std::copy_n(&inputs.values[(s * t + step) * in], in, &step_inputs[s * in]);
    }
    const absl::Status status =
        network.Step(step_inputs.data(), n, state_pointers.data(), step_outputs.data());
    ASSERT_TRUE(status.ok()) << GetParam() << " step " << step << ": " << status;
    for (int64_t s = 0; s < n; ++s) {
      std::copy_n(&step_outputs[s * o], o, &stepped_outputs.values[(s * t + step) * o]);
    }
  }

  Comparator compare(absl::StrCat(GetParam(), " Step"));
  if (spec.head == HeadMode::kPerStep) {
    compare.Expect("outputs", stepped_outputs, Get("outputs"));
  } else {
    compare.Expect("outputs at the last step", Tensor({n, o}, step_outputs), Get("outputs"));
  }
  Tensor h_n({layers, n, h});
  Tensor c_n({layers, n, h});
  for (int64_t s = 0; s < n; ++s) {
    for (int64_t l = 0; l < layers; ++l) {
      for (int64_t j = 0; j < h; ++j) {
        h_n.values[(l * n + s) * h + j] = states[s][l * h + j];
        if (has_c) c_n.values[(l * n + s) * h + j] = states[s][(layers + l) * h + j];
      }
    }
  }
  compare.Expect("h_n", h_n, Get("h_n"));
  if (has_c) compare.Expect("c_n", c_n, Get("c_n"));
}

INSTANTIATE_TEST_SUITE_P(Fixtures, PyTorchParityTest, ::testing::ValuesIn(FixtureNames()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

TEST(PyTorchParityFixturesTest, DirectoryHoldsEveryRequiredCase) {
  const std::vector<std::string> names = FixtureNames();
  for (const char* required : {
           "rnn_tanh", "rnn_relu", "lstm", "gru",                    // each cell, one layer
           "lstm_2layer_bidirectional", "gru_2layer_bidirectional",  // stacked and reversed
           "lstm_3layer",                                            // three layers
           "lstm_t1",                                                // a single timestep
           "rnn_tanh_per_step_ce", "lstm_last_step_ce",              // cross-entropy heads
           "rnn_relu_last_step_mse",                                 // mse on the last step
           "lstm_tiny", "gru_tiny",                                  // input_size = H = 1
       }) {
    EXPECT_NE(std::find(names.begin(), names.end(), required), names.end())
        << "missing fixture " << required << ": run /usr/bin/python3 scripts/gen_fixtures.py";
  }
}

// The smallest valid fixture: a 1x1 tanh RNN with a 1-output head. Tests below break one thing.
constexpr char kValidFixture[] =
    "# recurrent fixture v1\n"
    "spec cell=rnn_tanh input_size=1 hidden_size=1 num_layers=1 bidirectional=0 head=last_step "
    "output_size=1 loss=mse\n"
    "scalar loss 0.5\n"
    "tensor inputs 3 1 2 1\n0.25 -1e-05\n"
    "param weight_ih_l0 2 1 1\n0.5\nparam weight_hh_l0 2 1 1\n-0.5\n"
    "param bias_ih_l0 1 1\n0.125\nparam bias_hh_l0 1 1\n0\n"
    "param head.weight 2 1 1\n1\nparam head.bias 1 1\n0\n"
    "grad weight_ih_l0 2 1 1\n0\ngrad weight_hh_l0 2 1 1\n0\n"
    "grad bias_ih_l0 1 1\n0\ngrad bias_hh_l0 1 1\n0\n"
    "grad head.weight 2 1 1\n0\ngrad head.bias 1 1\n0\n";

TEST(FixtureReaderTest, ParsesTheSmallestValidFixture) {
  const absl::StatusOr<fixtures::Fixture> fixture = fixtures::ParseFixture(kValidFixture);
  ASSERT_TRUE(fixture.ok()) << fixture.status();
  EXPECT_EQ(fixture->spec.cell, CellType::kRnnTanh);
  EXPECT_EQ(fixture->spec.head, HeadMode::kLastStep);
  EXPECT_EQ(fixture->parameters.size(), 6u);
  EXPECT_EQ(fixture->gradients.size(), 6u);
  const Tensor& inputs = **fixture->GetTensor("inputs");
  EXPECT_EQ(inputs.shape, (std::vector<int64_t>{1, 2, 1}));
  EXPECT_EQ(inputs.values, (std::vector<float>{0.25f, -1e-05f}));
  EXPECT_EQ(*fixture->GetScalar("loss"), 0.5);
  EXPECT_EQ(fixture->GetTensor("outputs").status().code(), absl::StatusCode::kNotFound);
}

TEST(FixtureReaderTest, RejectsMalformedTextNamingTheProblem) {
  const std::string valid = kValidFixture;
  struct Case {
    std::string text;
    std::string expected_message;
  };
  const std::vector<Case> cases = {
      {"", "header"},
      {absl::StrReplaceAll(valid, {{"fixture v1", "fixture v2"}}), "header"},
      {absl::StrReplaceAll(valid, {{"cell=rnn_tanh", "cell=lstmx"}}), "line 2"},
      {absl::StrReplaceAll(valid, {{" loss=mse", ""}}), "spec lacks 'loss'"},
      {absl::StrReplaceAll(valid, {{"loss=mse", "loss=mse colour=red"}}), "colour"},
      {absl::StrReplaceAll(valid, {{"hidden_size=1", "hidden_size=one"}}), "hidden_size"},
      {absl::StrReplaceAll(valid, {{"0.25 -1e-05", "0.25"}}), "needs 2 values, found 1"},
      {absl::StrReplaceAll(valid, {{"0.25 -1e-05", "0.25 x"}}), "'x' is not a number"},
      {absl::StrReplaceAll(valid, {{"0.25 -1e-05", "0.25 nan"}}), "not finite"},
      {absl::StrReplaceAll(valid, {{"inputs 3 1 2 1", "inputs 3 1 2"}}), "rank 3"},
      {absl::StrReplaceAll(valid, {{"scalar loss 0.5", "vector loss 0.5"}}), "unknown record"},
      {absl::StrReplaceAll(valid, {{"param head.bias 1 1\n0\n", ""}}), "head.bias"},
      {absl::StrCat(valid, "param head.bias 1 1\n0\n"), "repeats"},
      {absl::StrCat(valid, "labels 1\n7\n"), "outside [0, 1)"},
      {absl::StrCat(valid, "tensor outputs 1 1"), "lacks its line of values"},
  };
  for (const Case& c : cases) {
    const absl::StatusOr<fixtures::Fixture> fixture = fixtures::ParseFixture(c.text);
    ASSERT_FALSE(fixture.ok()) << "accepted:\n" << c.text;
    EXPECT_EQ(fixture.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(fixture.status().message().find(c.expected_message), std::string::npos)
        << "expected '" << c.expected_message << "' in: " << fixture.status();
  }
}

TEST(FixtureReaderTest, RejectsAMalformedFileNamingItsPath) {
  const std::string path = ::testing::TempDir() + "/pytorch_parity_test_malformed.txt";
  {
    std::ofstream file(path);
    file << absl::StrReplaceAll(kValidFixture, {{"0.25 -1e-05", "0.25"}});
  }
  const absl::StatusOr<fixtures::Fixture> fixture = fixtures::ReadFixture(path);
  std::filesystem::remove(path);
  ASSERT_FALSE(fixture.ok());
  EXPECT_EQ(fixture.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(fixture.status().message().find(path), std::string::npos) << fixture.status();
  EXPECT_NE(fixture.status().message().find("line 5"), std::string::npos) << fixture.status();

  EXPECT_EQ(fixtures::ReadFixture(path).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace recurrent::core
