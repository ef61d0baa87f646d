// Epoch plans, batch assembly with padding masks, and truncated-BPTT slicing (core/batcher.h).
#include "core/batcher.h"

#include <algorithm>
#include <set>
#include <vector>

#include "gtest/gtest.h"

namespace recurrent::core {
namespace {

// Sequence i has length lengths[i], input value 100*i + t at step t, per-step target -(100*i+t).
Dataset PerStepDataset(const std::vector<int64_t>& lengths) {
  Dataset data;
  data.input_size = 1;
  data.target_size = 1;
  data.kind = TargetKind::kPerStepValues;
  for (size_t i = 0; i < lengths.size(); ++i) {
    Sequence sequence;
    sequence.length = lengths[i];
    for (int64_t t = 0; t < lengths[i]; ++t) {
      sequence.inputs.push_back(static_cast<float>(100 * i + t));
      sequence.targets.push_back(-static_cast<float>(100 * i + t));
    }
    data.sequences.push_back(std::move(sequence));
  }
  return data;
}

std::vector<int64_t> Members(int64_t count) {
  std::vector<int64_t> members(count);
  for (int64_t i = 0; i < count; ++i) members[i] = i;
  return members;
}

TEST(PlanEpochTest, EveryMemberOnceAndBatchesNoLargerThanAsked) {
  std::vector<int64_t> lengths;
  for (int i = 0; i < 203; ++i) lengths.push_back(1 + (i * 7) % 13);
  const Dataset data = PerStepDataset(lengths);
  const auto plan = PlanEpoch(data, Members(203), 16, /*allow_padding=*/true, true, 1, 0);
  std::vector<int64_t> seen;
  for (const auto& batch : plan) {
    EXPECT_LE(batch.size(), 16u);
    EXPECT_FALSE(batch.empty());
    seen.insert(seen.end(), batch.begin(), batch.end());
  }
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen, Members(203));
}

TEST(PlanEpochTest, WithoutPaddingEveryBatchHasOneLength) {
  std::vector<int64_t> lengths;
  for (int i = 0; i < 100; ++i) lengths.push_back(3 + i % 4);
  const Dataset data = PerStepDataset(lengths);
  const auto plan = PlanEpoch(data, Members(100), 8, /*allow_padding=*/false, true, 1, 0);
  for (const auto& batch : plan) {
    for (const int64_t index : batch) EXPECT_EQ(lengths[index], lengths[batch.front()]);
  }
}

TEST(PlanEpochTest, BucketingGroupsSimilarLengths) {
  std::vector<int64_t> lengths;
  for (int i = 0; i < 256; ++i) lengths.push_back(1 + (i * 37) % 64);
  const Dataset data = PerStepDataset(lengths);
  const auto plan = PlanEpoch(data, Members(256), 16, /*allow_padding=*/true, true, 3, 0);
  int64_t padded = 0, total = 0;
  for (const auto& batch : plan) {
    int64_t longest = 0;
    for (const int64_t index : batch) longest = std::max(longest, lengths[index]);
    for (const int64_t index : batch) {
      padded += longest - lengths[index];
      total += longest;
    }
  }
  // Random batches of lengths uniform in [1, 64] would waste about 45%; sorted pools far less.
  EXPECT_LT(static_cast<double>(padded) / total, 0.1);
}

TEST(PlanEpochTest, DeterministicPerSeedAndEpochAndDifferentAcrossEpochs) {
  const Dataset data = PerStepDataset(std::vector<int64_t>(64, 5));
  const auto a = PlanEpoch(data, Members(64), 8, true, true, 1, 0);
  EXPECT_EQ(a, PlanEpoch(data, Members(64), 8, true, true, 1, 0));
  EXPECT_NE(a, PlanEpoch(data, Members(64), 8, true, true, 1, 1));
  EXPECT_NE(a, PlanEpoch(data, Members(64), 8, true, true, 2, 0));
  // Without shuffling the order is the data's.
  const auto ordered = PlanEpoch(data, Members(64), 8, true, false, 1, 0);
  EXPECT_EQ(ordered.front(), (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7}));
}

TEST(AssembleBatchTest, PadsShorterSequencesAndMasksTheirPaddedSteps) {
  const Dataset data = PerStepDataset({3, 1, 2});
  Batch batch;
  AssembleBatch(data, {0, 1, 2}, &batch);
  EXPECT_EQ(batch.inputs.shape, (std::vector<int64_t>{3, 3, 1}));
  EXPECT_EQ(batch.inputs.values, (std::vector<float>{0, 1, 2, 100, 0, 0, 200, 201, 0}));
  EXPECT_EQ(batch.targets.values.values,
            (std::vector<float>{-0.f, -1, -2, -100, 0, 0, -200, -201, 0}));
  EXPECT_EQ(batch.targets.mask, (std::vector<uint8_t>{1, 1, 1, 1, 0, 0, 1, 1, 0}));
  EXPECT_EQ(batch.predictions, 6);
}

TEST(AssembleBatchTest, EqualLengthsNeedNoMask) {
  const Dataset data = PerStepDataset({2, 2});
  Batch batch;
  AssembleBatch(data, {1, 0}, &batch);
  EXPECT_TRUE(batch.targets.mask.empty());
  EXPECT_EQ(batch.inputs.values, (std::vector<float>{100, 101, 0, 1}));
  EXPECT_EQ(batch.predictions, 4);
}

TEST(AssembleBatchTest, SequenceLabelsGiveOneLabelPerSequence) {
  Dataset data;
  data.input_size = 1;
  data.target_size = 3;
  data.kind = TargetKind::kSequenceLabels;
  for (int i = 0; i < 2; ++i) {
    Sequence sequence;
    sequence.length = 2;
    sequence.inputs = {1.0f, 2.0f};
    sequence.labels = {i + 1};
    data.sequences.push_back(sequence);
  }
  Batch batch;
  AssembleBatch(data, {1, 0}, &batch);
  EXPECT_EQ(batch.targets.labels, (std::vector<int32_t>{2, 1}));
  EXPECT_EQ(batch.predictions, 2);
}

TEST(SliceStepsTest, CutsInputsTargetsAndMaskToTheChunk) {
  const Dataset data = PerStepDataset({3, 1});
  Batch batch, chunk;
  AssembleBatch(data, {0, 1}, &batch);
  SliceSteps(batch, /*per_step_targets=*/true, 1, 3, &chunk);
  EXPECT_EQ(chunk.inputs.shape, (std::vector<int64_t>{2, 2, 1}));
  EXPECT_EQ(chunk.inputs.values, (std::vector<float>{1, 2, 0, 0}));
  EXPECT_EQ(chunk.targets.values.values, (std::vector<float>{-1, -2, 0, 0}));
  EXPECT_EQ(chunk.targets.mask, (std::vector<uint8_t>{1, 1, 0, 0}));
  EXPECT_EQ(chunk.predictions, 2);
}

TEST(AllowsPaddingTest, OnlyUnidirectionalPerStepModels) {
  ModelSpec spec;
  spec.head = HeadMode::kPerStep;
  EXPECT_TRUE(AllowsPadding(spec));
  spec.bidirectional = true;
  EXPECT_FALSE(AllowsPadding(spec));
  spec.bidirectional = false;
  spec.head = HeadMode::kLastStep;
  EXPECT_FALSE(AllowsPadding(spec));
}

}  // namespace
}  // namespace recurrent::core
