#include "core/dataset.h"

#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <limits>
#include <string>

#include "gtest/gtest.h"

namespace recurrent::core {
namespace {

// Two sequences of lengths 2 and 3 with 2 features and, per `kind`, values or labels.
Dataset SmallDataset(TargetKind kind) {
  Dataset dataset;
  dataset.kind = kind;
  dataset.input_size = 2;
  dataset.target_size = 3;
  for (const int64_t length : {2, 3}) {
    Sequence sequence;
    sequence.length = length;
    for (int64_t i = 0; i < length * 2; ++i) sequence.inputs.push_back(0.25f * i);
    const int64_t steps = dataset.per_step() ? length : 1;
    if (dataset.has_labels()) {
      for (int64_t t = 0; t < steps; ++t) sequence.labels.push_back(static_cast<int32_t>(t % 3));
    } else {
      for (int64_t i = 0; i < steps * 3; ++i) sequence.targets.push_back(-0.5f * i);
    }
    dataset.sequences.push_back(sequence);
  }
  return dataset;
}

void ExpectInvalid(const absl::Status& status, absl::string_view fragment) {
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_NE(status.message().find(fragment), absl::string_view::npos)
      << "'" << status.message() << "' lacks '" << fragment << "'";
}

TEST(DatasetTest, EveryKindOfWellFormedDataSetIsValid) {
  for (const TargetKind kind : {TargetKind::kPerStepValues, TargetKind::kSequenceValues,
                                TargetKind::kPerStepLabels, TargetKind::kSequenceLabels}) {
    EXPECT_TRUE(ValidateDataset(SmallDataset(kind)).ok()) << TargetKindName(kind);
  }
}

TEST(DatasetTest, TargetKindNames) {
  EXPECT_EQ(TargetKindName(TargetKind::kPerStepValues), "per_step_values");
  EXPECT_EQ(TargetKindName(TargetKind::kSequenceValues), "sequence_values");
  EXPECT_EQ(TargetKindName(TargetKind::kPerStepLabels), "per_step_labels");
  EXPECT_EQ(TargetKindName(TargetKind::kSequenceLabels), "sequence_labels");
}

TEST(DatasetTest, WrongInputCountNamesTheSequenceAndTheExpectedProduct) {
  Dataset dataset = SmallDataset(TargetKind::kSequenceValues);
  dataset.sequences[1].inputs.pop_back();
  ExpectInvalid(ValidateDataset(dataset),
                "sequence 1: inputs has 5 values, expected length 3 x input_size 2 = 6");
}

TEST(DatasetTest, WrongTargetCountsAreReportedPerKind) {
  Dataset per_step = SmallDataset(TargetKind::kPerStepValues);
  per_step.sequences[0].targets.push_back(1.0f);
  ExpectInvalid(ValidateDataset(per_step),
                "sequence 0: targets has 7 values, expected length 2 x target_size 3 = 6");

  Dataset per_sequence = SmallDataset(TargetKind::kSequenceValues);
  per_sequence.sequences[1].targets.pop_back();
  ExpectInvalid(ValidateDataset(per_sequence),
                "sequence 1: targets has 2 values, expected target_size 3");

  Dataset labels = SmallDataset(TargetKind::kPerStepLabels);
  labels.sequences[1].labels.pop_back();
  ExpectInvalid(ValidateDataset(labels), "sequence 1: labels has 2 values, expected one per step");

  Dataset one_label = SmallDataset(TargetKind::kSequenceLabels);
  one_label.sequences[0].labels.push_back(0);
  ExpectInvalid(ValidateDataset(one_label), "sequence 0: labels has 2 values, expected 1");
}

TEST(DatasetTest, ValuesAndLabelsMustNotBeMixed) {
  Dataset values = SmallDataset(TargetKind::kSequenceValues);
  values.sequences[0].labels = {1};
  ExpectInvalid(ValidateDataset(values), "sequence 0: labels has 1 values but must be empty");

  Dataset labels = SmallDataset(TargetKind::kSequenceLabels);
  labels.sequences[1].targets = {1.0f};
  ExpectInvalid(ValidateDataset(labels), "sequence 1: targets has 1 values but must be empty");
}

TEST(DatasetTest, NonFiniteValuesNameTheirStepAndColumn) {
  Dataset dataset = SmallDataset(TargetKind::kPerStepValues);
  dataset.sequences[1].inputs[5] = std::numeric_limits<float>::quiet_NaN();
  ExpectInvalid(ValidateDataset(dataset), "sequence 1: inputs[5] (step 2, column 1) is nan");

  Dataset targets = SmallDataset(TargetKind::kPerStepValues);
  targets.sequences[0].targets[4] = std::numeric_limits<float>::infinity();
  ExpectInvalid(ValidateDataset(targets), "sequence 0: targets[4] (step 1, column 1) is inf");
}

TEST(DatasetTest, LabelsMustBeClassesOfTheDataSet) {
  Dataset dataset = SmallDataset(TargetKind::kPerStepLabels);
  dataset.sequences[1].labels[2] = 3;
  ExpectInvalid(ValidateDataset(dataset),
                "sequence 1: labels[2] = 3 is outside [0, target_size 3)");
  dataset.sequences[1].labels[2] = -1;
  ExpectInvalid(ValidateDataset(dataset), "labels[2] = -1");
}

TEST(DatasetTest, TheFirstBadSequenceIsTheOneReported) {
  Dataset dataset = SmallDataset(TargetKind::kSequenceValues);
  dataset.sequences.push_back(dataset.sequences[0]);
  dataset.sequences[2].length = 0;
  dataset.sequences[1].length = 4;
  ExpectInvalid(ValidateDataset(dataset), "sequence 1: inputs has 6 values, expected length 4");
}

TEST(DatasetTest, RejectsEmptyAndMalformedHeaders) {
  Dataset empty = SmallDataset(TargetKind::kSequenceValues);
  empty.sequences.clear();
  ExpectInvalid(ValidateDataset(empty), "no sequences");

  Dataset no_inputs = SmallDataset(TargetKind::kSequenceValues);
  no_inputs.input_size = 0;
  ExpectInvalid(ValidateDataset(no_inputs), "input_size must be in [1, ");

  Dataset names = SmallDataset(TargetKind::kSequenceValues);
  names.input_names = {"a"};
  ExpectInvalid(ValidateDataset(names), "input_names has 1 names, input_size is 2");
  names.input_names = {"a", "b"};
  names.target_names = {"y"};
  ExpectInvalid(ValidateDataset(names), "target_names has 1 names, target_size is 3");
  names.target_names = {"x", "y", "z"};
  EXPECT_TRUE(ValidateDataset(names).ok());

  Dataset zero_length = SmallDataset(TargetKind::kSequenceValues);
  zero_length.sequences[0].length = 0;
  ExpectInvalid(ValidateDataset(zero_length), "sequence 0: length must be in [1, ");
}

TEST(DatasetTest, EnforcesTheLimits) {
  const Dataset dataset = SmallDataset(TargetKind::kPerStepValues);
  DatasetLimits limits;
  limits.max_sequences = 1;
  ExpectInvalid(ValidateDataset(dataset, limits), "2 sequences, more than the limit of 1");

  limits = {};
  limits.max_sequence_length = 2;
  ExpectInvalid(ValidateDataset(dataset, limits), "sequence 1: length must be in [1, 2], got 3");

  limits = {};
  limits.max_features = 2;
  ExpectInvalid(ValidateDataset(dataset, limits), "target_size must be in [1, 2], got 3");

  // Sequence 0 holds 4 + 6 values, sequence 1 another 6 + 9: a limit of 20 trips in sequence 1.
  limits = {};
  limits.max_total_values = 20;
  ExpectInvalid(ValidateDataset(dataset, limits), "sequence 1: the data set has more than");
  limits.max_total_values = 25;
  EXPECT_TRUE(ValidateDataset(dataset, limits).ok());
}

TEST(DatasetTest, HugeLengthsWithTinyVectorsFailWithoutOverflow) {
  Dataset dataset = SmallDataset(TargetKind::kSequenceValues);
  dataset.sequences[0].length = std::numeric_limits<int64_t>::max() / 2;
  DatasetLimits limits;
  limits.max_sequence_length = std::numeric_limits<int64_t>::max();
  ExpectInvalid(ValidateDataset(dataset, limits), "sequence 0: length ");
}

TEST(DatasetTest, SpecMustMatchSizesHeadAndLoss) {
  const Dataset dataset = SmallDataset(TargetKind::kPerStepLabels);
  ModelSpec spec;
  spec.input_size = 2;
  spec.output_size = 3;
  spec.head = HeadMode::kPerStep;
  spec.loss = LossType::kCrossEntropy;
  EXPECT_TRUE(CheckDatasetMatchesSpec(dataset, spec).ok());

  ModelSpec wrong = spec;
  wrong.input_size = 5;
  ExpectInvalid(CheckDatasetMatchesSpec(dataset, wrong), "input_size 2, the model spec 5");
  wrong = spec;
  wrong.output_size = 4;
  ExpectInvalid(CheckDatasetMatchesSpec(dataset, wrong), "target_size 3 (classes)");
  wrong = spec;
  wrong.head = HeadMode::kLastStep;
  ExpectInvalid(CheckDatasetMatchesSpec(dataset, wrong),
                "per_step_labels data needs head per_step, the model spec has last_step");
  wrong = spec;
  wrong.loss = LossType::kMse;
  ExpectInvalid(CheckDatasetMatchesSpec(dataset, wrong), "needs loss cross_entropy");

  const Dataset values = SmallDataset(TargetKind::kSequenceValues);
  spec.head = HeadMode::kLastStep;
  spec.loss = LossType::kMse;
  EXPECT_TRUE(CheckDatasetMatchesSpec(values, spec).ok());
}

// An independent FNV-1a 64 over bytes, checked against the published test vectors below.
uint64_t Fnv1a(const std::string& bytes) {
  uint64_t hash = 0xcbf29ce484222325ull;
  for (const char c : bytes) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 0x100000001b3ull;
  }
  return hash;
}

void AppendLittleEndian(std::string& bytes, uint64_t value, int width) {
  for (int i = 0; i < width; ++i) bytes.push_back(static_cast<char>(value >> (8 * i)));
}

TEST(DatasetTest, ReferenceFnvMatchesPublishedVectors) {
  // From the FNV reference (isthe.com/chongo/tech/comp/fnv), 64-bit FNV-1a.
  EXPECT_EQ(Fnv1a(""), 0xcbf29ce484222325ull);
  EXPECT_EQ(Fnv1a("a"), 0xaf63dc4c8601ec8cull);
  EXPECT_EQ(Fnv1a("foobar"), 0x85944171f73967e8ull);
}

TEST(DatasetTest, FingerprintIsFnv1aOverTheDocumentedByteStream) {
  // The stream documented in dataset.cc: int64 sizes and kind, float bits, int32 labels, all
  // little-endian. Pinning it keeps fingerprints recorded in old models meaningful.
  Dataset dataset;
  dataset.kind = TargetKind::kSequenceLabels;
  dataset.input_size = 1;
  dataset.target_size = 2;
  dataset.sequences.push_back({.length = 2, .inputs = {1.0f, -2.5f}, .targets = {}, .labels = {1}});
  std::string bytes;
  for (const uint64_t header : {1, 2, 3, 1}) AppendLittleEndian(bytes, header, 8);
  AppendLittleEndian(bytes, 2, 8);            // length
  AppendLittleEndian(bytes, 2, 8);            // inputs.size()
  AppendLittleEndian(bytes, 0x3F800000u, 4);  // 1.0f
  AppendLittleEndian(bytes, 0xC0200000u, 4);  // -2.5f
  AppendLittleEndian(bytes, 0, 8);            // targets.size()
  AppendLittleEndian(bytes, 1, 8);            // labels.size()
  AppendLittleEndian(bytes, 1, 4);            // the label
  char expected[32];
  std::snprintf(expected, sizeof(expected), "fnv1a64:%016" PRIx64, Fnv1a(bytes));
  EXPECT_EQ(DatasetFingerprint(dataset), expected);
}

TEST(DatasetTest, FingerprintIsStableAndSensitiveToEveryValue) {
  const Dataset dataset = SmallDataset(TargetKind::kPerStepValues);
  const std::string fingerprint = DatasetFingerprint(dataset);
  EXPECT_EQ(fingerprint.size(), std::string("fnv1a64:").size() + 16);
  EXPECT_EQ(fingerprint.rfind("fnv1a64:", 0), 0u);
  EXPECT_EQ(DatasetFingerprint(SmallDataset(TargetKind::kPerStepValues)), fingerprint);

  Dataset changed_input = dataset;
  changed_input.sequences[1].inputs[3] = std::nextafter(changed_input.sequences[1].inputs[3], 9.f);
  EXPECT_NE(DatasetFingerprint(changed_input), fingerprint);

  Dataset changed_target = dataset;
  // -0.5f * 0 is -0.0f: +0.0f compares equal but has other bits, and the bits are hashed.
  ASSERT_TRUE(std::signbit(changed_target.sequences[0].targets[0]));
  changed_target.sequences[0].targets[0] = 0.0f;
  EXPECT_NE(DatasetFingerprint(changed_target), fingerprint);

  Dataset changed_kind = dataset;
  changed_kind.kind = TargetKind::kSequenceValues;
  EXPECT_NE(DatasetFingerprint(changed_kind), fingerprint);

  // Names are lineage, not data.
  Dataset renamed = dataset;
  renamed.input_names = {"a", "b"};
  EXPECT_EQ(DatasetFingerprint(renamed), fingerprint);

  // Moving a value between sequences changes the sizes that are hashed.
  Dataset moved = SmallDataset(TargetKind::kPerStepLabels);
  const std::string labels_fingerprint = DatasetFingerprint(moved);
  moved.sequences[0].labels.push_back(moved.sequences[1].labels.back());
  moved.sequences[1].labels.pop_back();
  EXPECT_NE(DatasetFingerprint(moved), labels_fingerprint);
}

}  // namespace
}  // namespace recurrent::core
