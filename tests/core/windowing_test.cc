#include "core/windowing.h"

#include <limits>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace recurrent::core {
namespace {

// Rows r = 0..rows-1 with t = r, a = 10 r, b = 100 r: every value says where it came from.
CsvTable Ramp(int64_t rows) {
  CsvTable table;
  table.columns = {"t", "a", "b"};
  table.rows = rows;
  for (int64_t r = 0; r < rows; ++r) {
    table.values.insert(table.values.end(), {float(r), 10.0f * r, 100.0f * r});
  }
  return table;
}

void ExpectError(const absl::StatusOr<Dataset>& result, absl::StatusCode code,
                 absl::string_view fragment) {
  ASSERT_FALSE(result.ok()) << "expected an error containing '" << fragment << "'";
  EXPECT_EQ(result.status().code(), code) << result.status();
  EXPECT_NE(result.status().message().find(fragment), absl::string_view::npos)
      << "'" << result.status().message() << "' lacks '" << fragment << "'";
}

TEST(WindowingTest, MatchesAHandComputedExample) {
  WindowOptions options;
  options.feature_columns = {"a", "t"};
  options.target_columns = {"b"};
  options.window = 3;
  options.horizon = 2;
  options.stride = 2;
  // 7 rows: N = (7 - 3 - 2) / 2 + 1 = 2 examples starting at rows 0 and 2.
  const absl::StatusOr<Dataset> dataset = MakeWindowedDataset(Ramp(7), options);
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  EXPECT_EQ(dataset->kind, TargetKind::kSequenceValues);
  EXPECT_EQ(dataset->input_size, 2);
  EXPECT_EQ(dataset->target_size, 1);
  EXPECT_EQ(dataset->input_names, (std::vector<std::string>{"a", "t"}));
  EXPECT_EQ(dataset->target_names, (std::vector<std::string>{"b"}));
  ASSERT_EQ(dataset->sequences.size(), 2u);
  // Example 0: rows 0, 1, 2 as (a, t); the window ends at row 2, so horizon 2 targets row 4.
  EXPECT_EQ(dataset->sequences[0].length, 3);
  EXPECT_EQ(dataset->sequences[0].inputs, (std::vector<float>{0, 0, 10, 1, 20, 2}));
  EXPECT_EQ(dataset->sequences[0].targets, (std::vector<float>{400}));
  // Example 1: rows 2, 3, 4; target row 6.
  EXPECT_EQ(dataset->sequences[1].inputs, (std::vector<float>{20, 2, 30, 3, 40, 4}));
  EXPECT_EQ(dataset->sequences[1].targets, (std::vector<float>{600}));
  EXPECT_TRUE(ValidateDataset(*dataset).ok());
}

TEST(WindowingTest, AllHorizonStepsAreStepMajor) {
  WindowOptions options;
  options.feature_columns = {"t"};
  options.target_columns = {"b", "a"};
  options.window = 2;
  options.horizon = 2;
  options.all_horizon_steps = true;
  const absl::StatusOr<Dataset> dataset = MakeWindowedDataset(Ramp(5), options);
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  EXPECT_EQ(dataset->target_size, 4);
  EXPECT_EQ(dataset->target_names,
            (std::vector<std::string>{"b[t+1]", "a[t+1]", "b[t+2]", "a[t+2]"}));
  // (5 - 2 - 2) / 1 + 1 = 2 examples.
  ASSERT_EQ(dataset->sequences.size(), 2u);
  EXPECT_EQ(dataset->sequences[0].inputs, (std::vector<float>{0, 1}));
  EXPECT_EQ(dataset->sequences[0].targets, (std::vector<float>{200, 20, 300, 30}));
  EXPECT_EQ(dataset->sequences[1].inputs, (std::vector<float>{1, 2}));
  EXPECT_EQ(dataset->sequences[1].targets, (std::vector<float>{300, 30, 400, 40}));
}

TEST(WindowingTest, PerStepTargetsGiveEveryRowTheValueHorizonRowsLater) {
  WindowOptions options;
  options.feature_columns = {"t"};
  options.target_columns = {"a", "b"};
  options.window = 3;
  options.horizon = 2;
  options.stride = 2;
  options.per_step_targets = true;
  // 8 rows: (8 - 3 - 2) / 2 + 1 = 2 examples, starting at rows 0 and 2.
  const absl::StatusOr<Dataset> dataset = MakeWindowedDataset(Ramp(8), options);
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  EXPECT_EQ(dataset->kind, TargetKind::kPerStepValues);
  EXPECT_EQ(dataset->target_size, 2);
  ASSERT_EQ(dataset->sequences.size(), 2u);
  EXPECT_EQ(dataset->sequences[1].inputs, (std::vector<float>{2, 3, 4}));
  // Rows 2, 3, 4 get (a, b) of rows 4, 5, 6.
  EXPECT_EQ(dataset->sequences[1].targets, (std::vector<float>{40, 400, 50, 500, 60, 600}));
  EXPECT_TRUE(ValidateDataset(*dataset).ok());

  options.all_horizon_steps = true;
  ExpectError(MakeWindowedDataset(Ramp(8), options), absl::StatusCode::kInvalidArgument,
              "exclude each other");
}

TEST(WindowingTest, AColumnCanBeBothFeatureAndTarget) {
  WindowOptions options;
  options.feature_columns = {"a"};
  options.target_columns = {"a"};
  options.window = 2;
  const absl::StatusOr<Dataset> dataset = MakeWindowedDataset(Ramp(4), options);
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  ASSERT_EQ(dataset->sequences.size(), 2u);
  EXPECT_EQ(dataset->sequences[1].inputs, (std::vector<float>{10, 20}));
  EXPECT_EQ(dataset->sequences[1].targets, (std::vector<float>{30}));
}

TEST(WindowingTest, TailRowsThatDoNotFillAStrideAreUnused) {
  WindowOptions options;
  options.feature_columns = {"t"};
  options.target_columns = {"t"};
  options.window = 3;
  options.horizon = 2;
  options.stride = 2;
  // 8 rows: (8 - 5) / 2 + 1 = 2, the second example ends at its target row 6; row 7 is unused.
  const absl::StatusOr<Dataset> dataset = MakeWindowedDataset(Ramp(8), options);
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  ASSERT_EQ(dataset->sequences.size(), 2u);
  EXPECT_EQ(dataset->sequences[1].targets, (std::vector<float>{6}));
}

TEST(WindowingTest, RawSeriesOverloadMatchesTheTable) {
  const CsvTable table = Ramp(9);
  WindowOptions options;
  options.feature_columns = {"b", "a"};
  options.target_columns = {"t"};
  options.window = 4;
  options.horizon = 3;
  options.all_horizon_steps = true;
  const absl::StatusOr<Dataset> from_table = MakeWindowedDataset(table, options);
  const absl::StatusOr<Dataset> from_series =
      MakeWindowedDataset(table.values, table.columns, options);
  ASSERT_TRUE(from_table.ok()) << from_table.status();
  ASSERT_TRUE(from_series.ok()) << from_series.status();
  EXPECT_EQ(DatasetFingerprint(*from_table), DatasetFingerprint(*from_series));
  EXPECT_EQ(from_series->sequences.back().targets, (std::vector<float>{6, 7, 8}));
}

TEST(WindowingTest, TooShortSeriesSaysHowManyRowsAreNeeded) {
  WindowOptions options;
  options.feature_columns = {"a"};
  options.target_columns = {"b"};
  options.window = 6;
  options.horizon = 2;
  ExpectError(MakeWindowedDataset(Ramp(7), options), absl::StatusCode::kInvalidArgument,
              "the series has 7 rows, too short for one example: window 6 + horizon 2 needs at "
              "least 8 rows");
  EXPECT_TRUE(MakeWindowedDataset(Ramp(8), options).ok());
  options.horizon = std::numeric_limits<int64_t>::max();
  ExpectError(MakeWindowedDataset(Ramp(7), options), absl::StatusCode::kInvalidArgument,
              "needs at least more rows");
}

TEST(WindowingTest, RejectsBadOptions) {
  WindowOptions good;
  good.feature_columns = {"a"};
  good.target_columns = {"b"};
  good.window = 2;
  WindowOptions bad = good;
  bad.window = 0;
  ExpectError(MakeWindowedDataset(Ramp(5), bad), absl::StatusCode::kInvalidArgument,
              "window must be >= 1, got 0");
  bad = good;
  bad.horizon = 0;
  ExpectError(MakeWindowedDataset(Ramp(5), bad), absl::StatusCode::kInvalidArgument,
              "horizon must be >= 1, got 0");
  bad = good;
  bad.stride = -1;
  ExpectError(MakeWindowedDataset(Ramp(5), bad), absl::StatusCode::kInvalidArgument,
              "stride must be >= 1, got -1");
  bad = good;
  bad.feature_columns.clear();
  ExpectError(MakeWindowedDataset(Ramp(5), bad), absl::StatusCode::kInvalidArgument,
              "no feature columns");
  bad = good;
  bad.target_columns.clear();
  ExpectError(MakeWindowedDataset(Ramp(5), bad), absl::StatusCode::kInvalidArgument,
              "no target columns");
  bad = good;
  bad.target_columns = {"temp"};
  ExpectError(MakeWindowedDataset(Ramp(5), bad), absl::StatusCode::kNotFound,
              "column 'temp' not found; available columns: 't', 'a', 'b'");
  bad = good;
  bad.feature_columns = {"a", "a"};
  ExpectError(MakeWindowedDataset(Ramp(5), bad), absl::StatusCode::kInvalidArgument,
              "requested twice");
}

TEST(WindowingTest, RawSeriesMustBeWellFormedAndFiniteWhereUsed) {
  WindowOptions options;
  options.feature_columns = {"a"};
  options.target_columns = {"a"};
  options.window = 2;
  ExpectError(MakeWindowedDataset({1, 2, 3, 4, 5}, {"a", "b"}, options),
              absl::StatusCode::kInvalidArgument, "5 values, not a multiple of its 2 columns");
  ExpectError(MakeWindowedDataset({1, 2, 3, 4}, {"a", "a"}, options),
              absl::StatusCode::kInvalidArgument, "column name 'a' appears twice");

  const float nan = std::numeric_limits<float>::quiet_NaN();
  // Column b is not used, so its NaN does not matter.
  EXPECT_TRUE(MakeWindowedDataset({1, nan, 2, nan, 3, nan}, {"a", "b"}, options).ok());
  ExpectError(MakeWindowedDataset({1, 0, 2, 0, nan, 0}, {"a", "b"}, options),
              absl::StatusCode::kInvalidArgument, "row 2, column 'a' is nan");
}

TEST(WindowingTest, EnforcesTheLimits) {
  WindowOptions options;
  options.feature_columns = {"t", "a", "b"};
  options.target_columns = {"b"};
  options.window = 4;
  DatasetLimits limits;
  limits.max_sequences = 5;
  // 10 rows: 10 - 4 - 1 + 1 = 6 examples.
  ExpectError(MakeWindowedDataset(Ramp(10), options, limits), absl::StatusCode::kInvalidArgument,
              "6 examples are more than max_sequences 5; use a larger stride");
  limits = {};
  limits.max_total_values = 6 * 13 - 1;  // 6 examples of 4 x 3 inputs + 1 target
  ExpectError(MakeWindowedDataset(Ramp(10), options, limits), absl::StatusCode::kInvalidArgument,
              "6 examples of 13 values each are more than max_total_values 77");
  limits.max_total_values = 6 * 13;
  EXPECT_TRUE(MakeWindowedDataset(Ramp(10), options, limits).ok());
}

}  // namespace
}  // namespace recurrent::core
