#include "client/rows.h"

#include <cmath>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace recurrent::client {

RowReader::RowReader(std::istream& in, std::string source, char delimiter)
    : in_(in), source_(std::move(source)), delimiter_(delimiter) {}

absl::StatusOr<RowReader::Row> RowReader::Next(std::vector<float>* values) {
  std::string text;
  while (std::getline(in_, text)) {
    ++line_;
    if (!text.empty() && text.back() == '\r') text.pop_back();
    if (absl::StripAsciiWhitespace(text).empty()) return Row::kBlank;
    std::vector<std::string> fields;
    for (absl::string_view field : absl::StrSplit(text, delimiter_)) {
      fields.emplace_back(absl::StripAsciiWhitespace(field));
    }
    values->clear();
    bool numeric = true;
    for (const std::string& field : fields) {
      float value = 0;
      if (!absl::SimpleAtof(field, &value)) {
        numeric = false;
        break;
      }
      values->push_back(value);
    }
    if (!numeric && line_ == 1) {  // a header
      header_ = fields;
      width_ = static_cast<int64_t>(fields.size());
      continue;
    }
    if (!numeric) {
      for (const std::string& field : fields) {
        float value = 0;
        if (!absl::SimpleAtof(field, &value)) {
          return absl::InvalidArgumentError(
              absl::StrCat(source_, " line ", line_, ": \"", field, "\" is not a number"));
        }
      }
    }
    for (size_t i = 0; i < values->size(); ++i) {
      if (!std::isfinite((*values)[i])) {
        return absl::InvalidArgumentError(
            absl::StrCat(source_, " line ", line_, ": column ", i, " is not finite"));
      }
    }
    if (width_ < 0) width_ = static_cast<int64_t>(values->size());
    if (static_cast<int64_t>(values->size()) != width_) {
      return absl::InvalidArgumentError(absl::StrCat(source_, " line ", line_, ": ", values->size(),
                                                     " columns; expected ", width_));
    }
    return Row::kValues;
  }
  return Row::kEnd;
}

absl::StatusOr<std::vector<int64_t>> RowReader::Columns(const std::string& names) const {
  std::vector<int64_t> columns;
  for (absl::string_view name : absl::StrSplit(names, ',', absl::SkipEmpty())) {
    int64_t index = -1;
    for (size_t i = 0; i < header_.size(); ++i) {
      if (header_[i] == name) index = static_cast<int64_t>(i);
    }
    if (index < 0 && !absl::SimpleAtoi(name, &index)) {
      return absl::NotFoundError(
          absl::StrCat(source_, " has no column \"", name, "\"",
                       header_.empty() ? " (it has no header; give positions)"
                                       : absl::StrCat("; it has ", absl::StrJoin(header_, ", "))));
    }
    if (index < 0 || (width_ >= 0 && index >= width_)) {
      return absl::InvalidArgumentError(
          absl::StrCat(source_, ": column ", index, " is out of range"));
    }
    columns.push_back(index);
  }
  return columns;
}

}  // namespace recurrent::client
