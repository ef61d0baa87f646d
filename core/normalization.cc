#include "core/normalization.h"

#include <cmath>
#include <vector>

namespace recurrent::core {
namespace {

constexpr double kMinStd = 1e-6;

// Mean and std per column of the rows produced by `for_each_row(callback(const float* row))`.
template <typename ForEachRow>
void FitColumns(int64_t width, ForEachRow for_each_row, std::vector<float>* mean_out,
                std::vector<float>* std_out) {
  std::vector<double> sum(width, 0.0), squares(width, 0.0);
  int64_t rows = 0;
  for_each_row([&](const float* row) {
    for (int64_t j = 0; j < width; ++j) sum[j] += row[j];
    ++rows;
  });
  std::vector<double> mean(width);
  for (int64_t j = 0; j < width; ++j) mean[j] = sum[j] / static_cast<double>(rows);
  // Second pass on the centred values: no cancellation for features with a large offset.
  for_each_row([&](const float* row) {
    for (int64_t j = 0; j < width; ++j) {
      const double centred = row[j] - mean[j];
      squares[j] += centred * centred;
    }
  });
  mean_out->resize(width);
  std_out->resize(width);
  for (int64_t j = 0; j < width; ++j) {
    const double deviation = std::sqrt(squares[j] / static_cast<double>(rows));
    (*mean_out)[j] = static_cast<float>(mean[j]);
    (*std_out)[j] = deviation < kMinStd ? 1.0f : static_cast<float>(deviation);
  }
}

void Standardize(const std::vector<float>& mean, const std::vector<float>& deviation, float* values,
                 int64_t rows) {
  const int64_t width = static_cast<int64_t>(mean.size());
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < width; ++j) {
      float& value = values[r * width + j];
      value = (value - mean[j]) / deviation[j];
    }
  }
}

}  // namespace

absl::StatusOr<Normalization> FitNormalization(const Dataset& dataset, bool inputs, bool targets) {
  if (targets && dataset.has_labels()) {
    return absl::InvalidArgumentError("class labels cannot be normalized; only regression targets");
  }
  Normalization result;
  if (inputs) {
    FitColumns(
        dataset.input_size,
        [&](auto&& visit) {
          for (const Sequence& sequence : dataset.sequences) {
            for (int64_t t = 0; t < sequence.length; ++t) {
              visit(sequence.inputs.data() + t * dataset.input_size);
            }
          }
        },
        &result.input_mean, &result.input_std);
  }
  if (targets) {
    FitColumns(
        dataset.target_size,
        [&](auto&& visit) {
          for (const Sequence& sequence : dataset.sequences) {
            const int64_t rows = dataset.per_step() ? sequence.length : 1;
            for (int64_t r = 0; r < rows; ++r) {
              visit(sequence.targets.data() + r * dataset.target_size);
            }
          }
        },
        &result.target_mean, &result.target_std);
  }
  return result;
}

void NormalizeDataset(const Normalization& normalization, Dataset* dataset) {
  for (Sequence& sequence : dataset->sequences) {
    if (normalization.has_input()) {
      Standardize(normalization.input_mean, normalization.input_std, sequence.inputs.data(),
                  sequence.length);
    }
    if (normalization.has_target() && !dataset->has_labels()) {
      Standardize(normalization.target_mean, normalization.target_std, sequence.targets.data(),
                  dataset->per_step() ? sequence.length : 1);
    }
  }
}

void NormalizeInputs(const Normalization& normalization, float* values, int64_t rows) {
  if (!normalization.has_input()) return;
  Standardize(normalization.input_mean, normalization.input_std, values, rows);
}

void DenormalizeOutputs(const Normalization& normalization, float* values, int64_t rows) {
  if (!normalization.has_target()) return;
  const int64_t width = static_cast<int64_t>(normalization.target_mean.size());
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < width; ++j) {
      float& value = values[r * width + j];
      value = value * normalization.target_std[j] + normalization.target_mean[j];
    }
  }
}

}  // namespace recurrent::core
