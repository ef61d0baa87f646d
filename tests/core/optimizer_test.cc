// The optimizers against PyTorch 1.13's torch.optim: every
// tests/core/fixtures/optim/optimizer_*.txt (written by scripts/gen_optim_fixtures.py, format in
// its docstring) is one configuration stepped five times by PyTorch with a changing learning rate;
// Step must reproduce the parameters after every step. Plus checkpointing (RestoreState) and the
// refusals.
#include "core/optimizer.h"

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iomanip>
#include <limits>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/parameters.h"
#include "core/status_macros.h"
#include "core/tensor.h"
#include "gtest/gtest.h"
#include "tests/testing/test_paths.h"

namespace recurrent::core {
namespace {

// Bit for bit: Step replays PyTorch's float32 operations in PyTorch's order, fused multiply-adds
// included, and on Debian 12 (the fixtures' platform) every parameter after every step equals
// PyTorch's exactly. Any slack would hide real mistakes: with 1 ulp allowed, Adam with its
// multiply-adds unfused still passes. Another C library's pow() (Adam's bias corrections) could
// in principle need 1.
constexpr int64_t kMaxUlps = 0;

// ---- Fixture reader (format: scripts/gen_optim_fixtures.py) ----

struct OptimizerFixture {
  OptimizerOptions options;
  ParameterSet initial;
  struct Step {
    double learning_rate = 0.0;
    ParameterSet grads;
    ParameterSet expected;  // the parameters after this step
  };
  std::vector<Step> steps;
};

absl::Status FixtureError(int line_number, absl::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat("line ", line_number, ": ", message));
}

absl::StatusOr<double> ToDouble(int line_number, absl::string_view word) {
  double value = 0.0;
  if (!absl::SimpleAtod(word, &value)) return FixtureError(line_number, "bad number");
  return value;
}

// Reads `count` float32 values from words[first...].
absl::StatusOr<std::vector<float>> ToFloats(int line_number,
                                            const std::vector<absl::string_view>& words,
                                            size_t first, int64_t count) {
  if (words.size() - first != static_cast<size_t>(count)) {
    return FixtureError(line_number,
                        absl::StrCat("want ", count, " values, got ", words.size() - first));
  }
  std::vector<float> values;
  for (size_t i = first; i < words.size(); ++i) {
    float value = 0.0f;
    if (!absl::SimpleAtof(words[i], &value)) return FixtureError(line_number, "bad float");
    values.push_back(value);
  }
  return values;
}

absl::Status SetOption(int line_number, absl::string_view key, absl::string_view value,
                       OptimizerOptions* options) {
  if (key == "kind") {
    ASSIGN_OR_RETURN(options->kind, ParseOptimizerKind(value));
    return absl::OkStatus();
  }
  ASSIGN_OR_RETURN(const double number, ToDouble(line_number, value));
  const std::map<std::string, double*> doubles = {{"momentum", &options->momentum},
                                                  {"dampening", &options->dampening},
                                                  {"beta1", &options->beta1},
                                                  {"beta2", &options->beta2},
                                                  {"epsilon", &options->epsilon},
                                                  {"rmsprop_alpha", &options->rmsprop_alpha},
                                                  {"weight_decay", &options->weight_decay}};
  const std::map<std::string, bool*> bools = {{"nesterov", &options->nesterov},
                                              {"rmsprop_centered", &options->rmsprop_centered},
                                              {"amsgrad", &options->amsgrad}};
  if (const auto it = doubles.find(std::string(key)); it != doubles.end()) {
    *it->second = number;
  } else if (const auto it = bools.find(std::string(key)); it != bools.end()) {
    *it->second = number != 0;
  } else {
    return FixtureError(line_number, absl::StrCat("unknown option ", key));
  }
  return absl::OkStatus();
}

absl::StatusOr<OptimizerFixture> ParseOptimizerFixture(const std::string& text) {
  OptimizerFixture fixture;
  bool header_seen = false;
  int line_number = 0;
  for (const absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    const std::vector<absl::string_view> words = absl::StrSplit(line, ' ', absl::SkipWhitespace());
    if (words.empty() || words[0][0] == '#') continue;
    if (!header_seen) {
      if (line != "optimizer_fixture v1") return FixtureError(line_number, "bad header");
      header_seen = true;
      continue;
    }
    const absl::string_view record = words[0];
    if (record == "option" && words.size() == 3) {
      RETURN_IF_ERROR(SetOption(line_number, words[1], words[2], &fixture.options));
    } else if (record == "param" && words.size() >= 3) {
      int64_t rank = 0;
      if (!absl::SimpleAtoi(words[2], &rank) || rank < 0 ||
          static_cast<int64_t>(words.size()) < 3 + rank) {
        return FixtureError(line_number, "bad rank");
      }
      std::vector<int64_t> shape(rank);
      for (int64_t d = 0; d < rank; ++d) {
        if (!absl::SimpleAtoi(words[3 + d], &shape[d])) return FixtureError(line_number, "dim");
      }
      ASSIGN_OR_RETURN(std::vector<float> values,
                       ToFloats(line_number, words, 3 + rank, Tensor::ElementCount(shape)));
      fixture.initial[std::string(words[1])] = Tensor(shape, std::move(values));
    } else if (record == "step" && words.size() == 3) {
      fixture.steps.emplace_back();
      ASSIGN_OR_RETURN(fixture.steps.back().learning_rate, ToDouble(line_number, words[2]));
    } else if ((record == "grad" || record == "expect") && words.size() >= 2) {
      const auto param = fixture.initial.find(std::string(words[1]));
      if (fixture.steps.empty() || param == fixture.initial.end()) {
        return FixtureError(line_number, "grad or expect before its step or param");
      }
      ASSIGN_OR_RETURN(std::vector<float> values,
                       ToFloats(line_number, words, 2, param->second.size()));
      ParameterSet& target =
          record == "grad" ? fixture.steps.back().grads : fixture.steps.back().expected;
      target[param->first] = Tensor(param->second.shape, std::move(values));
    } else {
      return FixtureError(line_number, absl::StrCat("unknown record ", record));
    }
  }
  if (fixture.initial.empty() || fixture.steps.empty()) {
    return absl::InvalidArgumentError("no parameters or no steps");
  }
  for (const OptimizerFixture::Step& step : fixture.steps) {
    if (step.grads.size() != fixture.initial.size() ||
        step.expected.size() != fixture.initial.size()) {
      return absl::InvalidArgumentError("a step lacks a grad or expect record");
    }
  }
  return fixture;
}

absl::StatusOr<OptimizerFixture> ReadOptimizerFixture(const std::string& name) {
  const std::string path =
      testing::SourcePath("tests/core/fixtures/optim/optimizer_" + name + ".txt");
  std::ifstream file(path);
  if (!file) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::stringstream text;
  text << file.rdbuf();
  absl::StatusOr<OptimizerFixture> fixture = ParseOptimizerFixture(text.str());
  if (!fixture.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", fixture.status().message()));
  }
  return fixture;
}

// ---- Comparison ----

// Distance between two finite floats in units in the last place (adjacent floats are 1 apart,
// -0 and +0 are 0 apart).
int64_t UlpDistance(float a, float b) {
  const auto ordered = [](float x) {
    int32_t bits;
    std::memcpy(&bits, &x, sizeof(bits));
    return bits < 0 ? int64_t{std::numeric_limits<int32_t>::min()} - bits : int64_t{bits};
  };
  return std::llabs(ordered(a) - ordered(b));
}

::testing::AssertionResult WithinUlps(const std::string& what, const ParameterSet& actual,
                                      const ParameterSet& expected, int64_t max_ulps) {
  for (const auto& [name, want] : expected) {
    const auto got = actual.find(name);
    if (got == actual.end() || got->second.shape != want.shape ||
        got->second.size() != want.size()) {
      return ::testing::AssertionFailure() << what << ": " << name << " missing or misshapen";
    }
    for (int64_t i = 0; i < want.size(); ++i) {
      const float a = got->second.values[i];
      const float e = want.values[i];
      if (!std::isfinite(a) || UlpDistance(a, e) > max_ulps) {
        return ::testing::AssertionFailure()
               << what << ": " << name << "[" << i << "] = " << std::setprecision(9) << a
               << ", PyTorch " << e << " (" << UlpDistance(a, e) << " ulps apart, allowed "
               << max_ulps << ")";
      }
    }
  }
  return ::testing::AssertionSuccess();
}

bool BitIdentical(const ParameterSet& a, const ParameterSet& b) {
  if (a.size() != b.size()) return false;
  for (const auto& [name, tensor] : a) {
    const auto other = b.find(name);
    if (other == b.end() || other->second.shape != tensor.shape ||
        other->second.size() != tensor.size() ||
        std::memcmp(tensor.data(), other->second.data(), tensor.size() * sizeof(float)) != 0) {
      return false;
    }
  }
  return true;
}

// ---- PyTorch parity ----

class OptimizerParityTest : public ::testing::TestWithParam<std::string> {};

TEST_P(OptimizerParityTest, EveryStepMatchesPyTorch) {
  const absl::StatusOr<OptimizerFixture> fixture = ReadOptimizerFixture(GetParam());
  ASSERT_TRUE(fixture.ok()) << fixture.status();
  absl::StatusOr<std::unique_ptr<Optimizer>> optimizer =
      Optimizer::Create(fixture->options, fixture->initial);
  ASSERT_TRUE(optimizer.ok()) << optimizer.status();
  ParameterSet params = fixture->initial;
  for (size_t k = 0; k < fixture->steps.size(); ++k) {
    const OptimizerFixture::Step& step = fixture->steps[k];
    ASSERT_TRUE((*optimizer)->Step(step.grads, step.learning_rate, &params).ok());
    ASSERT_TRUE(WithinUlps(absl::StrCat("after step ", k + 1), params, step.expected, kMaxUlps));
  }
  EXPECT_EQ((*optimizer)->state().steps, static_cast<int64_t>(fixture->steps.size()));
}

TEST_P(OptimizerParityTest, RestoredStateContinuesBitIdentically) {
  const absl::StatusOr<OptimizerFixture> fixture = ReadOptimizerFixture(GetParam());
  ASSERT_TRUE(fixture.ok()) << fixture.status();
  const std::vector<OptimizerFixture::Step>& steps = fixture->steps;
  const size_t interrupt_after = 2;
  ASSERT_GT(steps.size(), interrupt_after);

  ParameterSet uninterrupted = fixture->initial;
  {
    std::unique_ptr<Optimizer> optimizer = *Optimizer::Create(fixture->options, fixture->initial);
    for (const auto& step : steps) {
      ASSERT_TRUE(optimizer->Step(step.grads, step.learning_rate, &uninterrupted).ok());
    }
  }

  ParameterSet resumed = fixture->initial;
  OptimizerState checkpoint;
  {
    std::unique_ptr<Optimizer> optimizer = *Optimizer::Create(fixture->options, fixture->initial);
    for (size_t k = 0; k < interrupt_after; ++k) {
      ASSERT_TRUE(optimizer->Step(steps[k].grads, steps[k].learning_rate, &resumed).ok());
    }
    checkpoint = optimizer->state();
  }
  // A fresh optimizer, as after a restart: its zero slots must be replaced, not reused.
  std::unique_ptr<Optimizer> optimizer = *Optimizer::Create(fixture->options, fixture->initial);
  ASSERT_TRUE(optimizer->RestoreState(checkpoint).ok());
  EXPECT_EQ(optimizer->state().steps, static_cast<int64_t>(interrupt_after));
  for (size_t k = interrupt_after; k < steps.size(); ++k) {
    ASSERT_TRUE(optimizer->Step(steps[k].grads, steps[k].learning_rate, &resumed).ok());
  }
  EXPECT_TRUE(BitIdentical(resumed, uninterrupted));
  EXPECT_TRUE(WithinUlps("resumed", resumed, steps.back().expected, kMaxUlps));
}

INSTANTIATE_TEST_SUITE_P(TorchOptim, OptimizerParityTest,
                         ::testing::Values("sgd", "sgd_momentum_dampening", "sgd_nesterov",
                                           "sgd_weight_decay", "adam", "adam_weight_decay",
                                           "adam_amsgrad", "adamw", "adamw_amsgrad", "rmsprop",
                                           "rmsprop_centered_momentum"));

// PyTorch's first SGD step sets the momentum buffer to the gradient (its buffer is None before),
// so whatever a steps == 0 state holds in its buffer must not leak into that step.
TEST(OptimizerTest, RestoringStepZeroKeepsTheFirstStepUndampened) {
  const absl::StatusOr<OptimizerFixture> fixture = ReadOptimizerFixture("sgd_momentum_dampening");
  ASSERT_TRUE(fixture.ok()) << fixture.status();
  std::unique_ptr<Optimizer> optimizer = *Optimizer::Create(fixture->options, fixture->initial);
  OptimizerState state = optimizer->state();
  for (auto& [name, slots] : state.slots) {
    for (auto& [slot, values] : slots) values.assign(values.size(), 123.0f);  // stale garbage
  }
  ASSERT_TRUE(optimizer->RestoreState(state).ok());
  ParameterSet params = fixture->initial;
  const OptimizerFixture::Step& first = fixture->steps.front();
  ASSERT_TRUE(optimizer->Step(first.grads, first.learning_rate, &params).ok());
  EXPECT_TRUE(WithinUlps("after step 1", params, first.expected, kMaxUlps));
}

// ---- Names and options ----

TEST(OptimizerTest, KindNamesRoundTrip) {
  for (const OptimizerKind kind : {OptimizerKind::kSgd, OptimizerKind::kAdam, OptimizerKind::kAdamW,
                                   OptimizerKind::kRmsprop}) {
    const absl::StatusOr<OptimizerKind> parsed = ParseOptimizerKind(OptimizerKindName(kind));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, kind);
  }
  EXPECT_EQ(OptimizerKindName(OptimizerKind::kAdamW), "adamw");
  EXPECT_EQ(ParseOptimizerKind("Adam").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseOptimizerKind("").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(OptimizerTest, SlotNamesFollowTheOptions) {
  OptimizerOptions options;
  options.kind = OptimizerKind::kSgd;
  EXPECT_TRUE(OptimizerSlotNames(options).empty());
  options.momentum = 0.9;
  EXPECT_EQ(OptimizerSlotNames(options), std::vector<std::string>{"momentum_buffer"});
  options.kind = OptimizerKind::kAdamW;
  options.amsgrad = true;
  EXPECT_EQ(OptimizerSlotNames(options),
            (std::vector<std::string>{"exp_avg", "exp_avg_sq", "max_exp_avg_sq"}));
  options.kind = OptimizerKind::kRmsprop;
  options.rmsprop_centered = true;
  EXPECT_EQ(OptimizerSlotNames(options),
            (std::vector<std::string>{"grad_avg", "momentum_buffer", "square_avg"}));
}

TEST(OptimizerTest, DefaultOptionsOfEveryKindAreValid) {
  for (const OptimizerKind kind : {OptimizerKind::kSgd, OptimizerKind::kAdam, OptimizerKind::kAdamW,
                                   OptimizerKind::kRmsprop}) {
    OptimizerOptions options;
    options.kind = kind;
    EXPECT_TRUE(ValidateOptimizerOptions(options).ok()) << OptimizerKindName(kind);
  }
  OptimizerOptions nesterov;
  nesterov.kind = OptimizerKind::kSgd;
  nesterov.momentum = 0.9;
  nesterov.nesterov = true;
  EXPECT_TRUE(ValidateOptimizerOptions(nesterov).ok());
}

TEST(OptimizerTest, OptionsPyTorchRefusesAreInvalid) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  struct Case {
    const char* what;
    OptimizerKind kind;
    std::function<void(OptimizerOptions&)> mutate;
  };
  const Case cases[] = {
      {"negative lr", OptimizerKind::kAdam, [](OptimizerOptions& o) { o.learning_rate = -1e-3; }},
      {"NaN lr", OptimizerKind::kSgd, [&](OptimizerOptions& o) { o.learning_rate = nan; }},
      {"infinite lr", OptimizerKind::kRmsprop, [&](OptimizerOptions& o) { o.learning_rate = inf; }},
      {"beta1 = 1", OptimizerKind::kAdam, [](OptimizerOptions& o) { o.beta1 = 1.0; }},
      {"negative beta1", OptimizerKind::kAdamW, [](OptimizerOptions& o) { o.beta1 = -0.1; }},
      {"beta2 > 1", OptimizerKind::kAdam, [](OptimizerOptions& o) { o.beta2 = 1.5; }},
      {"NaN beta2", OptimizerKind::kAdamW, [&](OptimizerOptions& o) { o.beta2 = nan; }},
      {"negative epsilon", OptimizerKind::kAdam, [](OptimizerOptions& o) { o.epsilon = -1e-8; }},
      {"negative weight decay", OptimizerKind::kAdamW,
       [](OptimizerOptions& o) { o.weight_decay = -0.01; }},
      {"infinite weight decay", OptimizerKind::kSgd,
       [&](OptimizerOptions& o) { o.weight_decay = inf; }},
      {"negative momentum", OptimizerKind::kSgd, [](OptimizerOptions& o) { o.momentum = -0.9; }},
      {"nesterov without momentum", OptimizerKind::kSgd,
       [](OptimizerOptions& o) { o.nesterov = true; }},
      {"nesterov with dampening", OptimizerKind::kSgd,
       [](OptimizerOptions& o) {
         o.nesterov = true;
         o.momentum = 0.9;
         o.dampening = 0.1;
       }},
      {"negative rmsprop momentum", OptimizerKind::kRmsprop,
       [](OptimizerOptions& o) { o.momentum = -0.5; }},
      {"negative alpha", OptimizerKind::kRmsprop,
       [](OptimizerOptions& o) { o.rmsprop_alpha = -0.99; }},
      {"negative rmsprop epsilon", OptimizerKind::kRmsprop,
       [](OptimizerOptions& o) { o.epsilon = -1.0; }},
  };
  const ParameterSet params = {{"w", Tensor({2}, {1.0f, 2.0f})}};
  for (const Case& c : cases) {
    OptimizerOptions options;
    options.kind = c.kind;
    c.mutate(options);
    EXPECT_EQ(ValidateOptimizerOptions(options).code(), absl::StatusCode::kInvalidArgument)
        << c.what;
    EXPECT_EQ(Optimizer::Create(options, params).status().code(),
              absl::StatusCode::kInvalidArgument)
        << c.what;
  }
}

TEST(OptimizerTest, CreateRejectsNoParametersAndInconsistentTensors) {
  const OptimizerOptions options;
  EXPECT_EQ(Optimizer::Create(options, {}).status().code(), absl::StatusCode::kInvalidArgument);
  const ParameterSet inconsistent = {{"w", Tensor({2, 2}, {1.0f, 2.0f, 3.0f})}};
  EXPECT_EQ(Optimizer::Create(options, inconsistent).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// ---- Refused steps change nothing ----

class OptimizerStepRefusalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    params_ = {{"b", Tensor({3}, {0.5f, -0.5f, 1.5f})},
               {"w", Tensor({2, 2}, {1.0f, 2.0f, 3.0f, 4.0f})}};
    grads_ = {{"b", Tensor({3}, {0.1f, 0.2f, 0.3f})},
              {"w", Tensor({2, 2}, {0.4f, 0.5f, 0.6f, 0.7f})}};
    OptimizerOptions options;
    options.kind = OptimizerKind::kAdam;
    optimizer_ = *Optimizer::Create(options, params_);
    // One good step, so a refused one could visibly disturb non-zero slots.
    ASSERT_TRUE(optimizer_->Step(grads_, 1e-2, &params_).ok());
  }

  // Step must fail with InvalidArgument and leave the parameters and the state untouched.
  void ExpectRefused(const ParameterSet& grads, double learning_rate, const char* what) {
    const ParameterSet params_before = params_;
    const OptimizerState state_before = optimizer_->state();
    EXPECT_EQ(optimizer_->Step(grads, learning_rate, &params_).code(),
              absl::StatusCode::kInvalidArgument)
        << what;
    EXPECT_TRUE(BitIdentical(params_, params_before)) << what;
    EXPECT_EQ(optimizer_->state().steps, state_before.steps) << what;
    EXPECT_EQ(optimizer_->state().slots, state_before.slots) << what;
  }

  ParameterSet params_;
  ParameterSet grads_;
  std::unique_ptr<Optimizer> optimizer_;
};

TEST_F(OptimizerStepRefusalTest, MissingGradientIsRefused) {
  ParameterSet grads = grads_;
  grads.erase("w");
  ExpectRefused(grads, 1e-2, "missing w");
}

TEST_F(OptimizerStepRefusalTest, UnknownGradientIsRefused) {
  ParameterSet grads = grads_;
  grads["extra"] = Tensor({1}, {1.0f});
  ExpectRefused(grads, 1e-2, "extra tensor");
}

TEST_F(OptimizerStepRefusalTest, MisshapenGradientIsRefused) {
  ParameterSet reshaped = grads_;
  reshaped["w"].shape = {4};  // same count, other shape
  ExpectRefused(reshaped, 1e-2, "shape [4] for [2, 2]");
  ParameterSet short_values = grads_;
  short_values["b"].values.pop_back();
  ExpectRefused(short_values, 1e-2, "2 values for [3]");
}

TEST_F(OptimizerStepRefusalTest, BadLearningRateIsRefused) {
  ExpectRefused(grads_, -1e-3, "negative lr");
  ExpectRefused(grads_, std::numeric_limits<double>::quiet_NaN(), "NaN lr");
  ExpectRefused(grads_, std::numeric_limits<double>::infinity(), "infinite lr");
}

TEST_F(OptimizerStepRefusalTest, ParametersOtherThanCreatedWithAreRefused) {
  ParameterSet params = params_;
  params.erase("b");
  ParameterSet grads = grads_;
  grads.erase("b");
  EXPECT_EQ(optimizer_->Step(grads, 1e-2, &params).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(optimizer_->Step(grads_, 1e-2, nullptr).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(optimizer_->state().steps, 1);
}

// ---- Restore validation ----

TEST_F(OptimizerStepRefusalTest, RestoreRejectsStatesOfAnotherShape) {
  const OptimizerState good = optimizer_->state();
  const auto expect_rejected = [&](const OptimizerState& state, const char* what) {
    EXPECT_EQ(optimizer_->RestoreState(state).code(), absl::StatusCode::kInvalidArgument) << what;
    EXPECT_EQ(optimizer_->state().slots, good.slots) << what;
    EXPECT_EQ(optimizer_->state().steps, good.steps) << what;
  };
  OptimizerState negative = good;
  negative.steps = -1;
  expect_rejected(negative, "negative steps");
  OptimizerState missing = good;
  missing.slots.erase("w");
  expect_rejected(missing, "missing parameter");
  OptimizerState renamed = good;
  renamed.slots["v"] = renamed.slots["w"];
  renamed.slots.erase("w");
  expect_rejected(renamed, "unknown parameter");
  OptimizerState wrong_slot = good;
  wrong_slot.slots["w"]["momentum_buffer"] = wrong_slot.slots["w"]["exp_avg"];
  wrong_slot.slots["w"].erase("exp_avg");
  expect_rejected(wrong_slot, "momentum_buffer instead of exp_avg");
  OptimizerState extra_slot = good;
  extra_slot.slots["w"]["max_exp_avg_sq"] = extra_slot.slots["w"]["exp_avg"];
  expect_rejected(extra_slot, "amsgrad slot without amsgrad");
  OptimizerState short_slot = good;
  short_slot.slots["b"]["exp_avg_sq"].pop_back();
  expect_rejected(short_slot, "short exp_avg_sq");
  EXPECT_TRUE(optimizer_->RestoreState(good).ok());
}

}  // namespace
}  // namespace recurrent::core
