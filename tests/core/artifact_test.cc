#include "core/artifact.h"

#include <stdlib.h>
#include <sys/stat.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "core/crc32c.h"
#include "core/spec_proto.h"
#include "google/protobuf/stubs/logging.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"

namespace recurrent::core {
namespace {

// gmock is not linked; a readable substring assertion is all these tests need.
::testing::AssertionResult Contains(absl::string_view haystack, absl::string_view needle) {
  if (absl::StrContains(haystack, needle)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "\"" << haystack << "\" does not contain \"" << needle << "\"";
}

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

// A bidirectional two-layer LSTM with every optional part filled in, and special float values
// (signed zero, a denormal, the extremes) that a lossy encoding would change.
Model FullModel() {
  Model model;
  model.spec.cell = CellType::kLstm;
  model.spec.input_size = 3;
  model.spec.hidden_size = 4;
  model.spec.num_layers = 2;
  model.spec.bidirectional = true;
  model.spec.head = HeadMode::kPerStep;
  model.spec.output_size = 2;
  model.spec.loss = LossType::kMse;
  model.parameters = InitParameters(model.spec, /*seed=*/42);
  std::vector<float>& bias = model.parameters.at("bias_hh_l1_reverse").values;
  bias[0] = -0.0f;
  bias[1] = std::numeric_limits<float>::denorm_min();
  bias[2] = std::numeric_limits<float>::max();
  bias[3] = std::numeric_limits<float>::lowest();
  model.normalization.input_mean = {0.5f, -1.25f, 3.0f};
  model.normalization.input_std = {1.0f, 0.125f, 7.5f};
  model.normalization.target_mean = {10.0f, -0.0f};
  model.normalization.target_std = {2.0f, 1e-3f};
  recurrent::v1::TrainingMetadata& training = model.training;
  (*training.mutable_hyperparameters())["learning_rate"] = "0.001";
  (*training.mutable_hyperparameters())["optimizer"] = "adam";
  recurrent::v1::MetricValue* metric = training.add_final_metrics();
  metric->set_name("rmse");
  metric->set_value(0.25);
  metric = training.add_best_metrics();
  metric->set_name("rmse");
  metric->set_value(0.125);
  recurrent::v1::EpochLoss* epoch = training.add_loss_history();
  epoch->set_epoch(1);
  epoch->set_train_loss(0.5);
  epoch->set_validation_loss(0.75);
  epoch->set_has_validation_loss(true);
  training.set_dataset_fingerprint("sha256:abcdef");
  training.set_training_seconds(12.5);
  training.set_job_id("job-7");
  model.labels = {{"owner", "forecasting"}, {"note", "température ✓ 🙂"}};
  return model;
}

// The smallest model with every section present: its artifact is short enough to mutate
// exhaustively.
Model TinyModel() {
  Model model;
  model.spec.cell = CellType::kRnnTanh;
  model.spec.input_size = 1;
  model.spec.hidden_size = 1;
  model.spec.output_size = 1;
  model.parameters = InitParameters(model.spec, /*seed=*/1);
  model.normalization.input_mean = {0.5f};
  model.normalization.input_std = {2.0f};
  model.training.set_job_id("j");
  model.labels = {{"k", "v"}};
  return model;
}

void ExpectSameModel(const Model& actual, const Model& expected) {
  EXPECT_EQ(actual.spec, expected.spec);
  ASSERT_EQ(actual.parameters.size(), expected.parameters.size());
  for (const auto& [name, tensor] : expected.parameters) {
    const auto it = actual.parameters.find(name);
    ASSERT_NE(it, actual.parameters.end()) << name;
    EXPECT_EQ(it->second.shape, tensor.shape) << name;
    ASSERT_EQ(it->second.values.size(), tensor.values.size()) << name;
    // Bitwise, so that -0.0 vs 0.0 or a flushed denormal would show.
    EXPECT_EQ(std::memcmp(it->second.values.data(), tensor.values.data(),
                          tensor.values.size() * sizeof(float)),
              0)
        << name;
  }
  EXPECT_EQ(actual.normalization, expected.normalization);
  EXPECT_TRUE(
      google::protobuf::util::MessageDifferencer::Equals(actual.training, expected.training))
      << actual.training.DebugString() << "\nvs\n"
      << expected.training.DebugString();
  EXPECT_EQ(actual.labels, expected.labels);
}

std::string Serialize(const Model& model) {
  absl::StatusOr<std::string> bytes = SerializeModel(model);
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  return bytes.ok() ? *bytes : std::string();
}

recurrent::v1::ArtifactEnvelope Envelope(const std::string& bytes) {
  recurrent::v1::ArtifactEnvelope envelope;
  EXPECT_TRUE(envelope.ParseFromString(bytes.substr(kArtifactMagic.size())));
  return envelope;
}

std::string WrapEnvelope(const recurrent::v1::ArtifactEnvelope& envelope) {
  return std::string(kArtifactMagic) + envelope.SerializeAsString();
}

// Artifact bytes with a correct checksum around `artifact`: reaches the content checks that a
// corrupt file never gets past.
std::string Wrap(const std::string& artifact_bytes) {
  recurrent::v1::ArtifactEnvelope envelope;
  envelope.set_format_version(kArtifactFormatVersion);
  envelope.set_crc32c(Crc32c(artifact_bytes));
  envelope.set_artifact(artifact_bytes);
  return WrapEnvelope(envelope);
}
std::string Wrap(const recurrent::v1::ModelArtifact& artifact) {
  return Wrap(artifact.SerializeAsString());
}

recurrent::v1::ModelArtifact ArtifactOf(const Model& model) {
  recurrent::v1::ModelArtifact artifact;
  EXPECT_TRUE(artifact.ParseFromString(Envelope(Serialize(model)).artifact()));
  return artifact;
}

recurrent::v1::NamedTensor* FindTensor(recurrent::v1::ModelArtifact& artifact,
                                       const std::string& name) {
  for (recurrent::v1::NamedTensor& tensor : *artifact.mutable_tensors()) {
    if (tensor.name() == name) return &tensor;
  }
  ADD_FAILURE() << "no tensor " << name;
  return nullptr;
}

// Asserts that `bytes` fail to parse with `code` and a message containing `needle`.
void ExpectRejected(const std::string& bytes, absl::StatusCode code, const std::string& needle,
                    const ArtifactLimits& limits = {}) {
  const absl::StatusOr<Model> model = ParseModel(bytes, limits);
  ASSERT_FALSE(model.ok()) << "accepted an artifact that should fail with: " << needle;
  EXPECT_EQ(model.status().code(), code) << model.status();
  EXPECT_TRUE(Contains(model.status().message(), needle));
}

// --- Round trips -------------------------------------------------------------------------------

TEST(ArtifactTest, RoundTripPreservesEverythingBitwise) {
  const Model model = FullModel();
  const std::string bytes = Serialize(model);
  const absl::StatusOr<Model> parsed = ParseModel(bytes);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ExpectSameModel(*parsed, model);
}

TEST(ArtifactTest, EveryCellHeadLossAndDirectionRoundTrips) {
  for (const CellType cell :
       {CellType::kRnnTanh, CellType::kRnnRelu, CellType::kLstm, CellType::kGru}) {
    for (const HeadMode head : {HeadMode::kPerStep, HeadMode::kLastStep}) {
      for (const LossType loss : {LossType::kMse, LossType::kCrossEntropy}) {
        for (const bool bidirectional : {false, true}) {
          Model model;
          model.spec = {.cell = cell,
                        .input_size = 2,
                        .hidden_size = 3,
                        .num_layers = 2,
                        .bidirectional = bidirectional,
                        .head = head,
                        .output_size = 3,
                        .loss = loss};
          model.parameters = InitParameters(model.spec, /*seed=*/3);
          const absl::StatusOr<Model> parsed = ParseModel(Serialize(model));
          ASSERT_TRUE(parsed.ok()) << DescribeSpec(model.spec) << ": " << parsed.status();
          ExpectSameModel(*parsed, model);
        }
      }
    }
  }
}

TEST(ArtifactTest, LayoutIsMagicThenChecksummedEnvelope) {
  const std::string bytes = Serialize(FullModel());
  ASSERT_GT(bytes.size(), kArtifactMagic.size());
  EXPECT_EQ(bytes.substr(0, 8), "RCNTMDL1");
  const recurrent::v1::ArtifactEnvelope envelope = Envelope(bytes);
  EXPECT_EQ(envelope.format_version(), kArtifactFormatVersion);
  EXPECT_EQ(envelope.crc32c(), Crc32c(envelope.artifact()));
  recurrent::v1::ModelArtifact artifact;
  ASSERT_TRUE(artifact.ParseFromString(envelope.artifact()));
  EXPECT_EQ(artifact.format_version(), kArtifactFormatVersion);
  // Tensors are written in ParameterLayout order, the order PyTorch's state_dict uses.
  const std::vector<ParameterInfo> layout = ParameterLayout(FullModel().spec);
  ASSERT_EQ(artifact.tensors_size(), static_cast<int>(layout.size()));
  for (size_t i = 0; i < layout.size(); ++i) {
    EXPECT_EQ(artifact.tensors(static_cast<int>(i)).name(), layout[i].name);
  }
}

TEST(ArtifactTest, SerializationIsDeterministic) {
  Model first = FullModel();
  Model second = FullModel();
  // Same map content, inserted in the opposite order.
  second.training.mutable_hyperparameters()->clear();
  (*second.training.mutable_hyperparameters())["optimizer"] = "adam";
  (*second.training.mutable_hyperparameters())["learning_rate"] = "0.001";
  EXPECT_EQ(Serialize(first), Serialize(second));
}

TEST(ArtifactTest, ModelWithoutOptionalPartsRoundTrips) {
  Model model;
  model.parameters = InitParameters(model.spec, /*seed=*/5);
  const absl::StatusOr<Model> parsed = ParseModel(Serialize(model));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ExpectSameModel(*parsed, model);
  EXPECT_FALSE(parsed->normalization.has_input());
  EXPECT_FALSE(parsed->normalization.has_target());
}

// --- Rejection of damaged bytes ----------------------------------------------------------------

TEST(ArtifactTest, RejectsEmptyInput) { ExpectRejected("", absl::StatusCode::kDataLoss, "empty"); }

TEST(ArtifactTest, RejectsWrongMagic) {
  ExpectRejected("GIF89a\x01\x02\x03\x04", absl::StatusCode::kDataLoss, "magic");
  std::string bytes = Serialize(TinyModel());
  bytes[7] = '2';  // "RCNTMDL2"
  ExpectRejected(bytes, absl::StatusCode::kDataLoss, "magic");
  ExpectRejected("PK", absl::StatusCode::kDataLoss, "magic");
}

TEST(ArtifactTest, RejectsEveryTruncation) {
  const std::string bytes = Serialize(TinyModel());
  for (size_t length = 0; length < bytes.size(); ++length) {
    const absl::StatusOr<Model> model = ParseModel(absl::string_view(bytes).substr(0, length));
    ASSERT_FALSE(model.ok()) << "accepted a prefix of " << length << " of " << bytes.size();
    EXPECT_EQ(model.status().code(), absl::StatusCode::kDataLoss) << model.status();
    EXPECT_FALSE(model.status().message().empty());
  }
  EXPECT_TRUE(ParseModel(bytes).ok());
}

TEST(ArtifactTest, RejectsEverySingleBitFlip) {
  const std::string bytes = Serialize(TinyModel());
  ASSERT_LT(bytes.size(), 400u) << "keep the exhaustive loop fast";
  for (size_t bit = 0; bit < bytes.size() * 8; ++bit) {
    std::string flipped = bytes;
    flipped[bit / 8] = static_cast<char>(flipped[bit / 8] ^ (1 << (bit % 8)));
    const absl::StatusOr<Model> model = ParseModel(flipped);
    // CRC-32C detects every single-bit error in the artifact; flips in the magic or the envelope
    // header break the magic, the protobuf framing, the version or the checksum itself.
    ASSERT_FALSE(model.ok()) << "accepted a flip of bit " << bit % 8 << " of byte " << bit / 8;
    EXPECT_TRUE(model.status().code() == absl::StatusCode::kDataLoss ||
                model.status().code() == absl::StatusCode::kInvalidArgument)
        << model.status();
  }
}

TEST(ArtifactTest, RejectsChecksumMismatch) {
  recurrent::v1::ArtifactEnvelope envelope = Envelope(Serialize(TinyModel()));
  envelope.set_crc32c(envelope.crc32c() ^ 0x80000000u);
  ExpectRejected(WrapEnvelope(envelope), absl::StatusCode::kDataLoss, "CRC-32C mismatch");
}

TEST(ArtifactTest, RejectsNewerFormatVersionWithAClearMessage) {
  recurrent::v1::ArtifactEnvelope envelope = Envelope(Serialize(TinyModel()));
  envelope.set_format_version(kArtifactFormatVersion + 1);
  ExpectRejected(WrapEnvelope(envelope), absl::StatusCode::kInvalidArgument,
                 "format version 2 is newer than this build reads (1)");
}

TEST(ArtifactTest, RejectsMissingFormatVersion) {
  recurrent::v1::ArtifactEnvelope envelope = Envelope(Serialize(TinyModel()));
  envelope.clear_format_version();
  ExpectRejected(WrapEnvelope(envelope), absl::StatusCode::kDataLoss, "no format version");
}

TEST(ArtifactTest, RejectsArtifactVersionThatDisagreesWithTheEnvelope) {
  recurrent::v1::ModelArtifact artifact = ArtifactOf(TinyModel());
  artifact.set_format_version(0);
  ExpectRejected(Wrap(artifact), absl::StatusCode::kDataLoss, "disagrees");
}

TEST(ArtifactTest, RejectsChecksummedGarbage) {
  ExpectRejected(Wrap(std::string("\xff\xff\xff\xff", 4)), absl::StatusCode::kDataLoss,
                 "not a valid ModelArtifact");
}

TEST(ArtifactTest, RejectsArtifactsOverTheSizeLimit) {
  const std::string bytes = Serialize(FullModel());
  ArtifactLimits limits;
  limits.max_bytes = static_cast<int64_t>(bytes.size()) - 1;
  ExpectRejected(bytes, absl::StatusCode::kInvalidArgument, "over the limit", limits);
  limits.max_bytes = static_cast<int64_t>(bytes.size());
  EXPECT_TRUE(ParseModel(bytes, limits).ok());
}

// Random multi-byte damage behind a valid checksum: reaches the protobuf parser and every content
// check with inputs nobody wrote by hand. Must never crash; whatever parses must be valid.
TEST(ArtifactTest, SurvivesRandomDamageBehindAValidChecksum) {
  google::protobuf::LogSilencer silence_invalid_utf8_warnings;
  const std::string artifact_bytes = Envelope(Serialize(FullModel())).artifact();
  std::mt19937 rng(2024);
  int accepted = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    std::string damaged = artifact_bytes;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      const size_t at = rng() % damaged.size();
      switch (rng() % 3) {
        case 0:
          damaged[at] = static_cast<char>(rng());
          break;
        case 1:
          damaged.erase(at, 1 + rng() % 8);
          break;
        default:
          damaged.insert(at, 1 + rng() % 8, static_cast<char>(rng()));
          break;
      }
    }
    const absl::StatusOr<Model> model = ParseModel(Wrap(damaged));
    if (model.ok()) {
      ++accepted;
      EXPECT_TRUE(ValidateModel(*model).ok());
    } else {
      EXPECT_FALSE(model.status().message().empty());
    }
  }
  // Most damage is caught; some (a changed weight) is legitimately a different valid model.
  EXPECT_LT(accepted, 3000);
}

// --- Rejection of intact artifacts with wrong content -------------------------------------------

TEST(ArtifactTest, RejectsMissingTensor) {
  recurrent::v1::ModelArtifact artifact = ArtifactOf(TinyModel());
  artifact.mutable_tensors()->DeleteSubrange(1, 1);  // weight_hh_l0
  ExpectRejected(Wrap(artifact), absl::StatusCode::kInvalidArgument,
                 "parameter 'weight_hh_l0' is missing");
}

TEST(ArtifactTest, RejectsExtraTensor) {
  recurrent::v1::ModelArtifact artifact = ArtifactOf(TinyModel());
  recurrent::v1::NamedTensor* extra = artifact.add_tensors();
  *extra = artifact.tensors(0);
  extra->set_name("weight_ih_l1");
  ExpectRejected(Wrap(artifact), absl::StatusCode::kInvalidArgument,
                 "unexpected tensor 'weight_ih_l1'");
}

TEST(ArtifactTest, RejectsDuplicateTensor) {
  recurrent::v1::ModelArtifact artifact = ArtifactOf(TinyModel());
  *artifact.add_tensors() = artifact.tensors(0);
  ExpectRejected(Wrap(artifact), absl::StatusCode::kInvalidArgument,
                 "duplicate tensor 'weight_ih_l0'");
}

TEST(ArtifactTest, RejectsWrongShape) {
  recurrent::v1::ModelArtifact artifact = ArtifactOf(FullModel());
  recurrent::v1::NamedTensor* tensor = FindTensor(artifact, "weight_ih_l0");
  tensor->set_shape(0, 3);
  tensor->set_shape(1, 16);  // transposed [16, 3]
  ExpectRejected(Wrap(artifact), absl::StatusCode::kInvalidArgument,
                 "tensor 'weight_ih_l0' has shape [3, 16], expected [16, 3]");
  tensor->add_shape(1);
  ExpectRejected(Wrap(artifact), absl::StatusCode::kInvalidArgument, "has shape [3, 16, 1]");
}

TEST(ArtifactTest, RejectsWrongValueCount) {
  recurrent::v1::ModelArtifact artifact = ArtifactOf(FullModel());
  FindTensor(artifact, "head.bias")->add_values(1.0f);
  ExpectRejected(Wrap(artifact), absl::StatusCode::kInvalidArgument,
                 "tensor 'head.bias' holds 3 values, its shape [2] needs 2");
}

TEST(ArtifactTest, RejectsNonFiniteValues) {
  for (const float bad : {kNaN, kInf, -kInf}) {
    recurrent::v1::ModelArtifact artifact = ArtifactOf(FullModel());
    FindTensor(artifact, "weight_hh_l1")->set_values(5, bad);
    ExpectRejected(Wrap(artifact), absl::StatusCode::kInvalidArgument,
                   "parameter 'weight_hh_l1' has a non-finite value at index 5");
  }
}

TEST(ArtifactTest, RejectsHostileShapesWithoutMultiplyingThem) {
  const int64_t kMax = std::numeric_limits<int64_t>::max();
  const std::vector<std::vector<int64_t>> hostile_shapes = {
      {-1, 1},                               // negative
      {-1, -1},                              // negative, product positive
      {kMax, kMax},                          // product overflows
      {int64_t{1} << 32, int64_t{1} << 32},  // product wraps to 0
      {0, 1},                                // empty
      {},                                    // scalar
  };
  for (const std::vector<int64_t>& shape : hostile_shapes) {
    recurrent::v1::ModelArtifact artifact = ArtifactOf(TinyModel());
    recurrent::v1::NamedTensor* tensor = FindTensor(artifact, "weight_ih_l0");
    tensor->clear_shape();
    for (const int64_t d : shape) tensor->add_shape(d);
    ExpectRejected(Wrap(artifact), absl::StatusCode::kInvalidArgument,
                   "tensor 'weight_ih_l0' has shape " + ShapeToString(shape));
  }
}

TEST(ArtifactTest, KeepsErrorMessagesShortForHugeNamesAndRanks) {
  recurrent::v1::ModelArtifact artifact = ArtifactOf(TinyModel());
  artifact.mutable_tensors(0)->set_name(std::string(1 << 20, 'x'));
  absl::StatusOr<Model> model = ParseModel(Wrap(artifact));
  ASSERT_FALSE(model.ok());
  EXPECT_LT(model.status().message().size(), 300u) << model.status();

  artifact = ArtifactOf(TinyModel());
  recurrent::v1::NamedTensor* tensor = FindTensor(artifact, "weight_ih_l0");
  for (int i = 0; i < 100000; ++i) tensor->add_shape(int64_t{1} << 40);
  model = ParseModel(Wrap(artifact));
  ASSERT_FALSE(model.ok());
  EXPECT_TRUE(Contains(model.status().message(), "rank-100002 shape"));
  EXPECT_LT(model.status().message().size(), 300u);
}

TEST(ArtifactTest, RejectsSpecProblems) {
  const int64_t kMax = std::numeric_limits<int64_t>::max();
  struct Case {
    void (*mutate)(recurrent::v1::ModelSpec*);
    std::string needle;
  };
  const std::vector<Case> cases = {
      {[](recurrent::v1::ModelSpec* s) { s->set_cell(recurrent::v1::CELL_TYPE_UNSPECIFIED); },
       "cell type is unspecified"},
      {[](recurrent::v1::ModelSpec* s) { s->set_cell(static_cast<recurrent::v1::CellType>(42)); },
       "unknown cell type value 42"},
      {[](recurrent::v1::ModelSpec* s) { s->set_head(recurrent::v1::HEAD_MODE_UNSPECIFIED); },
       "head mode is unspecified"},
      {[](recurrent::v1::ModelSpec* s) { s->set_loss(recurrent::v1::LOSS_TYPE_UNSPECIFIED); },
       "loss type is unspecified"},
      {[](recurrent::v1::ModelSpec* s) { s->set_hidden_size(-4); }, "hidden_size"},
      {[](recurrent::v1::ModelSpec* s) { s->set_hidden_size(kMax); }, "hidden_size"},
      {[](recurrent::v1::ModelSpec* s) { s->set_input_size(0); }, "input_size"},
      {[](recurrent::v1::ModelSpec* s) { s->set_num_layers(kMax); }, "num_layers"},
      {[](recurrent::v1::ModelSpec* s) { s->set_output_size(-kMax); }, "output_size"},
  };
  for (const Case& c : cases) {
    recurrent::v1::ModelArtifact artifact = ArtifactOf(TinyModel());
    c.mutate(artifact.mutable_spec());
    ExpectRejected(Wrap(artifact), absl::StatusCode::kInvalidArgument, c.needle);
  }
  recurrent::v1::ModelArtifact artifact = ArtifactOf(TinyModel());
  artifact.clear_spec();
  ExpectRejected(Wrap(artifact), absl::StatusCode::kInvalidArgument, "no spec");
}

TEST(ArtifactTest, AppliesTheCallersSpecLimits) {
  const std::string bytes = Serialize(FullModel());
  ArtifactLimits limits;
  limits.spec_limits.max_hidden_size = 2;
  ExpectRejected(bytes, absl::StatusCode::kInvalidArgument, "hidden_size must be in [1, 2]",
                 limits);
}

TEST(ArtifactTest, RejectsMalformedNormalization) {
  struct Case {
    void (*mutate)(recurrent::v1::Normalization*);
    std::string needle;
  };
  const std::vector<Case> cases = {
      {[](recurrent::v1::Normalization* n) { n->add_input_mean(0.0f); },
       "input_mean and input_std must both be empty or both hold input_size = 3 values, got 4 "
       "and 3"},
      {[](recurrent::v1::Normalization* n) { n->clear_input_std(); }, "got 3 and 0"},
      {[](recurrent::v1::Normalization* n) { n->set_input_std(1, 0.0f); },
       "input_std[1] must be finite and > 0, got 0"},
      {[](recurrent::v1::Normalization* n) { n->set_input_std(2, -1.0f); }, "input_std[2]"},
      {[](recurrent::v1::Normalization* n) { n->set_input_std(0, kNaN); }, "input_std[0]"},
      {[](recurrent::v1::Normalization* n) { n->set_input_std(0, kInf); }, "input_std[0]"},
      {[](recurrent::v1::Normalization* n) { n->set_input_mean(0, kInf); },
       "input_mean[0] is not finite"},
      {[](recurrent::v1::Normalization* n) { n->mutable_target_std()->RemoveLast(); },
       "target_mean and target_std must both be empty or both hold output_size = 2 values"},
      {[](recurrent::v1::Normalization* n) { n->set_target_std(1, 0.0f); }, "target_std[1]"},
  };
  for (const Case& c : cases) {
    recurrent::v1::ModelArtifact artifact = ArtifactOf(FullModel());
    c.mutate(artifact.mutable_normalization());
    ExpectRejected(Wrap(artifact), absl::StatusCode::kInvalidArgument, c.needle);
  }
}

TEST(ArtifactTest, RejectsTargetNormalizationForClassification) {
  Model model = FullModel();
  model.spec.loss = LossType::kCrossEntropy;
  model.normalization.target_mean.clear();
  model.normalization.target_std.clear();
  recurrent::v1::ModelArtifact artifact = ArtifactOf(model);
  artifact.mutable_normalization()->add_target_mean(0.0f);
  artifact.mutable_normalization()->add_target_mean(0.0f);
  artifact.mutable_normalization()->add_target_std(1.0f);
  artifact.mutable_normalization()->add_target_std(1.0f);
  ExpectRejected(Wrap(artifact), absl::StatusCode::kInvalidArgument,
                 "target normalization needs mse loss; this model uses cross_entropy");
}

// --- Serialization refuses what parsing would refuse ---------------------------------------------

TEST(ArtifactTest, SerializeRejectsInvalidModels) {
  Model model = FullModel();
  model.parameters.at("head.weight").values[0] = kNaN;
  absl::StatusOr<std::string> bytes = SerializeModel(model);
  EXPECT_EQ(bytes.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(bytes.status().message(), "head.weight"));

  model = FullModel();
  model.parameters.erase("bias_ih_l0");
  EXPECT_EQ(SerializeModel(model).status().code(), absl::StatusCode::kInvalidArgument);

  model = FullModel();
  model.normalization.input_std[0] = 0.0f;
  EXPECT_EQ(SerializeModel(model).status().code(), absl::StatusCode::kInvalidArgument);

  model = FullModel();
  model.spec.hidden_size = 5;  // parameters no longer match
  EXPECT_EQ(SerializeModel(model).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ArtifactTest, SerializeRejectsInvalidUtf8ThatParsingWouldRefuse) {
  Model model = FullModel();
  model.labels["bad"] = "\xff\xfe";
  absl::StatusOr<std::string> bytes = SerializeModel(model);
  EXPECT_EQ(bytes.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(bytes.status().message(), "label 'bad' is not valid UTF-8"));

  model = FullModel();
  (*model.training.mutable_hyperparameters())["x"] = "\xed\xa0\x80";  // an encoded surrogate
  bytes = SerializeModel(model);
  EXPECT_EQ(bytes.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(bytes.status().message(), "training.hyperparameters"));

  model = FullModel();
  model.training.add_final_metrics()->set_name("\xc0\x80");  // overlong NUL
  EXPECT_EQ(SerializeModel(model).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ArtifactTest, SerializeRejectsModelsOverTheSizeLimit) {
  ArtifactLimits limits;
  limits.max_bytes = 100;
  const absl::StatusOr<std::string> bytes = SerializeModel(FullModel(), limits);
  EXPECT_EQ(bytes.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(bytes.status().message(), "over the limit of 100 bytes"));
}

// --- Files ---------------------------------------------------------------------------------------

class ArtifactFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = ::testing::TempDir() + "artifact_test.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::set<std::string> DirectoryEntries() const {
    std::set<std::string> names;
    for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
      names.insert(entry.path().filename().string());
    }
    return names;
  }

  std::string dir_;
};

TEST_F(ArtifactFileTest, RoundTripsThroughAFile) {
  const std::string path = dir_ + "/model.rcnt";
  const Model model = FullModel();
  ASSERT_TRUE(WriteModelFile(path, model).ok());
  const absl::StatusOr<Model> read = ReadModelFile(path);
  ASSERT_TRUE(read.ok()) << read.status();
  ExpectSameModel(*read, model);
  EXPECT_EQ(std::filesystem::file_size(path), Serialize(model).size());
}

TEST_F(ArtifactFileTest, AtomicWriteReplacesTheFileAndLeavesNoTemporaryFiles) {
  const std::string path = dir_ + "/model.rcnt";
  ASSERT_TRUE(WriteModelFile(path, TinyModel()).ok());
  const Model replacement = FullModel();
  ASSERT_TRUE(WriteModelFile(path, replacement).ok());
  EXPECT_EQ(DirectoryEntries(), std::set<std::string>{"model.rcnt"});
  const absl::StatusOr<Model> read = ReadModelFile(path);
  ASSERT_TRUE(read.ok()) << read.status();
  ExpectSameModel(*read, replacement);
}

TEST_F(ArtifactFileTest, FailedWriteKeepsTheOldFileAndLeavesNoTemporaryFiles) {
  const std::string path = dir_ + "/model.rcnt";
  const Model original = TinyModel();
  ASSERT_TRUE(WriteModelFile(path, original).ok());
  Model invalid = FullModel();
  invalid.parameters.at("head.bias").values[0] = kInf;
  EXPECT_EQ(WriteModelFile(path, invalid).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(DirectoryEntries(), std::set<std::string>{"model.rcnt"});
  const absl::StatusOr<Model> read = ReadModelFile(path);
  ASSERT_TRUE(read.ok()) << read.status();
  ExpectSameModel(*read, original);
}

TEST_F(ArtifactFileTest, WriteIntoAMissingDirectoryFails) {
  const absl::Status status = WriteModelFile(dir_ + "/missing/model.rcnt", TinyModel());
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound) << status;
  EXPECT_TRUE(Contains(status.message(), "missing/model.rcnt"));
}

TEST_F(ArtifactFileTest, WriteToAPathWithoutADirectoryUsesTheWorkingDirectory) {
  const std::filesystem::path previous = std::filesystem::current_path();
  std::filesystem::current_path(dir_);
  const absl::Status status = WriteModelFile("relative.rcnt", TinyModel());
  std::filesystem::current_path(previous);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(DirectoryEntries(), std::set<std::string>{"relative.rcnt"});
}

TEST_F(ArtifactFileTest, ReadReportsAMissingFileWithItsPath) {
  const absl::StatusOr<Model> read = ReadModelFile(dir_ + "/nope.rcnt");
  EXPECT_EQ(read.status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(Contains(read.status().message(), "nope.rcnt"));
}

TEST_F(ArtifactFileTest, ReadChecksTheSizeBeforeReading) {
  const std::string path = dir_ + "/model.rcnt";
  ASSERT_TRUE(WriteModelFile(path, FullModel()).ok());
  ArtifactLimits limits;
  limits.max_bytes = static_cast<int64_t>(std::filesystem::file_size(path)) - 1;
  const absl::StatusOr<Model> read = ReadModelFile(path, limits);
  EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(read.status().message(), "over the limit"));
}

TEST_F(ArtifactFileTest, ReadRejectsDirectoriesAndFifos) {
  EXPECT_EQ(ReadModelFile(dir_).status().code(), absl::StatusCode::kInvalidArgument);
  const std::string fifo = dir_ + "/fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  // Must not block waiting for a writer.
  EXPECT_EQ(ReadModelFile(fifo).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(ArtifactFileTest, ReadNamesTheFileOfACorruptArtifact) {
  const std::string path = dir_ + "/model.rcnt";
  std::string bytes = Serialize(FullModel());
  bytes[bytes.size() - 3] ^= 0x10;
  std::ofstream(path, std::ios::binary) << bytes;
  const absl::StatusOr<Model> read = ReadModelFile(path);
  EXPECT_EQ(read.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(Contains(read.status().message(), path + ": model artifact"));
}

// --- Spec conversions ----------------------------------------------------------------------------

TEST(SpecProtoTest, RoundTripsEveryEnumValue) {
  for (const CellType cell :
       {CellType::kRnnTanh, CellType::kRnnRelu, CellType::kLstm, CellType::kGru}) {
    for (const HeadMode head : {HeadMode::kPerStep, HeadMode::kLastStep}) {
      for (const LossType loss : {LossType::kMse, LossType::kCrossEntropy}) {
        const ModelSpec spec = {.cell = cell,
                                .input_size = 7,
                                .hidden_size = 9,
                                .num_layers = 3,
                                .bidirectional = true,
                                .head = head,
                                .output_size = 4,
                                .loss = loss};
        const absl::StatusOr<ModelSpec> back = ModelSpecFromProto(ModelSpecToProto(spec));
        ASSERT_TRUE(back.ok()) << back.status();
        EXPECT_EQ(*back, spec);
      }
    }
  }
}

TEST(SpecProtoTest, FromProtoValidates) {
  recurrent::v1::ModelSpec proto = ModelSpecToProto(ModelSpec{});
  EXPECT_TRUE(ModelSpecFromProto(proto).ok());
  proto.set_num_layers(0);
  EXPECT_EQ(ModelSpecFromProto(proto).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ModelSpecFromProto(recurrent::v1::ModelSpec()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace recurrent::core
