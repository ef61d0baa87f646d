// A training data set: sequences of feature vectors with their targets, in memory.
//
// Every sequence i has inputs [T_i, C] (row-major: step by step, C = input_size features per
// step) and, depending on the data set's TargetKind, either
//   kPerStepValues     targets [T_i, O]  regression target for every step (head kPerStep, MSE)
//   kSequenceValues    targets [O]       one regression target per sequence (head kLastStep, MSE)
//   kPerStepLabels     labels  [T_i]     a class in [0, O) for every step (kPerStep, cross-entropy)
//   kSequenceLabels    labels  [1]       one class per sequence (kLastStep, cross-entropy)
// where O = target_size (the number of classes for labels). Lengths may differ between
// sequences; the trainer batches them (see core/batcher.h).
#ifndef RECURRENT_CORE_DATASET_H_
#define RECURRENT_CORE_DATASET_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "core/model_spec.h"

namespace recurrent::core {

enum class TargetKind {
  kPerStepValues,
  kSequenceValues,
  kPerStepLabels,
  kSequenceLabels,
};

absl::string_view TargetKindName(TargetKind kind);  // "per_step_values", ...

struct Sequence {
  int64_t length = 0;           // T_i >= 1
  std::vector<float> inputs;    // [T_i, input_size]
  std::vector<float> targets;   // [T_i, target_size] or [target_size]; empty for labels
  std::vector<int32_t> labels;  // [T_i] or [1]; empty for values
};

struct Dataset {
  int64_t input_size = 0;   // C
  int64_t target_size = 0;  // O: regression outputs, or the number of classes
  TargetKind kind = TargetKind::kSequenceValues;
  std::vector<Sequence> sequences;
  // Optional: the names of the input features / targets (e.g. CSV columns), for lineage.
  std::vector<std::string> input_names;
  std::vector<std::string> target_names;

  bool per_step() const {
    return kind == TargetKind::kPerStepValues || kind == TargetKind::kPerStepLabels;
  }
  bool has_labels() const {
    return kind == TargetKind::kPerStepLabels || kind == TargetKind::kSequenceLabels;
  }
};

// Bounds for data that comes from a client or a file.
struct DatasetLimits {
  int64_t max_sequences = 10'000'000;
  int64_t max_sequence_length = 1 << 20;
  int64_t max_features = 1 << 16;
  int64_t max_total_values = int64_t{1} << 30;  // inputs + targets over all sequences (4 GiB)
};

// OK iff every sequence has length >= 1 and vectors of exactly the sizes above, every value is
// finite, every label is in [0, target_size), input_size and target_size >= 1, there is at least
// one sequence, the names (when given) match the sizes, and everything is within `limits`.
// InvalidArgument naming the first bad sequence and field otherwise.
absl::Status ValidateDataset(const Dataset& dataset, const DatasetLimits& limits = {});

// OK iff `spec` can be trained on `dataset`: input_size and output_size match, the head matches
// per_step(), the loss matches has_labels(). InvalidArgument explaining the mismatch otherwise.
absl::Status CheckDatasetMatchesSpec(const Dataset& dataset, const ModelSpec& spec);

// A stable content hash, "fnv1a64:" + 16 hex digits: 64-bit FNV-1a over the sizes, the kind and
// every value's bits, in order. Equal data sets give equal fingerprints on every machine; it
// identifies data for lineage, it is not a cryptographic digest.
std::string DatasetFingerprint(const Dataset& dataset);

}  // namespace recurrent::core

#endif  // RECURRENT_CORE_DATASET_H_
