#include "core/dataset.h"

#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"

namespace recurrent::core {
namespace {

absl::Status SequenceError(size_t index, absl::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat("sequence ", index, ": ", message));
}

// Every value must be finite: one NaN in the data turns every gradient into NaN.
absl::Status CheckFinite(size_t index, absl::string_view field, const std::vector<float>& values,
                         int64_t width) {
  for (size_t j = 0; j < values.size(); ++j) {
    if (!std::isfinite(values[j])) {
      const int64_t position = static_cast<int64_t>(j);
      return SequenceError(index, absl::StrCat(field, "[", j, "] (step ", position / width,
                                               ", column ", position % width, ") is ", values[j],
                                               "; every value must be finite"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckSizeField(absl::string_view what, int64_t value, int64_t max) {
  if (value < 1 || value > max) {
    return absl::InvalidArgumentError(
        absl::StrCat("data set: ", what, " must be in [1, ", max, "], got ", value));
  }
  return absl::OkStatus();
}

// The fingerprint's byte stream is fixed, so that a fingerprint recorded in a model's lineage
// still identifies the data after any refactoring: every integer is 8 bytes little-endian
// (int64), every float its 4 IEEE-754 bytes little-endian, every label 4 bytes little-endian:
//   input_size, target_size, kind (0..3 in declaration order), number of sequences, then per
//   sequence: length, inputs.size(), inputs..., targets.size(), targets..., labels.size(),
//   labels...
// The names are not hashed: renaming a column does not change the data.
class Fnv1a64 {
 public:
  void AddU64(uint64_t value) {
    for (int byte = 0; byte < 8; ++byte) AddByte(static_cast<uint8_t>(value >> (8 * byte)));
  }
  void AddU32(uint32_t value) {
    for (int byte = 0; byte < 4; ++byte) AddByte(static_cast<uint8_t>(value >> (8 * byte)));
  }
  void AddFloat(float value) {
    uint32_t bits;
    std::memcpy(&bits, &value, sizeof(bits));
    AddU32(bits);
  }
  uint64_t hash() const { return hash_; }

 private:
  void AddByte(uint8_t byte) {
    hash_ ^= byte;
    hash_ *= 0x100000001B3ull;  // the 64-bit FNV prime
  }

  uint64_t hash_ = 0xCBF29CE484222325ull;  // the 64-bit FNV offset basis
};

}  // namespace

absl::string_view TargetKindName(TargetKind kind) {
  switch (kind) {
    case TargetKind::kPerStepValues:
      return "per_step_values";
    case TargetKind::kSequenceValues:
      return "sequence_values";
    case TargetKind::kPerStepLabels:
      return "per_step_labels";
    case TargetKind::kSequenceLabels:
      return "sequence_labels";
  }
  return "unknown";
}

absl::Status ValidateDataset(const Dataset& dataset, const DatasetLimits& limits) {
  switch (dataset.kind) {
    case TargetKind::kPerStepValues:
    case TargetKind::kSequenceValues:
    case TargetKind::kPerStepLabels:
    case TargetKind::kSequenceLabels:
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("data set: unknown target kind ", static_cast<int>(dataset.kind)));
  }
  RETURN_IF_ERROR(CheckSizeField("input_size", dataset.input_size, limits.max_features));
  RETURN_IF_ERROR(CheckSizeField("target_size", dataset.target_size, limits.max_features));
  if (dataset.sequences.empty()) return absl::InvalidArgumentError("data set has no sequences");
  if (static_cast<int64_t>(dataset.sequences.size()) > limits.max_sequences) {
    return absl::InvalidArgumentError(absl::StrCat("data set has ", dataset.sequences.size(),
                                                   " sequences, more than the limit of ",
                                                   limits.max_sequences));
  }
  if (!dataset.input_names.empty() &&
      static_cast<int64_t>(dataset.input_names.size()) != dataset.input_size) {
    return absl::InvalidArgumentError(absl::StrCat("data set: input_names has ",
                                                   dataset.input_names.size(),
                                                   " names, input_size is ", dataset.input_size));
  }
  if (!dataset.target_names.empty() &&
      static_cast<int64_t>(dataset.target_names.size()) != dataset.target_size) {
    return absl::InvalidArgumentError(absl::StrCat("data set: target_names has ",
                                                   dataset.target_names.size(),
                                                   " names, target_size is ", dataset.target_size));
  }

  const bool per_step = dataset.per_step();
  const bool labels = dataset.has_labels();
  const absl::string_view kind_name = TargetKindName(dataset.kind);
  int64_t total_values = 0;
  for (size_t i = 0; i < dataset.sequences.size(); ++i) {
    const Sequence& sequence = dataset.sequences[i];
    const int64_t length = sequence.length;
    if (length < 1 || length > limits.max_sequence_length) {
      return SequenceError(
          i, absl::StrCat("length must be in [1, ", limits.max_sequence_length, "], got ", length));
    }
    // Both factors are within the limits checked above, but the limits come from the caller:
    // compare by division so that no product can overflow.
    if (dataset.input_size > limits.max_total_values / length) {
      return SequenceError(
          i, absl::StrCat("length ", length, " x input_size ", dataset.input_size,
                          " is more than max_total_values ", limits.max_total_values));
    }
    const int64_t expected_inputs = length * dataset.input_size;
    if (static_cast<int64_t>(sequence.inputs.size()) != expected_inputs) {
      return SequenceError(
          i, absl::StrCat("inputs has ", sequence.inputs.size(), " values, expected length ",
                          length, " x input_size ", dataset.input_size, " = ", expected_inputs));
    }
    const int64_t target_steps = per_step ? length : 1;
    if (labels) {
      if (!sequence.targets.empty()) {
        return SequenceError(i, absl::StrCat("targets has ", sequence.targets.size(),
                                             " values but must be empty for ", kind_name,
                                             " data (the classes are in labels)"));
      }
      if (static_cast<int64_t>(sequence.labels.size()) != target_steps) {
        return SequenceError(
            i, absl::StrCat("labels has ", sequence.labels.size(), " values, expected ",
                            per_step ? absl::StrCat("one per step: length ", length)
                                     : std::string("1 (one per sequence)")));
      }
    } else {
      if (!sequence.labels.empty()) {
        return SequenceError(
            i, absl::StrCat("labels has ", sequence.labels.size(), " values but must be empty for ",
                            kind_name, " data (the values are in targets)"));
      }
      if (dataset.target_size > limits.max_total_values / target_steps) {
        return SequenceError(
            i, absl::StrCat("length ", length, " x target_size ", dataset.target_size,
                            " is more than max_total_values ", limits.max_total_values));
      }
      const int64_t expected_targets = target_steps * dataset.target_size;
      if (static_cast<int64_t>(sequence.targets.size()) != expected_targets) {
        return SequenceError(
            i, per_step ? absl::StrCat("targets has ", sequence.targets.size(),
                                       " values, expected length ", length, " x target_size ",
                                       dataset.target_size, " = ", expected_targets)
                        : absl::StrCat("targets has ", sequence.targets.size(),
                                       " values, expected target_size ", dataset.target_size));
      }
    }
    // Compared by subtraction: total_values <= max_total_values holds on entry, so nothing
    // overflows whatever limit the caller chose.
    for (const int64_t count : {expected_inputs, static_cast<int64_t>(sequence.targets.size()),
                                static_cast<int64_t>(sequence.labels.size())}) {
      if (count > limits.max_total_values - total_values) {
        return SequenceError(
            i, absl::StrCat("the data set has more than max_total_values ", limits.max_total_values,
                            " values (inputs, targets and labels) up to here"));
      }
      total_values += count;
    }

    RETURN_IF_ERROR(CheckFinite(i, "inputs", sequence.inputs, dataset.input_size));
    RETURN_IF_ERROR(CheckFinite(i, "targets", sequence.targets, dataset.target_size));
    for (size_t t = 0; t < sequence.labels.size(); ++t) {
      const int32_t label = sequence.labels[t];
      if (label < 0 || label >= dataset.target_size) {
        return SequenceError(i, absl::StrCat("labels[", t, "] = ", label, " is outside [0, ",
                                             "target_size ", dataset.target_size, ")"));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status CheckDatasetMatchesSpec(const Dataset& dataset, const ModelSpec& spec) {
  if (dataset.input_size != spec.input_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the data set has input_size ", dataset.input_size, ", the model spec ", spec.input_size));
  }
  if (dataset.target_size != spec.output_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("the data set has target_size ", dataset.target_size,
                     dataset.has_labels() ? " (classes)" : "", ", the model spec output_size ",
                     spec.output_size));
  }
  const HeadMode needed_head = dataset.per_step() ? HeadMode::kPerStep : HeadMode::kLastStep;
  if (spec.head != needed_head) {
    return absl::InvalidArgumentError(
        absl::StrCat(TargetKindName(dataset.kind), " data needs head ", HeadModeName(needed_head),
                     ", the model spec has ", HeadModeName(spec.head)));
  }
  const LossType needed_loss = dataset.has_labels() ? LossType::kCrossEntropy : LossType::kMse;
  if (spec.loss != needed_loss) {
    return absl::InvalidArgumentError(
        absl::StrCat(TargetKindName(dataset.kind), " data needs loss ", LossTypeName(needed_loss),
                     ", the model spec has ", LossTypeName(spec.loss)));
  }
  return absl::OkStatus();
}

std::string DatasetFingerprint(const Dataset& dataset) {
  Fnv1a64 hash;
  hash.AddU64(static_cast<uint64_t>(dataset.input_size));
  hash.AddU64(static_cast<uint64_t>(dataset.target_size));
  hash.AddU64(static_cast<uint64_t>(dataset.kind));
  hash.AddU64(dataset.sequences.size());
  for (const Sequence& sequence : dataset.sequences) {
    hash.AddU64(static_cast<uint64_t>(sequence.length));
    hash.AddU64(sequence.inputs.size());
    for (const float value : sequence.inputs) hash.AddFloat(value);
    hash.AddU64(sequence.targets.size());
    for (const float value : sequence.targets) hash.AddFloat(value);
    hash.AddU64(sequence.labels.size());
    for (const int32_t label : sequence.labels) hash.AddU32(static_cast<uint32_t>(label));
  }
  return absl::StrCat("fnv1a64:", absl::Hex(hash.hash(), absl::kZeroPad16));
}

}  // namespace recurrent::core
