// End to end: recurrentd killed with SIGKILL at many points of its work (training, checkpointing,
// registering a model, receiving an upload) and restarted on the same data directory, 20 times.
// After every restart: the interrupted job resumes and succeeds, its model has exactly one
// version, every model and data set completed before is intact and answers as before, and no
// half-written version is visible. The test prints how many runs lost anything (it must be 0).
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/e2e/server_process.h"

namespace recurrent::e2e {
namespace {

v1::PredictRequest Probe(const std::string& model) {
  v1::PredictRequest request;
  request.mutable_model()->set_name(model);
  v1::InputSequence* sequence = request.add_sequences();
  sequence->set_steps(6);
  for (int t = 0; t < 6; ++t) {
    sequence->add_values(0.1f * t);
    sequence->add_values(t == 1 || t == 4 ? 1.0f : 0.0f);
  }
  return request;
}

std::string SeriesCsv(int rows) {
  std::string csv = "x\n";
  for (int i = 0; i < rows; ++i) csv += absl::StrCat(0.5 + 0.4 * ((i * 37) % 100) / 100.0, "\n");
  return csv;
}

TEST(FaultTest, SigkillAtRandomPointsLosesNothing) {
  const std::string data_dir =
      (std::filesystem::temp_directory_path() / "recurrentd-e2e-faults").string();
  std::filesystem::remove_all(data_dir);
  const int port = FreePort(), metrics_port = FreePort();
  const std::vector<std::string> flags = {"--checkpoint_interval_seconds=0.2",
                                          "--shutdown_grace_seconds=0.5"};
  const char* runs_env = std::getenv("RECURRENT_FAULT_RUNS");
  const int kRuns = runs_env != nullptr ? std::atoi(runs_env) : 20;
  std::mt19937 random(20261127);
  std::map<std::string, float> answers;  // finished models -> their prediction on Probe()
  std::vector<std::string> datasets;     // uploads that completed
  int runs_that_lost_something = 0;
  const std::string csv = SeriesCsv(20000);

  for (int run = 0; run < kRuns; ++run) {
    SCOPED_TRACE(absl::StrCat("run ", run));
    const std::string model = absl::StrCat("m", run);
    std::string job_id;
    {
      Server server(data_dir, port, metrics_port, flags);
      ASSERT_TRUE(server.Ready());
      auto training = v1::TrainingService::NewStub(server.channel());
      v1::TrainRequest train;
      train.set_model_name(model);
      train.mutable_spec()->set_cell(v1::CELL_TYPE_GRU);
      train.mutable_spec()->set_hidden_size(24);
      auto* adding = train.mutable_data()->mutable_generator()->mutable_adding_problem();
      adding->set_sequences(1500);
      adding->set_length(30);
      train.mutable_options()->set_max_epochs(2);
      grpc::ClientContext train_context;
      v1::TrainResponse submitted;
      const grpc::Status train_status = training->Train(&train_context, train, &submitted);
      ASSERT_TRUE(train_status.ok()) << train_status.error_message();
      job_id = submitted.job_id();
      // An upload races the kill too.
      std::thread upload([&] {
        grpc::ClientContext context;
        context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
        v1::DatasetInfo info;
        auto writer = training->UploadDataset(&context, &info);
        v1::UploadDatasetRequest header;
        header.mutable_header()->set_name(model);
        header.mutable_header()->mutable_csv()->set_has_header(true);
        header.mutable_header()->mutable_csv()->add_feature_columns("x");
        header.mutable_header()->mutable_csv()->add_target_columns("x");
        header.mutable_header()->mutable_csv()->mutable_window()->set_window(8);
        bool ok = writer->Write(header);
        // Slowly (about a second), so that the kill often lands in the middle of it.
        for (size_t at = 0; ok && at < csv.size(); at += 4096) {
          v1::UploadDatasetRequest chunk;
          chunk.set_csv_chunk(csv.substr(at, 4096));
          ok = writer->Write(chunk);
          absl::SleepFor(absl::Milliseconds(15));
        }
        writer->WritesDone();
        if (writer->Finish().ok()) datasets.push_back(info.id());
      });
      // Somewhere between the first step and after the end of the job (it takes about a second).
      absl::SleepFor(absl::Milliseconds(std::uniform_int_distribution<int>(50, 1500)(random)));
      server.Kill();
      upload.join();
    }
    Server server(data_dir, port, metrics_port, flags);
    ASSERT_TRUE(server.Ready());
    auto training = v1::TrainingService::NewStub(server.channel());
    auto models = v1::ModelService::NewStub(server.channel());
    auto inference = v1::InferenceService::NewStub(server.channel());
    bool lost = false;
    // The interrupted job resumes (or had finished) and succeeds.
    grpc::ClientContext watch_context;
    v1::WatchJobRequest watch;
    watch.set_job_id(job_id);
    auto reader = training->WatchJob(&watch_context, watch);
    v1::JobEvent event;
    while (reader->Read(&event)) {
    }
    const grpc::Status watched = reader->Finish();
    if (!watched.ok() || event.job().state() != v1::JOB_STATE_SUCCEEDED) {
      ADD_FAILURE() << "job " << job_id << ": " << watched.error_message() << " "
                    << event.job().error();
      lost = true;
    }
    // Exactly one version of the new model, and it predicts.
    grpc::ClientContext get_context;
    v1::GetModelRequest get;
    get.set_name(model);
    v1::ModelInfo info;
    if (!models->GetModel(&get_context, get, &info).ok() || info.versions_size() != 1) {
      ADD_FAILURE() << model << " has " << info.versions_size() << " versions";
      lost = true;
    }
    grpc::ClientContext predict_context;
    v1::PredictResponse predicted;
    if (!inference->Predict(&predict_context, Probe(model), &predicted).ok()) {
      ADD_FAILURE() << model << " does not predict";
      lost = true;
    } else {
      answers[model] = predicted.outputs(0).values(0);
    }
    // Everything finished before is intact and answers exactly as before.
    for (const auto& [name, answer] : answers) {
      grpc::ClientContext context;
      v1::PredictResponse again;
      if (!inference->Predict(&context, Probe(name), &again).ok() ||
          again.outputs(0).values(0) != answer) {
        ADD_FAILURE() << name << " changed or vanished";
        lost = true;
      }
    }
    grpc::ClientContext list_context;
    v1::ListModelsResponse listed;
    ASSERT_TRUE(models->ListModels(&list_context, v1::ListModelsRequest(), &listed).ok());
    if (listed.models_size() != static_cast<int>(answers.size())) {
      ADD_FAILURE() << listed.models_size() << " models listed, " << answers.size() << " finished";
      lost = true;
    }
    // Every completed upload is still there: a job may train on it (checked at submission).
    for (const std::string& id : datasets) {
      grpc::ClientContext context;
      v1::TrainRequest train;
      train.set_model_name("probe");
      train.mutable_spec()->set_hidden_size(4);
      train.mutable_data()->set_dataset_id(id);
      train.mutable_options()->set_max_steps(1);
      v1::TrainResponse response;
      const grpc::Status status = training->Train(&context, train, &response);
      if (status.error_code() == grpc::StatusCode::NOT_FOUND) {
        ADD_FAILURE() << "data set " << id << " vanished";
        lost = true;
      } else if (status.ok()) {
        grpc::ClientContext cancel_context;
        v1::CancelJobRequest cancel;
        cancel.set_job_id(response.job_id());
        v1::Job job;
        (void)training->CancelJob(&cancel_context, cancel, &job);
      }
    }
    runs_that_lost_something += lost ? 1 : 0;
    EXPECT_EQ(server.Stop(), 0);
  }
  std::printf(
      "%d runs killed with SIGKILL at random points (%zu uploads completed before the "
      "kill, %d cut by it): %d lost anything\n",
      kRuns, datasets.size(), kRuns - static_cast<int>(datasets.size()), runs_that_lost_something);
  EXPECT_EQ(runs_that_lost_something, 0);
  std::filesystem::remove_all(data_dir);
}

}  // namespace
}  // namespace recurrent::e2e
