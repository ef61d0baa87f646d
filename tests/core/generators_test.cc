#include "core/generators.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <set>
#include <vector>

#include "gtest/gtest.h"

namespace recurrent::core {
namespace {

template <typename T>
void ExpectInvalid(const absl::StatusOr<T>& result, absl::string_view fragment) {
  ASSERT_FALSE(result.ok()) << "expected an error containing '" << fragment << "'";
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument) << result.status();
  EXPECT_NE(result.status().message().find(fragment), absl::string_view::npos)
      << "'" << result.status().message() << "' lacks '" << fragment << "'";
}

// ---- Adding problem

TEST(AddingProblemTest, TwoMarkersOneInEachHalfAndTheTargetIsTheirSum) {
  for (const int64_t length : {2, 7, 10, 51}) {
    SCOPED_TRACE(length);
    const absl::StatusOr<Dataset> dataset = MakeAddingProblem(200, length, /*seed=*/1);
    ASSERT_TRUE(dataset.ok()) << dataset.status();
    EXPECT_EQ(dataset->kind, TargetKind::kSequenceValues);
    EXPECT_EQ(dataset->input_size, 2);
    EXPECT_EQ(dataset->target_size, 1);
    EXPECT_EQ(dataset->input_names, (std::vector<std::string>{"value", "marker"}));
    EXPECT_EQ(dataset->target_names, (std::vector<std::string>{"sum"}));
    ASSERT_EQ(dataset->sequences.size(), 200u);
    const int64_t half = length / 2;
    for (const Sequence& sequence : dataset->sequences) {
      ASSERT_EQ(sequence.length, length);
      std::vector<int64_t> marked;
      for (int64_t t = 0; t < length; ++t) {
        const float value = sequence.inputs[2 * t];
        const float marker = sequence.inputs[2 * t + 1];
        EXPECT_GE(value, 0.0f);
        EXPECT_LT(value, 1.0f);
        ASSERT_TRUE(marker == 0.0f || marker == 1.0f) << marker;
        if (marker == 1.0f) marked.push_back(t);
      }
      ASSERT_EQ(marked.size(), 2u);
      EXPECT_LT(marked[0], half);
      EXPECT_GE(marked[1], half);
      ASSERT_EQ(sequence.targets.size(), 1u);
      EXPECT_EQ(sequence.targets[0],
                sequence.inputs[2 * marked[0]] + sequence.inputs[2 * marked[1]]);
    }
  }
}

TEST(AddingProblemTest, MarkersReachEveryPositionOfTheirHalf) {
  const absl::StatusOr<Dataset> dataset = MakeAddingProblem(2000, 10, /*seed=*/7);
  ASSERT_TRUE(dataset.ok());
  std::set<int64_t> positions;
  for (const Sequence& sequence : dataset->sequences) {
    for (int64_t t = 0; t < 10; ++t) {
      if (sequence.inputs[2 * t + 1] == 1.0f) positions.insert(t);
    }
  }
  EXPECT_EQ(positions.size(), 10u);
}

TEST(AddingProblemTest, PredictingOneScoresTheBaseline) {
  const absl::StatusOr<Dataset> dataset = MakeAddingProblem(20000, 4, /*seed=*/3);
  ASSERT_TRUE(dataset.ok());
  double squared_error = 0.0;
  for (const Sequence& sequence : dataset->sequences) {
    squared_error += std::pow(sequence.targets[0] - 1.0, 2);
  }
  // Var(U1 + U2) = 1/6; the standard error of the mean of 20000 draws is about 0.0011.
  EXPECT_NEAR(squared_error / 20000.0, kAddingProblemBaselineMse, 0.006);
}

TEST(AddingProblemTest, SameSeedSameDataOtherSeedOtherData) {
  const absl::StatusOr<Dataset> a = MakeAddingProblem(50, 20, 42);
  const absl::StatusOr<Dataset> b = MakeAddingProblem(50, 20, 42);
  const absl::StatusOr<Dataset> c = MakeAddingProblem(50, 20, 43);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(a->sequences[17].inputs, b->sequences[17].inputs);
  EXPECT_EQ(DatasetFingerprint(*a), DatasetFingerprint(*b));
  EXPECT_NE(DatasetFingerprint(*a), DatasetFingerprint(*c));
  EXPECT_NE(a->sequences[0].inputs, c->sequences[0].inputs);
}

TEST(AddingProblemTest, RejectsBadSizes) {
  ExpectInvalid(MakeAddingProblem(10, 1, 0), "adding problem: length must be in [2, ");
  ExpectInvalid(MakeAddingProblem(0, 10, 0), "adding problem: num_sequences must be in [1, ");
  DatasetLimits limits;
  limits.max_total_values = 10 * 21 - 1;
  ExpectInvalid(MakeAddingProblem(10, 10, 0, limits), "more than max_total_values");
  limits.max_total_values = 10 * 21;
  EXPECT_TRUE(MakeAddingProblem(10, 10, 0, limits).ok());
}

// ---- Copying memory

// The category of each step of a one-hot [T, 10] input.
std::vector<int32_t> Categories(const Sequence& sequence) {
  std::vector<int32_t> categories;
  for (int64_t t = 0; t < sequence.length; ++t) {
    int ones = 0;
    int32_t category = -1;
    for (int32_t c = 0; c < kCopyingInputSize; ++c) {
      const float value = sequence.inputs[t * kCopyingInputSize + c];
      EXPECT_TRUE(value == 0.0f || value == 1.0f);
      if (value == 1.0f) {
        ++ones;
        category = c;
      }
    }
    EXPECT_EQ(ones, 1) << "step " << t;
    categories.push_back(category);
  }
  return categories;
}

TEST(CopyingMemoryTest, LayoutFollowsArjovskyEtAl) {
  const int64_t delay = 5;
  const absl::StatusOr<Dataset> dataset = MakeCopyingMemory(100, delay, /*seed=*/11);
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  EXPECT_EQ(dataset->kind, TargetKind::kPerStepLabels);
  EXPECT_EQ(dataset->input_size, 10);
  EXPECT_EQ(dataset->target_size, 9);
  EXPECT_EQ(dataset->input_names.size(), 10u);
  EXPECT_EQ(dataset->input_names.back(), "marker");
  EXPECT_EQ(dataset->target_names.front(), "blank");
  std::set<int32_t> symbols_seen;
  for (const Sequence& sequence : dataset->sequences) {
    ASSERT_EQ(sequence.length, delay + 20);
    const std::vector<int32_t> input = Categories(sequence);
    // Steps 0-9: data symbols; 10-13 (T - 1 = 4): blank; 14: marker; 15-24: blank.
    for (int64_t t = 0; t < 10; ++t) {
      EXPECT_GE(input[t], 1);
      EXPECT_LE(input[t], 8);
      symbols_seen.insert(input[t]);
    }
    for (int64_t t = 10; t < 14; ++t) EXPECT_EQ(input[t], 0) << t;
    EXPECT_EQ(input[14], 9);
    for (int64_t t = 15; t < 25; ++t) EXPECT_EQ(input[t], 0) << t;
    // Labels: blank for T + 10 = 15 steps, then the 10 symbols in order.
    ASSERT_EQ(sequence.labels.size(), 25u);
    for (int64_t t = 0; t < 15; ++t) EXPECT_EQ(sequence.labels[t], 0) << t;
    for (int64_t t = 0; t < 10; ++t) EXPECT_EQ(sequence.labels[15 + t], input[t]) << t;
  }
  EXPECT_EQ(symbols_seen, (std::set<int32_t>{1, 2, 3, 4, 5, 6, 7, 8}));
}

TEST(CopyingMemoryTest, DelayOnePutsTheMarkerRightAfterTheSymbols) {
  const absl::StatusOr<Dataset> dataset = MakeCopyingMemory(3, 1, /*seed=*/0);
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  const std::vector<int32_t> input = Categories(dataset->sequences[0]);
  ASSERT_EQ(input.size(), 21u);
  EXPECT_EQ(input[10], kCopyingMarker);
  EXPECT_EQ(input[9] >= 1 && input[9] <= 8, true);
}

TEST(CopyingMemoryTest, BaselineIsTenLnEightOverTheLength) {
  EXPECT_NEAR(CopyingMemoryBaselineCrossEntropy(100), 10.0 * std::log(8.0) / 120.0, 1e-12);
  // The memoryless predictor's mean cross-entropy, measured on data: blank is certain for the
  // first T + 10 steps, and each of the last 10 labels is one of 8 equally likely symbols.
  const int64_t delay = 30;
  const absl::StatusOr<Dataset> dataset = MakeCopyingMemory(10, delay, 5);
  ASSERT_TRUE(dataset.ok());
  double loss = 0.0;
  int64_t steps = 0;
  for (const Sequence& sequence : dataset->sequences) {
    for (const int32_t label : sequence.labels) {
      loss += label == kCopyingBlank ? 0.0 : std::log(8.0);
      ++steps;
    }
  }
  EXPECT_NEAR(loss / static_cast<double>(steps), CopyingMemoryBaselineCrossEntropy(delay), 1e-12);
}

TEST(CopyingMemoryTest, DeterministicFromTheSeed) {
  const absl::StatusOr<Dataset> a = MakeCopyingMemory(20, 10, 1);
  const absl::StatusOr<Dataset> b = MakeCopyingMemory(20, 10, 1);
  const absl::StatusOr<Dataset> c = MakeCopyingMemory(20, 10, 2);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(DatasetFingerprint(*a), DatasetFingerprint(*b));
  EXPECT_NE(DatasetFingerprint(*a), DatasetFingerprint(*c));
}

TEST(CopyingMemoryTest, RejectsBadSizes) {
  ExpectInvalid(MakeCopyingMemory(10, 0, 0), "copying memory: delay must be in [1, ");
  ExpectInvalid(MakeCopyingMemory(0, 10, 0), "copying memory: num_sequences must be in [1, ");
  DatasetLimits limits;
  limits.max_sequence_length = 25;
  EXPECT_TRUE(MakeCopyingMemory(1, 5, 0, limits).ok());
  ExpectInvalid(MakeCopyingMemory(1, 6, 0, limits), "delay must be in [1, 5], got 6");
}

// ---- Mackey-Glass

// An independent integration: forward Euler with a tiny step, the delayed value read exactly
// from the grid (tau / dt = 17000 steps), constant history 1.2 for t <= 0.
std::vector<double> EulerMackeyGlass(int64_t samples) {
  constexpr double kDt = 1e-3;
  constexpr int64_t kStepsPerUnit = 1000;
  constexpr int64_t kDelay = 17 * kStepsPerUnit;
  std::vector<double> x(static_cast<size_t>(samples * kStepsPerUnit), 1.2);
  for (size_t i = 0; i + 1 < x.size(); ++i) {
    const double delayed = i >= kDelay ? x[i - kDelay] : 1.2;
    x[i + 1] = x[i] + kDt * (0.2 * delayed / (1.0 + std::pow(delayed, 10.0)) - 0.1 * x[i]);
  }
  std::vector<double> sampled;
  for (int64_t j = 0; j < samples; ++j) sampled.push_back(x[j * kStepsPerUnit]);
  return sampled;
}

TEST(MackeyGlassTest, AgreesWithAnIndependentFineEulerIntegration) {
  MackeyGlassOptions options;
  options.transient = 0;
  // Chaos amplifies any difference over time; 300 time units keep the comparison meaningful.
  const absl::StatusOr<std::vector<float>> series = MackeyGlassSeries(300, options);
  ASSERT_TRUE(series.ok()) << series.status();
  const std::vector<double> reference = EulerMackeyGlass(300);
  EXPECT_EQ((*series)[0], 1.2f);
  double max_difference = 0.0;
  for (size_t j = 0; j < reference.size(); ++j) {
    max_difference = std::max(max_difference, std::abs((*series)[j] - reference[j]));
  }
  EXPECT_LT(max_difference, 2e-3);  // measured: 4e-4, the Euler side's O(dt) error
}

TEST(MackeyGlassTest, RungeKuttaConvergesAsTheStepShrinks) {
  // Fourth order: dt = 0.1 and dt = 0.05 agree far more closely than Euler at dt = 0.001 does.
  MackeyGlassOptions coarse;
  coarse.transient = 0;
  MackeyGlassOptions fine = coarse;
  fine.steps_per_unit = 20;
  const absl::StatusOr<std::vector<float>> a = MackeyGlassSeries(300, coarse);
  const absl::StatusOr<std::vector<float>> b = MackeyGlassSeries(300, fine);
  ASSERT_TRUE(a.ok() && b.ok());
  for (size_t j = 0; j < a->size(); ++j) EXPECT_NEAR((*a)[j], (*b)[j], 2e-4) << j;
}

TEST(MackeyGlassTest, StaysOnTheAttractorAfterTheTransient) {
  const absl::StatusOr<std::vector<float>> series = MackeyGlassSeries(3000);
  ASSERT_TRUE(series.ok()) << series.status();
  ASSERT_EQ(series->size(), 3000u);
  const auto [low, high] = std::minmax_element(series->begin(), series->end());
  EXPECT_GT(*low, 0.2f);
  EXPECT_LT(*high, 1.4f);
  // Chaotic, not settled on a fixed point: it keeps spanning most of that range.
  EXPECT_GT(*high - *low, 0.8f);
}

TEST(MackeyGlassTest, ForecastingDataSetWindowsTheSeries) {
  MackeyGlassOptions options;
  const absl::StatusOr<std::vector<float>> series = MackeyGlassSeries(100, options);
  WindowOptions window;
  window.window = 10;
  window.horizon = 5;
  const absl::StatusOr<Dataset> dataset = MakeMackeyGlassDataset(100, window, options);
  ASSERT_TRUE(series.ok() && dataset.ok()) << dataset.status();
  EXPECT_EQ(dataset->input_names, (std::vector<std::string>{"x"}));
  EXPECT_EQ(dataset->target_names, (std::vector<std::string>{"x"}));
  ASSERT_EQ(dataset->sequences.size(), 100u - 10u - 5u + 1u);
  const Sequence& last = dataset->sequences.back();
  EXPECT_EQ(last.inputs, std::vector<float>(series->begin() + 85, series->begin() + 95));
  EXPECT_EQ(last.targets, (std::vector<float>{(*series)[99]}));

  window.all_horizon_steps = true;
  const absl::StatusOr<Dataset> multi = MakeMackeyGlassDataset(100, window, options);
  ASSERT_TRUE(multi.ok());
  EXPECT_EQ(multi->target_size, 5);
  EXPECT_EQ(multi->sequences[0].targets,
            std::vector<float>(series->begin() + 10, series->begin() + 15));

  window.target_columns = {"y"};
  EXPECT_EQ(MakeMackeyGlassDataset(100, window, options).status().code(),
            absl::StatusCode::kNotFound);
}

TEST(MackeyGlassTest, RejectsBadOptions) {
  MackeyGlassOptions options;
  options.tau = 17.05;  // 170.5 grid steps
  ExpectInvalid(MackeyGlassSeries(10, options), "tau x steps_per_unit must be an integer");
  options = {};
  options.initial_value = 0.0;
  ExpectInvalid(MackeyGlassSeries(10, options), "initial_value > 0");
  options = {};
  options.steps_per_unit = 0;
  ExpectInvalid(MackeyGlassSeries(10, options), "steps_per_unit must be in [1, ");
  options = {};
  options.beta = std::nan("");
  ExpectInvalid(MackeyGlassSeries(10, options), "Mackey-Glass: beta must be finite");
  ExpectInvalid(MackeyGlassSeries(0), "Mackey-Glass: length must be in [1, ");
}

// ---- Noisy sines

TEST(NoisySinesTest, OneNoiselessComponentIsAPureSinusoidInRange) {
  SinesOptions options;
  options.num_components = 1;
  options.noise_std = 0.0;
  options.min_frequency = 0.02;
  options.max_frequency = 0.08;
  options.min_amplitude = 0.5;
  options.max_amplitude = 1.0;
  options.seed = 9;
  const absl::StatusOr<std::vector<float>> series = NoisySinesSeries(500, options);
  ASSERT_TRUE(series.ok()) << series.status();
  const std::vector<float>& y = *series;
  // A sampled sinusoid obeys y[t+1] + y[t-1] = 2 cos(2 pi f) y[t]; fit c = cos(2 pi f).
  double numerator = 0.0;
  double denominator = 0.0;
  for (size_t t = 1; t + 1 < y.size(); ++t) {
    numerator += (y[t + 1] + y[t - 1]) * y[t];
    denominator += 2.0 * y[t] * y[t];
  }
  const double c = numerator / denominator;
  for (size_t t = 1; t + 1 < y.size(); ++t) {
    EXPECT_NEAR(y[t + 1] + y[t - 1], 2.0 * c * y[t], 1e-5) << t;
  }
  const double frequency = std::acos(c) / (2.0 * std::numbers::pi);
  EXPECT_GE(frequency, 0.02 - 1e-6);
  EXPECT_LE(frequency, 0.08 + 1e-6);
  // Over 500 steps (at least 10 periods) the peaks reach the amplitude, up to sampling.
  double peak = 0.0;
  for (const float value : y) peak = std::max(peak, std::abs(double{value}));
  EXPECT_LE(peak, 1.0 + 1e-6);
  EXPECT_GE(peak, 0.5 * std::cos(std::numbers::pi * 0.08));
}

TEST(NoisySinesTest, NoiseHasTheRequestedStandardDeviation) {
  SinesOptions options;
  options.min_amplitude = 0.0;
  options.max_amplitude = 0.0;
  options.noise_std = 0.3;
  const absl::StatusOr<std::vector<float>> series = NoisySinesSeries(20000, options);
  ASSERT_TRUE(series.ok()) << series.status();
  double sum = 0.0;
  double sum_squares = 0.0;
  for (const float value : *series) {
    sum += value;
    sum_squares += double{value} * value;
  }
  const double mean = sum / 20000.0;
  EXPECT_NEAR(mean, 0.0, 0.01);
  EXPECT_NEAR(std::sqrt(sum_squares / 20000.0 - mean * mean), 0.3, 0.01);
}

TEST(NoisySinesTest, DeterministicFromTheSeed) {
  SinesOptions options;
  options.seed = 5;
  const absl::StatusOr<std::vector<float>> a = NoisySinesSeries(100, options);
  const absl::StatusOr<std::vector<float>> b = NoisySinesSeries(100, options);
  options.seed = 6;
  const absl::StatusOr<std::vector<float>> c = NoisySinesSeries(100, options);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(*a, *b);
  EXPECT_NE(*a, *c);
}

TEST(NoisySinesTest, ForecastingDataSetUsesColumnY) {
  SinesOptions options;
  WindowOptions window;
  window.window = 20;
  window.horizon = 3;
  window.stride = 5;
  const absl::StatusOr<Dataset> dataset = MakeNoisySinesDataset(200, window, options);
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  EXPECT_EQ(dataset->input_names, (std::vector<std::string>{"y"}));
  EXPECT_EQ(dataset->sequences.size(), (200u - 20u - 3u) / 5u + 1u);
  const absl::StatusOr<std::vector<float>> series = NoisySinesSeries(200, options);
  ASSERT_TRUE(series.ok());
  EXPECT_EQ(dataset->sequences[1].targets, (std::vector<float>{(*series)[5 + 19 + 3]}));
}

TEST(NoisySinesTest, RejectsBadOptions) {
  SinesOptions options;
  options.max_frequency = 0.6;
  ExpectInvalid(NoisySinesSeries(10, options), "max_frequency <= 0.5");
  options = {};
  options.min_frequency = 0.0;
  ExpectInvalid(NoisySinesSeries(10, options), "0 < min_frequency");
  options = {};
  options.num_components = 0;
  ExpectInvalid(NoisySinesSeries(10, options), "num_components must be in [1, 64], got 0");
  options = {};
  options.noise_std = -1.0;
  ExpectInvalid(NoisySinesSeries(10, options), "noise_std must be >= 0");
  options = {};
  options.min_amplitude = 2.0;
  ExpectInvalid(NoisySinesSeries(10, options), "min_amplitude <= max_amplitude");
}

}  // namespace
}  // namespace recurrent::core
