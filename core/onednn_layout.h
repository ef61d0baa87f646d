// Conversions between PyTorch's recurrent weight layout and oneDNN's.
//
// PyTorch keeps one matrix per direction, rows grouped by gate: weight [G*H, in] with gate blocks
// i,f,g,o (LSTM) or r,z,n (GRU), and two biases b_ih, b_hh of [G*H].
// oneDNN keeps `ldigo` weights [layer, direction, in, gate, H] and an `ldgo` bias
// [layer, direction, gate, H], with GRU gates ordered u(=z), r, o(=n). For LSTM and vanilla RNN
// the two PyTorch biases always appear summed, so oneDNN stores one; linear-before-reset GRU
// keeps b_hn apart (it is multiplied by r), giving 4 bias gates: [b_iz+b_hz, b_ir+b_hr, b_in,
// b_hn].
#ifndef RECURRENT_CORE_ONEDNN_LAYOUT_H_
#define RECURRENT_CORE_ONEDNN_LAYOUT_H_

#include <cstdint>

#include "core/model_spec.h"

namespace recurrent::core {

// Gates in oneDNN's weights (1, 4 or 3) and bias (1, 4 or 4 for lbr_gru).
int64_t OneDnnWeightGates(CellType cell);
int64_t OneDnnBiasGates(CellType cell);

// PyTorch gate block that holds oneDNN gate `onednn_gate`.
int64_t PyTorchGateOf(CellType cell, int64_t onednn_gate);

// `pytorch` [G*H, in] -> `ldigo` [in, G, H] (one direction's slice).
void PyTorchWeightToLdigo(CellType cell, const float* pytorch, int64_t in, int64_t hidden,
                          float* ldigo);
// `ldigo` [in, G, H] -> `pytorch` [G*H, in]; used for gradients.
void LdigoToPyTorchWeight(CellType cell, const float* ldigo, int64_t in, int64_t hidden,
                          float* pytorch);
// b_ih, b_hh [G*H] -> `ldgo` [Gb, H] (one direction's slice).
void PyTorchBiasToLdgo(CellType cell, const float* bias_ih, const float* bias_hh, int64_t hidden,
                       float* ldgo);
// d loss / d ldgo [Gb, H] -> d loss / d b_ih and d b_hh [G*H]. Both PyTorch biases enter the
// summed bias with weight 1, so each receives the summed bias's gradient.
void LdgoGradToPyTorchBiasGrads(CellType cell, const float* ldgo_grad, int64_t hidden,
                                float* bias_ih_grad, float* bias_hh_grad);

}  // namespace recurrent::core

#endif  // RECURRENT_CORE_ONEDNN_LAYOUT_H_
