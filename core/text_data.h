// Character-level text for next-character models (Karpathy's char-rnn task).
//
// Symbols are bytes, not Unicode code points: a UTF-8 character outside ASCII becomes two to four
// symbols, which the model learns to emit in order. Bytes keep the vocabulary within 256, accept
// any input (no decoding errors), and make encoding a table lookup.
//
// The data set: example k covers the text's bytes [s, s + T] with s = k * stride and
// T = sequence_length; N = (text.size() - T - 1) / stride + 1 examples.
//   inputs   one-hot of bytes s .. s+T-1            [T, V] row-major (V = vocabulary size)
//   labels   index of the next byte: s+1 .. s+T     [T]
// TargetKind::kPerStepLabels, target_size = V: train with head kPerStep, cross-entropy,
// input_size = output_size = V. input_names and target_names are the symbols, C-escaped
// ("\n" for a newline) so that they print.
//
// All functions are thread-safe (no shared state).
#ifndef RECURRENT_CORE_TEXT_DATA_H_
#define RECURRENT_CORE_TEXT_DATA_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "core/dataset.h"

namespace recurrent::core {

// Every byte value fits: the default vocabulary limit never rejects a text.
inline constexpr int64_t kMaxByteVocabulary = 256;

struct Vocabulary {
  // symbols[i] is the one-byte string of class i, in increasing unsigned byte order.
  std::vector<std::string> symbols;

  int64_t size() const { return static_cast<int64_t>(symbols.size()); }
};

// The distinct bytes of `text`, sorted. InvalidArgument when there are fewer than 2 (nothing to
// predict) or more than `max_symbols`.
absl::StatusOr<Vocabulary> BuildVocabulary(absl::string_view text,
                                           int64_t max_symbols = kMaxByteVocabulary);

// Class indices of `text`'s bytes. InvalidArgument when `vocabulary` is malformed (a symbol that
// is not exactly one byte, a repeated or unsorted symbol) or a byte of `text` is not in it (naming
// the byte and its offset).
absl::StatusOr<std::vector<int32_t>> EncodeText(const Vocabulary& vocabulary,
                                                absl::string_view text);

// The bytes of `indices`. InvalidArgument naming the first index outside [0, V).
absl::StatusOr<std::string> DecodeText(const Vocabulary& vocabulary,
                                       absl::Span<const int32_t> indices);

// The data set described at the top of this file, with the vocabulary BuildVocabulary(text,
// max_symbols); it is stored in *vocab_out unless vocab_out is null. InvalidArgument when
// sequence_length or stride < 1, the text is shorter than sequence_length + 1 bytes, the
// vocabulary fails, or the result is over `limits` (the message suggests a larger stride).
absl::StatusOr<Dataset> MakeCharDataset(absl::string_view text, int64_t sequence_length,
                                        int64_t stride, Vocabulary* vocab_out,
                                        int64_t max_symbols = kMaxByteVocabulary,
                                        const DatasetLimits& limits = {});

// The same with a given vocabulary, e.g. the training text's for a validation text, so that class
// indices agree between the two. Fails like EncodeText when a byte is not in `vocabulary`.
absl::StatusOr<Dataset> MakeCharDatasetWithVocabulary(absl::string_view text,
                                                      int64_t sequence_length, int64_t stride,
                                                      const Vocabulary& vocabulary,
                                                      const DatasetLimits& limits = {});

}  // namespace recurrent::core

#endif  // RECURRENT_CORE_TEXT_DATA_H_
