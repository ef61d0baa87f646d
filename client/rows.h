// Numeric CSV rows read one at a time (so `stream` can answer each line as it arrives): an
// optional header, detected when the first line holds a field that is not a number, column
// selection by name or position, blank lines reported (they separate sequences in `predict`),
// and errors that name the source and line.
#ifndef RECURRENT_CLIENT_ROWS_H_
#define RECURRENT_CLIENT_ROWS_H_

#include <cstdint>
#include <istream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace recurrent::client {

class RowReader {
 public:
  // `source` names the input in errors ("load.csv", "stdin").
  RowReader(std::istream& in, std::string source, char delimiter);

  enum class Row { kValues, kBlank, kEnd };
  // Reads the next line. kValues fills `values` with every column of the row.
  absl::StatusOr<Row> Next(std::vector<float>* values);

  // The header's names (empty when the input has none); known after the first Next().
  const std::vector<std::string>& header() const { return header_; }
  int64_t line() const { return line_; }
  // The positions of `names` ("x,y" by header name, or "0,2" by position, 0-based).
  absl::StatusOr<std::vector<int64_t>> Columns(const std::string& names) const;

 private:
  std::istream& in_;
  const std::string source_;
  const char delimiter_;
  std::vector<std::string> header_;
  int64_t line_ = 0;
  int64_t width_ = -1;  // columns per row, fixed by the first row
};

}  // namespace recurrent::client

#endif  // RECURRENT_CLIENT_ROWS_H_
