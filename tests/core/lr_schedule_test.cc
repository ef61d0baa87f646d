// The schedules against PyTorch 1.13's torch.optim.lr_scheduler: every
// tests/core/fixtures/optim/schedule_*.txt (written by scripts/gen_optim_fixtures.py, format in
// its docstring) is the learning rate of 30 epochs of StepLR, CosineAnnealingLR (past T_max) or
// ReduceLROnPlateau (fed a fixed loss sequence). Plus checkpointing and the refusals.
#include "core/lr_schedule.h"

#include <cmath>
#include <cstdint>
#include <fstream>
#include <iomanip>
#include <limits>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/status_macros.h"
#include "gtest/gtest.h"
#include "tests/testing/test_paths.h"

namespace recurrent::core {
namespace {

// Each schedule repeats PyTorch's double recurrence operation for operation, so on the fixtures'
// platform the rates are identical; 1e-12 relative leaves room for a libm whose cos() rounds
// differently, while an off-by-one epoch, a wrong branch or a missed reduction moves a rate by
// orders of magnitude more.
constexpr double kRelativeTolerance = 1e-12;

// ---- Fixture reader (format: scripts/gen_optim_fixtures.py) ----

struct ScheduleFixture {
  LrScheduleOptions options;
  double base_learning_rate = 0.0;
  std::vector<double> learning_rates;  // the rate during epoch e
  std::vector<double> losses;          // reported at the end of epoch e
};

absl::StatusOr<ScheduleFixture> ParseScheduleFixture(const std::string& text) {
  ScheduleFixture fixture;
  bool header_seen = false;
  int line_number = 0;
  for (const absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    const auto error = [&](absl::string_view message) {
      return absl::InvalidArgumentError(absl::StrCat("line ", line_number, ": ", message));
    };
    const std::vector<absl::string_view> words = absl::StrSplit(line, ' ', absl::SkipWhitespace());
    if (words.empty() || words[0][0] == '#') continue;
    if (!header_seen) {
      if (line != "schedule_fixture v1") return error("bad header");
      header_seen = true;
      continue;
    }
    if (words[0] == "option" && words.size() == 3) {
      LrScheduleOptions& o = fixture.options;
      if (words[1] == "kind") {
        ASSIGN_OR_RETURN(o.kind, ParseScheduleKind(words[2]));
        continue;
      }
      double value = 0.0;
      if (!absl::SimpleAtod(words[2], &value)) return error("bad number");
      const std::map<std::string, double*> doubles = {{"base_lr", &fixture.base_learning_rate},
                                                      {"gamma", &o.gamma},
                                                      {"eta_min", &o.eta_min},
                                                      {"factor", &o.factor},
                                                      {"threshold", &o.threshold},
                                                      {"min_lr", &o.min_lr}};
      const std::map<std::string, int64_t*> ints = {{"step_size", &o.step_size},
                                                    {"t_max", &o.t_max},
                                                    {"patience", &o.patience},
                                                    {"cooldown", &o.cooldown}};
      if (const auto it = doubles.find(std::string(words[1])); it != doubles.end()) {
        *it->second = value;
      } else if (const auto it = ints.find(std::string(words[1])); it != ints.end()) {
        *it->second = static_cast<int64_t>(value);
      } else {
        return error(absl::StrCat("unknown option ", words[1]));
      }
    } else if (words[0] == "epoch" && words.size() == 4) {
      int64_t epoch = -1;
      double lr = 0.0, loss = 0.0;
      if (!absl::SimpleAtoi(words[1], &epoch) ||
          epoch != static_cast<int64_t>(fixture.learning_rates.size()) ||
          !absl::SimpleAtod(words[2], &lr) || !absl::SimpleAtod(words[3], &loss)) {
        return error("bad epoch record");
      }
      fixture.learning_rates.push_back(lr);
      fixture.losses.push_back(loss);
    } else {
      return error(absl::StrCat("unknown record ", words[0]));
    }
  }
  if (fixture.learning_rates.empty()) return absl::InvalidArgumentError("no epochs");
  return fixture;
}

absl::StatusOr<ScheduleFixture> ReadScheduleFixture(const std::string& kind) {
  const std::string path =
      testing::SourcePath("tests/core/fixtures/optim/schedule_" + kind + ".txt");
  std::ifstream file(path);
  if (!file) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::stringstream text;
  text << file.rdbuf();
  absl::StatusOr<ScheduleFixture> fixture = ParseScheduleFixture(text.str());
  if (!fixture.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", fixture.status().message()));
  }
  return fixture;
}

::testing::AssertionResult RateMatches(int64_t epoch, double actual, double expected) {
  if (std::fabs(actual - expected) <= kRelativeTolerance * std::fabs(expected)) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << "epoch " << epoch << ": lr " << std::setprecision(17)
                                       << actual << ", PyTorch " << expected;
}

// ---- PyTorch parity ----

class LrScheduleParityTest : public ::testing::TestWithParam<std::string> {};

TEST_P(LrScheduleParityTest, EveryEpochsRateMatchesPyTorch) {
  const absl::StatusOr<ScheduleFixture> fixture = ReadScheduleFixture(GetParam());
  ASSERT_TRUE(fixture.ok()) << fixture.status();
  absl::StatusOr<LrSchedule> schedule =
      LrSchedule::Create(fixture->options, fixture->base_learning_rate);
  ASSERT_TRUE(schedule.ok()) << schedule.status();
  for (size_t e = 0; e < fixture->learning_rates.size(); ++e) {
    EXPECT_EQ(schedule->state().epoch, static_cast<int64_t>(e));
    ASSERT_TRUE(RateMatches(e, schedule->learning_rate(), fixture->learning_rates[e]));
    schedule->EndEpoch(fixture->losses[e]);
  }
}

TEST_P(LrScheduleParityTest, RestoredStateContinuesExactly) {
  const absl::StatusOr<ScheduleFixture> fixture = ReadScheduleFixture(GetParam());
  ASSERT_TRUE(fixture.ok()) << fixture.status();
  const size_t interrupt_after = 11;  // mid plateau cooldown, just before the cosine minimum
  LrScheduleState checkpoint;
  {
    LrSchedule schedule = *LrSchedule::Create(fixture->options, fixture->base_learning_rate);
    for (size_t e = 0; e < interrupt_after; ++e) schedule.EndEpoch(fixture->losses[e]);
    checkpoint = schedule.state();
  }
  LrSchedule resumed = *LrSchedule::Create(fixture->options, fixture->base_learning_rate);
  ASSERT_TRUE(resumed.Restore(checkpoint).ok());
  for (size_t e = interrupt_after; e < fixture->learning_rates.size(); ++e) {
    ASSERT_TRUE(RateMatches(e, resumed.learning_rate(), fixture->learning_rates[e]));
    resumed.EndEpoch(fixture->losses[e]);
  }
}

INSTANTIATE_TEST_SUITE_P(TorchLrScheduler, LrScheduleParityTest,
                         ::testing::Values("step", "cosine", "plateau"));

// ---- Behaviour without a fixture ----

TEST(LrScheduleTest, ConstantScheduleKeepsTheBaseRate) {
  LrSchedule schedule = *LrSchedule::Create(LrScheduleOptions{}, 0.25);
  for (int e = 0; e < 5; ++e) {
    EXPECT_EQ(schedule.learning_rate(), 0.25);
    schedule.EndEpoch(/*monitored_loss=*/10.0 + e);  // worsening loss: ignored
  }
  EXPECT_EQ(schedule.state().epoch, 5);
}

// PyTorch compares NaN < best, which is false: a NaN loss is a bad epoch, never the new best.
TEST(LrScheduleTest, PlateauCountsNanLossAsBadEpoch) {
  LrScheduleOptions options;
  options.kind = ScheduleKind::kReduceOnPlateau;
  options.patience = 1;
  options.factor = 0.5;
  LrSchedule schedule = *LrSchedule::Create(options, 1.0);
  schedule.EndEpoch(1.0);
  schedule.EndEpoch(std::numeric_limits<double>::quiet_NaN());
  EXPECT_EQ(schedule.state().best, 1.0);
  EXPECT_EQ(schedule.state().num_bad_epochs, 1);
  EXPECT_EQ(schedule.learning_rate(), 1.0);
  schedule.EndEpoch(std::numeric_limits<double>::quiet_NaN());
  EXPECT_EQ(schedule.learning_rate(), 0.5);
}

TEST(LrScheduleTest, KindNamesRoundTrip) {
  for (const ScheduleKind kind : {ScheduleKind::kConstant, ScheduleKind::kStepDecay,
                                  ScheduleKind::kCosine, ScheduleKind::kReduceOnPlateau}) {
    const absl::StatusOr<ScheduleKind> parsed = ParseScheduleKind(ScheduleKindName(kind));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, kind);
  }
  EXPECT_EQ(ParseScheduleKind("cosine_annealing").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(LrScheduleTest, InvalidOptionsAreRejected) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  std::vector<std::pair<const char*, LrScheduleOptions>> cases;
  const auto add = [&](const char* what, ScheduleKind kind, auto mutate) {
    LrScheduleOptions options;
    options.kind = kind;
    mutate(options);
    cases.emplace_back(what, options);
  };
  add("step_size 0", ScheduleKind::kStepDecay, [](auto& o) { o.step_size = 0; });
  add("gamma 0", ScheduleKind::kStepDecay, [](auto& o) { o.gamma = 0.0; });
  add("NaN gamma", ScheduleKind::kStepDecay, [&](auto& o) { o.gamma = nan; });
  add("t_max 0", ScheduleKind::kCosine, [](auto& o) { o.t_max = 0; });
  add("negative eta_min", ScheduleKind::kCosine, [](auto& o) { o.eta_min = -1e-3; });
  add("factor 1", ScheduleKind::kReduceOnPlateau, [](auto& o) { o.factor = 1.0; });
  add("factor 0", ScheduleKind::kReduceOnPlateau, [](auto& o) { o.factor = 0.0; });
  add("negative patience", ScheduleKind::kReduceOnPlateau, [](auto& o) { o.patience = -1; });
  add("negative threshold", ScheduleKind::kReduceOnPlateau, [](auto& o) { o.threshold = -0.1; });
  add("negative cooldown", ScheduleKind::kReduceOnPlateau, [](auto& o) { o.cooldown = -2; });
  add("NaN min_lr", ScheduleKind::kReduceOnPlateau, [&](auto& o) { o.min_lr = nan; });
  add("negative min_lr_change", ScheduleKind::kReduceOnPlateau,
      [](auto& o) { o.min_lr_change = -1.0; });
  for (const auto& [what, options] : cases) {
    EXPECT_EQ(ValidateLrScheduleOptions(options).code(), absl::StatusCode::kInvalidArgument)
        << what;
    EXPECT_EQ(LrSchedule::Create(options, 0.1).status().code(), absl::StatusCode::kInvalidArgument)
        << what;
  }
  for (const double base : {-0.1, nan, std::numeric_limits<double>::infinity()}) {
    EXPECT_EQ(LrSchedule::Create(LrScheduleOptions{}, base).status().code(),
              absl::StatusCode::kInvalidArgument)
        << base;
  }
}

TEST(LrScheduleTest, RestoreRejectsImpossibleStates) {
  LrScheduleOptions options;
  options.kind = ScheduleKind::kReduceOnPlateau;
  LrSchedule schedule = *LrSchedule::Create(options, 0.1);
  schedule.EndEpoch(1.0);
  const LrScheduleState good = schedule.state();
  std::vector<std::pair<const char*, LrScheduleState>> cases;
  const auto add = [&](const char* what, auto mutate) {
    LrScheduleState state = good;
    mutate(state);
    cases.emplace_back(what, state);
  };
  add("negative epoch", [](auto& s) { s.epoch = -1; });
  add("negative rate", [](auto& s) { s.learning_rate = -0.1; });
  add("NaN rate", [](auto& s) { s.learning_rate = std::numeric_limits<double>::quiet_NaN(); });
  add("NaN best", [](auto& s) { s.best = std::numeric_limits<double>::quiet_NaN(); });
  add("negative bad epochs", [](auto& s) { s.num_bad_epochs = -1; });
  add("negative cooldown", [](auto& s) { s.cooldown_counter = -1; });
  for (const auto& [what, state] : cases) {
    EXPECT_EQ(schedule.Restore(state).code(), absl::StatusCode::kInvalidArgument) << what;
    EXPECT_EQ(schedule.state().epoch, good.epoch) << what;
    EXPECT_EQ(schedule.state().learning_rate, good.learning_rate) << what;
    EXPECT_EQ(schedule.state().best, good.best) << what;
  }
}

}  // namespace
}  // namespace recurrent::core
