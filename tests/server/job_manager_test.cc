// The job queue and its persistence (server/job_manager.h), with fake runners: what a runner does
// is the training runner's business; here only states, order, limits, cancellation and restarts.
#include "server/job_manager.h"

#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"

namespace recurrent::server {
namespace {

using recurrent::v1::Job;

std::string FreshDir(const std::string& name) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() /
      (name + "-" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
  std::filesystem::remove_all(dir);
  return dir.string();
}

v1::TrainRequest Request(const std::string& model) {
  v1::TrainRequest request;
  request.set_model_name(model);
  return request;
}

// Waits until job `id` reaches `state` (or fails the test after 10 s).
Job AwaitState(JobManager& manager, const std::string& id, v1::JobState state) {
  int64_t seen = 0;
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (absl::Now() < deadline) {
    absl::StatusOr<Job> job = manager.WaitForChange(id, &seen, absl::Milliseconds(100));
    if (job.ok() && job->state() == state) return *job;
  }
  ADD_FAILURE() << "job " << id << " never reached " << v1::JobState_Name(state);
  return Job();
}

// A runner that blocks until released, honouring the stop token.
struct GatedRunner {
  absl::Notification release;
  std::atomic<int> started{0};
  std::vector<std::string> order;  // model names in the order runs started
  std::mutex mutex;

  JobRunner Runner() {
    return
        [this](const v1::TrainRequest& request, JobContext& context) -> absl::StatusOr<JobOutcome> {
          {
            std::lock_guard lock(mutex);
            order.push_back(request.model_name());
          }
          ++started;
          while (!release.HasBeenNotified()) {
            if (context.stop.stop_requested()) return absl::CancelledError("stopped");
            absl::SleepFor(absl::Milliseconds(2));
          }
          return JobOutcome{7, "completed"};
        };
  }
};

TEST(JobManagerTest, RunsAJobToSuccessAndRecordsTheVersion) {
  JobManagerOptions options;
  options.jobs_dir = FreshDir("jobs");
  auto manager = JobManager::Open(options, [](const v1::TrainRequest&, JobContext& context) {
    v1::JobProgress progress;
    progress.set_step(3);
    v1::EpochLoss epoch;
    epoch.set_train_loss(0.5);
    context.report(progress, &epoch);
    return absl::StatusOr<JobOutcome>(JobOutcome{4, "completed"});
  });
  ASSERT_TRUE(manager.ok()) << manager.status();
  auto id = (*manager)->Submit(Request("m"));
  ASSERT_TRUE(id.ok());
  const Job job = AwaitState(**manager, *id, v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(job.model_version(), 4);
  EXPECT_EQ(job.progress().step(), 3);
  ASSERT_EQ(job.loss_history_size(), 1);
  EXPECT_TRUE(job.has_started());
  EXPECT_TRUE(job.has_finished());
}

TEST(JobManagerTest, AFullQueueAnswersResourceExhausted) {
  GatedRunner gate;
  JobManagerOptions options;
  options.jobs_dir = FreshDir("jobs");
  options.max_queued = 2;
  auto manager = JobManager::Open(options, gate.Runner());
  ASSERT_TRUE(manager.ok());
  auto first = (*manager)->Submit(Request("a"));
  ASSERT_TRUE(first.ok());
  AwaitState(**manager, *first, v1::JOB_STATE_RUNNING);  // the worker took it off the queue
  ASSERT_TRUE((*manager)->Submit(Request("b")).ok());
  ASSERT_TRUE((*manager)->Submit(Request("c")).ok());
  EXPECT_EQ((*manager)->queue_depth(), 2);
  EXPECT_EQ((*manager)->Submit(Request("d")).status().code(), absl::StatusCode::kResourceExhausted);
  gate.release.Notify();
}

TEST(JobManagerTest, RunsJobsInSubmissionOrder) {
  GatedRunner gate;
  JobManagerOptions options;
  options.jobs_dir = FreshDir("jobs");
  auto manager = JobManager::Open(options, gate.Runner());
  ASSERT_TRUE(manager.ok());
  std::vector<std::string> ids;
  for (const char* name : {"a", "b", "c", "d"}) ids.push_back(*(*manager)->Submit(Request(name)));
  gate.release.Notify();
  AwaitState(**manager, ids.back(), v1::JOB_STATE_SUCCEEDED);
  std::lock_guard lock(gate.mutex);
  EXPECT_EQ(gate.order, (std::vector<std::string>{"a", "b", "c", "d"}));
}

TEST(JobManagerTest, CancelsQueuedJobsAtOnceAndRunningOnesThroughTheStopToken) {
  GatedRunner gate;
  JobManagerOptions options;
  options.jobs_dir = FreshDir("jobs");
  auto manager = JobManager::Open(options, gate.Runner());
  ASSERT_TRUE(manager.ok());
  const std::string running = *(*manager)->Submit(Request("a"));
  const std::string queued = *(*manager)->Submit(Request("b"));
  AwaitState(**manager, running, v1::JOB_STATE_RUNNING);

  auto cancelled = (*manager)->Cancel(queued);
  ASSERT_TRUE(cancelled.ok());
  EXPECT_EQ(cancelled->state(), v1::JOB_STATE_CANCELLED);

  const absl::Time before = absl::Now();
  ASSERT_TRUE((*manager)->Cancel(running).ok());
  AwaitState(**manager, running, v1::JOB_STATE_CANCELLED);
  EXPECT_LT(absl::Now() - before, absl::Seconds(1));
  EXPECT_EQ(gate.started.load(), 1);  // the queued job never ran
  EXPECT_EQ((*manager)->Cancel(running).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ((*manager)->Cancel("job-unknown").status().code(), absl::StatusCode::kNotFound);
}

TEST(JobManagerTest, ARunnerErrorFailsTheJobWithItsMessage) {
  JobManagerOptions options;
  options.jobs_dir = FreshDir("jobs");
  auto manager = JobManager::Open(options, [](const v1::TrainRequest&, JobContext&) {
    return absl::StatusOr<JobOutcome>(absl::InvalidArgumentError("batch_size is 0"));
  });
  ASSERT_TRUE(manager.ok());
  const std::string id = *(*manager)->Submit(Request("m"));
  const Job job = AwaitState(**manager, id, v1::JOB_STATE_FAILED);
  EXPECT_EQ(job.error(), "batch_size is 0");
}

TEST(JobManagerTest, HistorySurvivesARestartAndInterruptedJobsResume) {
  const std::string dir = FreshDir("jobs");
  std::string done, interrupted, waiting;
  {
    GatedRunner gate;
    JobManagerOptions options;
    options.jobs_dir = dir;
    auto manager = JobManager::Open(options, gate.Runner());
    ASSERT_TRUE(manager.ok());
    gate.release.Notify();
    done = *(*manager)->Submit(Request("done"));
    AwaitState(**manager, done, v1::JOB_STATE_SUCCEEDED);
  }
  {
    GatedRunner gate;  // never released: the job is running when the manager shuts down
    JobManagerOptions options;
    options.jobs_dir = dir;
    auto manager = JobManager::Open(options, gate.Runner());
    ASSERT_TRUE(manager.ok());
    interrupted = *(*manager)->Submit(Request("interrupted"));
    waiting = *(*manager)->Submit(Request("waiting"));
    AwaitState(**manager, interrupted, v1::JOB_STATE_RUNNING);
    (*manager)->Shutdown();
    EXPECT_EQ((*manager)->Get(interrupted)->state(), v1::JOB_STATE_QUEUED);
  }
  std::vector<std::pair<std::string, bool>> runs;  // (model, resume)
  std::mutex mutex;
  JobManagerOptions options;
  options.jobs_dir = dir;
  auto manager =
      JobManager::Open(options, [&](const v1::TrainRequest& request, JobContext& context) {
        std::lock_guard lock(mutex);
        runs.emplace_back(request.model_name(), context.resume);
        return absl::StatusOr<JobOutcome>(JobOutcome{1, "completed"});
      });
  ASSERT_TRUE(manager.ok());
  AwaitState(**manager, waiting, v1::JOB_STATE_SUCCEEDED);
  AwaitState(**manager, interrupted, v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ((*manager)->Get(done)->state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ((*manager)->List(v1::JOB_STATE_UNSPECIFIED, "", 0).size(), 3u);
  std::lock_guard lock(mutex);
  // The interrupted job was created first, so it runs first, told to resume.
  EXPECT_EQ(runs,
            (std::vector<std::pair<std::string, bool>>{{"interrupted", true}, {"waiting", false}}));
}

TEST(JobManagerTest, ACorruptJobFileIsReportedAndSkipped) {
  const std::string dir = FreshDir("jobs");
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/job-garbage.job") << "not a protobuf \xff\xff\xff";
  JobManagerOptions options;
  options.jobs_dir = dir;
  auto manager = JobManager::Open(options, [](const v1::TrainRequest&, JobContext&) {
    return absl::StatusOr<JobOutcome>(JobOutcome{});
  });
  ASSERT_TRUE(manager.ok()) << manager.status();
  EXPECT_TRUE((*manager)->List(v1::JOB_STATE_UNSPECIFIED, "", 0).empty());
  ASSERT_EQ((*manager)->problems().size(), 1u);
  EXPECT_NE((*manager)->problems()[0].find("job-garbage.job"), std::string::npos);
}

TEST(JobManagerTest, ListFiltersByStateAndModelNewestFirst) {
  JobManagerOptions options;
  options.jobs_dir = FreshDir("jobs");
  auto manager = JobManager::Open(options, [](const v1::TrainRequest& request, JobContext&) {
    if (request.model_name() == "bad") {
      return absl::StatusOr<JobOutcome>(absl::InternalError("boom"));
    }
    return absl::StatusOr<JobOutcome>(JobOutcome{1, "completed"});
  });
  ASSERT_TRUE(manager.ok());
  const std::string first = *(*manager)->Submit(Request("good"));
  const std::string second = *(*manager)->Submit(Request("bad"));
  const std::string third = *(*manager)->Submit(Request("good"));
  AwaitState(**manager, third, v1::JOB_STATE_SUCCEEDED);
  AwaitState(**manager, second, v1::JOB_STATE_FAILED);
  const std::vector<Job> good = (*manager)->List(v1::JOB_STATE_UNSPECIFIED, "good", 0);
  ASSERT_EQ(good.size(), 2u);
  EXPECT_EQ(good[0].id(), third);
  EXPECT_EQ(good[1].id(), first);
  EXPECT_EQ((*manager)->List(v1::JOB_STATE_FAILED, "", 0).size(), 1u);
  EXPECT_EQ((*manager)->List(v1::JOB_STATE_UNSPECIFIED, "", 1).size(), 1u);
  EXPECT_EQ((*manager)->CountByState()[v1::JOB_STATE_SUCCEEDED], 2);
}

}  // namespace
}  // namespace recurrent::server
