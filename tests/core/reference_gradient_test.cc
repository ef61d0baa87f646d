// Checks the double-precision reference (tests/testing/reference_rnn.h) on its own, before it is
// trusted to judge the engine:
//   1. its forward pass against scalar equations written out by hand (gate order, GRU's r
//      placement, bidirectional and multi-layer wiring, head and losses);
//   2. its hand-written backward pass against central finite differences of its own loss, for
//      every element of every parameter tensor and of the initial states.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/model_spec.h"
#include "core/network.h"
#include "core/parameters.h"
#include "gtest/gtest.h"
#include "tests/testing/reference_rnn.h"
#include "tests/testing/tensor_testing.h"

namespace recurrent::testing {
namespace {

using core::CellType;
using core::HeadMode;
using core::LossType;
using core::ModelSpec;

double Sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// Parameters of a model with I = H = O = 1, given per gate row (PyTorch order) as
// {w_ih, w_hh, b_ih, b_hh}, and an identity head y = h.
DoubleParams ScalarParams(const std::vector<std::vector<double>>& gate_rows) {
  DoubleParams params;
  const int64_t g = static_cast<int64_t>(gate_rows.size());
  for (int k = 0; k < 4; ++k) {
    const char* kinds[] = {"weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"};
    std::vector<double> values;
    for (const auto& row : gate_rows) values.push_back(row[k]);
    params[kinds[k]] =
        DoubleTensor(k < 2 ? std::vector<int64_t>{g, 1} : std::vector<int64_t>{g}, values);
  }
  params["head.weight"] = DoubleTensor({1, 1}, {1.0});
  params["head.bias"] = DoubleTensor({1}, {0.0});
  return params;
}

ModelSpec ScalarSpec(CellType cell) {
  ModelSpec spec;
  spec.cell = cell;
  spec.input_size = 1;
  spec.hidden_size = 1;
  spec.output_size = 1;
  return spec;
}

// --- 1. Forward semantics, written out by hand. ---

TEST(ReferenceForwardTest, VanillaRnnMatchesTheScalarEquation) {
  const DoubleParams params = ScalarParams({{0.7, -1.3, 0.2, -0.1}});
  const DoubleTensor inputs({1, 3, 1}, {0.5, -2.0, 1.5});
  const DoubleState initial = {DoubleTensor({1, 1, 1}, {0.3}), {}};
  for (const CellType cell : {CellType::kRnnTanh, CellType::kRnnRelu}) {
    const auto act = [cell](double v) {
      return cell == CellType::kRnnTanh ? std::tanh(v) : std::max(v, 0.0);
    };
    absl::StatusOr<ReferenceResult> result =
        ReferenceForward(ScalarSpec(cell), params, inputs, &initial);
    ASSERT_TRUE(result.ok()) << result.status();
    double h = 0.3;
    for (int t = 0; t < 3; ++t) {
      h = act(0.7 * inputs.values[t] + 0.2 + -1.3 * h + -0.1);
      EXPECT_DOUBLE_EQ(result->hidden.values[t], h) << "t=" << t;
      EXPECT_DOUBLE_EQ(result->outputs.values[t], h) << "t=" << t;
    }
    EXPECT_DOUBLE_EQ(result->final_state.h.values[0], h);
    EXPECT_TRUE(result->final_state.c.empty());
  }
}

TEST(ReferenceForwardTest, LstmUsesPyTorchGateOrderIfgo) {
  // Distinct numbers per gate so a swapped gate changes the result.
  const DoubleParams params = ScalarParams({{0.5, -0.4, 0.1, 0.05},    // i
                                            {-0.6, 0.9, 0.3, -0.2},    // f
                                            {1.1, 0.2, -0.3, 0.15},    // g
                                            {0.8, -0.7, 0.25, 0.1}});  // o
  const DoubleTensor inputs({1, 2, 1}, {0.9, -0.4});
  const DoubleState initial = {DoubleTensor({1, 1, 1}, {-0.2}), DoubleTensor({1, 1, 1}, {0.6})};
  absl::StatusOr<ReferenceResult> result =
      ReferenceForward(ScalarSpec(CellType::kLstm), params, inputs, &initial);
  ASSERT_TRUE(result.ok()) << result.status();
  double h = -0.2, c = 0.6;
  for (int t = 0; t < 2; ++t) {
    const double x = inputs.values[t];
    const double i = Sigmoid(0.5 * x + 0.1 + -0.4 * h + 0.05);
    const double f = Sigmoid(-0.6 * x + 0.3 + 0.9 * h + -0.2);
    const double g = std::tanh(1.1 * x + -0.3 + 0.2 * h + 0.15);
    const double o = Sigmoid(0.8 * x + 0.25 + -0.7 * h + 0.1);
    c = f * c + i * g;
    h = o * std::tanh(c);
    EXPECT_DOUBLE_EQ(result->hidden.values[t], h) << "t=" << t;
  }
  EXPECT_DOUBLE_EQ(result->final_state.h.values[0], h);
  EXPECT_DOUBLE_EQ(result->final_state.c.values[0], c);
}

TEST(ReferenceForwardTest, GruUsesPyTorchGateOrderRznWithResetInsideTheHiddenTerm) {
  const DoubleParams params = ScalarParams({{0.5, -0.4, 0.1, 0.05},   // r
                                            {-0.6, 0.9, 0.3, -0.2},   // z
                                            {1.1, 0.7, -0.3, 0.4}});  // n
  const DoubleTensor inputs({1, 2, 1}, {0.9, -0.4});
  const DoubleState initial = {DoubleTensor({1, 1, 1}, {0.35}), {}};
  absl::StatusOr<ReferenceResult> result =
      ReferenceForward(ScalarSpec(CellType::kGru), params, inputs, &initial);
  ASSERT_TRUE(result.ok()) << result.status();
  double h = 0.35;
  for (int t = 0; t < 2; ++t) {
    const double x = inputs.values[t];
    const double r = Sigmoid(0.5 * x + 0.1 + -0.4 * h + 0.05);
    const double z = Sigmoid(-0.6 * x + 0.3 + 0.9 * h + -0.2);
    const double n = std::tanh(1.1 * x + -0.3 + r * (0.7 * h + 0.4));  // b_hn inside r*(...)
    h = (1.0 - z) * n + z * h;
    EXPECT_DOUBLE_EQ(result->hidden.values[t], h) << "t=" << t;
  }
  EXPECT_DOUBLE_EQ(result->final_state.h.values[0], h);
}

// Random parameters of `spec` as doubles (PyTorch's initialization, then widened).
DoubleParams RandomParams(const ModelSpec& spec, uint64_t seed) {
  return ToDouble(core::InitParameters(spec, seed));
}

TEST(ReferenceForwardTest, ReverseDirectionIsAForwardRunOverTheReversedSequence) {
  ModelSpec bi;
  bi.cell = CellType::kGru;
  bi.input_size = 3;
  bi.hidden_size = 4;
  bi.bidirectional = true;
  bi.output_size = 2;
  const DoubleParams bi_params = RandomParams(bi, 7);
  ModelSpec uni = bi;
  uni.bidirectional = false;
  // Two unidirectional models: one with the forward weights, one with the reverse weights.
  DoubleParams fwd = RandomParams(uni, 1), rev = RandomParams(uni, 1);
  for (const char* kind : {"weight_ih", "weight_hh", "bias_ih", "bias_hh"}) {
    fwd[core::RecurrentParameterName(kind, 0, false)] =
        bi_params.at(core::RecurrentParameterName(kind, 0, false));
    rev[core::RecurrentParameterName(kind, 0, false)] =
        bi_params.at(core::RecurrentParameterName(kind, 0, true));
  }
  const int64_t N = 2, T = 5, I = 3, H = 4;
  const DoubleTensor inputs = ToDouble(RandomTensor({N, T, I}, 1.0, 11));
  DoubleTensor reversed({N, T, I});
  for (int64_t n = 0; n < N; ++n)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t i = 0; i < I; ++i)
        reversed.values[(n * T + t) * I + i] = inputs.values[(n * T + (T - 1 - t)) * I + i];
  const DoubleState bi_initial = {ToDouble(RandomTensor({2, N, H}, 0.5, 12)), {}};
  DoubleState fwd_initial = {DoubleTensor({1, N, H}), {}}, rev_initial = fwd_initial;
  for (int64_t k = 0; k < N * H; ++k) {
    fwd_initial.h.values[k] = bi_initial.h.values[k];
    rev_initial.h.values[k] = bi_initial.h.values[N * H + k];
  }

  absl::StatusOr<ReferenceResult> both = ReferenceForward(bi, bi_params, inputs, &bi_initial);
  absl::StatusOr<ReferenceResult> forward = ReferenceForward(uni, fwd, inputs, &fwd_initial);
  absl::StatusOr<ReferenceResult> backward = ReferenceForward(uni, rev, reversed, &rev_initial);
  ASSERT_TRUE(both.ok() && forward.ok() && backward.ok());
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t t = 0; t < T; ++t) {
      for (int64_t j = 0; j < H; ++j) {
        EXPECT_EQ(both->hidden.values[(n * T + t) * 2 * H + j],
                  forward->hidden.values[(n * T + t) * H + j]);
        EXPECT_EQ(both->hidden.values[(n * T + t) * 2 * H + H + j],
                  backward->hidden.values[(n * T + (T - 1 - t)) * H + j]);
      }
    }
  }
  // h_n row 0 is the forward direction's state after t = T-1, row 1 the reverse's after t = 0.
  for (int64_t k = 0; k < N * H; ++k) {
    EXPECT_EQ(both->final_state.h.values[k], forward->final_state.h.values[k]);
    EXPECT_EQ(both->final_state.h.values[N * H + k], backward->final_state.h.values[k]);
  }
}

TEST(ReferenceForwardTest, SecondLayerReadsTheFirstLayersOutput) {
  ModelSpec two;
  two.cell = CellType::kLstm;
  two.input_size = 2;
  two.hidden_size = 3;
  two.num_layers = 2;
  two.output_size = 1;
  const DoubleParams params = RandomParams(two, 5);
  ModelSpec bottom = two, top = two;
  bottom.num_layers = top.num_layers = 1;
  top.input_size = two.hidden_size;
  DoubleParams bottom_params = RandomParams(bottom, 1), top_params = RandomParams(top, 1);
  for (const char* kind : {"weight_ih", "weight_hh", "bias_ih", "bias_hh"}) {
    bottom_params[core::RecurrentParameterName(kind, 0, false)] =
        params.at(core::RecurrentParameterName(kind, 0, false));
    top_params[core::RecurrentParameterName(kind, 0, false)] =
        params.at(core::RecurrentParameterName(kind, 1, false));
  }
  const DoubleTensor inputs = ToDouble(RandomTensor({3, 4, 2}, 1.0, 21));
  absl::StatusOr<ReferenceResult> stacked = ReferenceForward(two, params, inputs, nullptr);
  absl::StatusOr<ReferenceResult> first = ReferenceForward(bottom, bottom_params, inputs, nullptr);
  ASSERT_TRUE(stacked.ok() && first.ok());
  absl::StatusOr<ReferenceResult> second =
      ReferenceForward(top, top_params, first->hidden, nullptr);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(stacked->hidden.values, second->hidden.values);
  // State rows are l*D+d: layer 0 first.
  const int64_t block = 3 * 3;  // N * H
  for (int64_t k = 0; k < block; ++k) {
    EXPECT_EQ(stacked->final_state.h.values[k], first->final_state.h.values[k]);
    EXPECT_EQ(stacked->final_state.c.values[k], first->final_state.c.values[k]);
    EXPECT_EQ(stacked->final_state.h.values[block + k], second->final_state.h.values[k]);
    EXPECT_EQ(stacked->final_state.c.values[block + k], second->final_state.c.values[k]);
  }
}

TEST(ReferenceForwardTest, HeadsAndLossesFollowTheirDefinitions) {
  ModelSpec spec;
  spec.cell = CellType::kRnnTanh;
  spec.input_size = 2;
  spec.hidden_size = 3;
  spec.bidirectional = true;
  spec.output_size = 3;
  const int64_t N = 2, T = 4, O = 3, DH = 6;
  const DoubleParams params = RandomParams(spec, 9);
  const DoubleTensor inputs = ToDouble(RandomTensor({N, T, 2}, 1.0, 8));

  absl::StatusOr<ReferenceResult> per_step = ReferenceForward(spec, params, inputs, nullptr);
  ASSERT_TRUE(per_step.ok());
  ASSERT_EQ(per_step->outputs.shape, (std::vector<int64_t>{N, T, O}));
  const std::vector<double>& w = params.at("head.weight").values;
  const std::vector<double>& b = params.at("head.bias").values;
  for (int64_t p = 0; p < N * T; ++p) {
    for (int64_t o = 0; o < O; ++o) {
      double y = b[o];
      for (int64_t k = 0; k < DH; ++k) y += w[o * DH + k] * per_step->hidden.values[p * DH + k];
      EXPECT_NEAR(per_step->outputs.values[p * O + o], y, 1e-15);
    }
  }

  // last_step reads hidden[:, T-1, :]: the forward direction's last step and the reverse
  // direction's first.
  spec.head = HeadMode::kLastStep;
  absl::StatusOr<ReferenceResult> last = ReferenceForward(spec, params, inputs, nullptr);
  ASSERT_TRUE(last.ok());
  ASSERT_EQ(last->outputs.shape, (std::vector<int64_t>{N, O}));
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t o = 0; o < O; ++o) {
      EXPECT_EQ(last->outputs.values[n * O + o], per_step->outputs.values[(n * T + T - 1) * O + o]);
    }
  }

  // MSE: mean over every element.
  spec.head = HeadMode::kPerStep;
  core::Targets targets;
  targets.values = RandomTensor({N, T, O}, 1.0, 3);
  absl::StatusOr<ReferenceResult> mse =
      ReferenceForwardBackward(spec, params, inputs, targets, nullptr, false);
  ASSERT_TRUE(mse.ok());
  double expected = 0.0;
  for (int64_t k = 0; k < N * T * O; ++k) {
    const double diff = per_step->outputs.values[k] - targets.values.values[k];
    expected += diff * diff;
  }
  EXPECT_NEAR(mse->loss, expected / (N * T * O), 1e-15);

  // Cross-entropy: labels row-major over (n, t), mean over the N*T predictions.
  spec.loss = LossType::kCrossEntropy;
  targets.values = {};
  targets.labels = RandomLabels(N * T, O, 4);
  absl::StatusOr<ReferenceResult> ce =
      ReferenceForwardBackward(spec, params, inputs, targets, nullptr, false);
  ASSERT_TRUE(ce.ok());
  expected = 0.0;
  for (int64_t p = 0; p < N * T; ++p) {
    double sum = 0.0;
    for (int64_t o = 0; o < O; ++o) sum += std::exp(per_step->outputs.values[p * O + o]);
    expected += -std::log(std::exp(per_step->outputs.values[p * O + targets.labels[p]]) / sum);
  }
  EXPECT_NEAR(ce->loss, expected / (N * T), 1e-14);
}

TEST(ReferenceForwardTest, RejectsMismatchedShapes) {
  ModelSpec spec;
  spec.input_size = 3;
  spec.hidden_size = 2;
  const DoubleParams params = RandomParams(spec, 1);
  EXPECT_FALSE(ReferenceForward(spec, params, DoubleTensor({2, 3, 4}), nullptr).ok());
  EXPECT_FALSE(ReferenceForward(spec, params, DoubleTensor({6, 3}), nullptr).ok());
  const DoubleState wrong = {DoubleTensor({1, 2, 2}), DoubleTensor({1, 1, 2})};
  EXPECT_FALSE(ReferenceForward(spec, params, DoubleTensor({2, 3, 3}), &wrong).ok());
  EXPECT_TRUE(ReferenceForward(spec, params, DoubleTensor({2, 3, 3}), nullptr).ok());
}

// --- 2. Analytic gradients against central finite differences. ---

struct GradientCase {
  CellType cell;
  HeadMode head;
  LossType loss;
  int64_t layers;
  bool bidirectional;
};

std::string Describe(const GradientCase& c) {
  return absl::StrCat(core::CellTypeName(c.cell), "_", core::HeadModeName(c.head), "_",
                      core::LossTypeName(c.loss), "_L", c.layers,
                      c.bidirectional ? "_bidirectional" : "_unidirectional");
}
std::string CaseName(const ::testing::TestParamInfo<GradientCase>& info) {
  return Describe(info.param);
}
void PrintTo(const GradientCase& c, std::ostream* os) { *os << Describe(c); }

// Step of the central difference. Its error is eps^2/6 * |f'''| (~1e-13) from truncation plus
// ~1e-16 * |loss| / eps (~1e-10) from rounding, both far below the tolerances below.
constexpr double kEps = 1e-6;
// |numeric - analytic| <= kRelTol * |analytic| + kAbsTol. kAbsTol covers the rounding floor of
// the difference quotient for near-zero gradients; a wrong formula errs by the size of the
// gradient itself (typically 1e-3..1e-1), orders of magnitude above it.
constexpr double kRelTol = 1e-6;
constexpr double kAbsTol = 1e-9;

class ReferenceGradientTest : public ::testing::TestWithParam<GradientCase> {
 protected:
  void SetUp() override {
    const GradientCase& c = GetParam();
    spec_.cell = c.cell;
    spec_.input_size = 3;
    spec_.hidden_size = 4;
    spec_.num_layers = c.layers;
    spec_.bidirectional = c.bidirectional;
    spec_.head = c.head;
    spec_.loss = c.loss;
    spec_.output_size = 3;
    ASSERT_TRUE(core::ValidateSpec(spec_).ok());
    const uint64_t seed = 1000 + static_cast<uint64_t>(c.cell) * 17 + c.layers;
    params_ = RandomParams(spec_, seed);
    inputs_ = ToDouble(RandomTensor({kN, kT, spec_.input_size}, 1.0, seed + 1));
    const int64_t rows = spec_.num_layers * spec_.num_directions();
    // A non-zero initial state, so d loss / d h_0 exercises every term of the recurrence.
    initial_.h = ToDouble(RandomTensor({rows, kN, spec_.hidden_size}, 0.5, seed + 2));
    if (spec_.has_cell_state()) {
      initial_.c = ToDouble(RandomTensor({rows, kN, spec_.hidden_size}, 0.5, seed + 3));
    }
    const bool per_step = spec_.head == HeadMode::kPerStep;
    if (spec_.loss == LossType::kMse) {
      targets_.values = per_step ? RandomTensor({kN, kT, spec_.output_size}, 1.0, seed + 4)
                                 : RandomTensor({kN, spec_.output_size}, 1.0, seed + 4);
    } else {
      targets_.labels = RandomLabels(per_step ? kN * kT : kN, spec_.output_size, seed + 5);
    }
  }

  double Loss(const DoubleParams& params, const DoubleState& initial) const {
    absl::StatusOr<ReferenceResult> result =
        ReferenceForwardBackward(spec_, params, inputs_, targets_, &initial, false);
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? result->loss : NAN;
  }

  // Compares every element k of `analytic` with the central difference of the loss, where
  // `perturb(k, delta)` returns the loss with element k of the differentiated tensor moved by
  // delta (and restores it).
  template <typename Perturb>
  void CheckTensor(const std::string& name, const DoubleTensor& analytic, Perturb perturb) {
    double worst_ratio = 0.0;  // |error| / allowed
    for (int64_t k = 0; k < analytic.size(); ++k) {
      const double plus = perturb(k, +kEps);
      const double minus = perturb(k, -kEps);
      const double numeric = (plus - minus) / (2.0 * kEps);
      const double allowed = kRelTol * std::abs(analytic.values[k]) + kAbsTol;
      const double error = std::abs(numeric - analytic.values[k]);
      worst_ratio = std::max(worst_ratio, error / allowed);
      EXPECT_LE(error, allowed) << name << "[" << k << "]: analytic " << analytic.values[k]
                                << ", numeric " << numeric;
    }
    ++tensors_checked_;
    RecordProperty(name, absl::StrCat(worst_ratio));
  }

  static constexpr int64_t kN = 2;  // batch
  static constexpr int64_t kT = 5;  // steps
  ModelSpec spec_;
  DoubleParams params_;
  DoubleTensor inputs_;
  DoubleState initial_;
  core::Targets targets_;
  int tensors_checked_ = 0;
};

TEST_P(ReferenceGradientTest, AnalyticGradientsMatchCentralFiniteDifferences) {
  absl::StatusOr<ReferenceResult> result =
      ReferenceForwardBackward(spec_, params_, inputs_, targets_, &initial_, true);
  ASSERT_TRUE(result.ok()) << result.status();
  // relu's derivative jumps at 0, so the finite difference is only valid if no pre-activation
  // is within reach of a kEps perturbation. One parameter or state element moved by kEps moves
  // a pre-activation by about kEps * |its multiplier| (inputs and states are below 1 here), so a
  // margin of 20 * kEps is ample; these seeds leave >= 1e-4 (100 * kEps). A new seed that put a
  // unit next to its kink would fail here rather than as a mysterious gradient mismatch.
  RecordProperty("min_relu_margin", absl::StrCat(result->min_relu_margin));
  EXPECT_GT(result->min_relu_margin, 20 * kEps);

  for (const core::ParameterInfo& info : core::ParameterLayout(spec_)) {
    ASSERT_TRUE(result->gradients.count(info.name)) << info.name;
    const DoubleTensor& analytic = result->gradients.at(info.name);
    ASSERT_EQ(analytic.shape, info.shape) << info.name;
    DoubleParams params = params_;
    CheckTensor(info.name, analytic, [&](int64_t k, double delta) {
      double& value = params.at(info.name).values[k];
      const double saved = value;
      value = saved + delta;
      const double loss = Loss(params, initial_);
      value = saved;
      return loss;
    });
  }
  const auto check_state = [&](const std::string& name, DoubleTensor DoubleState::*member) {
    const DoubleTensor& analytic = result->initial_state_gradients.*member;
    ASSERT_EQ(analytic.shape, (initial_.*member).shape) << name;
    DoubleState initial = initial_;
    CheckTensor(name, analytic, [&](int64_t k, double delta) {
      double& value = (initial.*member).values[k];
      const double saved = value;
      value = saved + delta;
      const double loss = Loss(params_, initial);
      value = saved;
      return loss;
    });
  };
  check_state("h0", &DoubleState::h);
  if (spec_.has_cell_state()) {
    check_state("c0", &DoubleState::c);
  } else {
    EXPECT_TRUE(result->initial_state_gradients.c.empty());
  }
  EXPECT_EQ(tensors_checked_, static_cast<int>(core::ParameterLayout(spec_).size()) +
                                  (spec_.has_cell_state() ? 2 : 1));
}

std::vector<GradientCase> AllGradientCases() {
  std::vector<GradientCase> cases;
  for (const CellType cell :
       {CellType::kRnnTanh, CellType::kRnnRelu, CellType::kLstm, CellType::kGru}) {
    for (const LossType loss : {LossType::kMse, LossType::kCrossEntropy}) {
      for (const HeadMode head : {HeadMode::kPerStep, HeadMode::kLastStep}) {
        cases.push_back({cell, head, loss, /*layers=*/1, /*bidirectional=*/false});
        cases.push_back({cell, head, loss, /*layers=*/2, /*bidirectional=*/true});
      }
    }
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(AllCellsHeadsAndLosses, ReferenceGradientTest,
                         ::testing::ValuesIn(AllGradientCases()), CaseName);

}  // namespace
}  // namespace recurrent::testing
