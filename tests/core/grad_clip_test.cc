// Gradient clipping against PyTorch 1.13's torch.nn.utils: every
// tests/core/fixtures/optim/clip_*.txt (written by scripts/gen_optim_fixtures.py, format in its
// docstring) is one clip_grad_norm_ or clip_grad_value_ call, with the gradients before and
// after and the norm PyTorch returned. Plus the non-finite cases, where we deliberately differ.
#include "core/grad_clip.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iomanip>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/parameters.h"
#include "core/tensor.h"
#include "gtest/gtest.h"
#include "tests/testing/test_paths.h"

namespace recurrent::core {
namespace {

// PyTorch sums the squares in float32, GlobalNorm in double: the norms agree to float rounding
// (a few 1e-8 relative for 17 values). The clip coefficient inherits that difference, so the
// clipped gradients may differ by an ulp or two; 1e-6 relative is ~8 ulps, far below the effect
// of any formula slip (a missing +1e-6, a clip that should not happen).
constexpr double kRelativeTolerance = 1e-6;

// ---- Fixture reader (format: scripts/gen_optim_fixtures.py) ----

struct ClipFixture {
  std::string mode;  // "norm" or "value"
  double threshold = 0.0;
  ParameterSet grads;     // before clipping
  double norm = 0.0;      // PyTorch's total norm (norm mode)
  ParameterSet expected;  // after clipping
};

absl::StatusOr<std::vector<float>> ToFloats(const std::vector<absl::string_view>& words,
                                            size_t first, int64_t count) {
  if (static_cast<int64_t>(words.size()) - static_cast<int64_t>(first) != count) {
    return absl::InvalidArgumentError("wrong value count");
  }
  std::vector<float> values(count);
  for (int64_t i = 0; i < count; ++i) {
    if (!absl::SimpleAtof(words[first + i], &values[i])) {
      return absl::InvalidArgumentError("bad float");
    }
  }
  return values;
}

absl::StatusOr<ClipFixture> ParseClipFixture(const std::string& text) {
  ClipFixture fixture;
  bool header_seen = false;
  for (const absl::string_view line : absl::StrSplit(text, '\n')) {
    const std::vector<absl::string_view> words = absl::StrSplit(line, ' ', absl::SkipWhitespace());
    if (words.empty() || words[0][0] == '#') continue;
    const auto error = [&](absl::string_view message) {
      return absl::InvalidArgumentError(absl::StrCat(message, " in '", line, "'"));
    };
    if (!header_seen) {
      if (line != "clip_fixture v1") return error("bad header");
      header_seen = true;
    } else if (words[0] == "mode" && words.size() == 2) {
      fixture.mode = std::string(words[1]);
    } else if (words[0] == "threshold" && words.size() == 2) {
      if (!absl::SimpleAtod(words[1], &fixture.threshold)) return error("bad number");
    } else if (words[0] == "norm" && words.size() == 2) {
      if (!absl::SimpleAtod(words[1], &fixture.norm)) return error("bad number");
    } else if (words[0] == "grad" && words.size() >= 3) {
      int64_t rank = 0;
      if (!absl::SimpleAtoi(words[2], &rank) || rank < 0 ||
          static_cast<int64_t>(words.size()) < 3 + rank) {
        return error("bad rank");
      }
      std::vector<int64_t> shape(rank);
      for (int64_t d = 0; d < rank; ++d) {
        if (!absl::SimpleAtoi(words[3 + d], &shape[d])) return error("bad dim");
      }
      absl::StatusOr<std::vector<float>> values =
          ToFloats(words, 3 + rank, Tensor::ElementCount(shape));
      if (!values.ok()) return error(values.status().message());
      fixture.grads[std::string(words[1])] = Tensor(shape, *std::move(values));
    } else if (words[0] == "expect" && words.size() >= 2) {
      const auto grad = fixture.grads.find(std::string(words[1]));
      if (grad == fixture.grads.end()) return error("expect before its grad");
      absl::StatusOr<std::vector<float>> values = ToFloats(words, 2, grad->second.size());
      if (!values.ok()) return error(values.status().message());
      fixture.expected[grad->first] = Tensor(grad->second.shape, *std::move(values));
    } else {
      return error("unknown record");
    }
  }
  if (fixture.grads.empty() || fixture.expected.size() != fixture.grads.size()) {
    return absl::InvalidArgumentError("incomplete fixture");
  }
  return fixture;
}

absl::StatusOr<ClipFixture> ReadClipFixture(const std::string& name) {
  const std::string path = testing::SourcePath("tests/core/fixtures/optim/clip_" + name + ".txt");
  std::ifstream file(path);
  if (!file) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::stringstream text;
  text << file.rdbuf();
  absl::StatusOr<ClipFixture> fixture = ParseClipFixture(text.str());
  if (!fixture.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", fixture.status().message()));
  }
  return fixture;
}

::testing::AssertionResult GradsNear(const ParameterSet& actual, const ParameterSet& expected,
                                     double relative_tolerance) {
  for (const auto& [name, want] : expected) {
    const Tensor& got = actual.at(name);
    if (got.shape != want.shape || got.size() != want.size()) {
      return ::testing::AssertionFailure() << name << " reshaped";
    }
    for (int64_t i = 0; i < want.size(); ++i) {
      const double e = want.values[i];
      const double a = got.values[i];
      if (!(std::fabs(a - e) <= relative_tolerance * std::fabs(e))) {
        return ::testing::AssertionFailure()
               << name << "[" << i << "] = " << std::setprecision(9) << a << ", PyTorch " << e;
      }
    }
  }
  return ::testing::AssertionSuccess();
}

bool BitIdentical(const ParameterSet& a, const ParameterSet& b) {
  if (a.size() != b.size()) return false;
  for (const auto& [name, tensor] : a) {
    const auto other = b.find(name);
    if (other == b.end() || other->second.size() != tensor.size() ||
        std::memcmp(tensor.data(), other->second.data(), tensor.size() * sizeof(float)) != 0) {
      return false;
    }
  }
  return true;
}

// ---- PyTorch parity ----

TEST(GradClipTest, ClipByGlobalNormAboveTheThresholdMatchesPyTorch) {
  const absl::StatusOr<ClipFixture> fixture = ReadClipFixture("norm_above");
  ASSERT_TRUE(fixture.ok()) << fixture.status();
  ASSERT_EQ(fixture->mode, "norm");
  ASSERT_GT(fixture->norm, fixture->threshold);  // the fixture must exercise clipping
  EXPECT_NEAR(GlobalNorm(fixture->grads), fixture->norm, kRelativeTolerance * fixture->norm);

  ParameterSet grads = fixture->grads;
  const double norm = ClipByGlobalNorm(&grads, fixture->threshold);
  EXPECT_NEAR(norm, fixture->norm, kRelativeTolerance * fixture->norm);
  EXPECT_TRUE(GradsNear(grads, fixture->expected, kRelativeTolerance));
  EXPECT_NEAR(GlobalNorm(grads), fixture->threshold, 1e-5 * fixture->threshold);
}

TEST(GradClipTest, ClipByGlobalNormBelowTheThresholdChangesNothing) {
  const absl::StatusOr<ClipFixture> fixture = ReadClipFixture("norm_below");
  ASSERT_TRUE(fixture.ok()) << fixture.status();
  ASSERT_EQ(fixture->mode, "norm");
  ASSERT_LT(fixture->norm, fixture->threshold);
  // PyTorch multiplies by clamp(coef, max=1) = 1: its output is its input.
  ASSERT_TRUE(BitIdentical(fixture->expected, fixture->grads));

  ParameterSet grads = fixture->grads;
  const double norm = ClipByGlobalNorm(&grads, fixture->threshold);
  EXPECT_NEAR(norm, fixture->norm, kRelativeTolerance * fixture->norm);
  EXPECT_TRUE(BitIdentical(grads, fixture->expected));
}

TEST(GradClipTest, ClipByValueMatchesPyTorchExactly) {
  const absl::StatusOr<ClipFixture> fixture = ReadClipFixture("value");
  ASSERT_TRUE(fixture.ok()) << fixture.status();
  ASSERT_EQ(fixture->mode, "value");
  ASSERT_FALSE(BitIdentical(fixture->expected, fixture->grads));  // something gets clipped
  ParameterSet grads = fixture->grads;
  ClipByValue(&grads, fixture->threshold);
  // Clamping rounds nothing: the result must be PyTorch's to the bit.
  EXPECT_TRUE(BitIdentical(grads, fixture->expected));
}

// ---- Edge cases, by hand ----

TEST(GradClipTest, GlobalNormIsTheNormOfTheConcatenation) {
  EXPECT_EQ(GlobalNorm({}), 0.0);
  const ParameterSet grads = {{"a", Tensor({2}, {3.0f, 0.0f})},
                              {"b", Tensor({1, 2}, {-4.0f, 12.0f})}};
  EXPECT_EQ(GlobalNorm(grads), 13.0);  // sqrt(9 + 16 + 144)
}

TEST(GradClipTest, NonFiniteNormIsReturnedAndLeavesGradientsAlone) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  for (const float bad : {nan, inf, -inf}) {
    ParameterSet grads = {{"a", Tensor({3}, {1.0f, bad, -2.0f})}, {"b", Tensor({1}, {5.0f})}};
    const ParameterSet before = grads;
    const double norm = ClipByGlobalNorm(&grads, /*max_norm=*/1.0);
    EXPECT_FALSE(std::isfinite(norm)) << bad;
    EXPECT_EQ(std::isnan(norm), std::isnan(bad)) << bad;
    EXPECT_TRUE(BitIdentical(grads, before)) << bad;
  }
}

TEST(GradClipTest, ClipByValueKeepsNanAndClampsInfinities) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  ParameterSet grads = {{"a", Tensor({5}, {nan, inf, -inf, 0.25f, -3.0f})}};
  ClipByValue(&grads, 0.5);
  const std::vector<float>& v = grads.at("a").values;
  EXPECT_TRUE(std::isnan(v[0]));
  EXPECT_EQ(v[1], 0.5f);
  EXPECT_EQ(v[2], -0.5f);
  EXPECT_EQ(v[3], 0.25f);
  EXPECT_EQ(v[4], -0.5f);
}

}  // namespace
}  // namespace recurrent::core
