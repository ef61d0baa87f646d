// Helpers shared by the libFuzzer targets in this folder (header-only; docs/testing.md, "Fuzzing").
#ifndef RECURRENT_TESTS_FUZZ_FUZZ_UTIL_H_
#define RECURRENT_TESTS_FUZZ_FUZZ_UTIL_H_

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "core/artifact.h"
#include "core/crc32c.h"
#include "core/model_spec.h"
#include "core/network.h"
#include "core/parameters.h"
#include "google/protobuf/stubs/logging.h"
#include "recurrent/v1/model.pb.h"

// A property every accepted input must have; a violation is a bug, reported as a crash so that
// libFuzzer keeps the input.
#define FUZZ_CHECK(condition, ...)                                                              \
  do {                                                                                          \
    if (!(condition)) {                                                                         \
      std::fprintf(stderr, "FUZZ_CHECK failed at %s:%d: %s\n", __FILE__, __LINE__, #condition); \
      std::fprintf(stderr, "  " __VA_ARGS__);                                                   \
      std::fprintf(stderr, "\n");                                                               \
      std::abort();                                                                             \
    }                                                                                           \
  } while (false)

namespace recurrent::fuzz {

// Protobuf logs a line for every string with invalid UTF-8 it refuses to parse: at fuzzing speed
// that is most of a run's output and a good share of its time. Call from LLVMFuzzerInitialize.
inline void SilenceProtobufLogs() { google::protobuf::SetLogHandler(nullptr); }

// True iff `status` has one of `codes` (the error codes the reader under test documents).
inline bool IsExpectedError(const absl::Status& status,
                            std::initializer_list<absl::StatusCode> codes) {
  for (const absl::StatusCode code : codes) {
    if (status.code() == code) return true;
  }
  return false;
}

// Artifacts and stream snapshots are `magic` + ArtifactEnvelope{format_version, crc32c,
// artifact}. A mutated payload almost never keeps its checksum, so the targets also feed the same
// bytes with the checksum recomputed: that reaches the content checks. nullopt when `bytes` is
// not magic + a parseable envelope.
inline std::optional<std::string> WithChecksumFixed(absl::string_view bytes,
                                                    absl::string_view magic) {
  if (!absl::StartsWith(bytes, magic)) return std::nullopt;
  const absl::string_view body = bytes.substr(magic.size());
  recurrent::v1::ArtifactEnvelope envelope;
  if (!envelope.ParseFromArray(body.data(), static_cast<int>(body.size()))) return std::nullopt;
  const uint32_t crc = core::Crc32c(envelope.artifact());
  if (crc == envelope.crc32c()) return std::nullopt;  // already intact: nothing new to try
  envelope.set_crc32c(crc);
  return std::string(magic) + envelope.SerializeAsString();
}

// Feeds `bytes` to `parse`, then, when it is a checksummed envelope whose checksum no longer
// matches, the same bytes with the checksum recomputed.
template <typename Parse>
void WithAndWithoutChecksumFix(absl::string_view bytes, absl::string_view magic, Parse parse) {
  parse(bytes);
  if (const std::optional<std::string> fixed = WithChecksumFixed(bytes, magic)) parse(*fixed);
}

// Small fixed models for the request targets: sizes a fuzzer can match, one of each cell, with
// and without normalization. The Step targets need unidirectional ones (`steppable`).
inline std::vector<core::Model> SmallModels(bool steppable) {
  std::vector<core::ModelSpec> specs;
  core::ModelSpec lstm;  // per-step LSTM, 1 input
  lstm.cell = core::CellType::kLstm;
  lstm.input_size = 1;
  lstm.hidden_size = 4;
  lstm.num_layers = 2;
  lstm.head = core::HeadMode::kPerStep;
  lstm.output_size = 1;
  specs.push_back(lstm);
  core::ModelSpec gru;  // last-step GRU classifier, 2 inputs
  gru.cell = core::CellType::kGru;
  gru.input_size = 2;
  gru.hidden_size = 3;
  gru.num_layers = 1;
  gru.bidirectional = !steppable;
  gru.head = core::HeadMode::kLastStep;
  gru.output_size = 3;
  gru.loss = core::LossType::kCrossEntropy;
  specs.push_back(gru);
  core::ModelSpec rnn;  // per-step ReLU RNN, 3 inputs, normalized
  rnn.cell = core::CellType::kRnnRelu;
  rnn.input_size = 3;
  rnn.hidden_size = 5;
  rnn.num_layers = 1;
  rnn.head = core::HeadMode::kPerStep;
  rnn.output_size = 2;
  specs.push_back(rnn);

  std::vector<core::Model> models;
  for (size_t i = 0; i < specs.size(); ++i) {
    core::Model model;
    model.spec = specs[i];
    model.parameters = core::InitParameters(model.spec, /*seed=*/i + 1);
    if (model.spec.cell == core::CellType::kRnnRelu) {
      model.normalization.input_mean = {0.5f, -1.0f, 2.0f};
      model.normalization.input_std = {1.0f, 0.25f, 3.0f};
      model.normalization.target_mean = {10.0f, -10.0f};
      model.normalization.target_std = {2.0f, 0.5f};
    }
    models.push_back(std::move(model));
  }
  return models;
}

// A small model and its single-threaded network, built once per fuzz process.
struct Engine {
  core::Model model;
  std::unique_ptr<core::Network> network;
};

// SmallModels(steppable)'s engines. Built on first use and kept for the process's life (libFuzzer
// ends it with exit(), so nothing here runs a destructor mid-input).
inline std::vector<Engine>& Engines(bool steppable) {
  static std::vector<Engine> engines[2];
  std::vector<Engine>& built = engines[steppable ? 1 : 0];
  if (built.empty()) {
    for (core::Model& model : SmallModels(steppable)) {
      core::NetworkOptions options;
      options.num_threads = 1;
      absl::StatusOr<std::unique_ptr<core::Network>> network =
          core::Network::Create(model.spec, model.parameters, options);
      FUZZ_CHECK(network.ok(), "%s", network.status().ToString().c_str());
      built.push_back(Engine{std::move(model), *std::move(network)});
    }
  }
  return built;
}

}  // namespace recurrent::fuzz

#endif  // RECURRENT_TESTS_FUZZ_FUZZ_UTIL_H_
