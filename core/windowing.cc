#include "core/windowing.h"

#include <cmath>
#include <unordered_set>

#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "core/status_macros.h"

namespace recurrent::core {
namespace {

absl::Status CheckAtLeastOne(absl::string_view field, int64_t value) {
  if (value < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("windowing: ", field, " must be >= 1, got ", value));
  }
  return absl::OkStatus();
}

// `values` is [rows, columns.size()] row-major; the column names are distinct.
absl::StatusOr<Dataset> Window(absl::Span<const float> values, int64_t rows,
                               const std::vector<std::string>& columns,
                               const WindowOptions& options, const DatasetLimits& limits) {
  RETURN_IF_ERROR(CheckAtLeastOne("window", options.window));
  RETURN_IF_ERROR(CheckAtLeastOne("horizon", options.horizon));
  RETURN_IF_ERROR(CheckAtLeastOne("stride", options.stride));
  if (options.window > limits.max_sequence_length) {
    return absl::InvalidArgumentError(absl::StrCat("windowing: window ", options.window,
                                                   " is more than max_sequence_length ",
                                                   limits.max_sequence_length));
  }
  if (options.per_step_targets && options.all_horizon_steps) {
    return absl::InvalidArgumentError(
        "windowing: per_step_targets and all_horizon_steps exclude each other");
  }
  if (options.feature_columns.empty()) {
    return absl::InvalidArgumentError("windowing: no feature columns given");
  }
  if (options.target_columns.empty()) {
    return absl::InvalidArgumentError("windowing: no target columns given");
  }
  // SelectColumns only reads the names, so a table without rows is enough.
  CsvTable names_only;
  names_only.columns = columns;
  ASSIGN_OR_RETURN(const std::vector<int64_t> features,
                   SelectColumns(names_only, options.feature_columns));
  ASSIGN_OR_RETURN(const std::vector<int64_t> targets,
                   SelectColumns(names_only, options.target_columns));

  // Compared before adding, so that a huge horizon cannot overflow window + horizon.
  if (options.window > rows || options.horizon > rows - options.window) {
    int64_t needed = 0;
    const bool overflow = __builtin_add_overflow(options.window, options.horizon, &needed);
    return absl::InvalidArgumentError(absl::StrCat(
        "windowing: the series has ", rows, " rows, too short for one example: window ",
        options.window, " + horizon ", options.horizon, " needs at least ",
        overflow ? std::string("more") : absl::StrCat(needed), " rows"));
  }
  const int64_t count = (rows - options.window - options.horizon) / options.stride + 1;
  if (count > limits.max_sequences) {
    return absl::InvalidArgumentError(absl::StrCat("windowing: ", count,
                                                   " examples are more than max_sequences ",
                                                   limits.max_sequences, "; use a larger stride"));
  }
  const int64_t num_features = static_cast<int64_t>(features.size());
  const int64_t num_targets = static_cast<int64_t>(targets.size());
  // Neither product can overflow: horizon and window are at most rows, the selected columns are
  // distinct, so each product is at most rows * columns = values.size().
  const int64_t target_size =
      options.all_horizon_steps ? options.horizon * num_targets : num_targets;
  if (target_size > limits.max_features) {
    return absl::InvalidArgumentError(absl::StrCat("windowing: target size ", target_size,
                                                   " is more than max_features ",
                                                   limits.max_features));
  }
  const int64_t values_per_example =
      options.window * num_features + (options.per_step_targets ? options.window : 1) * target_size;
  if (values_per_example > limits.max_total_values / count) {
    return absl::InvalidArgumentError(
        absl::StrCat("windowing: ", count, " examples of ", values_per_example,
                     " values each are more than max_total_values ", limits.max_total_values,
                     "; use a larger stride or a shorter window"));
  }

  // Only the rows and columns the examples use have to be finite.
  const int64_t width = static_cast<int64_t>(columns.size());
  const int64_t used_rows = (count - 1) * options.stride + options.window + options.horizon;
  for (const std::vector<int64_t>* selected : {&features, &targets}) {
    for (int64_t row = 0; row < used_rows; ++row) {
      for (const int64_t column : *selected) {
        const float value = values[row * width + column];
        if (!std::isfinite(value)) {
          return absl::InvalidArgumentError(absl::StrCat("windowing: row ", row, ", column '",
                                                         columns[column], "' is ", value,
                                                         "; every value must be finite"));
        }
      }
    }
  }

  Dataset dataset;
  dataset.kind =
      options.per_step_targets ? TargetKind::kPerStepValues : TargetKind::kSequenceValues;
  dataset.input_size = num_features;
  dataset.target_size = target_size;
  dataset.input_names = options.feature_columns;
  if (options.all_horizon_steps) {
    for (int64_t h = 1; h <= options.horizon; ++h) {
      for (const std::string& name : options.target_columns) {
        dataset.target_names.push_back(absl::StrCat(name, "[t+", h, "]"));
      }
    }
  } else {
    dataset.target_names = options.target_columns;
  }
  dataset.sequences.resize(static_cast<size_t>(count));
  for (int64_t k = 0; k < count; ++k) {
    Sequence& sequence = dataset.sequences[k];
    const int64_t start = k * options.stride;
    const int64_t last = start + options.window - 1;  // t: the window's last row
    sequence.length = options.window;
    sequence.inputs.reserve(static_cast<size_t>(options.window * num_features));
    for (int64_t row = start; row <= last; ++row) {
      for (const int64_t column : features) sequence.inputs.push_back(values[row * width + column]);
    }
    if (options.per_step_targets) {
      sequence.targets.reserve(static_cast<size_t>(options.window * target_size));
      for (int64_t row = start; row <= last; ++row) {
        for (const int64_t column : targets) {
          sequence.targets.push_back(values[(row + options.horizon) * width + column]);
        }
      }
      continue;
    }
    sequence.targets.reserve(static_cast<size_t>(target_size));
    const int64_t first_target_row = options.all_horizon_steps ? last + 1 : last + options.horizon;
    for (int64_t row = first_target_row; row <= last + options.horizon; ++row) {
      for (const int64_t column : targets) sequence.targets.push_back(values[row * width + column]);
    }
  }
  RETURN_IF_ERROR(ValidateDataset(dataset, limits));
  return dataset;
}

}  // namespace

absl::StatusOr<Dataset> MakeWindowedDataset(const CsvTable& table, const WindowOptions& options,
                                            const DatasetLimits& limits) {
  // Compared by division: `rows` comes from the caller and a product could overflow.
  if (table.columns.empty() || table.values.size() % table.columns.size() != 0 ||
      static_cast<int64_t>(table.values.size() / table.columns.size()) != table.rows) {
    return absl::InvalidArgumentError(
        absl::StrCat("windowing: malformed table: ", table.values.size(), " values for ",
                     table.rows, " rows x ", table.columns.size(), " columns"));
  }
  return Window(table.values, table.rows, table.columns, options, limits);
}

absl::StatusOr<Dataset> MakeWindowedDataset(const std::vector<float>& series,
                                            const std::vector<std::string>& column_names,
                                            const WindowOptions& options,
                                            const DatasetLimits& limits) {
  if (column_names.empty()) return absl::InvalidArgumentError("windowing: no column names");
  std::unordered_set<std::string> seen;
  for (size_t i = 0; i < column_names.size(); ++i) {
    if (column_names[i].empty()) {
      return absl::InvalidArgumentError(absl::StrCat("windowing: column ", i, " has no name"));
    }
    if (!seen.insert(column_names[i]).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("windowing: column name '", column_names[i], "' appears twice"));
    }
  }
  if (series.size() % column_names.size() != 0) {
    return absl::InvalidArgumentError(absl::StrCat("windowing: the series has ", series.size(),
                                                   " values, not a multiple of its ",
                                                   column_names.size(), " columns"));
  }
  const int64_t rows = static_cast<int64_t>(series.size() / column_names.size());
  return Window(series, rows, column_names, options, limits);
}

}  // namespace recurrent::core
