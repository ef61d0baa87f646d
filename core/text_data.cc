#include "core/text_data.h"

#include <array>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "core/status_macros.h"

namespace recurrent::core {
namespace {

constexpr int32_t kNotInVocabulary = -1;

std::string Escaped(unsigned char byte) {
  return absl::CHexEscape(absl::string_view(reinterpret_cast<const char*>(&byte), 1));
}

// Byte value -> class index, or kNotInVocabulary. Fails on a malformed vocabulary.
absl::StatusOr<std::array<int32_t, 256>> IndexTable(const Vocabulary& vocabulary) {
  std::array<int32_t, 256> table;
  table.fill(kNotInVocabulary);
  int previous = -1;
  for (size_t i = 0; i < vocabulary.symbols.size(); ++i) {
    const std::string& symbol = vocabulary.symbols[i];
    if (symbol.size() != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("vocabulary: symbol ", i, " has ", symbol.size(), " bytes, expected 1"));
    }
    const auto byte = static_cast<unsigned char>(symbol[0]);
    // Sorted and distinct, so that equal symbol sets always give equal class numbers.
    if (static_cast<int>(byte) <= previous) {
      return absl::InvalidArgumentError(
          absl::StrCat("vocabulary: symbol ", i, " ('", Escaped(byte),
                       "') is not after the previous one in byte order (repeated or unsorted)"));
    }
    previous = byte;
    table[byte] = static_cast<int32_t>(i);
  }
  return table;
}

// Checked before the vocabulary is built, so that a too-short text is reported as such.
absl::Status CheckTextShape(size_t text_bytes, int64_t sequence_length, int64_t stride,
                            const DatasetLimits& limits) {
  if (sequence_length < 1 || sequence_length > limits.max_sequence_length) {
    return absl::InvalidArgumentError(absl::StrCat("text data: sequence_length must be in [1, ",
                                                   limits.max_sequence_length, "], got ",
                                                   sequence_length));
  }
  if (stride < 1) {
    return absl::InvalidArgumentError(absl::StrCat("text data: stride must be >= 1, got ", stride));
  }
  const int64_t text_size = static_cast<int64_t>(text_bytes);
  // The last example's labels reach one byte past its inputs.
  if (text_size <= sequence_length) {
    return absl::InvalidArgumentError(absl::StrCat(
        "text data: the text has ", text_size, " bytes; sequence_length ", sequence_length,
        " needs at least ", sequence_length + 1, " (inputs plus the next byte)"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Vocabulary> BuildVocabulary(absl::string_view text, int64_t max_symbols) {
  std::array<bool, 256> present{};
  for (const char c : text) present[static_cast<unsigned char>(c)] = true;
  Vocabulary vocabulary;
  for (int byte = 0; byte < 256; ++byte) {
    if (present[byte]) vocabulary.symbols.emplace_back(1, static_cast<char>(byte));
  }
  if (vocabulary.size() < 2) {
    return absl::InvalidArgumentError(absl::StrCat("text has ", vocabulary.size(),
                                                   " distinct bytes; at least 2 are needed for "
                                                   "anything to predict"));
  }
  if (vocabulary.size() > max_symbols) {
    return absl::InvalidArgumentError(absl::StrCat("text has ", vocabulary.size(),
                                                   " distinct bytes, more than the vocabulary "
                                                   "limit of ",
                                                   max_symbols));
  }
  return vocabulary;
}

absl::StatusOr<std::vector<int32_t>> EncodeText(const Vocabulary& vocabulary,
                                                absl::string_view text) {
  ASSIGN_OR_RETURN(const auto table, IndexTable(vocabulary));
  std::vector<int32_t> indices(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const auto byte = static_cast<unsigned char>(text[i]);
    if (table[byte] == kNotInVocabulary) {
      return absl::InvalidArgumentError(
          absl::StrCat("text byte ", i, " ('", Escaped(byte), "') is not in the vocabulary"));
    }
    indices[i] = table[byte];
  }
  return indices;
}

absl::StatusOr<std::string> DecodeText(const Vocabulary& vocabulary,
                                       absl::Span<const int32_t> indices) {
  std::string text;
  text.reserve(indices.size());
  for (size_t i = 0; i < indices.size(); ++i) {
    if (indices[i] < 0 || indices[i] >= vocabulary.size() ||
        vocabulary.symbols[indices[i]].size() != 1) {
      return absl::InvalidArgumentError(absl::StrCat("index ", i, " is ", indices[i],
                                                     ", not a class of the ", vocabulary.size(),
                                                     "-symbol vocabulary"));
    }
    text += vocabulary.symbols[indices[i]];
  }
  return text;
}

absl::StatusOr<Dataset> MakeCharDatasetWithVocabulary(absl::string_view text,
                                                      int64_t sequence_length, int64_t stride,
                                                      const Vocabulary& vocabulary,
                                                      const DatasetLimits& limits) {
  RETURN_IF_ERROR(CheckTextShape(text.size(), sequence_length, stride, limits));
  const int64_t text_size = static_cast<int64_t>(text.size());
  ASSIGN_OR_RETURN(const std::vector<int32_t> encoded, EncodeText(vocabulary, text));
  const int64_t vocabulary_size = vocabulary.size();
  const int64_t count = (text_size - sequence_length - 1) / stride + 1;
  if (count > limits.max_sequences) {
    return absl::InvalidArgumentError(absl::StrCat("text data: ", count,
                                                   " examples are more than max_sequences ",
                                                   limits.max_sequences, "; use a larger stride"));
  }
  // One-hot inputs make the data set V + 1 values per byte per example: bound it before
  // allocating, by division so that nothing overflows.
  const int64_t values_per_step = vocabulary_size + 1;
  if (sequence_length > limits.max_total_values / values_per_step / count) {
    return absl::InvalidArgumentError(absl::StrCat(
        "text data: ", count, " examples of ", sequence_length, " x ", values_per_step,
        " values (one-hot inputs and labels) are more than max_total_values ",
        limits.max_total_values, "; use a larger stride or a shorter sequence_length"));
  }

  Dataset dataset;
  dataset.kind = TargetKind::kPerStepLabels;
  dataset.input_size = vocabulary_size;
  dataset.target_size = vocabulary_size;
  for (const std::string& symbol : vocabulary.symbols) {
    dataset.input_names.push_back(absl::CHexEscape(symbol));
  }
  dataset.target_names = dataset.input_names;
  dataset.sequences.resize(static_cast<size_t>(count));
  for (int64_t k = 0; k < count; ++k) {
    Sequence& sequence = dataset.sequences[k];
    const int64_t start = k * stride;
    sequence.length = sequence_length;
    sequence.inputs.assign(static_cast<size_t>(sequence_length * vocabulary_size), 0.0f);
    sequence.labels.resize(static_cast<size_t>(sequence_length));
    for (int64_t t = 0; t < sequence_length; ++t) {
      sequence.inputs[t * vocabulary_size + encoded[start + t]] = 1.0f;
      sequence.labels[t] = encoded[start + t + 1];
    }
  }
  RETURN_IF_ERROR(ValidateDataset(dataset, limits));
  return dataset;
}

absl::StatusOr<Dataset> MakeCharDataset(absl::string_view text, int64_t sequence_length,
                                        int64_t stride, Vocabulary* vocab_out, int64_t max_symbols,
                                        const DatasetLimits& limits) {
  RETURN_IF_ERROR(CheckTextShape(text.size(), sequence_length, stride, limits));
  ASSIGN_OR_RETURN(Vocabulary vocabulary, BuildVocabulary(text, max_symbols));
  ASSIGN_OR_RETURN(Dataset dataset, MakeCharDatasetWithVocabulary(text, sequence_length, stride,
                                                                  vocabulary, limits));
  if (vocab_out != nullptr) *vocab_out = std::move(vocabulary);
  return dataset;
}

}  // namespace recurrent::core
