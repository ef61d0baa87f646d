// Dropout between layers and masked (padded) loss rows in Network::ForwardBackward, against the
// independent double-precision reference (tests/testing/reference_rnn.h), which applies the same
// masks with plain loops. The mask generator itself is checked statistically and for determinism.
#include <omp.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <vector>

#include "core/dropout.h"
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
using core::Network;

constexpr double kRelTol = 1e-5;
constexpr double kAbsTol = 1e-9;

ModelSpec Spec(CellType cell, int64_t layers, bool bidirectional, HeadMode head, LossType loss) {
  ModelSpec spec;
  spec.cell = cell;
  spec.input_size = 3;
  spec.hidden_size = 5;
  spec.num_layers = layers;
  spec.bidirectional = bidirectional;
  spec.head = head;
  spec.output_size = loss == LossType::kCrossEntropy ? 4 : 2;
  spec.loss = loss;
  return spec;
}

core::Targets MakeTargets(const ModelSpec& spec, int64_t n, int64_t t, uint64_t seed) {
  core::Targets targets;
  const int64_t predictions = spec.head == HeadMode::kPerStep ? n * t : n;
  if (spec.loss == LossType::kMse) {
    targets.values = spec.head == HeadMode::kPerStep
                         ? RandomTensor({n, t, spec.output_size}, 1.0, seed)
                         : RandomTensor({n, spec.output_size}, 1.0, seed);
  } else {
    targets.labels = RandomLabels(predictions, spec.output_size, seed);
  }
  return targets;
}

void ExpectMatchesReference(const ModelSpec& spec, const core::TrainingResult& engine,
                            const ReferenceResult& reference) {
  EXPECT_NEAR(engine.loss, reference.loss, kRelTol * std::abs(reference.loss) + 1e-9);
  EXPECT_TRUE(TensorNear("outputs", engine.outputs, reference.outputs, kRelTol, kAbsTol));
  for (const core::ParameterInfo& info : core::ParameterLayout(spec)) {
    EXPECT_TRUE(TensorNear(info.name, engine.gradients.at(info.name),
                           reference.gradients.at(info.name), kRelTol, kAbsTol));
  }
  EXPECT_TRUE(TensorNear("d h0", engine.initial_state_gradients.h,
                         reference.initial_state_gradients.h, kRelTol, kAbsTol));
}

struct DropoutCase {
  CellType cell;
  int64_t layers;
  bool bidirectional;
  HeadMode head;
  LossType loss;
};

class DropoutTest : public ::testing::TestWithParam<DropoutCase> {};

TEST_P(DropoutTest, GradientsEqualTheReferenceWithTheSameMasks) {
  const DropoutCase& c = GetParam();
  const ModelSpec spec = Spec(c.cell, c.layers, c.bidirectional, c.head, c.loss);
  const int64_t n = 3, t = 7;
  const core::ParameterSet params = core::InitParameters(spec, 11);
  const core::Tensor inputs = RandomTensor({n, t, spec.input_size}, 1.0, 12);
  const core::Targets targets = MakeTargets(spec, n, t, 13);
  const double probability = 0.4;
  const uint64_t seed = 99;

  auto network = Network::Create(spec, params);
  ASSERT_TRUE(network.ok()) << network.status();
  core::TrainingResult engine;
  ASSERT_TRUE(
      (*network)->ForwardBackward(inputs, targets, nullptr, &engine, {probability, seed}).ok());

  ReferenceTrainingExtras extras;
  const int64_t count = n * t * spec.top_width();
  for (int64_t l = 0; l + 1 < spec.num_layers; ++l) {
    std::vector<float> mask(count);
    core::MakeDropoutMask(seed, l, probability, mask.data(), count);
    extras.between_layers.emplace_back(mask.begin(), mask.end());
  }
  auto reference = ReferenceForwardBackward(spec, ToDouble(params), ToDouble(inputs), targets,
                                            nullptr, /*compute_gradients=*/true, extras);
  ASSERT_TRUE(reference.ok()) << reference.status();
  ExpectMatchesReference(spec, engine, *reference);

  // And the masks really changed something: without dropout the loss differs.
  core::TrainingResult plain;
  ASSERT_TRUE((*network)->ForwardBackward(inputs, targets, nullptr, &plain).ok());
  EXPECT_NE(plain.loss, engine.loss);
}

INSTANTIATE_TEST_SUITE_P(
    Cells, DropoutTest,
    ::testing::Values(
        DropoutCase{CellType::kLstm, 2, false, HeadMode::kPerStep, LossType::kMse},
        DropoutCase{CellType::kGru, 3, false, HeadMode::kLastStep, LossType::kCrossEntropy},
        DropoutCase{CellType::kRnnTanh, 2, true, HeadMode::kPerStep, LossType::kCrossEntropy},
        DropoutCase{CellType::kLstm, 3, true, HeadMode::kLastStep, LossType::kMse}));

TEST(DropoutTest, ZeroProbabilityIsBitIdenticalToNoDropout) {
  const ModelSpec spec = Spec(CellType::kLstm, 2, false, HeadMode::kPerStep, LossType::kMse);
  const core::ParameterSet params = core::InitParameters(spec, 1);
  const core::Tensor inputs = RandomTensor({2, 4, spec.input_size}, 1.0, 2);
  const core::Targets targets = MakeTargets(spec, 2, 4, 3);
  auto network = Network::Create(spec, params);
  ASSERT_TRUE(network.ok());
  core::TrainingResult plain, zero;
  ASSERT_TRUE((*network)->ForwardBackward(inputs, targets, nullptr, &plain).ok());
  ASSERT_TRUE((*network)->ForwardBackward(inputs, targets, nullptr, &zero, {0.0, 5}).ok());
  EXPECT_EQ(plain.loss, zero.loss);
  for (const auto& [name, gradient] : plain.gradients) {
    EXPECT_TRUE(BitwiseEqual(name, zero.gradients.at(name), gradient));
  }
}

TEST(DropoutTest, SingleLayerNetworksHaveNothingToDrop) {
  const ModelSpec spec = Spec(CellType::kGru, 1, false, HeadMode::kPerStep, LossType::kMse);
  const core::ParameterSet params = core::InitParameters(spec, 1);
  const core::Tensor inputs = RandomTensor({2, 4, spec.input_size}, 1.0, 2);
  const core::Targets targets = MakeTargets(spec, 2, 4, 3);
  auto network = Network::Create(spec, params);
  ASSERT_TRUE(network.ok());
  core::TrainingResult plain, dropped;
  ASSERT_TRUE((*network)->ForwardBackward(inputs, targets, nullptr, &plain).ok());
  ASSERT_TRUE((*network)->ForwardBackward(inputs, targets, nullptr, &dropped, {0.5, 5}).ok());
  EXPECT_EQ(plain.loss, dropped.loss);
}

TEST(DropoutTest, RejectsProbabilitiesOutsideZeroToOne) {
  const ModelSpec spec = Spec(CellType::kLstm, 2, false, HeadMode::kPerStep, LossType::kMse);
  auto network = Network::Create(spec, core::InitParameters(spec, 1));
  ASSERT_TRUE(network.ok());
  const core::Tensor inputs = RandomTensor({1, 2, spec.input_size}, 1.0, 2);
  const core::Targets targets = MakeTargets(spec, 1, 2, 3);
  core::TrainingResult result;
  for (const double p : {-0.1, 1.0, std::nan("")}) {
    EXPECT_EQ((*network)->ForwardBackward(inputs, targets, nullptr, &result, {p, 1}).code(),
              absl::StatusCode::kInvalidArgument)
        << p;
  }
}

TEST(DropoutMaskTest, DropsTheRequestedShareAndScalesTheRest) {
  const int64_t count = 200000;
  std::vector<float> mask(count);
  core::MakeDropoutMask(7, 0, 0.3, mask.data(), count);
  int64_t dropped = 0;
  for (const float value : mask) {
    if (value == 0.0f) {
      ++dropped;
    } else {
      ASSERT_EQ(value, static_cast<float>(1.0 / 0.7));
    }
  }
  // Binomial(200000, 0.3): standard deviation ~205, so 5 sigma is about +-1000.
  EXPECT_NEAR(static_cast<double>(dropped), 0.3 * count, 1000.0);
}

TEST(DropoutMaskTest, DependsOnSeedAndLayerButNotOnThreadCount) {
  const int64_t count = 4096;
  std::vector<float> a(count), b(count), other_seed(count), other_layer(count);
  omp_set_num_threads(1);
  core::MakeDropoutMask(7, 1, 0.5, a.data(), count);
  omp_set_num_threads(2);
  core::MakeDropoutMask(7, 1, 0.5, b.data(), count);
  core::MakeDropoutMask(8, 1, 0.5, other_seed.data(), count);
  core::MakeDropoutMask(7, 2, 0.5, other_layer.data(), count);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, other_seed);
  EXPECT_NE(a, other_layer);
}

// Masked predictions: padding at the end of shorter sequences in a per-step batch.
struct MaskCase {
  CellType cell;
  HeadMode head;
  LossType loss;
};

class LossMaskTest : public ::testing::TestWithParam<MaskCase> {};

TEST_P(LossMaskTest, MaskedPredictionsAreIgnoredAndTheMeanIsOverTheRest) {
  const MaskCase& c = GetParam();
  const ModelSpec spec = Spec(c.cell, 2, false, c.head, c.loss);
  const int64_t n = 3, t = 6;
  const int64_t predictions = c.head == HeadMode::kPerStep ? n * t : n;
  const core::ParameterSet params = core::InitParameters(spec, 21);
  const core::Tensor inputs = RandomTensor({n, t, spec.input_size}, 1.0, 22);
  core::Targets targets = MakeTargets(spec, n, t, 23);
  targets.mask.assign(predictions, 1);
  for (int64_t p = 0; p < predictions; p += 3) targets.mask[p] = 0;

  auto network = Network::Create(spec, params);
  ASSERT_TRUE(network.ok());
  core::TrainingResult engine;
  ASSERT_TRUE((*network)->ForwardBackward(inputs, targets, nullptr, &engine).ok());
  auto reference = ReferenceForwardBackward(spec, ToDouble(params), ToDouble(inputs), targets,
                                            nullptr, /*compute_gradients=*/true);
  ASSERT_TRUE(reference.ok()) << reference.status();
  ExpectMatchesReference(spec, engine, *reference);

  // Changing what a masked prediction is compared with changes nothing.
  core::Targets changed = targets;
  if (spec.loss == LossType::kMse) {
    for (int64_t o = 0; o < spec.output_size; ++o) changed.values.values[o] += 10.0f;
  } else {
    changed.labels[0] = (changed.labels[0] + 1) % static_cast<int32_t>(spec.output_size);
  }
  core::TrainingResult after;
  ASSERT_TRUE((*network)->ForwardBackward(inputs, changed, nullptr, &after).ok());
  EXPECT_EQ(after.loss, engine.loss);
  for (const auto& [name, gradient] : engine.gradients) {
    EXPECT_TRUE(BitwiseEqual(name, after.gradients.at(name), gradient));
  }
}

INSTANTIATE_TEST_SUITE_P(
    Heads, LossMaskTest,
    ::testing::Values(MaskCase{CellType::kLstm, HeadMode::kPerStep, LossType::kMse},
                      MaskCase{CellType::kGru, HeadMode::kPerStep, LossType::kCrossEntropy},
                      MaskCase{CellType::kRnnTanh, HeadMode::kLastStep, LossType::kMse},
                      MaskCase{CellType::kLstm, HeadMode::kLastStep, LossType::kCrossEntropy}));

TEST(LossMaskTest, EverythingMaskedGivesZeroLossAndZeroGradients) {
  const ModelSpec spec = Spec(CellType::kLstm, 1, false, HeadMode::kPerStep, LossType::kMse);
  auto network = Network::Create(spec, core::InitParameters(spec, 1));
  ASSERT_TRUE(network.ok());
  const core::Tensor inputs = RandomTensor({2, 3, spec.input_size}, 1.0, 2);
  core::Targets targets = MakeTargets(spec, 2, 3, 3);
  targets.mask.assign(6, 0);
  core::TrainingResult result;
  ASSERT_TRUE((*network)->ForwardBackward(inputs, targets, nullptr, &result).ok());
  EXPECT_EQ(result.loss, 0.0);
  for (const auto& [name, gradient] : result.gradients) {
    for (const float value : gradient.values) ASSERT_EQ(value, 0.0f) << name;
  }
}

TEST(LossMaskTest, RejectsAMaskOfTheWrongSize) {
  const ModelSpec spec = Spec(CellType::kLstm, 1, false, HeadMode::kPerStep, LossType::kMse);
  auto network = Network::Create(spec, core::InitParameters(spec, 1));
  ASSERT_TRUE(network.ok());
  const core::Tensor inputs = RandomTensor({2, 3, spec.input_size}, 1.0, 2);
  core::Targets targets = MakeTargets(spec, 2, 3, 3);
  targets.mask.assign(5, 1);
  core::TrainingResult result;
  EXPECT_EQ((*network)->ForwardBackward(inputs, targets, nullptr, &result).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace recurrent::testing
