#include "core/bfloat16.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/network.h"
#include "gtest/gtest.h"

namespace recurrent::core {
namespace {

uint16_t ToBits(float value) {
  uint16_t bits;
  FloatToBfloat16(&value, &bits, 1);
  return bits;
}

float FromBits(uint32_t float_bits) {
  float value;
  std::memcpy(&value, &float_bits, sizeof(value));
  return value;
}

TEST(Bfloat16Test, RoundsToNearestWithTiesToEven) {
  EXPECT_EQ(ToBits(1.0f), 0x3f80);
  EXPECT_EQ(ToBits(-2.0f), 0xc000);
  // 1 + 2^-8 lies halfway between 1.0 (even mantissa) and 1 + 2^-7: ties go to even.
  EXPECT_EQ(ToBits(FromBits(0x3f808000)), 0x3f80);
  // Halfway between 1 + 2^-7 (odd) and 1 + 2^-6: rounds up to the even one.
  EXPECT_EQ(ToBits(FromBits(0x3f818000)), 0x3f82);
  // Just above halfway rounds up.
  EXPECT_EQ(ToBits(FromBits(0x3f808001)), 0x3f81);
  EXPECT_EQ(ToBits(std::numeric_limits<float>::infinity()), 0x7f80);
  const uint16_t nan = ToBits(std::numeric_limits<float>::quiet_NaN());
  float back;
  Bfloat16ToFloat(&nan, &back, 1);
  EXPECT_TRUE(std::isnan(back));
}

TEST(Bfloat16Test, RoundTripKeepsEightSignificantBits) {
  for (float v = -100.0f; v < 100.0f; v += 0.37f) {
    const uint16_t bits = ToBits(v);
    float back;
    Bfloat16ToFloat(&bits, &back, 1);
    EXPECT_LE(std::fabs(back - v), std::fabs(v) * (1.0f / 256.0f)) << v;
  }
}

double RelativeError(const Tensor& actual, const Tensor& expected) {
  double diff = 0.0, norm = 0.0;
  for (int64_t i = 0; i < expected.size(); ++i) {
    diff += std::pow(static_cast<double>(actual.values[i]) - expected.values[i], 2);
    norm += std::pow(static_cast<double>(expected.values[i]), 2);
  }
  return std::sqrt(diff / norm);
}

struct Pair {
  std::unique_ptr<Network> f32, bf16;
};

// Builds the same model in both precisions; an empty bf16 means the CPU lacks bfloat16.
Pair MakePair(const ModelSpec& spec) {
  const ParameterSet params = InitParameters(spec, 11);
  Pair pair;
  pair.f32 = *Network::Create(spec, params);
  NetworkOptions options;
  options.precision = Precision::kBfloat16;
  auto bf16 = Network::Create(spec, params, options);
  if (bf16.ok()) {
    pair.bf16 = *std::move(bf16);
  } else {
    EXPECT_EQ(bf16.status().code(), absl::StatusCode::kFailedPrecondition) << bf16.status();
  }
  return pair;
}

Tensor Inputs(int64_t n, int64_t t, int64_t c) {
  Tensor x({n, t, c});
  for (int64_t i = 0; i < x.size(); ++i) x.values[i] = std::sin(0.37f * static_cast<float>(i));
  return x;
}

// bfloat16 keeps 8 significant bits (relative rounding 2^-9 ~ 2e-3); errors compound a little
// through time and layers, so whole tensors are held to 2e-2 relative (norm-wise).
constexpr double kBfloat16Tolerance = 2e-2;

TEST(Bfloat16NetworkTest, ThePrecisionCheckAgreesWithBuildingANetwork) {
  EXPECT_TRUE(CheckPrecisionSupported(Precision::kFloat32).ok());
  ModelSpec spec;
  spec.input_size = 3;
  spec.hidden_size = 8;
  const bool builds = MakePair(spec).bf16 != nullptr;
  const absl::Status check = CheckPrecisionSupported(Precision::kBfloat16);
  EXPECT_EQ(check.ok(), builds) << check;
  if (!check.ok()) EXPECT_EQ(check.code(), absl::StatusCode::kFailedPrecondition) << check;
}

TEST(Bfloat16NetworkTest, ForwardAndGradientsStayCloseToFloat32) {
  for (const CellType cell :
       {CellType::kRnnTanh, CellType::kRnnRelu, CellType::kLstm, CellType::kGru}) {
    for (const bool bidirectional : {false, true}) {
      ModelSpec spec;
      spec.cell = cell;
      spec.input_size = 16;
      spec.hidden_size = 48;
      spec.num_layers = 2;
      spec.bidirectional = bidirectional;
      spec.output_size = 3;
      Pair pair = MakePair(spec);
      if (!pair.bf16) GTEST_SKIP() << "this CPU has no bfloat16 support";
      const Tensor x = Inputs(6, 40, spec.input_size);
      ForwardResult expected, actual;
      ASSERT_TRUE(pair.f32->Forward(x, nullptr, &expected).ok());
      ASSERT_TRUE(pair.bf16->Forward(x, nullptr, &actual).ok());
      SCOPED_TRACE(DescribeSpec(spec));
      EXPECT_LT(RelativeError(actual.outputs, expected.outputs), kBfloat16Tolerance);
      EXPECT_LT(RelativeError(actual.final_state.h, expected.final_state.h), kBfloat16Tolerance);
      // It is really computing in bfloat16, not silently in float32.
      EXPECT_GT(RelativeError(actual.outputs, expected.outputs), 1e-5);

      Targets targets;
      targets.values = Tensor(expected.outputs.shape);
      TrainingResult f32_grads, bf16_grads;
      ASSERT_TRUE(pair.f32->ForwardBackward(x, targets, nullptr, &f32_grads).ok());
      ASSERT_TRUE(pair.bf16->ForwardBackward(x, targets, nullptr, &bf16_grads).ok());
      EXPECT_NEAR(bf16_grads.loss, f32_grads.loss, kBfloat16Tolerance * f32_grads.loss);
      for (const auto& [name, gradient] : f32_grads.gradients) {
        EXPECT_LT(RelativeError(bf16_grads.gradients.at(name), gradient), kBfloat16Tolerance)
            << name;
      }
    }
  }
}

TEST(Bfloat16NetworkTest, SteppingEqualsStepConsistentForwardExactly) {
  ModelSpec spec;
  spec.cell = CellType::kLstm;
  spec.input_size = 4;
  spec.hidden_size = 32;
  spec.num_layers = 2;
  Pair pair = MakePair(spec);
  if (!pair.bf16) GTEST_SKIP() << "this CPU has no bfloat16 support";
  const int64_t n = 3, t = 12;
  const Tensor x = Inputs(n, t, spec.input_size);
  ForwardOptions options;
  options.step_consistent = true;
  ForwardResult forward;
  ASSERT_TRUE(pair.bf16->Forward(x, nullptr, &forward, options).ok());

  std::vector<std::vector<float>> states(n, std::vector<float>(pair.bf16->step_state_size()));
  std::vector<float*> state_ptrs;
  for (auto& s : states) state_ptrs.push_back(s.data());
  std::vector<float> step_inputs(n * spec.input_size), step_outputs(n);
  for (int64_t step = 0; step < t; ++step) {
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t c = 0; c < spec.input_size; ++c) {
        step_inputs[i * spec.input_size + c] = x.values[(i * t + step) * spec.input_size + c];
      }
    }
    ASSERT_TRUE(
        pair.bf16->Step(step_inputs.data(), n, state_ptrs.data(), step_outputs.data()).ok());
    for (int64_t i = 0; i < n; ++i)
      EXPECT_EQ(step_outputs[i], forward.outputs.values[i * t + step]);
  }
}

}  // namespace
}  // namespace recurrent::core
