#include "core/model_spec.h"

#include "core/parameters.h"
#include "gtest/gtest.h"

namespace recurrent::core {
namespace {

TEST(ModelSpecTest, DefaultSpecIsValid) { EXPECT_TRUE(ValidateSpec(ModelSpec{}).ok()); }

TEST(ModelSpecTest, RejectsZeroSizesWithTheFieldName) {
  ModelSpec spec;
  spec.hidden_size = 0;
  const absl::Status status = ValidateSpec(spec);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("hidden_size"), std::string::npos) << status;
}

TEST(ModelSpecTest, RejectsSpecsOverTheParameterLimit) {
  ModelSpec spec;
  spec.hidden_size = 4096;
  spec.num_layers = 8;
  SpecLimits limits;
  limits.max_parameters = 1'000'000;
  EXPECT_EQ(ValidateSpec(spec, limits).code(), absl::StatusCode::kInvalidArgument);
}

TEST(ModelSpecTest, CrossEntropyNeedsAtLeastTwoClasses) {
  ModelSpec spec;
  spec.loss = LossType::kCrossEntropy;
  spec.output_size = 1;
  EXPECT_FALSE(ValidateSpec(spec).ok());
  spec.output_size = 2;
  EXPECT_TRUE(ValidateSpec(spec).ok());
}

TEST(ModelSpecTest, NamesRoundTrip) {
  for (const CellType cell :
       {CellType::kRnnTanh, CellType::kRnnRelu, CellType::kLstm, CellType::kGru}) {
    EXPECT_EQ(*ParseCellType(CellTypeName(cell)), cell);
  }
  EXPECT_FALSE(ParseCellType("transformer").ok());
  EXPECT_EQ(*ParseHeadMode("last_step"), HeadMode::kLastStep);
  EXPECT_EQ(*ParseLossType("cross_entropy"), LossType::kCrossEntropy);
}

TEST(ParametersTest, LayoutMatchesPyTorchNamesAndShapes) {
  ModelSpec spec;
  spec.cell = CellType::kGru;
  spec.input_size = 5;
  spec.hidden_size = 7;
  spec.num_layers = 2;
  spec.bidirectional = true;
  spec.output_size = 3;
  const std::vector<ParameterInfo> layout = ParameterLayout(spec);
  ASSERT_EQ(layout.size(), 2u * 2u * 4u + 2u);
  EXPECT_EQ(layout[0].name, "weight_ih_l0");
  EXPECT_EQ(layout[0].shape, (std::vector<int64_t>{21, 5}));
  EXPECT_EQ(layout[4].name, "weight_ih_l0_reverse");
  EXPECT_EQ(layout[8].name, "weight_ih_l1");
  EXPECT_EQ(layout[8].shape, (std::vector<int64_t>{21, 14}));  // input of layer 1 is D*H
  EXPECT_EQ(layout[15].name, "bias_hh_l1_reverse");
  EXPECT_EQ(layout[16].name, "head.weight");
  EXPECT_EQ(layout[16].shape, (std::vector<int64_t>{3, 14}));
  int64_t total = 0;
  for (const ParameterInfo& info : layout) total += Tensor::ElementCount(info.shape);
  EXPECT_EQ(total, ParameterCount(spec));
}

TEST(ParametersTest, InitIsDeterministicAndWithinPyTorchBounds) {
  ModelSpec spec;
  spec.hidden_size = 16;
  const ParameterSet a = InitParameters(spec, 42);
  const ParameterSet b = InitParameters(spec, 42);
  const ParameterSet c = InitParameters(spec, 43);
  EXPECT_EQ(a.at("weight_hh_l0").values, b.at("weight_hh_l0").values);
  EXPECT_NE(a.at("weight_hh_l0").values, c.at("weight_hh_l0").values);
  for (const float v : a.at("weight_hh_l0").values) EXPECT_LE(std::abs(v), 0.25f);
  EXPECT_TRUE(ValidateParameters(spec, a).ok());
}

TEST(ParametersTest, ValidationNamesTheBadTensor) {
  ModelSpec spec;
  ParameterSet params = InitParameters(spec, 1);
  params.at("bias_hh_l0").values[3] = std::numeric_limits<float>::quiet_NaN();
  absl::Status status = ValidateParameters(spec, params);
  EXPECT_NE(status.message().find("bias_hh_l0"), std::string::npos) << status;

  params = InitParameters(spec, 1);
  params.at("weight_ih_l0").shape = {1, 1};
  EXPECT_FALSE(ValidateParameters(spec, params).ok());

  params = InitParameters(spec, 1);
  params.erase("head.bias");
  EXPECT_FALSE(ValidateParameters(spec, params).ok());

  params = InitParameters(spec, 1);
  params.emplace("weight_ih_l9", Tensor({1}));
  EXPECT_FALSE(ValidateParameters(spec, params).ok());
}

}  // namespace
}  // namespace recurrent::core
