// Training jobs end to end without gRPC: JobManager + the training runner + the model registry
// in a temporary data directory.
#include "server/training_runner.h"

#include <filesystem>
#include <memory>
#include <string>

#include "core/spec_proto.h"
#include "gtest/gtest.h"

namespace recurrent::server {
namespace {

std::string FreshDir() {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() /
      (std::string("runner-") + ::testing::UnitTest::GetInstance()->current_test_info()->name());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

v1::TrainRequest AddingRequest(const std::string& name, int64_t epochs) {
  v1::TrainRequest request;
  request.set_model_name(name);
  core::ModelSpec spec;
  spec.cell = core::CellType::kGru;
  spec.input_size = 2;
  spec.hidden_size = 8;
  spec.head = core::HeadMode::kLastStep;
  *request.mutable_spec() = core::ModelSpecToProto(spec);
  v1::GeneratorSpec* generator = request.mutable_data()->mutable_generator();
  generator->set_seed(5);
  generator->mutable_adding_problem()->set_sequences(96);
  generator->mutable_adding_problem()->set_length(12);
  request.mutable_options()->set_max_epochs(epochs);
  request.mutable_options()->set_batch_size(16);
  (*request.mutable_labels())["owner"] = "test";
  return request;
}

v1::Job AwaitEnd(JobManager& manager, const std::string& id) {
  int64_t seen = 0;
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (absl::Now() < deadline) {
    absl::StatusOr<v1::Job> job = manager.WaitForChange(id, &seen, absl::Milliseconds(200));
    if (job.ok() &&
        (job->state() == v1::JOB_STATE_SUCCEEDED || job->state() == v1::JOB_STATE_FAILED ||
         job->state() == v1::JOB_STATE_CANCELLED)) {
      return *job;
    }
  }
  ADD_FAILURE() << "job " << id << " did not end";
  return v1::Job();
}

struct Service {
  explicit Service(const std::string& dir, absl::Duration checkpoint_interval = absl::Seconds(30)) {
    registry = *ModelRegistry::Open(dir);
    TrainingRunnerOptions runner;
    runner.checkpoints_dir = dir + "/checkpoints";
    runner.checkpoint_interval = checkpoint_interval;
    JobManagerOptions jobs;
    jobs.jobs_dir = dir + "/jobs";
    manager = *JobManager::Open(jobs, MakeTrainingRunner(runner, registry.get()));
  }
  std::unique_ptr<ModelRegistry> registry;
  std::unique_ptr<JobManager> manager;
};

TEST(TrainingRunnerTest, TrainsRegistersAndRecordsLineage) {
  Service service(FreshDir());
  const std::string id = *service.manager->Submit(AddingRequest("adder", 2));
  const v1::Job job = AwaitEnd(*service.manager, id);
  ASSERT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED) << job.error();
  EXPECT_EQ(job.model_version(), 1);
  EXPECT_EQ(job.stop_reason(), "completed");
  EXPECT_EQ(job.loss_history_size(), 2);
  EXPECT_EQ(job.progress().step(), 12);  // 96 / 16 batches x 2 epochs
  auto loaded = service.registry->Load(ModelRef{"adder", 1, ""});
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ((*loaded)->model.training.job_id(), id);
  EXPECT_EQ((*loaded)->model.training.loss_history_size(), 2);
  EXPECT_EQ((*loaded)->model.labels.at("owner"), "test");
}

TEST(TrainingRunnerTest, ABadRequestFailsTheJobWithAClearMessage) {
  Service service(FreshDir());
  v1::TrainRequest request = AddingRequest("adder", 1);
  request.mutable_spec()->set_hidden_size(0);
  const v1::Job bad_spec = AwaitEnd(*service.manager, *service.manager->Submit(request));
  EXPECT_EQ(bad_spec.state(), v1::JOB_STATE_FAILED);
  EXPECT_NE(bad_spec.error().find("spec"), std::string::npos) << bad_spec.error();

  request = AddingRequest("adder", 1);
  request.mutable_spec()->set_input_size(3);  // the adding problem has 2 features
  const v1::Job mismatch = AwaitEnd(*service.manager, *service.manager->Submit(request));
  EXPECT_EQ(mismatch.state(), v1::JOB_STATE_FAILED);
  EXPECT_NE(mismatch.error().find("input"), std::string::npos) << mismatch.error();
}

TEST(TrainingRunnerTest, FineTunesARegisteredVersion) {
  Service service(FreshDir());
  ASSERT_EQ(AwaitEnd(*service.manager, *service.manager->Submit(AddingRequest("adder", 1))).state(),
            v1::JOB_STATE_SUCCEEDED);
  v1::TrainRequest tune = AddingRequest("adder", 1);
  tune.clear_spec();
  tune.mutable_start_from()->set_name("adder");
  tune.mutable_start_from()->set_version(1);
  const v1::Job job = AwaitEnd(*service.manager, *service.manager->Submit(tune));
  ASSERT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED) << job.error();
  EXPECT_EQ(job.model_version(), 2);
  auto tuned = service.registry->Load(ModelRef{"adder", 2, ""});
  ASSERT_TRUE(tuned.ok());
  EXPECT_EQ((*tuned)->model.labels.at("fine_tuned_from"), "adder:1");
}

TEST(TrainingRunnerTest, AJobInterruptedByAShutdownResumesAndEndsWithTheSameWeights) {
  // Reference: the same request run without interruption.
  const std::string reference_dir = FreshDir() + "-reference";
  std::filesystem::remove_all(reference_dir);
  std::filesystem::create_directories(reference_dir);
  core::ParameterSet expected;
  {
    Service service(reference_dir);
    const v1::Job job =
        AwaitEnd(*service.manager, *service.manager->Submit(AddingRequest("adder", 6)));
    ASSERT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED);
    expected = (*service.registry->Load(ModelRef{"adder", 1, ""}))->model.parameters;
  }
  const std::string dir = FreshDir();
  std::string id;
  {
    // No interval checkpoints: the one the shutdown writes (at a batch boundary) must suffice.
    Service service(dir, absl::ZeroDuration());
    id = *service.manager->Submit(AddingRequest("adder", 6));
    int64_t seen = 0;
    while (true) {  // wait until training is well under way, then shut down mid-run
      auto job = service.manager->WaitForChange(id, &seen, absl::Seconds(5));
      ASSERT_TRUE(job.ok());
      ASSERT_NE(job->state(), v1::JOB_STATE_SUCCEEDED) << "finished before the shutdown";
      if (job->progress().step() >= 10) break;
    }
    service.manager->Shutdown();
    EXPECT_EQ(service.manager->Get(id)->state(), v1::JOB_STATE_QUEUED);
  }
  Service restarted(dir);
  const v1::Job job = AwaitEnd(*restarted.manager, id);
  ASSERT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED) << job.error();
  const core::ParameterSet& resumed =
      (*restarted.registry->Load(ModelRef{"adder", 1, ""}))->model.parameters;
  for (const auto& [name, tensor] : expected) {
    EXPECT_EQ(resumed.at(name).values, tensor.values) << name;
  }
  EXPECT_FALSE(std::filesystem::exists(dir + "/checkpoints/" + id + ".ckpt"));
}

TEST(TrainingRunnerTest, AResumedJobWhoseModelIsAlreadyRegisteredDoesNotRegisterItAgain) {
  const std::string dir = FreshDir();
  auto registry = *ModelRegistry::Open(dir);
  TrainingRunnerOptions options;
  options.checkpoints_dir = dir + "/checkpoints";
  JobRunner runner = MakeTrainingRunner(options, registry.get());
  JobContext first;
  first.job_id = "job-crashed";
  first.report = [](const v1::JobProgress&, const v1::EpochLoss*) {};
  auto outcome = runner(AddingRequest("adder", 1), first);
  ASSERT_TRUE(outcome.ok()) << outcome.status();
  // The process died before the job's end was persisted; after the restart the job reruns.
  JobContext rerun = first;
  rerun.resume = true;
  auto again = runner(AddingRequest("adder", 1), rerun);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->model_version, outcome->model_version);
  EXPECT_EQ(registry->GetModel("adder")->versions.size(), 1u);
}

}  // namespace
}  // namespace recurrent::server
