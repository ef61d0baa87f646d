// Training jobs: a bounded FIFO queue, a fixed pool of worker threads, and every job's record
// persisted in the data directory, so that ListJobs shows the history after a restart and jobs
// that were queued or running continue.
//
// The manager knows nothing about training itself: a JobRunner (server/training_runner.h) turns a
// job's request into a core::Train call and registers the result. The manager owns the states:
//
//   QUEUED --worker picks it--> RUNNING --runner returns OK--> SUCCEEDED
//      |                           |----runner fails---------> FAILED
//      |--Cancel--> CANCELLED      |----Cancel (stop token)--> CANCELLED
//                                  |----Shutdown-------------> QUEUED again (resumes after restart)
//
// Persistence: one file per job, <jobs_dir>/<id>.job, a serialized recurrent.v1.Job written
// atomically (core/file_util.h) at every state change and, while running, at most every
// `progress_persist_interval`. A file that does not parse is reported by problems() and skipped.
// On Open(), jobs found QUEUED or RUNNING are queued again in creation order; their runner is
// told to resume (from the job's checkpoint, if the runner kept one).
//
// Thread-safe: every public method may be called from any thread (gRPC handlers). One mutex
// guards the queue and the records (job files are written under it: a few milliseconds per
// state change); runners run without it. std::mutex rather than absl::Mutex: ThreadSanitizer
// understands it without an instrumented Abseil.
#ifndef RECURRENT_SERVER_JOB_MANAGER_H_
#define RECURRENT_SERVER_JOB_MANAGER_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "recurrent/v1/service.pb.h"

namespace recurrent::server {

// What a runner gets for one job run.
struct JobContext {
  std::string job_id;
  // Set when the job is cancelled or the manager shuts down; the runner must return soon after
  // (core::Train honours it within one training step).
  std::stop_token stop;
  // True when this run continues a job that was running before a restart.
  bool resume = false;
  // Reports progress; cheap, may be called every training step.
  std::function<void(const recurrent::v1::JobProgress&, const recurrent::v1::EpochLoss* epoch)>
      report;
};

struct JobOutcome {
  int64_t model_version = 0;  // the registered version
  std::string stop_reason;
};

// Runs one job to its end. Returns the outcome, Cancelled when it stopped on the context's stop
// token, or any other error (the job then FAILED with that message).
using JobRunner =
    std::function<absl::StatusOr<JobOutcome>(const recurrent::v1::TrainRequest&, JobContext&)>;

struct JobManagerOptions {
  std::string jobs_dir;     // created if missing
  int workers = 1;          // jobs running at once
  int64_t max_queued = 64;  // queued (not running) jobs; Submit beyond it is RESOURCE_EXHAUSTED
  int64_t max_jobs_listed = 1000;  // ListJobs' cap
  absl::Duration progress_persist_interval = absl::Seconds(5);
};

class JobManager {
 public:
  // Loads the persisted jobs, queues the unfinished ones and starts the workers.
  static absl::StatusOr<std::unique_ptr<JobManager>> Open(const JobManagerOptions& options,
                                                          JobRunner runner);
  // Shutdown() if not done yet.
  ~JobManager();
  JobManager(const JobManager&) = delete;
  JobManager& operator=(const JobManager&) = delete;

  // Persists a new QUEUED job and returns its id. RESOURCE_EXHAUSTED when the queue is full,
  // UNAVAILABLE after Shutdown(), the OS error when the record cannot be written.
  absl::StatusOr<std::string> Submit(const recurrent::v1::TrainRequest& request);

  // NOT_FOUND for an unknown id.
  absl::StatusOr<recurrent::v1::Job> Get(const std::string& id) const;

  // Newest first; `state` UNSPECIFIED and empty `model_name` match everything; limit <= 0 means
  // options.max_jobs_listed (and never more).
  std::vector<recurrent::v1::Job> List(recurrent::v1::JobState state, const std::string& model_name,
                                       int limit) const;

  // A queued job is CANCELLED at once; a running one is asked to stop and becomes CANCELLED when
  // its runner returns. FAILED_PRECONDITION for a job that already ended; NOT_FOUND if unknown.
  absl::StatusOr<recurrent::v1::Job> Cancel(const std::string& id);

  // Waits until job `id` has changed since `*seen` (a change counter; start with 0), or `timeout`
  // passed, and returns the job with *seen updated. For WatchJob.
  absl::StatusOr<recurrent::v1::Job> WaitForChange(const std::string& id, int64_t* seen,
                                                   absl::Duration timeout) const;

  // Stops taking jobs, asks running ones to stop (they are persisted as QUEUED, to resume after a
  // restart), and joins the workers.
  void Shutdown();

  // Jobs in each state, for metrics: index = JobState value.
  std::vector<int64_t> CountByState() const;
  int64_t queue_depth() const;
  int64_t queue_capacity() const { return options_.max_queued; }
  // Job files that could not be read (path and reason).
  std::vector<std::string> problems() const;

 private:
  struct Record {
    recurrent::v1::Job job;
    int64_t changes = 0;  // bumped at every change, for WaitForChange
    bool resume = false;  // it was running before a restart
    std::stop_source stop;
    bool cancel_requested = false;
    absl::Time last_persisted = absl::InfinitePast();
  };

  JobManager(const JobManagerOptions& options, JobRunner runner);
  absl::Status Load();
  void WorkerLoop();
  void RunJob(const std::string& id);
  absl::Status Persist(const Record& record) const;
  // Marks a change of `record` and wakes the watchers; mutex_ held.
  void Touch(Record& record);

  const JobManagerOptions options_;
  const JobRunner runner_;

  mutable std::mutex mutex_;
  // Signalled at every change of a record, of the queue or of shutting_down_.
  mutable std::condition_variable changed_;
  std::map<std::string, Record> records_;  // guarded by mutex_
  std::deque<std::string> queue_;          // guarded by mutex_
  bool shutting_down_ = false;             // guarded by mutex_
  std::vector<std::string> problems_;      // guarded by mutex_
  std::vector<std::thread> workers_;
};

}  // namespace recurrent::server

#endif  // RECURRENT_SERVER_JOB_MANAGER_H_
