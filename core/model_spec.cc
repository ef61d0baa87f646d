#include "core/model_spec.h"

#include "absl/strings/str_cat.h"

namespace recurrent::core {
namespace {

template <typename Enum, size_t kCount>
absl::StatusOr<Enum> ParseName(absl::string_view what, absl::string_view name,
                               const std::pair<absl::string_view, Enum> (&table)[kCount]) {
  std::string accepted;
  for (const auto& [entry_name, value] : table) {
    if (entry_name == name) return value;
    absl::StrAppend(&accepted, accepted.empty() ? "" : ", ", entry_name);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown ", what, " '", name, "' (expected one of: ", accepted, ")"));
}

constexpr std::pair<absl::string_view, CellType> kCellNames[] = {
    {"rnn_tanh", CellType::kRnnTanh},
    {"rnn_relu", CellType::kRnnRelu},
    {"lstm", CellType::kLstm},
    {"gru", CellType::kGru},
};
constexpr std::pair<absl::string_view, HeadMode> kHeadNames[] = {
    {"per_step", HeadMode::kPerStep},
    {"last_step", HeadMode::kLastStep},
};
constexpr std::pair<absl::string_view, LossType> kLossNames[] = {
    {"mse", LossType::kMse},
    {"cross_entropy", LossType::kCrossEntropy},
};

template <typename Enum, size_t kCount>
absl::string_view NameOf(Enum value, const std::pair<absl::string_view, Enum> (&table)[kCount]) {
  for (const auto& [name, entry] : table) {
    if (entry == value) return name;
  }
  return "unknown";
}

absl::Status CheckRange(absl::string_view field, int64_t value, int64_t max) {
  if (value < 1 || value > max) {
    return absl::InvalidArgumentError(
        absl::StrCat("model spec: ", field, " must be in [1, ", max, "], got ", value));
  }
  return absl::OkStatus();
}

}  // namespace

absl::string_view CellTypeName(CellType cell) { return NameOf(cell, kCellNames); }
absl::StatusOr<CellType> ParseCellType(absl::string_view name) {
  return ParseName("cell type", name, kCellNames);
}
absl::string_view HeadModeName(HeadMode head) { return NameOf(head, kHeadNames); }
absl::StatusOr<HeadMode> ParseHeadMode(absl::string_view name) {
  return ParseName("head mode", name, kHeadNames);
}
absl::string_view LossTypeName(LossType loss) { return NameOf(loss, kLossNames); }
absl::StatusOr<LossType> ParseLossType(absl::string_view name) {
  return ParseName("loss type", name, kLossNames);
}

int64_t ModelSpec::num_gates() const {
  switch (cell) {
    case CellType::kLstm:
      return 4;
    case CellType::kGru:
      return 3;
    case CellType::kRnnTanh:
    case CellType::kRnnRelu:
      return 1;
  }
  return 1;
}

absl::Status ValidateSpec(const ModelSpec& spec, const SpecLimits& limits) {
  switch (spec.cell) {
    case CellType::kRnnTanh:
    case CellType::kRnnRelu:
    case CellType::kLstm:
    case CellType::kGru:
      break;
    default:
      return absl::InvalidArgumentError("model spec: unknown cell type");
  }
  if (spec.head != HeadMode::kPerStep && spec.head != HeadMode::kLastStep) {
    return absl::InvalidArgumentError("model spec: unknown head mode");
  }
  if (spec.loss != LossType::kMse && spec.loss != LossType::kCrossEntropy) {
    return absl::InvalidArgumentError("model spec: unknown loss type");
  }
  if (auto s = CheckRange("input_size", spec.input_size, limits.max_input_size); !s.ok()) return s;
  if (auto s = CheckRange("hidden_size", spec.hidden_size, limits.max_hidden_size); !s.ok()) {
    return s;
  }
  if (auto s = CheckRange("num_layers", spec.num_layers, limits.max_layers); !s.ok()) return s;
  if (auto s = CheckRange("output_size", spec.output_size, limits.max_output_size); !s.ok()) {
    return s;
  }
  if (spec.loss == LossType::kCrossEntropy && spec.output_size < 2) {
    return absl::InvalidArgumentError(
        "model spec: cross_entropy needs output_size >= 2 (the number of classes)");
  }
  // Sizes are bounded above, so this product cannot overflow int64.
  const int64_t count = ParameterCount(spec);
  if (count > limits.max_parameters) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model spec: ", count, " parameters exceed the limit of ", limits.max_parameters));
  }
  return absl::OkStatus();
}

int64_t ParameterCount(const ModelSpec& spec) {
  const int64_t gh = spec.num_gates() * spec.hidden_size;
  int64_t count = 0;
  for (int64_t layer = 0; layer < spec.num_layers; ++layer) {
    const int64_t in = layer == 0 ? spec.input_size : spec.top_width();
    count += spec.num_directions() * (gh * in + gh * spec.hidden_size + 2 * gh);
  }
  count += spec.output_size * spec.top_width() + spec.output_size;
  return count;
}

std::string DescribeSpec(const ModelSpec& spec) {
  return absl::StrCat(CellTypeName(spec.cell), " ", spec.num_layers, "x", spec.hidden_size,
                      spec.bidirectional ? " bidirectional" : "", " in=", spec.input_size,
                      " out=", spec.output_size, " ", HeadModeName(spec.head), " ",
                      LossTypeName(spec.loss));
}

}  // namespace recurrent::core
