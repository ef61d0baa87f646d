// libFuzzer target: the CSV reader (core/csv.h), SelectColumns, and MakeWindowedDataset
// (core/windowing.h) over what it reads.
//
// Input: 4 option bytes, then the CSV text.
//   byte 0  bit 0: no header; bits 1-3: delimiter (, ; TAB | SPACE byte1 , ,); bit 4:
//           all_horizon_steps; bit 5: per_step_targets; bit 6: tight limits (8 rows, 4 columns)
//   byte 1  the delimiter when bits 1-3 say so (any byte: the invalid ones must be refused)
//   byte 2  window = 1 + low 4 bits; feature columns = the first 1 + (high 4 bits % columns)
//   byte 3  horizon = 1 + low 3 bits; stride = 1 + bits 3-4; target = column (bits 5-7) from
//           the end
// Properties: errors are InvalidArgument (NotFound for a missing column); an accepted table is
// rectangular, finite, with distinct non-empty names, and reads back identically when written out
// again; windowing gives the documented example count and sizes.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "core/csv.h"
#include "core/dataset.h"
#include "core/windowing.h"
#include "tests/fuzz/fuzz_util.h"

namespace recurrent::fuzz {
namespace {

constexpr char kDelimiters[] = {',', ';', '\t', '|', ' ', 0, ',', ','};

// The table as CSV text in the reader's format: every name quoted, values with 9 significant
// digits (enough to give back the same float).
std::string WriteCsv(const core::CsvTable& table, const core::CsvOptions& options) {
  std::string text;
  if (options.has_header) {
    for (int64_t c = 0; c < table.num_columns(); ++c) {
      if (c > 0) text.push_back(options.delimiter);
      absl::StrAppend(&text, "\"", absl::StrReplaceAll(table.columns[c], {{"\"", "\"\""}}), "\"");
    }
    text.push_back('\n');
  }
  for (int64_t r = 0; r < table.rows; ++r) {
    for (int64_t c = 0; c < table.num_columns(); ++c) {
      if (c > 0) text.push_back(options.delimiter);
      absl::StrAppend(&text, absl::StrFormat("%.9g", table.at(r, c)));
    }
    text.push_back('\n');
  }
  return text;
}

void CheckTable(const core::CsvTable& table, const core::CsvOptions& options) {
  FUZZ_CHECK(table.rows >= 1 && table.rows <= options.max_rows, "rows %ld", table.rows);
  FUZZ_CHECK(table.num_columns() >= 1 && table.num_columns() <= options.max_columns, "columns %ld",
             table.num_columns());
  FUZZ_CHECK(static_cast<int64_t>(table.values.size()) == table.rows * table.num_columns(),
             "%zu values for %ld x %ld", table.values.size(), table.rows, table.num_columns());
  for (const float value : table.values) FUZZ_CHECK(std::isfinite(value), "non-finite value");
  for (const std::string& name : table.columns) FUZZ_CHECK(!name.empty(), "empty column name");

  // Every column selects to its own index; a repeated or missing one is refused.
  absl::StatusOr<std::vector<int64_t>> all = core::SelectColumns(table, table.columns);
  FUZZ_CHECK(all.ok(), "distinct names must select: %s", all.status().ToString().c_str());
  for (int64_t c = 0; c < table.num_columns(); ++c) FUZZ_CHECK((*all)[c] == c, "index %ld", c);
  const absl::StatusOr<std::vector<int64_t>> twice =
      core::SelectColumns(table, {table.columns[0], table.columns[0]});
  FUZZ_CHECK(twice.status().code() == absl::StatusCode::kInvalidArgument, "a repeated name");
  std::string missing = table.columns[0];
  while (std::find(table.columns.begin(), table.columns.end(), missing) != table.columns.end()) {
    missing.push_back('?');
  }
  FUZZ_CHECK(core::SelectColumns(table, {missing}).status().code() == absl::StatusCode::kNotFound,
             "a missing name");
}

void CheckRoundTrip(const core::CsvTable& table, const core::CsvOptions& options) {
  core::CsvOptions again_options = options;
  again_options.max_bytes = int64_t{1} << 30;
  const std::string text = WriteCsv(table, options);
  absl::StatusOr<core::CsvTable> again = core::ParseCsv(text, again_options);
  FUZZ_CHECK(again.ok(), "the table written out does not read back: %s",
             again.status().ToString().c_str());
  FUZZ_CHECK(again->columns == table.columns, "names changed in a round trip");
  FUZZ_CHECK(again->rows == table.rows, "rows changed in a round trip");
  FUZZ_CHECK(again->values == table.values, "values changed in a round trip");
}

void CheckWindowing(const core::CsvTable& table, uint8_t flags, uint8_t shape, uint8_t steps) {
  const int64_t columns = table.num_columns();
  core::WindowOptions window;
  const int64_t features = 1 + (shape >> 4) % columns;
  window.feature_columns.assign(table.columns.begin(), table.columns.begin() + features);
  window.target_columns = {table.columns[columns - 1 - (steps >> 5) % columns]};
  window.window = 1 + (shape & 0x0F);
  window.horizon = 1 + (steps & 0x07);
  window.stride = 1 + ((steps >> 3) & 0x03);
  window.all_horizon_steps = (flags & 0x10) != 0;
  window.per_step_targets = (flags & 0x20) != 0;
  core::DatasetLimits limits;
  limits.max_total_values = 1 << 20;
  absl::StatusOr<core::Dataset> data = core::MakeWindowedDataset(table, window, limits);
  if (!data.ok()) {
    FUZZ_CHECK(data.status().code() == absl::StatusCode::kInvalidArgument,
               "unexpected windowing error: %s", data.status().ToString().c_str());
    return;
  }
  const int64_t count = (table.rows - window.window - window.horizon) / window.stride + 1;
  FUZZ_CHECK(static_cast<int64_t>(data->sequences.size()) == count, "%zu examples, expected %ld",
             data->sequences.size(), count);
  FUZZ_CHECK(data->input_size == features, "input_size %ld", data->input_size);
  const int64_t target_size = window.all_horizon_steps ? window.horizon : 1;
  FUZZ_CHECK(data->target_size == target_size, "target_size %ld", data->target_size);
  for (const core::Sequence& sequence : data->sequences) {
    FUZZ_CHECK(sequence.length == window.window, "length %ld", sequence.length);
    FUZZ_CHECK(static_cast<int64_t>(sequence.inputs.size()) == window.window * features,
               "inputs %zu", sequence.inputs.size());
    const int64_t targets = (window.per_step_targets ? window.window : 1) * target_size;
    FUZZ_CHECK(static_cast<int64_t>(sequence.targets.size()) == targets, "targets %zu",
               sequence.targets.size());
  }
  FUZZ_CHECK(core::ValidateDataset(*data, limits).ok(), "windowing made an invalid data set");
}

}  // namespace
}  // namespace recurrent::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace recurrent;  // NOLINT: a fuzzer entry point
  if (size < 4) return 0;
  const uint8_t flags = data[0];
  core::CsvOptions options;
  options.has_header = (flags & 0x01) == 0;
  const char choice = fuzz::kDelimiters[(flags >> 1) & 0x07];
  options.delimiter = choice != 0 ? choice : static_cast<char>(data[1]);
  if ((flags & 0x40) != 0) {
    options.max_rows = 8;
    options.max_columns = 4;
  } else {
    options.max_rows = 4096;
    options.max_columns = 256;
  }
  options.max_bytes = 1 << 20;
  const absl::string_view text(reinterpret_cast<const char*>(data) + 4, size - 4);
  absl::StatusOr<core::CsvTable> table = core::ParseCsv(text, options);
  if (!table.ok()) {
    FUZZ_CHECK(table.status().code() == absl::StatusCode::kInvalidArgument,
               "unexpected error code: %s", table.status().ToString().c_str());
    return 0;
  }
  fuzz::CheckTable(*table, options);
  // The writer needs a delimiter that cannot occur in a number it writes.
  if (absl::string_view("0123456789+-.eEinfaINFA").find(options.delimiter) ==
      absl::string_view::npos) {
    fuzz::CheckRoundTrip(*table, options);
  }
  fuzz::CheckWindowing(*table, flags, data[2], data[3]);
  return 0;
}
