#include "core/text_data.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace recurrent::core {
namespace {

template <typename T>
void ExpectInvalid(const absl::StatusOr<T>& result, absl::string_view fragment) {
  ASSERT_FALSE(result.ok()) << "expected an error containing '" << fragment << "'";
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument) << result.status();
  EXPECT_NE(result.status().message().find(fragment), absl::string_view::npos)
      << "'" << result.status().message() << "' lacks '" << fragment << "'";
}

TEST(TextDataTest, VocabularyIsTheSortedDistinctBytes) {
  const absl::StatusOr<Vocabulary> vocabulary = BuildVocabulary("hello");
  ASSERT_TRUE(vocabulary.ok()) << vocabulary.status();
  EXPECT_EQ(vocabulary->symbols, (std::vector<std::string>{"e", "h", "l", "o"}));
}

TEST(TextDataTest, NonAsciiTextIsSplitIntoBytesSortedUnsigned) {
  // "é" is the two bytes C3 A9 in UTF-8; unsigned order puts both after 'a'.
  const absl::StatusOr<Vocabulary> vocabulary = BuildVocabulary("a\xC3\xA9");
  ASSERT_TRUE(vocabulary.ok()) << vocabulary.status();
  EXPECT_EQ(vocabulary->symbols, (std::vector<std::string>{"a", "\xA9", "\xC3"}));
}

TEST(TextDataTest, OneHotInputsAndNextByteLabels) {
  Vocabulary vocabulary;
  const absl::StatusOr<Dataset> dataset = MakeCharDataset("hello", 2, 1, &vocabulary);
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  // e = 0, h = 1, l = 2, o = 3.
  EXPECT_EQ(vocabulary.symbols, (std::vector<std::string>{"e", "h", "l", "o"}));
  EXPECT_EQ(dataset->kind, TargetKind::kPerStepLabels);
  EXPECT_EQ(dataset->input_size, 4);
  EXPECT_EQ(dataset->target_size, 4);
  EXPECT_EQ(dataset->input_names, vocabulary.symbols);
  // (5 - 2 - 1) / 1 + 1 = 3 examples: "he" -> "el", "el" -> "ll", "ll" -> "lo".
  ASSERT_EQ(dataset->sequences.size(), 3u);
  EXPECT_EQ(dataset->sequences[0].length, 2);
  EXPECT_EQ(dataset->sequences[0].inputs, (std::vector<float>{0, 1, 0, 0, 1, 0, 0, 0}));
  EXPECT_EQ(dataset->sequences[0].labels, (std::vector<int32_t>{0, 2}));
  EXPECT_EQ(dataset->sequences[1].labels, (std::vector<int32_t>{2, 2}));
  EXPECT_EQ(dataset->sequences[2].inputs, (std::vector<float>{0, 0, 1, 0, 0, 0, 1, 0}));
  EXPECT_EQ(dataset->sequences[2].labels, (std::vector<int32_t>{2, 3}));
  EXPECT_TRUE(dataset->sequences[0].targets.empty());
}

TEST(TextDataTest, StrideSkipsStartsAndTheTailStaysUnused) {
  // 10 bytes, T = 3, stride 3: starts 0, 3 and 6 (6 + 3 + 1 = 10 fits exactly).
  const absl::StatusOr<Dataset> dataset = MakeCharDataset("abcdefghij", 3, 3, nullptr);
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  ASSERT_EQ(dataset->sequences.size(), 3u);
  EXPECT_EQ(dataset->sequences[2].labels, (std::vector<int32_t>{7, 8, 9}));
  // With stride 4 the starts are 0 and 4; 8 would need 12 bytes.
  const absl::StatusOr<Dataset> strided = MakeCharDataset("abcdefghij", 3, 4, nullptr);
  ASSERT_TRUE(strided.ok()) << strided.status();
  EXPECT_EQ(strided->sequences.size(), 2u);
}

TEST(TextDataTest, NamesArePrintable) {
  const absl::StatusOr<Dataset> dataset = MakeCharDataset("a\nb\n", 2, 1, nullptr);
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  EXPECT_EQ(dataset->input_names, (std::vector<std::string>{"\\n", "a", "b"}));
  EXPECT_EQ(dataset->target_names, dataset->input_names);
}

TEST(TextDataTest, RejectsTooShortTextsAndBadSizes) {
  ExpectInvalid(MakeCharDataset("abc", 3, 1, nullptr),
                "the text has 3 bytes; sequence_length 3 needs at least 4");
  EXPECT_TRUE(MakeCharDataset("abcd", 3, 1, nullptr).ok());
  ExpectInvalid(MakeCharDataset("a", 3, 1, nullptr), "the text has 1 bytes");
  ExpectInvalid(MakeCharDataset("abcd", 0, 1, nullptr), "sequence_length must be in [1, ");
  ExpectInvalid(MakeCharDataset("abcd", 2, 0, nullptr), "stride must be >= 1, got 0");
  ExpectInvalid(MakeCharDataset("aaaa", 2, 1, nullptr), "text has 1 distinct bytes");
}

TEST(TextDataTest, EnforcesTheVocabularyAndSizeLimits) {
  ExpectInvalid(MakeCharDataset("abcd", 2, 1, nullptr, /*max_symbols=*/3),
                "text has 4 distinct bytes, more than the vocabulary limit of 3");
  DatasetLimits limits;
  // "abcd", T = 2: 2 examples of 2 x (4 + 1) values = 20.
  limits.max_total_values = 19;
  ExpectInvalid(MakeCharDataset("abcd", 2, 1, nullptr, kMaxByteVocabulary, limits),
                "use a larger stride");
  limits.max_total_values = 20;
  EXPECT_TRUE(MakeCharDataset("abcd", 2, 1, nullptr, kMaxByteVocabulary, limits).ok());
}

TEST(TextDataTest, EncodeAndDecodeRoundTrip) {
  const absl::StatusOr<Vocabulary> vocabulary = BuildVocabulary("the cat");
  ASSERT_TRUE(vocabulary.ok());
  const absl::StatusOr<std::vector<int32_t>> encoded = EncodeText(*vocabulary, "act the");
  ASSERT_TRUE(encoded.ok()) << encoded.status();
  // ' ' = 0, a = 1, c = 2, e = 3, h = 4, t = 5.
  EXPECT_EQ(*encoded, (std::vector<int32_t>{1, 2, 5, 0, 5, 4, 3}));
  const absl::StatusOr<std::string> decoded = DecodeText(*vocabulary, *encoded);
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(*decoded, "act the");

  ExpectInvalid(EncodeText(*vocabulary, "cats"), "text byte 3 ('s') is not in the vocabulary");
  ExpectInvalid(DecodeText(*vocabulary, std::vector<int32_t>{0, 6}),
                "index 1 is 6, not a class of the 6-symbol vocabulary");
}

TEST(TextDataTest, ValidationTextUsesTheTrainingVocabulary) {
  Vocabulary vocabulary;
  ASSERT_TRUE(MakeCharDataset("abcabc", 2, 1, &vocabulary).ok());
  const absl::StatusOr<Dataset> validation = MakeCharDatasetWithVocabulary("cba", 2, 1, vocabulary);
  ASSERT_TRUE(validation.ok()) << validation.status();
  EXPECT_EQ(validation->input_size, 3);
  EXPECT_EQ(validation->sequences[0].labels, (std::vector<int32_t>{1, 0}));
  ExpectInvalid(MakeCharDatasetWithVocabulary("abd", 2, 1, vocabulary),
                "text byte 2 ('d') is not in the vocabulary");
}

TEST(TextDataTest, RejectsMalformedVocabularies) {
  ExpectInvalid(EncodeText(Vocabulary{{"a", "bc"}}, "a"), "symbol 1 has 2 bytes, expected 1");
  ExpectInvalid(EncodeText(Vocabulary{{"b", "a"}}, "a"), "symbol 1 ('a') is not after");
  ExpectInvalid(EncodeText(Vocabulary{{"a", "a"}}, "a"), "repeated or unsorted");
}

}  // namespace
}  // namespace recurrent::core
