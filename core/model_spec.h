// What a network is: cell type, sizes, head and loss. Validated against explicit limits.
#ifndef RECURRENT_CORE_MODEL_SPEC_H_
#define RECURRENT_CORE_MODEL_SPEC_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace recurrent::core {

enum class CellType {
  kRnnTanh,  // h' = tanh(W_ih x + b_ih + W_hh h + b_hh)
  kRnnRelu,  // h' = relu(W_ih x + b_ih + W_hh h + b_hh)
  kLstm,     // PyTorch nn.LSTM, gates i,f,g,o
  kGru,      // PyTorch nn.GRU, gates r,z,n; n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
};

enum class HeadMode {
  kPerStep,   // linear head on every timestep: outputs [N, T, O]
  kLastStep,  // linear head on the top layer's output at the last timestep: outputs [N, O]
};

enum class LossType {
  kMse,           // mean over every output element of (y - target)^2
  kCrossEntropy,  // softmax over O classes, mean over predictions of -log p[label]
};

absl::string_view CellTypeName(CellType cell);  // "rnn_tanh", "rnn_relu", "lstm", "gru"
absl::StatusOr<CellType> ParseCellType(absl::string_view name);
absl::string_view HeadModeName(HeadMode head);  // "per_step", "last_step"
absl::StatusOr<HeadMode> ParseHeadMode(absl::string_view name);
absl::string_view LossTypeName(LossType loss);  // "mse", "cross_entropy"
absl::StatusOr<LossType> ParseLossType(absl::string_view name);

struct ModelSpec {
  CellType cell = CellType::kLstm;
  int64_t input_size = 1;
  int64_t hidden_size = 32;
  int64_t num_layers = 1;
  bool bidirectional = false;
  HeadMode head = HeadMode::kPerStep;
  int64_t output_size = 1;  // regression outputs, or the number of classes for cross-entropy
  LossType loss = LossType::kMse;

  int64_t num_directions() const { return bidirectional ? 2 : 1; }
  // Gates per cell in PyTorch's weight layout: 1 (RNN), 4 (LSTM), 3 (GRU).
  int64_t num_gates() const;
  // True for LSTM: the only cell with a second (cell) state.
  bool has_cell_state() const { return cell == CellType::kLstm; }
  // Width of the top layer's per-step output, the head's input: D * H.
  int64_t top_width() const { return num_directions() * hidden_size; }

  friend bool operator==(const ModelSpec&, const ModelSpec&) = default;
};

// Upper bounds a spec must respect; they protect memory when a spec comes from a client or a file.
struct SpecLimits {
  int64_t max_input_size = 1 << 16;
  int64_t max_hidden_size = 1 << 14;
  int64_t max_layers = 16;
  int64_t max_output_size = 1 << 16;
  int64_t max_parameters = int64_t{1} << 28;  // 1 GiB of float32
};

// Returns InvalidArgument naming the offending field when `spec` is malformed or over `limits`.
absl::Status ValidateSpec(const ModelSpec& spec, const SpecLimits& limits = {});

// Total number of trainable floats (recurrent layers and head).
int64_t ParameterCount(const ModelSpec& spec);

// "lstm 2x128 bidirectional in=8 out=1 per_step mse": for logs and errors.
std::string DescribeSpec(const ModelSpec& spec);

}  // namespace recurrent::core

#endif  // RECURRENT_CORE_MODEL_SPEC_H_
