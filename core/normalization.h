// Per-feature standardization (core/artifact.h's Normalization) fitted on training data, applied
// to data sets before training and to inputs/outputs at inference.
#ifndef RECURRENT_CORE_NORMALIZATION_H_
#define RECURRENT_CORE_NORMALIZATION_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "core/artifact.h"
#include "core/dataset.h"

namespace recurrent::core {

// Mean and population standard deviation of every input feature over every step of every
// sequence, and (when `targets`) of every regression target column. Computed in double with two
// passes. A feature whose std is below 1e-6 (constant) gets std 1, so it is only centred and
// never divided by ~0. InvalidArgument when `targets` is asked for a label data set.
absl::StatusOr<Normalization> FitNormalization(const Dataset& dataset, bool inputs, bool targets);

// x' = (x - mean) / std in place over the parts `normalization` has (inputs and/or targets).
void NormalizeDataset(const Normalization& normalization, Dataset* dataset);

// `rows` rows of input_mean.size() features, in place; no-op without input normalization.
void NormalizeInputs(const Normalization& normalization, float* values, int64_t rows);

// The inverse for the head's outputs: y = y' * std + mean over `rows` rows of target_mean.size()
// values, in place; no-op without target normalization.
void DenormalizeOutputs(const Normalization& normalization, float* values, int64_t rows);

}  // namespace recurrent::core

#endif  // RECURRENT_CORE_NORMALIZATION_H_
