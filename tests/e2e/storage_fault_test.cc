// End to end: recurrentd's data directory fills up (ENOSPC) or turns read-only (EROFS) while the
// server runs, and a server starts on a read-only directory. Every write (upload, training job,
// checkpoint, model registration) fails with a clear error naming the cause; the server keeps
// serving the models it has, exactly as before; once space is back everything works again; and
// a restart finds nothing corrupt, half-written or lost. The faults come from an LD_PRELOAD shim
// (storage_fault_shim.cc) because CI runs as root in a container, where permission bits do not
// stop writes and nothing can be mounted.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/e2e/server_process.h"

namespace recurrent::e2e {
namespace {

class StorageFaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    root_ = std::filesystem::temp_directory_path() / ("recurrentd-e2e-storage-" + name);
    std::filesystem::remove_all(root_);
    std::filesystem::create_directories(root_);
    data_dir_ = (root_ / "data").string();
    control_ = (root_ / "fault").string();
    SetFault("");
  }
  void TearDown() override { std::filesystem::remove_all(root_); }

  void SetFault(const std::string& fault) { std::ofstream(control_, std::ios::trunc) << fault; }

  // A server whose data directory the shim controls.
  std::unique_ptr<Server> StartFaultyServer() {
    const char* asan = std::getenv("ASAN_OPTIONS");
    // ASan wants its runtime first in the library list; the shim is preloaded before it.
    const std::string asan_options =
        absl::StrCat("ASAN_OPTIONS=", asan != nullptr ? asan : "", ":verify_asan_link_order=0");
    auto server = std::make_unique<Server>(
        data_dir_, port_, metrics_port_,
        std::vector<std::string>{"--checkpoint_interval_seconds=0.1"},
        std::vector<std::string>{absl::StrCat("LD_PRELOAD=", STORAGE_FAULT_SHIM_PATH),
                                 "RECURRENT_FS_FAULT_DIR=" + data_dir_,
                                 "RECURRENT_FS_FAULT_CONTROL=" + control_, asan_options});
    return server;
  }

  static v1::TrainRequest SmallJob(const std::string& model) {
    v1::TrainRequest train;
    train.set_model_name(model);
    train.mutable_spec()->set_cell(v1::CELL_TYPE_LSTM);
    train.mutable_spec()->set_hidden_size(8);
    auto* adding = train.mutable_data()->mutable_generator()->mutable_adding_problem();
    adding->set_sequences(400);
    adding->set_length(12);
    train.mutable_options()->set_max_epochs(2);
    return train;
  }

  // Submits a job and waits for its end; the job as it ended, or the submission's error.
  static grpc::Status TrainAndWait(Server& server, const std::string& model, v1::Job* job) {
    auto training = v1::TrainingService::NewStub(server.channel());
    grpc::ClientContext context;
    v1::TrainResponse submitted;
    if (grpc::Status status = training->Train(&context, SmallJob(model), &submitted);
        !status.ok()) {
      return status;
    }
    grpc::ClientContext watch_context;
    v1::WatchJobRequest watch;
    watch.set_job_id(submitted.job_id());
    auto reader = training->WatchJob(&watch_context, watch);
    v1::JobEvent event;
    while (reader->Read(&event)) *job = event.job();
    return reader->Finish();
  }

  // A training job under the fault: refused at submission with `code`, or failed; either way
  // the error names `cause`.
  static void ExpectTrainRefused(Server& server, grpc::StatusCode code, const std::string& cause) {
    v1::Job blocked;
    const grpc::Status status = TrainAndWait(server, "blocked", &blocked);
    std::printf("Train with the fault: %s: %s\n", status.ok() ? "the job failed" : "refused",
                status.ok() ? blocked.error().c_str() : status.error_message().c_str());
    if (status.ok()) {
      EXPECT_EQ(blocked.state(), v1::JOB_STATE_FAILED);
      EXPECT_TRUE(absl::StrContains(blocked.error(), cause)) << blocked.error();
    } else {
      EXPECT_EQ(status.error_code(), code);
      EXPECT_TRUE(absl::StrContains(status.error_message(), cause)) << status.error_message();
    }
  }

  static grpc::Status Upload(Server& server, const std::string& name, v1::DatasetInfo* info) {
    auto training = v1::TrainingService::NewStub(server.channel());
    grpc::ClientContext context;
    auto writer = training->UploadDataset(&context, info);
    v1::UploadDatasetRequest header;
    header.mutable_header()->set_name(name);
    header.mutable_header()->mutable_csv()->set_has_header(true);
    header.mutable_header()->mutable_csv()->add_feature_columns("x");
    header.mutable_header()->mutable_csv()->add_target_columns("x");
    header.mutable_header()->mutable_csv()->mutable_window()->set_window(4);
    writer->Write(header);
    std::string csv = "x\n";
    for (int i = 0; i < 200; ++i) csv += absl::StrCat(0.01 * (i % 37), "\n");
    v1::UploadDatasetRequest chunk;
    chunk.set_csv_chunk(csv);
    writer->Write(chunk);
    writer->WritesDone();
    return writer->Finish();
  }

  static float PredictProbe(Server& server, const std::string& model, grpc::Status* status) {
    v1::PredictRequest request;
    request.mutable_model()->set_name(model);
    v1::InputSequence* sequence = request.add_sequences();
    sequence->set_steps(5);
    for (int t = 0; t < 5; ++t) {
      sequence->add_values(0.2f * t);
      sequence->add_values(t == 1 || t == 3 ? 1.0f : 0.0f);
    }
    grpc::ClientContext context;
    v1::PredictResponse response;
    *status =
        v1::InferenceService::NewStub(server.channel())->Predict(&context, request, &response);
    return status->ok() ? response.outputs(0).values(0) : 0.0f;
  }

  // Opens a stream and steps it three times; OK when all three outputs came back.
  static grpc::Status StreamThreeSteps(Server& server, const std::string& model) {
    grpc::ClientContext context;
    auto stream = v1::InferenceService::NewStub(server.channel())->StepPredict(&context);
    v1::StepRequest open;
    open.mutable_open()->mutable_model()->set_name(model);
    v1::StepResponse response;
    if (!stream->Write(open) || !stream->Read(&response)) return stream->Finish();
    for (int t = 0; t < 3; ++t) {
      v1::StepRequest step;
      step.mutable_step()->set_steps(1);
      step.mutable_step()->add_values(0.5f);
      step.mutable_step()->add_values(t == 0 ? 1.0f : 0.0f);
      if (!stream->Write(step) || !stream->Read(&response) || !response.has_output()) {
        return stream->Finish();
      }
    }
    stream->WritesDone();
    return stream->Finish();
  }

  static std::vector<std::string> ModelNames(Server& server) {
    grpc::ClientContext context;
    v1::ListModelsResponse response;
    v1::ModelService::NewStub(server.channel())
        ->ListModels(&context, v1::ListModelsRequest(), &response);
    std::vector<std::string> names;
    for (const v1::ModelSummary& model : response.models()) {
      names.push_back(absl::StrCat(model.name(), ":", model.versions()));
    }
    return names;
  }

  // Files a crash-free write may never leave behind.
  std::vector<std::string> TemporaryFiles() const {
    std::vector<std::string> found;
    for (const auto& entry : std::filesystem::recursive_directory_iterator(data_dir_)) {
      if (absl::StrContains(entry.path().filename().string(), ".tmp")) {
        found.push_back(entry.path().string());
      }
    }
    return found;
  }

  std::filesystem::path root_;
  std::string data_dir_;
  std::string control_;
  const int port_ = FreePort();
  const int metrics_port_ = FreePort();
};

TEST_F(StorageFaultTest, FullDiskFailsWritesClearlyKeepsServingAndRecovers) {
  std::unique_ptr<Server> server = StartFaultyServer();
  ASSERT_TRUE(server->Ready());
  v1::Job job;
  ASSERT_TRUE(TrainAndWait(*server, "kept", &job).ok());
  ASSERT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED) << job.error();
  v1::DatasetInfo before;
  ASSERT_TRUE(Upload(*server, "before", &before).ok());
  grpc::Status status;
  const float answer = PredictProbe(*server, "kept", &status);
  ASSERT_TRUE(status.ok()) << status.error_message();

  SetFault("ENOSPC");
  // An upload: refused with the cause, nothing stored.
  v1::DatasetInfo refused;
  status = Upload(*server, "during", &refused);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
  EXPECT_TRUE(absl::StrContains(status.error_message(), "No space left on device"))
      << status.error_message();
  // A training job: refused at submission, or failed with the cause.
  ExpectTrainRefused(*server, grpc::StatusCode::RESOURCE_EXHAUSTED, "No space left on device");
  // Serving goes on, with the same answers.
  EXPECT_EQ(PredictProbe(*server, "kept", &status), answer);
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(StreamThreeSteps(*server, "kept").ok());
  EXPECT_EQ(ModelNames(*server), std::vector<std::string>{"kept:1"});
  EXPECT_TRUE(absl::StrContains(Scrape(metrics_port_), "recurrent_")) << "metrics went away";

  // Space is back: writes work again without a restart.
  SetFault("");
  v1::DatasetInfo after;
  EXPECT_TRUE(Upload(*server, "after", &after).ok());
  v1::Job retried;
  ASSERT_TRUE(TrainAndWait(*server, "retried", &retried).ok());
  EXPECT_EQ(retried.state(), v1::JOB_STATE_SUCCEEDED) << retried.error();
  EXPECT_EQ(server->Stop(), 0);

  // A restart finds exactly what completed, intact, and no temporary file.
  Server restarted(data_dir_, port_, metrics_port_);
  ASSERT_TRUE(restarted.Ready());
  EXPECT_EQ(ModelNames(restarted), (std::vector<std::string>{"kept:1", "retried:1"}));
  EXPECT_EQ(PredictProbe(restarted, "kept", &status), answer);
  EXPECT_TRUE(TemporaryFiles().empty()) << TemporaryFiles().front();
  EXPECT_EQ(restarted.Stop(), 0);
}

TEST_F(StorageFaultTest, DiskFillingUpMidTrainingFailsTheJobWithTheCause) {
  std::unique_ptr<Server> server = StartFaultyServer();
  ASSERT_TRUE(server->Ready());
  v1::Job job;
  ASSERT_TRUE(TrainAndWait(*server, "kept", &job).ok());
  grpc::Status status;
  const float answer = PredictProbe(*server, "kept", &status);

  auto training = v1::TrainingService::NewStub(server->channel());
  v1::TrainRequest long_job = SmallJob("long");
  long_job.mutable_options()->set_max_epochs(500);
  grpc::ClientContext context;
  v1::TrainResponse submitted;
  ASSERT_TRUE(training->Train(&context, long_job, &submitted).ok());
  grpc::ClientContext watch_context;
  v1::WatchJobRequest watch;
  watch.set_job_id(submitted.job_id());
  auto reader = training->WatchJob(&watch_context, watch);
  v1::JobEvent event;
  bool filled = false;
  while (reader->Read(&event)) {
    // The disk fills once the job has checkpointed at least once (every 0.1 s).
    if (!filled && event.job().progress().epoch() >= 2) {
      SetFault("ENOSPC");
      filled = true;
    }
  }
  ASSERT_TRUE(reader->Finish().ok());
  ASSERT_TRUE(filled);
  EXPECT_EQ(event.job().state(), v1::JOB_STATE_FAILED);
  EXPECT_TRUE(absl::StrContains(event.job().error(), "No space left on device"))
      << event.job().error();
  EXPECT_EQ(PredictProbe(*server, "kept", &status), answer);
  EXPECT_EQ(ModelNames(*server), std::vector<std::string>{"kept:1"});
  SetFault("");
  EXPECT_EQ(server->Stop(), 0);
  EXPECT_TRUE(TemporaryFiles().empty()) << TemporaryFiles().front();
}

TEST_F(StorageFaultTest, ReadOnlyDirectoryFailsWritesClearlyAndKeepsServing) {
  {
    std::unique_ptr<Server> server = StartFaultyServer();
    ASSERT_TRUE(server->Ready());
    v1::Job job;
    ASSERT_TRUE(TrainAndWait(*server, "kept", &job).ok());
    ASSERT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED) << job.error();
    EXPECT_EQ(server->Stop(), 0);
  }
  grpc::Status status;
  float answer = 0.0f;
  {
    Server plain(data_dir_, port_, metrics_port_);
    ASSERT_TRUE(plain.Ready());
    answer = PredictProbe(plain, "kept", &status);
    ASSERT_TRUE(status.ok());
    EXPECT_EQ(plain.Stop(), 0);
  }

  // The directory is read-only from the start (say, a volume mounted read-only).
  SetFault("EROFS");
  std::unique_ptr<Server> server = StartFaultyServer();
  ASSERT_TRUE(server->Ready()) << "a read-only data directory must still serve its models";
  EXPECT_EQ(PredictProbe(*server, "kept", &status), answer);
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(StreamThreeSteps(*server, "kept").ok());

  v1::DatasetInfo refused;
  status = Upload(*server, "during", &refused);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED) << status.error_message();
  EXPECT_TRUE(absl::StrContains(status.error_message(), "Read-only file system"))
      << status.error_message();
  ExpectTrainRefused(*server, grpc::StatusCode::PERMISSION_DENIED, "Read-only file system");
  // Deleting a version is a write too.
  grpc::ClientContext delete_context;
  v1::DeleteModelVersionRequest remove;
  remove.set_name("kept");
  remove.set_version(1);
  v1::ModelInfo info;
  status = v1::ModelService::NewStub(server->channel())
               ->DeleteModelVersion(&delete_context, remove, &info);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED) << status.error_message();
  EXPECT_EQ(PredictProbe(*server, "kept", &status), answer);
  EXPECT_EQ(ModelNames(*server), std::vector<std::string>{"kept:1"});
  EXPECT_EQ(server->Stop(), 0);
  EXPECT_TRUE(TemporaryFiles().empty()) << TemporaryFiles().front();
}

}  // namespace
}  // namespace recurrent::e2e
