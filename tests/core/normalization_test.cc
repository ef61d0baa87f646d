#include "core/normalization.h"

#include <cmath>

#include "gtest/gtest.h"

namespace recurrent::core {
namespace {

Dataset TwoSequences() {
  Dataset data;
  data.input_size = 2;
  data.target_size = 1;
  data.kind = TargetKind::kPerStepValues;
  // Feature 0: 1, 2, 3, 6 (mean 3, population var (4+1+0+9)/4 = 3.5); feature 1 constant 7.
  data.sequences.push_back({2, {1, 7, 2, 7}, {10, 20}, {}});
  data.sequences.push_back({2, {3, 7, 6, 7}, {30, 40}, {}});
  return data;
}

TEST(NormalizationTest, FitsMeanAndPopulationStdPerFeature) {
  auto fitted = FitNormalization(TwoSequences(), true, true);
  ASSERT_TRUE(fitted.ok());
  EXPECT_FLOAT_EQ(fitted->input_mean[0], 3.0f);
  EXPECT_FLOAT_EQ(fitted->input_std[0], static_cast<float>(std::sqrt(3.5)));
  EXPECT_FLOAT_EQ(fitted->input_mean[1], 7.0f);
  EXPECT_FLOAT_EQ(fitted->input_std[1], 1.0f);  // constant: only centred
  EXPECT_FLOAT_EQ(fitted->target_mean[0], 25.0f);
  EXPECT_FLOAT_EQ(fitted->target_std[0], static_cast<float>(std::sqrt(125.0)));
}

TEST(NormalizationTest, NormalizedDataHasZeroMeanAndUnitStd) {
  Dataset data = TwoSequences();
  auto fitted = FitNormalization(data, true, false);
  ASSERT_TRUE(fitted.ok());
  EXPECT_TRUE(fitted->target_mean.empty());
  NormalizeDataset(*fitted, &data);
  auto refit = FitNormalization(data, true, false);
  ASSERT_TRUE(refit.ok());
  EXPECT_NEAR(refit->input_mean[0], 0.0, 1e-6);
  EXPECT_NEAR(refit->input_std[0], 1.0, 1e-6);
  EXPECT_EQ(data.sequences[0].targets, (std::vector<float>{10, 20}));  // untouched
}

TEST(NormalizationTest, DenormalizeInvertsTheTargetStandardization) {
  Dataset data = TwoSequences();
  auto fitted = FitNormalization(data, false, true);
  ASSERT_TRUE(fitted.ok());
  NormalizeDataset(*fitted, &data);
  std::vector<float> outputs = data.sequences[1].targets;
  DenormalizeOutputs(*fitted, outputs.data(), 2);
  EXPECT_NEAR(outputs[0], 30.0f, 1e-4);
  EXPECT_NEAR(outputs[1], 40.0f, 1e-4);
}

TEST(NormalizationTest, RefusesToNormalizeLabels) {
  Dataset data = TwoSequences();
  data.kind = TargetKind::kPerStepLabels;
  EXPECT_EQ(FitNormalization(data, true, true).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace recurrent::core
