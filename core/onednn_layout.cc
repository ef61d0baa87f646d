#include "core/onednn_layout.h"

namespace recurrent::core {

int64_t OneDnnWeightGates(CellType cell) {
  switch (cell) {
    case CellType::kLstm:
      return 4;
    case CellType::kGru:
      return 3;
    default:
      return 1;
  }
}

int64_t OneDnnBiasGates(CellType cell) {
  return cell == CellType::kGru ? 4 : OneDnnWeightGates(cell);
}

int64_t PyTorchGateOf(CellType cell, int64_t onednn_gate) {
  // LSTM gate orders agree (i,f,g,o). GRU: oneDNN u,r,o is PyTorch z,r,n = blocks 1,0,2.
  if (cell == CellType::kGru) {
    constexpr int64_t kGruGate[] = {1, 0, 2};
    return kGruGate[onednn_gate];
  }
  return onednn_gate;
}

void PyTorchWeightToLdigo(CellType cell, const float* pytorch, int64_t in, int64_t hidden,
                          float* ldigo) {
  const int64_t gates = OneDnnWeightGates(cell);
  for (int64_t g = 0; g < gates; ++g) {
    const float* block = pytorch + PyTorchGateOf(cell, g) * hidden * in;
    for (int64_t h = 0; h < hidden; ++h) {
      const float* row = block + h * in;
      for (int64_t i = 0; i < in; ++i) ldigo[(i * gates + g) * hidden + h] = row[i];
    }
  }
}

void LdigoToPyTorchWeight(CellType cell, const float* ldigo, int64_t in, int64_t hidden,
                          float* pytorch) {
  const int64_t gates = OneDnnWeightGates(cell);
  for (int64_t g = 0; g < gates; ++g) {
    float* block = pytorch + PyTorchGateOf(cell, g) * hidden * in;
    for (int64_t h = 0; h < hidden; ++h) {
      float* row = block + h * in;
      for (int64_t i = 0; i < in; ++i) row[i] = ldigo[(i * gates + g) * hidden + h];
    }
  }
}

void PyTorchBiasToLdgo(CellType cell, const float* bias_ih, const float* bias_hh, int64_t hidden,
                       float* ldgo) {
  const int64_t gates = OneDnnWeightGates(cell);
  for (int64_t g = 0; g < gates; ++g) {
    const int64_t offset = PyTorchGateOf(cell, g) * hidden;
    const bool gru_candidate = cell == CellType::kGru && g == 2;
    for (int64_t h = 0; h < hidden; ++h) {
      ldgo[g * hidden + h] =
          gru_candidate ? bias_ih[offset + h] : bias_ih[offset + h] + bias_hh[offset + h];
    }
  }
  if (cell == CellType::kGru) {  // b_hn stays apart: it sits inside r * (W_hn h + b_hn).
    for (int64_t h = 0; h < hidden; ++h) ldgo[3 * hidden + h] = bias_hh[2 * hidden + h];
  }
}

void LdgoGradToPyTorchBiasGrads(CellType cell, const float* ldgo_grad, int64_t hidden,
                                float* bias_ih_grad, float* bias_hh_grad) {
  const int64_t gates = OneDnnWeightGates(cell);
  for (int64_t g = 0; g < gates; ++g) {
    const int64_t offset = PyTorchGateOf(cell, g) * hidden;
    const bool gru_candidate = cell == CellType::kGru && g == 2;
    for (int64_t h = 0; h < hidden; ++h) {
      bias_ih_grad[offset + h] = ldgo_grad[g * hidden + h];
      bias_hh_grad[offset + h] =
          gru_candidate ? ldgo_grad[3 * hidden + h] : ldgo_grad[g * hidden + h];
    }
  }
}

}  // namespace recurrent::core
