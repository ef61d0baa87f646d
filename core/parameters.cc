#include "core/parameters.h"

#include <cmath>
#include <random>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace recurrent::core {

std::string RecurrentParameterName(absl::string_view kind, int64_t layer, bool reverse) {
  return absl::StrCat(kind, "_l", layer, reverse ? "_reverse" : "");
}

std::vector<ParameterInfo> ParameterLayout(const ModelSpec& spec) {
  std::vector<ParameterInfo> layout;
  const int64_t gh = spec.num_gates() * spec.hidden_size;
  for (int64_t layer = 0; layer < spec.num_layers; ++layer) {
    const int64_t in = layer == 0 ? spec.input_size : spec.top_width();
    for (int64_t dir = 0; dir < spec.num_directions(); ++dir) {
      const bool reverse = dir == 1;
      layout.push_back({RecurrentParameterName("weight_ih", layer, reverse), {gh, in}});
      layout.push_back(
          {RecurrentParameterName("weight_hh", layer, reverse), {gh, spec.hidden_size}});
      layout.push_back({RecurrentParameterName("bias_ih", layer, reverse), {gh}});
      layout.push_back({RecurrentParameterName("bias_hh", layer, reverse), {gh}});
    }
  }
  layout.push_back({"head.weight", {spec.output_size, spec.top_width()}});
  layout.push_back({"head.bias", {spec.output_size}});
  return layout;
}

absl::Status ValidateParameters(const ModelSpec& spec, const ParameterSet& params) {
  const std::vector<ParameterInfo> layout = ParameterLayout(spec);
  for (const ParameterInfo& info : layout) {
    const auto it = params.find(info.name);
    if (it == params.end()) {
      return absl::InvalidArgumentError(absl::StrCat("parameter '", info.name, "' is missing"));
    }
    const Tensor& tensor = it->second;
    if (tensor.shape != info.shape) {
      return absl::InvalidArgumentError(absl::StrCat("parameter '", info.name, "' has shape ",
                                                     ShapeToString(tensor.shape), ", expected ",
                                                     ShapeToString(info.shape)));
    }
    if (tensor.size() != Tensor::ElementCount(info.shape)) {
      return absl::InvalidArgumentError(absl::StrCat("parameter '", info.name, "' holds ",
                                                     tensor.size(), " values for shape ",
                                                     ShapeToString(info.shape)));
    }
    for (int64_t i = 0; i < tensor.size(); ++i) {
      if (!std::isfinite(tensor.values[i])) {
        return absl::InvalidArgumentError(
            absl::StrCat("parameter '", info.name, "' has a non-finite value at index ", i));
      }
    }
  }
  if (params.size() != layout.size()) {
    for (const auto& [name, tensor] : params) {
      bool known = false;
      for (const ParameterInfo& info : layout) known = known || info.name == name;
      if (!known) {
        return absl::InvalidArgumentError(
            absl::StrCat("unexpected parameter '", name, "' for a ", DescribeSpec(spec)));
      }
    }
  }
  return absl::OkStatus();
}

ParameterSet InitParameters(const ModelSpec& spec, uint64_t seed) {
  // Our own uniform mapping of mt19937_64 bits: std::uniform_real_distribution is not specified
  // bit-for-bit across standard libraries, and the same seed must give the same weights anywhere.
  std::mt19937_64 rng(seed);
  const auto uniform = [&rng](float bound) {
    const double unit = static_cast<double>(rng() >> 11) * 0x1.0p-53;  // [0, 1)
    return static_cast<float>((2.0 * unit - 1.0) * bound);
  };
  const float recurrent_bound = 1.0f / std::sqrt(static_cast<float>(spec.hidden_size));
  const float head_bound = 1.0f / std::sqrt(static_cast<float>(spec.top_width()));
  ParameterSet params;
  for (const ParameterInfo& info : ParameterLayout(spec)) {
    Tensor tensor(info.shape);
    const float bound = absl::StartsWith(info.name, "head.") ? head_bound : recurrent_bound;
    for (float& v : tensor.values) v = uniform(bound);
    params.emplace(info.name, std::move(tensor));
  }
  return params;
}

ParameterSet ZeroParameters(const ModelSpec& spec) {
  ParameterSet params;
  for (const ParameterInfo& info : ParameterLayout(spec))
    params.emplace(info.name, Tensor(info.shape));
  return params;
}

}  // namespace recurrent::core
