// Sliding windows over one long multivariate series: the forecasting data set.
//
// The series is a table of R rows (time steps, oldest first) and named columns. Example k uses the
// window of rows starting at s = k * stride:
//
//   inputs   rows [s, s + window), the feature columns          [window, F], row-major
//   target   the target columns H = horizon rows after the window's last row t = s + window - 1:
//              all_horizon_steps = false: row t + H                 [G]      (target_size G)
//              all_horizon_steps = true:  rows t + 1 ... t + H,     [H, G]   (target_size H * G)
//                                         step-major: all G targets of t + 1, then of t + 2, ...
//
// or, with per_step_targets, a target on every input row r of the window: row r + H   [window, G]
//
// where F = feature_columns.size() and G = target_columns.size(). The result is a
// TargetKind::kSequenceValues data set (head kLastStep, MSE; kPerStepValues and a per-step head
// with per_step_targets, which suits models that then run over a continuous stream) of
//   N = (R - window - horizon) / stride + 1   examples (integer division; the tail rows that do
//                                             not fill one more stride are unused).
// A column may be both a feature and a target (autoregressive forecasting).
//
// Names: input_names = feature_columns; target_names = target_columns, or with all_horizon_steps
// "<column>[t+h]" for h = 1..H in the step-major order above.
//
// Errors (InvalidArgument unless stated): window, horizon or stride < 1; no feature or no target
// column; a column listed twice in one list; a column not in the table (NotFound, listing the
// available ones); a series too short for one example (the message says how many rows are
// needed); a non-finite value in a used column (raw-series overload; CSV tables are finite by
// construction); a result over `limits`.
//
// Thread-safe (no shared state).
#ifndef RECURRENT_CORE_WINDOWING_H_
#define RECURRENT_CORE_WINDOWING_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/csv.h"
#include "core/dataset.h"

namespace recurrent::core {

struct WindowOptions {
  std::vector<std::string> feature_columns;
  std::vector<std::string> target_columns;
  int64_t window = 0;              // input steps per example
  int64_t horizon = 1;             // how many steps after the window's last row the target lies
  int64_t stride = 1;              // rows between the starts of consecutive examples
  bool all_horizon_steps = false;  // target every step 1..horizon, not only the last
  bool per_step_targets = false;   // a target for every input row (not with all_horizon_steps)
};

absl::StatusOr<Dataset> MakeWindowedDataset(const CsvTable& table, const WindowOptions& options,
                                            const DatasetLimits& limits = {});

// The same from a raw series: `series` is [rows, column_names.size()], row-major.
// InvalidArgument when its size is not a multiple of the column count, or when a name is empty
// or repeated.
absl::StatusOr<Dataset> MakeWindowedDataset(const std::vector<float>& series,
                                            const std::vector<std::string>& column_names,
                                            const WindowOptions& options,
                                            const DatasetLimits& limits = {});

}  // namespace recurrent::core

#endif  // RECURRENT_CORE_WINDOWING_H_
