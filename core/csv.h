// A reader for numeric CSV tables: one header row of column names, then rows of numbers.
//
// Accepted format (a strict subset of RFC 4180, chosen so that every surprise is an error):
//   - Line ends are LF or CRLF; the last line may or may not end with one. A UTF-8 byte order
//     mark at the very start is skipped (spreadsheets write one).
//   - Fields are separated by CsvOptions::delimiter. Spaces and tabs around a field are ignored.
//   - A field may be wrapped in double quotes ("temp (C)", "a,b"); inside, "" stands for one ".
//     A quoted field cannot span lines. Quoting is meant for header names but is accepted in data
//     rows too ("1.5" reads as 1.5).
//   - Header names are trimmed and must be non-empty and distinct. Without a header
//     (has_header = false) the columns are named "c0", "c1", ...
//   - Every data field is a decimal floating-point number in the C locale ("-1.5", "+2", "3e-4",
//     ".5"), finite and within float32 range. nan, inf, hex floats and empty fields are errors:
//     the reader never invents or drops a value. Values smaller than float32's smallest
//     subnormal round to 0.
//   - Blank lines (empty or only spaces/tabs) are allowed only after the last data row. A blank
//     line anywhere else is an error: in a time series it would silently shift every later row
//     by one step, and a skipped row cannot be told from a missing one.
//   - Every row has exactly as many fields as the header (or, without a header, as the first row).
//
// Errors:
//   InvalidArgument  anything malformed, naming the 1-based line (the header is line 1) and, for
//                    a field, the column's name and 1-based index:
//                      line 7, column 'temp' (3): 'abc' is not a number
//                      line 9 has 4 fields, the header has 5
//                    Also for input over CsvOptions' limits (max_bytes, max_rows, max_columns):
//                    like the other readers in core/ (artifact.h, dataset.h), a limit is a
//                    property the input must have, not a temporary shortage.
//   (files only)     NotFound, PermissionDenied, ... from the OS error, with the path;
//                    DataLoss when the file shrinks while it is read.
//
// All functions are thread-safe (no shared state).
#ifndef RECURRENT_CORE_CSV_H_
#define RECURRENT_CORE_CSV_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace recurrent::core {

struct CsvTable {
  std::vector<std::string> columns;  // names, in file order
  int64_t rows = 0;                  // data rows (the header is not counted)
  std::vector<float> values;         // [rows, columns.size()], row-major

  int64_t num_columns() const { return static_cast<int64_t>(columns.size()); }
  float at(int64_t row, int64_t column) const { return values[row * num_columns() + column]; }
};

struct CsvOptions {
  bool has_header = true;
  char delimiter = ',';  // any byte except '"', '\r' and '\n'
  // Bounds that protect memory when the file comes from a client.
  int64_t max_bytes = int64_t{1} << 30;  // the whole text (1 GiB)
  int64_t max_rows = 100'000'000;        // data rows
  int64_t max_columns = 1 << 16;         // same as DatasetLimits::max_features
};

// Parses `text` as described at the top of this file.
absl::StatusOr<CsvTable> ParseCsv(absl::string_view text, const CsvOptions& options = {});

// Reads the file at `path` (its size is checked against options.max_bytes before it is read) and
// parses it; parse errors are prefixed with the path.
absl::StatusOr<CsvTable> ReadCsvFile(const std::string& path, const CsvOptions& options = {});

// The 0-based column indices of `names`, in the order given. NotFound naming the first missing
// column and listing the available ones; InvalidArgument when a name is requested twice.
absl::StatusOr<std::vector<int64_t>> SelectColumns(const CsvTable& table,
                                                   const std::vector<std::string>& names);

}  // namespace recurrent::core

#endif  // RECURRENT_CORE_CSV_H_
