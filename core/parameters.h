// A network's trainable tensors, named, shaped and gate-ordered exactly like PyTorch's
// nn.RNN / nn.LSTM / nn.GRU state_dict, plus an nn.Linear head named "head":
//
//   weight_ih_l{k}[_reverse]  [G*H, I_k]   I_0 = input_size, I_k = D*H for k > 0
//   weight_hh_l{k}[_reverse]  [G*H, H]
//   bias_ih_l{k}[_reverse]    [G*H]
//   bias_hh_l{k}[_reverse]    [G*H]
//   head.weight               [O, D*H]
//   head.bias                 [O]
//
// G = 1 (RNN), 4 (LSTM, gate rows i,f,g,o), 3 (GRU, gate rows r,z,n); D = 2 if bidirectional.
// Weights trained in PyTorch therefore load unchanged; the engine converts internally.
#ifndef RECURRENT_CORE_PARAMETERS_H_
#define RECURRENT_CORE_PARAMETERS_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "core/model_spec.h"
#include "core/tensor.h"

namespace recurrent::core {

struct ParameterInfo {
  std::string name;
  std::vector<int64_t> shape;
};

// Every parameter of `spec` in canonical order: layer by layer, forward before reverse,
// weight_ih, weight_hh, bias_ih, bias_hh; then head.weight, head.bias.
std::vector<ParameterInfo> ParameterLayout(const ModelSpec& spec);

// "weight_ih_l2_reverse" and friends.
std::string RecurrentParameterName(absl::string_view kind, int64_t layer, bool reverse);

// Named tensors in PyTorch layout. std::map keeps iteration deterministic.
using ParameterSet = std::map<std::string, Tensor>;

// Returns OK iff `params` holds exactly the tensors of ParameterLayout(spec) with those shapes
// and only finite values; otherwise InvalidArgument naming the first problem.
absl::Status ValidateParameters(const ModelSpec& spec, const ParameterSet& params);

// PyTorch's default initialization: recurrent tensors U(-1/sqrt(H), 1/sqrt(H)), head weight and
// bias U(-1/sqrt(D*H), 1/sqrt(D*H)). Deterministic for a given seed.
ParameterSet InitParameters(const ModelSpec& spec, uint64_t seed);

// A zero tensor for every parameter: a gradient accumulator.
ParameterSet ZeroParameters(const ModelSpec& spec);

}  // namespace recurrent::core

#endif  // RECURRENT_CORE_PARAMETERS_H_
