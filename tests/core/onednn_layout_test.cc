// The weight conversions between PyTorch's layout and oneDNN's, checked element by element
// against the index formulas written out here (not the tiled loops under test), at sizes that
// leave partial tiles on both sides.
#include "core/onednn_layout.h"

#include <cstdint>
#include <vector>

#include "gtest/gtest.h"

namespace recurrent::core {
namespace {

struct Shape {
  CellType cell;
  int64_t gates;
  int64_t in;
  int64_t hidden;
};

// PyTorch's gate block for oneDNN gate g: LSTM i,f,g,o agree; GRU oneDNN u,r,o = PyTorch z,r,n.
int64_t ExpectedPyTorchGate(CellType cell, int64_t g) {
  if (cell == CellType::kGru) return g == 0 ? 1 : (g == 1 ? 0 : 2);
  return g;
}

std::vector<float> Distinct(int64_t count, float offset) {
  std::vector<float> values(count);
  for (int64_t k = 0; k < count; ++k) values[k] = offset + static_cast<float>(k);
  return values;
}

// Asserts, for every weight, that `ldigo` and `pytorch` hold the same value where the layouts'
// index formulas put it: ldigo [in][G][H], PyTorch [G*H][in] with gate blocks reordered.
void ExpectSameWeights(const Shape& s, const std::vector<float>& ldigo,
                       const std::vector<float>& pytorch) {
  for (int64_t i = 0; i < s.in; ++i) {
    for (int64_t g = 0; g < s.gates; ++g) {
      const int64_t pg = ExpectedPyTorchGate(s.cell, g);
      for (int64_t h = 0; h < s.hidden; ++h) {
        ASSERT_EQ(ldigo[(i * s.gates + g) * s.hidden + h], pytorch[(pg * s.hidden + h) * s.in + i])
            << "i=" << i << " oneDNN gate " << g << " h=" << h;
      }
    }
  }
}

class OneDnnLayoutTest : public testing::TestWithParam<Shape> {};

TEST_P(OneDnnLayoutTest, PyTorchToLdigoPutsEveryElementWhereTheFormulaSays) {
  const Shape s = GetParam();
  const std::vector<float> pytorch = Distinct(s.gates * s.hidden * s.in, 1.0f);
  std::vector<float> ldigo(pytorch.size(), -1.0f);
  PyTorchWeightToLdigo(s.cell, pytorch.data(), s.in, s.hidden, ldigo.data());
  ExpectSameWeights(s, ldigo, pytorch);
}

TEST_P(OneDnnLayoutTest, LdigoToPyTorchPutsEveryElementWhereTheFormulaSays) {
  const Shape s = GetParam();
  const std::vector<float> ldigo = Distinct(s.gates * s.hidden * s.in, 0.5f);
  std::vector<float> pytorch(ldigo.size(), -1.0f);
  LdigoToPyTorchWeight(s.cell, ldigo.data(), s.in, s.hidden, pytorch.data());
  ExpectSameWeights(s, ldigo, pytorch);
}

TEST_P(OneDnnLayoutTest, RoundTripIsExact) {
  const Shape s = GetParam();
  const std::vector<float> pytorch = Distinct(s.gates * s.hidden * s.in, -7.25f);
  std::vector<float> ldigo(pytorch.size());
  std::vector<float> back(pytorch.size());
  PyTorchWeightToLdigo(s.cell, pytorch.data(), s.in, s.hidden, ldigo.data());
  LdigoToPyTorchWeight(s.cell, ldigo.data(), s.in, s.hidden, back.data());
  EXPECT_EQ(back, pytorch);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, OneDnnLayoutTest,
    testing::Values(Shape{CellType::kLstm, 4, 1, 1}, Shape{CellType::kLstm, 4, 8, 256},
                    Shape{CellType::kLstm, 4, 70, 33}, Shape{CellType::kGru, 3, 37, 65},
                    Shape{CellType::kGru, 3, 1, 100}, Shape{CellType::kRnnTanh, 1, 64, 31},
                    Shape{CellType::kRnnRelu, 1, 33, 1}));

}  // namespace
}  // namespace recurrent::core
