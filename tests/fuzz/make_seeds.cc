// Writes the fuzz targets' seed corpora: `fuzz_make_seeds <dir>` fills <dir>/<target>/ with small
// valid (and a few invalid) inputs made by the code itself, so they follow the formats exactly.
// The committed tests/fuzz/corpus/ came from this program; rerun it after a format change:
//   build-fuzz/bin/fuzz_make_seeds tests/fuzz/corpus
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/artifact.h"
#include "core/spec_proto.h"
#include "recurrent/v1/service.pb.h"
#include "server/stream_snapshot.h"
#include "tests/fuzz/fuzz_util.h"

namespace recurrent::fuzz {
namespace {

void Write(const std::filesystem::path& dir, const std::string& name, const std::string& bytes) {
  std::filesystem::create_directories(dir);
  std::ofstream out(dir / name, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  FUZZ_CHECK(out.good(), "cannot write %s", (dir / name).c_str());
}

void Artifacts(const std::filesystem::path& dir) {
  int index = 0;
  for (const bool steppable : {true, false}) {
    for (core::Model& model : SmallModels(steppable)) {
      if (!steppable && model.spec.cell != core::CellType::kGru) continue;  // only one differs
      if (index == 0) {
        model.labels = {{"owner", "fuzz"}, {"stage", "seed"}};
        model.training.set_job_id("job-1");
        model.training.set_dataset_fingerprint("fnv1a64:0123456789abcdef");
        (*model.training.mutable_hyperparameters())["batch_size"] = "32";
        recurrent::v1::EpochLoss* epoch = model.training.add_loss_history();
        epoch->set_epoch(0);
        epoch->set_train_loss(0.5);
      }
      absl::StatusOr<std::string> bytes = core::SerializeModel(model);
      FUZZ_CHECK(bytes.ok(), "%s", bytes.status().ToString().c_str());
      Write(dir, absl::StrCat("model_", index++, "_", core::CellTypeName(model.spec.cell)), *bytes);
    }
  }
  core::Model tanh;  // a 1-layer tanh RNN with target normalization
  tanh.spec.cell = core::CellType::kRnnTanh;
  tanh.spec.input_size = 2;
  tanh.spec.hidden_size = 2;
  tanh.spec.head = core::HeadMode::kLastStep;
  tanh.parameters = core::InitParameters(tanh.spec, 9);
  tanh.normalization.target_mean = {1.0f};
  tanh.normalization.target_std = {2.0f};
  absl::StatusOr<std::string> bytes = core::SerializeModel(tanh);
  FUZZ_CHECK(bytes.ok(), "%s", bytes.status().ToString().c_str());
  Write(dir, "model_rnn_tanh", *bytes);
  Write(dir, "truncated", bytes->substr(0, bytes->size() / 2));
  Write(dir, "magic_only", std::string(core::kArtifactMagic));
}

// The 4 option bytes (see fuzz_csv.cc) and the text.
std::string Csv(uint8_t flags, char raw_delimiter, uint8_t shape, uint8_t steps,
                const std::string& text) {
  return std::string{static_cast<char>(flags), raw_delimiter, static_cast<char>(shape),
                     static_cast<char>(steps)} +
         text;
}

void Csvs(const std::filesystem::path& dir) {
  Write(dir, "header",
        Csv(0x00, ',', 0x12, 0x01,
            "t,temp,load\n0,1.5,2\n1,-2.25,3e-2\n2,.5,+4\n"
            "3,4,5\n4,5,6\n5,6,7\n"));
  Write(dir, "quoted_crlf",
        Csv(0x10, ',', 0x21, 0x02,
            "\"temp (C)\",\"a,b\",\"say \"\"hi\"\"\"\r\n"
            "1,2,3\r\n4,5,6\r\n7,8,9\r\n10,11,12\r\n"));
  Write(dir, "no_header_tab", Csv(0x05, ',', 0x01, 0x08, "1\t2\n3\t4\n5\t6\n7\t8\n"));
  Write(dir, "bom_semicolon",
        Csv(0x22, ',', 0x02, 0x00,
            "\xEF\xBB\xBF"
            "a;b\n1;2\n3;4\n5;6\n\n \n"));
  Write(dir, "raw_delimiter", Csv(0x0A, ':', 0x00, 0x00, "x:y\n1e-40:3.4e38\n-0:1e-50\n"));
  Write(dir, "pipe_tight", Csv(0x46, ',', 0x00, 0x00, "a|b|c|d\n1|2|3|4\n5|6|7|8\n"));
  Write(dir, "bad_number", Csv(0x00, ',', 0x00, 0x00, "a,b\n1,nan\n2,0x1A\n"));
  Write(dir, "ragged", Csv(0x00, ',', 0x00, 0x00, "a,b\n1,2\n3\n\n4,5\n"));
}

void Snapshots(const std::filesystem::path& dir) {
  Write(dir, "lstm_state",
        server::EncodeSnapshot({"sensor-model", 3, 42, std::vector<float>(16, 0.5f)}));
  Write(dir, "empty_state", server::EncodeSnapshot({"m", 1, 0, {}}));
  std::string corrupt = server::EncodeSnapshot({"m", 2, 5, {1.0f, -1.0f}});
  corrupt.back() ^= 0x01;
  Write(dir, "checksum_mismatch", corrupt);
}

v1::InputSequence Sequence(int64_t steps, std::vector<float> values) {
  v1::InputSequence sequence;
  sequence.set_steps(steps);
  sequence.mutable_values()->Add(values.begin(), values.end());
  return sequence;
}

void PredictRequests(const std::filesystem::path& dir) {
  v1::PredictRequest request;
  request.mutable_model()->set_name("model");
  *request.add_sequences() = Sequence(3, {1, 2, 3});  // input_size 1
  *request.add_sequences() = Sequence(2, {-1, 0.5});
  *request.add_sequences() = Sequence(3, {0, 0, 0});
  request.set_return_final_states(true);
  Write(dir, "input1", request.SerializeAsString());
  request.Clear();
  request.mutable_model()->set_version(2);
  *request.add_sequences() = Sequence(2, {1, 2, 3, 4});  // input_size 2
  Write(dir, "input2", request.SerializeAsString());
  request.Clear();
  request.mutable_model()->set_alias("production");
  *request.add_sequences() = Sequence(1, {1, 2, 3});  // input_size 3
  *request.add_sequences() = Sequence(2, {1, 2, 3, 4, 5, 6});
  Write(dir, "input3", request.SerializeAsString());
  request.Clear();
  *request.add_sequences() = Sequence(0, {});
  Write(dir, "zero_steps", request.SerializeAsString());
  request.Clear();
  *request.add_sequences() = Sequence(2, {1, std::numeric_limits<float>::quiet_NaN()});
  Write(dir, "nan", request.SerializeAsString());
  request.Clear();
  *request.add_sequences() = Sequence(int64_t{1} << 62, {1});
  Write(dir, "huge_steps", request.SerializeAsString());
  Write(dir, "empty", "");
}

void StepRequests(const std::filesystem::path& dir) {
  v1::StepRequest request;
  request.mutable_open()->mutable_model()->set_name("model");
  Write(dir, "open", request.SerializeAsString());
  request.Clear();
  // The LSTM model (2 layers of 4): h and c of each layer.
  request.mutable_open()->set_resume_from(
      server::EncodeSnapshot({"model", 1, 10, std::vector<float>(16, 0.25f)}));
  Write(dir, "open_resume_lstm", request.SerializeAsString());
  request.Clear();
  request.mutable_open()->set_resume_from(
      server::EncodeSnapshot({"model", 1, 10, std::vector<float>(3, -0.5f)}));  // the GRU
  Write(dir, "open_resume_gru", request.SerializeAsString());
  request.Clear();
  request.mutable_step()->set_steps(2);
  request.mutable_step()->mutable_values()->Add(1.0f);
  request.mutable_step()->mutable_values()->Add(-1.0f);
  Write(dir, "step1", request.SerializeAsString());
  request.Clear();
  request.mutable_step()->set_steps(1);
  for (const float value : {0.5f, 1.5f, -2.5f})
    request.mutable_step()->mutable_values()->Add(value);
  Write(dir, "step3", request.SerializeAsString());
  request.Clear();
  request.set_reset(true);
  Write(dir, "reset", request.SerializeAsString());
  request.Clear();
  request.set_snapshot(true);
  Write(dir, "snapshot", request.SerializeAsString());
  request.Clear();
  request.mutable_step()->set_steps(2000);
  Write(dir, "too_many_steps", request.SerializeAsString());
}

v1::TrainRequest BaseTrain() {
  v1::TrainRequest request;
  request.set_model_name("fuzz-model");
  request.mutable_spec()->set_cell(v1::CELL_TYPE_LSTM);
  request.mutable_spec()->set_hidden_size(4);
  request.mutable_options()->set_batch_size(4);
  request.mutable_options()->set_max_epochs(1);
  return request;
}

void TrainRequests(const std::filesystem::path& dir) {
  v1::TrainRequest request = BaseTrain();
  v1::InlineDataset* data = request.mutable_data()->mutable_inline_();
  data->set_input_size(2);
  data->set_target_size(1);
  data->set_kind(v1::TARGET_KIND_PER_STEP_VALUES);
  for (int s = 0; s < 3; ++s) {
    v1::LabeledSequence* sequence = data->add_sequences();
    sequence->set_steps(s + 1);
    for (int t = 0; t <= s; ++t) {
      sequence->add_inputs(0.1f * t);
      sequence->add_inputs(-0.2f * s);
      sequence->add_targets(0.5f * t);
    }
  }
  request.mutable_options()->set_normalize_inputs(true);
  request.mutable_options()->set_optimizer(v1::OPTIMIZER_KIND_SGD);
  request.mutable_options()->set_schedule(v1::SCHEDULE_KIND_COSINE);
  (*request.mutable_labels())["owner"] = "fuzz";
  Write(dir, "inline_per_step_values", request.SerializeAsString());

  request = BaseTrain();
  request.mutable_spec()->set_cell(v1::CELL_TYPE_GRU);
  request.mutable_spec()->set_bidirectional(true);
  data = request.mutable_data()->mutable_inline_();
  data->set_input_size(1);
  data->set_target_size(3);
  data->set_kind(v1::TARGET_KIND_SEQUENCE_LABELS);
  for (int s = 0; s < 3; ++s) {
    v1::LabeledSequence* sequence = data->add_sequences();
    sequence->set_steps(2);
    sequence->add_inputs(s);
    sequence->add_inputs(-s);
    sequence->add_labels(s);
  }
  *request.mutable_validation() = request.data();
  Write(dir, "inline_sequence_labels", request.SerializeAsString());

  request = BaseTrain();
  request.mutable_data()->mutable_generator()->mutable_adding_problem()->set_sequences(8);
  request.mutable_data()->mutable_generator()->mutable_adding_problem()->set_length(10);
  Write(dir, "adding_problem", request.SerializeAsString());

  request = BaseTrain();
  request.mutable_spec()->set_cell(v1::CELL_TYPE_RNN_TANH);
  request.mutable_data()->mutable_generator()->mutable_copying_memory()->set_sequences(4);
  request.mutable_data()->mutable_generator()->mutable_copying_memory()->set_delay(3);
  Write(dir, "copying_memory", request.SerializeAsString());

  request = BaseTrain();
  v1::MackeyGlassSpec* mackey = request.mutable_data()->mutable_generator()->mutable_mackey_glass();
  mackey->set_series_length(60);
  mackey->mutable_window()->set_window(8);
  mackey->mutable_window()->set_horizon(2);
  mackey->mutable_window()->set_stride(4);
  Write(dir, "mackey_glass", request.SerializeAsString());

  request = BaseTrain();
  v1::NoisySinesSpec* sines = request.mutable_data()->mutable_generator()->mutable_noisy_sines();
  sines->set_series_length(50);
  sines->mutable_window()->set_window(5);
  sines->mutable_window()->set_per_step_targets(true);
  sines->set_components(2);
  sines->set_noise_std(0.1);
  request.mutable_options()->set_tbptt_steps(2);
  request.mutable_options()->set_clip_norm(1.0);
  Write(dir, "noisy_sines", request.SerializeAsString());

  request = BaseTrain();
  request.mutable_data()->set_dataset_id("ds-1");
  request.mutable_start_from()->set_name("base");
  Write(dir, "dataset_id_fine_tune", request.SerializeAsString());

  request = BaseTrain();
  request.set_model_name("bad name!");
  request.mutable_options()->set_batch_size(-1);
  Write(dir, "invalid", request.SerializeAsString());
}

}  // namespace
}  // namespace recurrent::fuzz

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <corpus dir>\n", argv[0]);
    return 2;
  }
  const std::filesystem::path root = argv[1];
  recurrent::fuzz::Artifacts(root / "artifact");
  recurrent::fuzz::Csvs(root / "csv");
  recurrent::fuzz::Snapshots(root / "snapshot");
  recurrent::fuzz::PredictRequests(root / "predict_request");
  recurrent::fuzz::StepRequests(root / "step_request");
  recurrent::fuzz::TrainRequests(root / "train_request");
  return 0;
}
