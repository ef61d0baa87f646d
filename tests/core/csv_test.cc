#include "core/csv.h"

#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace recurrent::core {
namespace {

void ExpectError(const absl::StatusOr<CsvTable>& result, absl::StatusCode code,
                 absl::string_view fragment) {
  ASSERT_FALSE(result.ok()) << "parsed, but expected an error containing '" << fragment << "'";
  EXPECT_EQ(result.status().code(), code) << result.status();
  EXPECT_NE(result.status().message().find(fragment), absl::string_view::npos)
      << "'" << result.status().message() << "' lacks '" << fragment << "'";
}

void ExpectInvalid(absl::string_view text, absl::string_view fragment,
                   const CsvOptions& options = {}) {
  SCOPED_TRACE(text);
  ExpectError(ParseCsv(text, options), absl::StatusCode::kInvalidArgument, fragment);
}

TEST(CsvTest, ParsesHeaderAndRowsRowMajor) {
  const absl::StatusOr<CsvTable> table = ParseCsv("time,temp,load\n0,20.5,3\n1,-21,4e2\n");
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ(table->columns, (std::vector<std::string>{"time", "temp", "load"}));
  EXPECT_EQ(table->rows, 2);
  EXPECT_EQ(table->values, (std::vector<float>{0, 20.5f, 3, 1, -21, 400}));
  EXPECT_EQ(table->at(1, 2), 400.0f);
}

TEST(CsvTest, AcceptsCrlfMissingFinalNewlineAndTrailingBlankLines) {
  const std::vector<float> expected = {1, 2, 3, 4};
  for (const absl::string_view text : {"a,b\r\n1,2\r\n3,4\r\n", "a,b\n1,2\n3,4",
                                       "a,b\n1,2\n3,4\n\n  \n\t\r\n", "a,b\r\n1,2\r\n3,4"}) {
    SCOPED_TRACE(text);
    const absl::StatusOr<CsvTable> table = ParseCsv(text);
    ASSERT_TRUE(table.ok()) << table.status();
    EXPECT_EQ(table->columns, (std::vector<std::string>{"a", "b"}));
    EXPECT_EQ(table->values, expected);
  }
}

TEST(CsvTest, TrimsWhitespaceAndUnquotesHeaderNames) {
  const absl::StatusOr<CsvTable> table =
      ParseCsv("\xEF\xBB\xBF  x , \"temp, (C)\" ,\"say \"\"hi\"\"\"\n  1.5 ,\t-2\t, \"3\" \n");
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ(table->columns, (std::vector<std::string>{"x", "temp, (C)", "say \"hi\""}));
  EXPECT_EQ(table->values, (std::vector<float>{1.5f, -2.0f, 3.0f}));
}

TEST(CsvTest, ReadsEveryDecimalSpelling) {
  const absl::StatusOr<CsvTable> table = ParseCsv("v\n+2\n.5\n5.\n-0\n1e-3\n-1.25E+2\n1e-50\n");
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ(table->values, (std::vector<float>{2.0f, 0.5f, 5.0f, -0.0f, 1e-3f, -125.0f, 0.0f}));
}

TEST(CsvTest, WithoutHeaderColumnsAreNumberedFromZero) {
  CsvOptions options;
  options.has_header = false;
  options.delimiter = ';';
  const absl::StatusOr<CsvTable> table = ParseCsv("1;2;3\n4;5;6\n", options);
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ(table->columns, (std::vector<std::string>{"c0", "c1", "c2"}));
  EXPECT_EQ(table->rows, 2);
  EXPECT_EQ(table->values, (std::vector<float>{1, 2, 3, 4, 5, 6}));
}

TEST(CsvTest, TabDelimiter) {
  CsvOptions options;
  options.delimiter = '\t';
  const absl::StatusOr<CsvTable> table = ParseCsv("a\tb\n1\t 2\n", options);
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ(table->values, (std::vector<float>{1, 2}));
}

TEST(CsvTest, NonNumericValueNamesLineAndColumn) {
  ExpectInvalid("time,x,temp\n1,2,3\n1,2,3\n1,2,3\n1,2,3\n1,2,3\n1,2,abc\n",
                "line 7, column 'temp' (3): 'abc' is not a number");
  ExpectInvalid("a,b\n1,0x10\n", "line 2, column 'b' (2): '0x10' is not a number");
  ExpectInvalid("a,b\n+-1,2\n", "line 2, column 'a' (1): '+-1' is not a number");
  ExpectInvalid("a,b\n1,1e\n", "line 2, column 'b' (2): '1e' is not a number");
  ExpectInvalid("a,b\n1,2 3\n", "line 2, column 'b' (2): '2 3' is not a number");
  ExpectInvalid("a,b\n1,1\xff\n", "line 2, column 'b' (2): '1\\xff' is not a number");
}

TEST(CsvTest, RejectsNonFiniteAndOutOfRangeValues) {
  for (const absl::string_view bad : {"nan", "NaN", "inf", "-inf", "Infinity"}) {
    ExpectInvalid(absl::StrCat("a,b\n1,2\n3,", bad, "\n"),
                  absl::StrCat("line 3, column 'b' (2): '", bad, "' is not finite"));
  }
  ExpectInvalid("a\n1e39\n", "line 2, column 'a' (1): '1e39' is outside the float32 range");
  ExpectInvalid("a\n-1e39\n", "'-1e39' is outside the float32 range");
}

TEST(CsvTest, EmptyFieldIsAnErrorNotAZero) {
  ExpectInvalid("a,b,c\n1,,3\n", "line 2, column 'b' (2): empty value");
  ExpectInvalid("a,b\n1,2,\n", "line 2 has 3 fields, the header has 2");
}

TEST(CsvTest, RaggedRowsNameTheLineAndBothCounts) {
  ExpectInvalid(
      "a,b,c,d,e\n1,2,3,4,5\n1,2,3,4,5\n1,2,3,4,5\n1,2,3,4,5\n1,2,3,4,5\n1,2,3,4,5\n"
      "1,2,3,4,5\n1,2,3,4\n",
      "line 9 has 4 fields, the header has 5");
  CsvOptions no_header;
  no_header.has_header = false;
  ExpectInvalid("1,2,3\n4,5,6\n7,8\n", "line 3 has 2 fields, line 1 has 3", no_header);
}

TEST(CsvTest, BlankLineBetweenRowsIsAnError) {
  ExpectInvalid("a\n1\n\n2\n", "line 3 is blank but line 4 has data");
  ExpectInvalid("a\n1\n \r\n2\n", "line 3 is blank but line 4 has data");
  ExpectInvalid("\na\n1\n", "line 1 is blank but line 2 has data");
}

TEST(CsvTest, NoDataRows) {
  ExpectInvalid("", "no data rows (the text is empty)");
  ExpectInvalid("a,b\n", "no data rows (only a header)");
  ExpectInvalid("a,b\r\n\r\n", "no data rows (only a header)");
  ExpectInvalid("\n \n", "no data rows");
  CsvOptions no_header;
  no_header.has_header = false;
  ExpectInvalid("", "no data rows", no_header);
}

TEST(CsvTest, HeaderNamesMustBeNonEmptyAndDistinct) {
  ExpectInvalid("a,b,a\n1,2,3\n", "line 1: column name 'a' appears in columns 1 and 3");
  ExpectInvalid("a, b ,\"b\"\n1,2,3\n", "column name 'b' appears in columns 2 and 3");
  ExpectInvalid("a,,c\n1,2,3\n", "line 1, column 2: empty column name");
  ExpectInvalid("a,\"  \"\n1,2\n", "line 1, column 2: empty column name");
}

TEST(CsvTest, MalformedQuotes) {
  ExpectInvalid("a,\"b\n1,2\n", "line 1, column 2: unterminated quoted field");
  ExpectInvalid("a,\"b\"c\n1,2\n", "line 1, column 2: unexpected text after the closing quote");
  ExpectInvalid("a,b\n1,\"2\n", "line 2, column 2: unterminated quoted field");
}

TEST(CsvTest, EnforcesTheLimits) {
  CsvOptions options;
  options.max_bytes = 8;
  ExpectInvalid("a,b\n1,2\n3,4\n", "CSV text has 12 bytes, more than max_bytes 8", options);
  options = {};
  options.max_rows = 2;
  EXPECT_TRUE(ParseCsv("a\n1\n2\n", options).ok());
  ExpectInvalid("a\n1\n2\n3\n", "line 4: more than max_rows 2 data rows", options);
  options = {};
  options.max_columns = 2;
  EXPECT_TRUE(ParseCsv("a,b\n1,2\n", options).ok());
  ExpectInvalid("a,b,c\n1,2,3\n", "line 1 has more than max_columns 2 fields", options);
  options.has_header = false;
  ExpectInvalid("1,2,3\n", "line 1 has more than max_columns 2 fields", options);
}

TEST(CsvTest, RejectsADelimiterThatCannotWork) {
  CsvOptions options;
  options.delimiter = '"';
  ExpectInvalid("a\n1\n", "delimiter", options);
  options.delimiter = '\n';
  ExpectInvalid("a\n1\n", "delimiter", options);
}

class CsvFileTest : public ::testing::Test {
 protected:
  std::string WriteFile(const std::string& name, const std::string& content) {
    const std::string path =
        ::testing::TempDir() + "/csv_test_" + std::to_string(::getpid()) + "_" + name;
    std::ofstream(path, std::ios::binary) << content;
    paths_.push_back(path);
    return path;
  }
  ~CsvFileTest() override {
    for (const std::string& path : paths_) ::unlink(path.c_str());
  }

 private:
  std::vector<std::string> paths_;
};

TEST_F(CsvFileTest, ReadsAFile) {
  const std::string path = WriteFile("good.csv", "a,b\n1,2\n");
  const absl::StatusOr<CsvTable> table = ReadCsvFile(path);
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ(table->values, (std::vector<float>{1, 2}));
}

TEST_F(CsvFileTest, ErrorsNameThePath) {
  const std::string bad = WriteFile("bad.csv", "a,b\n1,x\n");
  ExpectError(ReadCsvFile(bad), absl::StatusCode::kInvalidArgument,
              bad + ": line 2, column 'b' (2): 'x' is not a number");

  const std::string missing = ::testing::TempDir() + "/csv_test_does_not_exist.csv";
  ExpectError(ReadCsvFile(missing), absl::StatusCode::kNotFound, missing);

  CsvOptions options;
  options.max_bytes = 4;
  ExpectError(ReadCsvFile(bad, options), absl::StatusCode::kInvalidArgument,
              "is 8 bytes, over the limit of 4 bytes");

  ExpectError(ReadCsvFile(::testing::TempDir()), absl::StatusCode::kInvalidArgument,
              "is not a regular file");
}

TEST(SelectColumnsTest, ReturnsIndicesInTheOrderAsked) {
  const absl::StatusOr<CsvTable> table = ParseCsv("a,b,c\n1,2,3\n");
  ASSERT_TRUE(table.ok());
  const absl::StatusOr<std::vector<int64_t>> indices = SelectColumns(*table, {"c", "a"});
  ASSERT_TRUE(indices.ok()) << indices.status();
  EXPECT_EQ(*indices, (std::vector<int64_t>{2, 0}));
}

TEST(SelectColumnsTest, MissingColumnIsNotFoundAndListsTheAvailableOnes) {
  const absl::StatusOr<CsvTable> table = ParseCsv("a,b,c\n1,2,3\n");
  ASSERT_TRUE(table.ok());
  const absl::StatusOr<std::vector<int64_t>> missing = SelectColumns(*table, {"a", "temp"});
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(missing.status().message(),
            "column 'temp' not found; available columns: 'a', 'b', 'c'");

  const absl::StatusOr<std::vector<int64_t>> twice = SelectColumns(*table, {"b", "a", "b"});
  EXPECT_EQ(twice.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(twice.status().message().find("'b' is requested twice (positions 1 and 3)"),
            absl::string_view::npos)
      << twice.status();
}

TEST(SelectColumnsTest, AWideTableListsOnlyTheFirstColumns) {
  CsvTable table;
  for (int i = 0; i < 25; ++i) table.columns.push_back(absl::StrCat("f", i));
  const absl::StatusOr<std::vector<int64_t>> missing = SelectColumns(table, {"g"});
  EXPECT_NE(missing.status().message().find("'f19', ... (5 more)"), absl::string_view::npos)
      << missing.status();
}

}  // namespace
}  // namespace recurrent::core
