#include "core/csv.h"

#include <cmath>
#include <system_error>
#include <unordered_map>
#include <utility>

#include "absl/strings/charconv.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "core/file_util.h"
#include "core/status_macros.h"

namespace recurrent::core {
namespace {

// Files come from clients: errors show a bounded, escaped prefix of the offending text.
std::string Quote(absl::string_view text) {
  constexpr size_t kMaxShown = 40;
  const bool cut = text.size() > kMaxShown;
  return absl::StrCat("'", absl::CHexEscape(text.substr(0, kMaxShown)), cut ? "...'" : "'");
}

bool IsSpace(char c) { return c == ' ' || c == '\t'; }

bool IsBlank(absl::string_view line) {
  for (const char c : line) {
    if (!IsSpace(c)) return false;
  }
  return true;
}

absl::string_view TrimSpaces(absl::string_view text) {
  while (!text.empty() && IsSpace(text.front())) text.remove_prefix(1);
  while (!text.empty() && IsSpace(text.back())) text.remove_suffix(1);
  return text;
}

// One field of a line, a view into the text. A quoted field's text is what lies between the
// quotes, with any "" escapes still doubled (only header names need them undone).
struct Field {
  absl::string_view text;
  bool quoted = false;
};

// Splits `line` (no line end) at `delimiter`, honouring double quotes. Fails on a field count over
// `max_fields` and on malformed quoting.
absl::Status SplitFields(absl::string_view line, char delimiter, int64_t max_fields,
                         int64_t line_number, std::vector<Field>* fields) {
  fields->clear();
  size_t position = 0;
  while (true) {
    if (static_cast<int64_t>(fields->size()) >= max_fields) {
      return absl::InvalidArgumentError(absl::StrCat("line ", line_number, " has more than ",
                                                     "max_columns ", max_fields, " fields"));
    }
    const int64_t column = static_cast<int64_t>(fields->size()) + 1;
    size_t start = position;
    while (start < line.size() && IsSpace(line[start]) && line[start] != delimiter) ++start;
    Field field;
    size_t end;  // the delimiter after this field, or line.size()
    if (start < line.size() && line[start] == '"') {
      size_t close = start + 1;
      while (true) {
        close = line.find('"', close);
        if (close == absl::string_view::npos) {
          return absl::InvalidArgumentError(
              absl::StrCat("line ", line_number, ", column ", column,
                           ": unterminated quoted field (a quoted field cannot span lines)"));
        }
        if (close + 1 < line.size() && line[close + 1] == '"') {
          close += 2;  // an escaped quote
          continue;
        }
        break;
      }
      field.text = line.substr(start + 1, close - start - 1);
      field.quoted = true;
      end = close + 1;
      while (end < line.size() && IsSpace(line[end]) && line[end] != delimiter) ++end;
      if (end < line.size() && line[end] != delimiter) {
        return absl::InvalidArgumentError(
            absl::StrCat("line ", line_number, ", column ", column,
                         ": unexpected text after the closing quote: ", Quote(line.substr(end))));
      }
    } else {
      end = line.find(delimiter, position);
      if (end == absl::string_view::npos) end = line.size();
      field.text = TrimSpaces(line.substr(position, end - position));
    }
    fields->push_back(field);
    if (end >= line.size()) return absl::OkStatus();
    position = end + 1;
  }
}

// Parses one number: see the rules at the top of csv.h. The error message continues the caller's
// "line L, column 'name' (c): " prefix.
absl::StatusOr<float> ParseNumber(absl::string_view text) {
  if (text.empty()) return absl::InvalidArgumentError("empty value (every field needs a number)");
  const auto not_a_number = [text] {
    return absl::InvalidArgumentError(absl::StrCat(Quote(text), " is not a number"));
  };
  absl::string_view digits = text;
  // absl::from_chars, like std::from_chars, refuses a leading '+', which people do write.
  if (digits.front() == '+') {
    digits.remove_prefix(1);
    if (digits.empty() || digits.front() == '+' || digits.front() == '-') return not_a_number();
  }
  // absl::from_chars reads "0x1A" even in general mode; hexadecimal is not decimal data.
  if (digits.find_first_of("xX") != absl::string_view::npos) return not_a_number();
  float value = 0.0f;
  const absl::from_chars_result result =
      absl::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (result.ec == std::errc::invalid_argument || result.ptr != digits.data() + digits.size()) {
    return not_a_number();
  }
  if (result.ec == std::errc::result_out_of_range) {
    // absl::from_chars gives +-0 on underflow (kept: the nearest float) and +-FLT_MAX on overflow.
    if (value != 0.0f) {
      return absl::InvalidArgumentError(absl::StrCat(Quote(text), " is outside the float32 range"));
    }
  } else if (!std::isfinite(value)) {
    return absl::InvalidArgumentError(
        absl::StrCat(Quote(text), " is not finite (nan and inf are not accepted)"));
  }
  return value;
}

// The column names of a header line: unquoted, trimmed, non-empty and distinct.
absl::StatusOr<std::vector<std::string>> ParseHeader(const std::vector<Field>& fields,
                                                     int64_t line_number) {
  std::vector<std::string> names;
  std::unordered_map<std::string, int64_t> column_of;  // name -> 1-based column
  for (size_t i = 0; i < fields.size(); ++i) {
    const int64_t column = static_cast<int64_t>(i) + 1;
    std::string name =
        fields[i].quoted
            ? std::string(TrimSpaces(absl::StrReplaceAll(fields[i].text, {{"\"\"", "\""}})))
            : std::string(fields[i].text);
    if (name.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("line ", line_number, ", column ", column, ": empty column name"));
    }
    const auto [previous, inserted] = column_of.emplace(name, column);
    if (!inserted) {
      return absl::InvalidArgumentError(absl::StrCat("line ", line_number, ": column name ",
                                                     Quote(name), " appears in columns ",
                                                     previous->second, " and ", column));
    }
    names.push_back(std::move(name));
  }
  return names;
}

}  // namespace

absl::StatusOr<CsvTable> ParseCsv(absl::string_view text, const CsvOptions& options) {
  if (options.delimiter == '"' || options.delimiter == '\r' || options.delimiter == '\n') {
    return absl::InvalidArgumentError(absl::StrCat(
        "CSV delimiter ", Quote(absl::string_view(&options.delimiter, 1)), " is not allowed"));
  }
  if (options.max_columns < 1 || options.max_rows < 1) {
    return absl::InvalidArgumentError("CSV options: max_columns and max_rows must be >= 1");
  }
  if (static_cast<int64_t>(text.size()) > options.max_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "CSV text has ", text.size(), " bytes, more than max_bytes ", options.max_bytes));
  }
  constexpr absl::string_view kUtf8ByteOrderMark = "\xEF\xBB\xBF";
  if (text.substr(0, kUtf8ByteOrderMark.size()) == kUtf8ByteOrderMark) {
    text.remove_prefix(kUtf8ByteOrderMark.size());
  }

  CsvTable table;
  bool have_columns = false;
  int64_t first_data_line = 0;  // names the reference row in ragged-row errors without a header
  int64_t first_blank_line = 0;
  std::vector<Field> fields;
  size_t position = 0;
  int64_t line_number = 0;
  while (position < text.size()) {
    const size_t newline = text.find('\n', position);
    const size_t end = newline == absl::string_view::npos ? text.size() : newline;
    absl::string_view line = text.substr(position, end - position);
    position = newline == absl::string_view::npos ? text.size() : newline + 1;
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);

    if (IsBlank(line)) {
      if (first_blank_line == 0) first_blank_line = line_number;
      continue;
    }
    if (first_blank_line != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("line ", first_blank_line, " is blank but line ", line_number,
                       " has data; blank lines are allowed only at the end of the file"));
    }
    RETURN_IF_ERROR(
        SplitFields(line, options.delimiter, options.max_columns, line_number, &fields));

    if (!have_columns && options.has_header) {
      ASSIGN_OR_RETURN(table.columns, ParseHeader(fields, line_number));
      have_columns = true;
      continue;
    }
    if (!have_columns) {
      for (size_t i = 0; i < fields.size(); ++i) table.columns.push_back(absl::StrCat("c", i));
      have_columns = true;
    }
    if (first_data_line == 0) first_data_line = line_number;

    if (fields.size() != table.columns.size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "line ", line_number, " has ", fields.size(), " fields, ",
          options.has_header ? std::string("the header") : absl::StrCat("line ", first_data_line),
          " has ", table.columns.size()));
    }
    if (table.rows >= options.max_rows) {
      return absl::InvalidArgumentError(absl::StrCat("line ", line_number, ": more than max_rows ",
                                                     options.max_rows, " data rows"));
    }
    for (size_t i = 0; i < fields.size(); ++i) {
      absl::StatusOr<float> value = ParseNumber(fields[i].text);
      if (!value.ok()) {
        return absl::InvalidArgumentError(absl::StrCat("line ", line_number, ", column ",
                                                       Quote(table.columns[i]), " (", i + 1,
                                                       "): ", value.status().message()));
      }
      table.values.push_back(*value);
    }
    ++table.rows;
  }
  if (table.rows == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("CSV has no data rows", line_number == 0 ? " (the text is empty)"
                                             : have_columns   ? " (only a header)"
                                                              : ""));
  }
  return table;
}

absl::StatusOr<CsvTable> ReadCsvFile(const std::string& path, const CsvOptions& options) {
  ASSIGN_OR_RETURN(const std::string bytes, ReadFileBounded(path, options.max_bytes, "CSV file"));
  absl::StatusOr<CsvTable> table = ParseCsv(bytes, options);
  if (!table.ok()) {
    return absl::Status(table.status().code(), absl::StrCat(path, ": ", table.status().message()));
  }
  return table;
}

absl::StatusOr<std::vector<int64_t>> SelectColumns(const CsvTable& table,
                                                   const std::vector<std::string>& names) {
  std::unordered_map<std::string, int64_t> index_of;
  for (size_t i = 0; i < table.columns.size(); ++i) {
    index_of.emplace(table.columns[i], static_cast<int64_t>(i));
  }
  std::vector<int64_t> indices;
  indices.reserve(names.size());
  std::unordered_map<std::string, size_t> requested;
  for (size_t i = 0; i < names.size(); ++i) {
    const auto [previous, inserted] = requested.emplace(names[i], i);
    if (!inserted) {
      return absl::InvalidArgumentError(absl::StrCat("column ", Quote(names[i]),
                                                     " is requested twice (positions ",
                                                     previous->second + 1, " and ", i + 1, ")"));
    }
    const auto found = index_of.find(names[i]);
    if (found == index_of.end()) {
      // A wide table would make the message unreadable: list the first few columns.
      constexpr size_t kMaxListed = 20;
      std::string available;
      for (size_t c = 0; c < table.columns.size() && c < kMaxListed; ++c) {
        absl::StrAppend(&available, c == 0 ? "" : ", ", Quote(table.columns[c]));
      }
      if (table.columns.size() > kMaxListed) {
        absl::StrAppend(&available, ", ... (", table.columns.size() - kMaxListed, " more)");
      }
      return absl::NotFoundError(
          absl::StrCat("column ", Quote(names[i]), " not found; available columns: ", available));
    }
    indices.push_back(found->second);
  }
  return indices;
}

}  // namespace recurrent::core
