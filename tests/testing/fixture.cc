#include "tests/testing/fixture.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/status_macros.h"

namespace recurrent::testing {
namespace {

constexpr absl::string_view kHeader = "# recurrent fixture v1";
// A fixture is a small test input; this bound only stops a corrupt shape from allocating
// gigabytes before the value count check can fail.
constexpr int64_t kMaxElements = int64_t{1} << 24;

absl::Status LineError(int line_number, absl::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat("fixture line ", line_number, ": ", message));
}

std::vector<absl::string_view> Words(absl::string_view line) {
  return absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
}

absl::StatusOr<int64_t> ParseInt(int line_number, absl::string_view what, absl::string_view word) {
  int64_t value = 0;
  if (!absl::SimpleAtoi(word, &value)) {
    return LineError(line_number, absl::StrCat(what, " '", word, "' is not an integer"));
  }
  return value;
}

absl::Status ParseSpec(int line_number, const std::vector<absl::string_view>& words,
                       core::ModelSpec* spec) {
  std::map<std::string, std::string> fields;
  for (size_t i = 1; i < words.size(); ++i) {
    const std::vector<std::string> key_value = absl::StrSplit(words[i], absl::MaxSplits('=', 1));
    if (key_value.size() != 2 || key_value[0].empty()) {
      return LineError(line_number, absl::StrCat("spec field '", words[i], "' is not key=value"));
    }
    if (!fields.emplace(key_value[0], key_value[1]).second) {
      return LineError(line_number, absl::StrCat("spec field '", key_value[0], "' repeats"));
    }
  }
  const auto take = [&](const std::string& key) -> absl::StatusOr<std::string> {
    const auto it = fields.find(key);
    if (it == fields.end()) {
      return LineError(line_number, absl::StrCat("spec lacks '", key, "'"));
    }
    std::string value = std::move(it->second);
    fields.erase(it);
    return value;
  };
  const auto take_int = [&](const std::string& key) -> absl::StatusOr<int64_t> {
    ASSIGN_OR_RETURN(const std::string value, take(key));
    return ParseInt(line_number, absl::StrCat("spec ", key), value);
  };
  const auto with_line = [&](const absl::Status& status) {
    return LineError(line_number, status.message());
  };

  ASSIGN_OR_RETURN(const std::string cell, take("cell"));
  const absl::StatusOr<core::CellType> cell_type = core::ParseCellType(cell);
  if (!cell_type.ok()) return with_line(cell_type.status());
  spec->cell = *cell_type;
  ASSIGN_OR_RETURN(spec->input_size, take_int("input_size"));
  ASSIGN_OR_RETURN(spec->hidden_size, take_int("hidden_size"));
  ASSIGN_OR_RETURN(spec->num_layers, take_int("num_layers"));
  ASSIGN_OR_RETURN(const int64_t bidirectional, take_int("bidirectional"));
  if (bidirectional != 0 && bidirectional != 1) {
    return LineError(line_number, "spec bidirectional must be 0 or 1");
  }
  spec->bidirectional = bidirectional == 1;
  ASSIGN_OR_RETURN(const std::string head, take("head"));
  const absl::StatusOr<core::HeadMode> head_mode = core::ParseHeadMode(head);
  if (!head_mode.ok()) return with_line(head_mode.status());
  spec->head = *head_mode;
  ASSIGN_OR_RETURN(spec->output_size, take_int("output_size"));
  ASSIGN_OR_RETURN(const std::string loss, take("loss"));
  const absl::StatusOr<core::LossType> loss_type = core::ParseLossType(loss);
  if (!loss_type.ok()) return with_line(loss_type.status());
  spec->loss = *loss_type;
  if (!fields.empty()) {
    return LineError(line_number, absl::StrCat("unknown spec field '", fields.begin()->first, "'"));
  }
  const absl::Status valid = core::ValidateSpec(*spec);
  if (!valid.ok()) return with_line(valid);
  return absl::OkStatus();
}

absl::StatusOr<float> ParseFloat(int line_number, absl::string_view word) {
  float value = 0.0f;
  if (!absl::SimpleAtof(word, &value)) {
    return LineError(line_number, absl::StrCat("'", word, "' is not a number"));
  }
  if (!std::isfinite(value)) {
    return LineError(line_number, absl::StrCat("'", word, "' is not finite"));
  }
  return value;
}

// Parses "<kind> <name> <rank> <dims...>" and the values on `data_line`.
absl::StatusOr<core::Tensor> ParseTensor(int line_number,
                                         const std::vector<absl::string_view>& words,
                                         absl::string_view data_line) {
  if (words.size() < 3) {
    return LineError(line_number, absl::StrCat(words[0], " needs a name and a rank"));
  }
  ASSIGN_OR_RETURN(const int64_t rank, ParseInt(line_number, "rank", words[2]));
  if (rank < 0 || static_cast<size_t>(rank) != words.size() - 3) {
    return LineError(line_number, absl::StrCat("rank ", words[2], " but ", words.size() - 3,
                                               " dimensions follow"));
  }
  std::vector<int64_t> shape;
  int64_t count = 1;
  for (size_t i = 3; i < words.size(); ++i) {
    ASSIGN_OR_RETURN(const int64_t dim, ParseInt(line_number, "dimension", words[i]));
    if (dim < 0 || dim > kMaxElements) {
      return LineError(line_number, absl::StrCat("dimension ", dim, " is out of range"));
    }
    count *= dim;
    if (count > kMaxElements) {
      return LineError(line_number, absl::StrCat("more than ", kMaxElements, " elements"));
    }
    shape.push_back(dim);
  }
  const std::vector<absl::string_view> value_words = Words(data_line);
  if (static_cast<int64_t>(value_words.size()) != count) {
    return LineError(line_number + 1, absl::StrCat(words[0], " '", words[1], "' of shape ",
                                                   core::ShapeToString(shape), " needs ", count,
                                                   " values, found ", value_words.size()));
  }
  std::vector<float> values;
  values.reserve(count);
  for (const absl::string_view word : value_words) {
    ASSIGN_OR_RETURN(const float value, ParseFloat(line_number + 1, word));
    values.push_back(value);
  }
  return core::Tensor(std::move(shape), std::move(values));
}

absl::StatusOr<std::vector<int32_t>> ParseLabels(int line_number,
                                                 const std::vector<absl::string_view>& words,
                                                 absl::string_view data_line) {
  if (words.size() != 2) return LineError(line_number, "labels needs exactly a count");
  ASSIGN_OR_RETURN(const int64_t count, ParseInt(line_number, "labels count", words[1]));
  const std::vector<absl::string_view> value_words = Words(data_line);
  if (count < 0 || static_cast<int64_t>(value_words.size()) != count) {
    return LineError(line_number + 1,
                     absl::StrCat("labels needs ", count, " values, found ", value_words.size()));
  }
  std::vector<int32_t> labels;
  labels.reserve(count);
  for (const absl::string_view word : value_words) {
    int32_t label = 0;
    if (!absl::SimpleAtoi(word, &label)) {
      return LineError(line_number + 1, absl::StrCat("label '", word, "' is not an integer"));
    }
    labels.push_back(label);
  }
  return labels;
}

}  // namespace

absl::StatusOr<const core::Tensor*> Fixture::GetTensor(const std::string& name) const {
  const auto it = tensors.find(name);
  if (it == tensors.end()) {
    return absl::NotFoundError(absl::StrCat("fixture has no tensor '", name, "'"));
  }
  return &it->second;
}

absl::StatusOr<double> Fixture::GetScalar(const std::string& name) const {
  const auto it = scalars.find(name);
  if (it == scalars.end()) {
    return absl::NotFoundError(absl::StrCat("fixture has no scalar '", name, "'"));
  }
  return it->second;
}

absl::StatusOr<Fixture> ParseFixture(absl::string_view text) {
  const std::vector<absl::string_view> lines = absl::StrSplit(text, '\n');
  if (lines.empty() || absl::StripTrailingAsciiWhitespace(lines[0]) != kHeader) {
    return LineError(1, absl::StrCat("expected the header '", kHeader, "'"));
  }
  Fixture fixture;
  bool has_spec = false;
  bool has_labels = false;
  int labels_line = 0;
  for (size_t i = 1; i < lines.size(); ++i) {
    const int line_number = static_cast<int>(i) + 1;
    const absl::string_view line = absl::StripAsciiWhitespace(lines[i]);
    if (line.empty() || line[0] == '#') continue;
    const std::vector<absl::string_view> words = Words(line);
    const absl::string_view kind = words[0];
    // Records with a data line consume the next line, whatever it holds.
    const bool has_data_line =
        kind == "tensor" || kind == "param" || kind == "grad" || kind == "labels";
    if (has_data_line && i + 1 >= lines.size()) {
      return LineError(line_number, absl::StrCat(kind, " record lacks its line of values"));
    }
    if (kind == "spec") {
      if (has_spec) return LineError(line_number, "second spec record");
      RETURN_IF_ERROR(ParseSpec(line_number, words, &fixture.spec));
      has_spec = true;
    } else if (kind == "scalar") {
      if (words.size() != 3) return LineError(line_number, "scalar needs a name and a value");
      ASSIGN_OR_RETURN(const float value, ParseFloat(line_number, words[2]));
      if (!fixture.scalars.emplace(std::string(words[1]), value).second) {
        return LineError(line_number, absl::StrCat("scalar '", words[1], "' repeats"));
      }
    } else if (kind == "tensor" || kind == "param" || kind == "grad") {
      ASSIGN_OR_RETURN(core::Tensor tensor, ParseTensor(line_number, words, lines[i + 1]));
      std::map<std::string, core::Tensor>& destination =
          kind == "tensor" ? fixture.tensors
                           : (kind == "param" ? fixture.parameters : fixture.gradients);
      if (!destination.emplace(std::string(words[1]), std::move(tensor)).second) {
        return LineError(line_number, absl::StrCat(kind, " '", words[1], "' repeats"));
      }
      ++i;
    } else if (kind == "labels") {
      if (has_labels) return LineError(line_number, "second labels record");
      ASSIGN_OR_RETURN(fixture.labels, ParseLabels(line_number, words, lines[i + 1]));
      has_labels = true;
      labels_line = line_number;
      ++i;
    } else {
      return LineError(line_number, absl::StrCat("unknown record '", kind, "'"));
    }
  }
  if (!has_spec) return absl::InvalidArgumentError("fixture has no spec record");
  for (const int32_t label : fixture.labels) {
    if (label < 0 || label >= fixture.spec.output_size) {
      return LineError(labels_line + 1, absl::StrCat("label ", label, " is outside [0, ",
                                                     fixture.spec.output_size, ")"));
    }
  }
  if (const absl::Status status = core::ValidateParameters(fixture.spec, fixture.parameters);
      !status.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("fixture params: ", status.message()));
  }
  if (const absl::Status status = core::ValidateParameters(fixture.spec, fixture.gradients);
      !status.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("fixture grads: ", status.message()));
  }
  return fixture;
}

absl::StatusOr<Fixture> ReadFixture(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return absl::NotFoundError(absl::StrCat("cannot open fixture ", path));
  std::ostringstream contents;
  contents << file.rdbuf();
  if (file.bad()) return absl::DataLossError(absl::StrCat("cannot read fixture ", path));
  absl::StatusOr<Fixture> fixture = ParseFixture(contents.str());
  if (!fixture.ok()) {
    return absl::Status(fixture.status().code(),
                        absl::StrCat(path, ": ", fixture.status().message()));
  }
  return fixture;
}

std::vector<std::string> ListFixtureFiles(const std::string& directory) {
  std::vector<std::string> files;
  std::error_code error;
  for (std::filesystem::directory_iterator it(directory, error), end; !error && it != end;
       it.increment(error)) {
    if (it->is_regular_file() && it->path().extension() == ".txt") {
      files.push_back(it->path().string());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace recurrent::testing
