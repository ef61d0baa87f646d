#include "server/job_manager.h"

#include <algorithm>
#include <filesystem>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/file_util.h"
#include "core/thread_name.h"
#include "server/proto_conversions.h"

namespace recurrent::server {
namespace {

using recurrent::v1::Job;
using recurrent::v1::JobState;

constexpr char kJobFileSuffix[] = ".job";
// A job record is small (progress, loss history, the request without inline data); anything
// bigger is not one of ours.
constexpr int64_t kMaxJobFileBytes = 64 << 20;

// "job-20261127-020304-1a2b3c4d": sortable by creation time at a glance, unique by the random tail.
std::string NewJobId() {
  static thread_local std::mt19937_64 bits(std::random_device{}());
  return absl::StrCat(absl::FormatTime("job-%Y%m%d-%H%M%S-", absl::Now(), absl::UTCTimeZone()),
                      absl::Hex(bits() & 0xffffffffu, absl::kZeroPad8));
}

int64_t CreatedNanos(const Job& job) {
  return job.created().seconds() * 1'000'000'000 + job.created().nanos();
}

// The request as stored with the job: inline data can be large and is not needed afterwards.
v1::TrainRequest StoredRequest(const v1::TrainRequest& request) {
  v1::TrainRequest stored = request;
  if (stored.data().has_inline_()) stored.mutable_data()->clear_inline_();
  if (stored.validation().has_inline_()) stored.mutable_validation()->clear_inline_();
  return stored;
}

}  // namespace

JobManager::JobManager(const JobManagerOptions& options, JobRunner runner)
    : options_(options), runner_(std::move(runner)) {}

absl::StatusOr<std::unique_ptr<JobManager>> JobManager::Open(const JobManagerOptions& options,
                                                             JobRunner runner) {
  if (options.jobs_dir.empty()) return absl::InvalidArgumentError("jobs_dir is empty");
  if (options.workers < 1) return absl::InvalidArgumentError("workers must be >= 1");
  if (options.max_queued < 1) return absl::InvalidArgumentError("max_queued must be >= 1");
  std::error_code error;
  std::filesystem::create_directories(options.jobs_dir, error);
  if (error) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot create jobs directory ", options.jobs_dir, ": ", error.message()));
  }
  std::unique_ptr<JobManager> manager(new JobManager(options, std::move(runner)));
  if (absl::Status status = manager->Load(); !status.ok()) return status;
  for (int i = 0; i < options.workers; ++i) {
    manager->workers_.emplace_back([m = manager.get(), i] {
      core::NameCurrentThread(absl::StrCat("rcnt-train-", i));
      m->WorkerLoop();
    });
  }
  return manager;
}

JobManager::~JobManager() { Shutdown(); }

absl::Status JobManager::Load() {
  std::vector<Job> unfinished;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(options_.jobs_dir, error)) {
    const std::string path = entry.path().string();
    if (!entry.is_regular_file() || entry.path().extension() != kJobFileSuffix) continue;
    absl::StatusOr<std::string> bytes = core::ReadFileBounded(path, kMaxJobFileBytes, "job file");
    Job job;
    if (!bytes.ok() || !job.ParseFromString(*bytes) || job.id().empty() ||
        entry.path().stem().string() != job.id()) {
      std::unique_lock lock(mutex_);
      problems_.push_back(absl::StrCat(
          path, ": ", bytes.ok() ? "not a valid job record" : bytes.status().ToString()));
      continue;
    }
    Record record;
    if (!IsTerminalJobState(job.state())) {
      // Running at a crash, or queued again by a shutdown after it had started: either way it
      // has run before, and its runner continues from what it kept.
      record.resume = job.state() == v1::JOB_STATE_RUNNING || job.has_started();
      job.set_state(v1::JOB_STATE_QUEUED);
      unfinished.push_back(job);
    }
    record.job = std::move(job);
    std::unique_lock lock(mutex_);
    records_.emplace(record.job.id(), std::move(record));
  }
  if (error) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot list jobs directory ", options_.jobs_dir, ": ", error.message()));
  }
  // FIFO across restarts: the oldest unfinished job runs first.
  std::sort(unfinished.begin(), unfinished.end(),
            [](const Job& a, const Job& b) { return CreatedNanos(a) < CreatedNanos(b); });
  std::unique_lock lock(mutex_);
  for (const Job& job : unfinished) queue_.push_back(job.id());
  return absl::OkStatus();
}

absl::Status JobManager::Persist(const Record& record) const {
  std::string bytes;
  if (!record.job.SerializeToString(&bytes)) {
    return absl::InternalError(absl::StrCat("cannot serialize job ", record.job.id()));
  }
  return core::WriteFileAtomically(
      absl::StrCat(options_.jobs_dir, "/", record.job.id(), kJobFileSuffix), bytes);
}

void JobManager::Touch(Record& record) {
  ++record.changes;
  changed_.notify_all();
}

absl::StatusOr<std::string> JobManager::Submit(const v1::TrainRequest& request) {
  Record record;
  record.job.set_id(NewJobId());
  record.job.set_model_name(request.model_name());
  record.job.set_state(v1::JOB_STATE_QUEUED);
  *record.job.mutable_created() = ToTimestamp(absl::Now());
  *record.job.mutable_request() = StoredRequest(request);
  const std::string id = record.job.id();
  {
    std::unique_lock lock(mutex_);
    if (shutting_down_) return absl::UnavailableError("the server is shutting down");
    if (static_cast<int64_t>(queue_.size()) >= options_.max_queued) {
      return absl::ResourceExhaustedError(
          absl::StrCat("the job queue is full (", options_.max_queued,
                       " jobs waiting; --max_queued_jobs); retry later or cancel a queued job"));
    }
    // Written before it is visible: a job that was acknowledged survives a crash.
    if (absl::Status status = Persist(record); !status.ok()) return status;
    records_.emplace(id, std::move(record));
    queue_.push_back(id);
  }
  changed_.notify_all();
  return id;
}

absl::StatusOr<Job> JobManager::Get(const std::string& id) const {
  std::unique_lock lock(mutex_);
  const auto it = records_.find(id);
  if (it == records_.end()) return absl::NotFoundError(absl::StrCat("no job ", id));
  return it->second.job;
}

std::vector<Job> JobManager::List(JobState state, const std::string& model_name, int limit) const {
  const int64_t cap =
      limit <= 0 ? options_.max_jobs_listed : std::min<int64_t>(limit, options_.max_jobs_listed);
  std::vector<Job> jobs;
  {
    std::unique_lock lock(mutex_);
    for (const auto& [id, record] : records_) {
      if (state != v1::JOB_STATE_UNSPECIFIED && record.job.state() != state) continue;
      if (!model_name.empty() && record.job.model_name() != model_name) continue;
      jobs.push_back(record.job);
    }
  }
  std::sort(jobs.begin(), jobs.end(), [](const Job& a, const Job& b) {
    return CreatedNanos(a) != CreatedNanos(b) ? CreatedNanos(a) > CreatedNanos(b) : a.id() > b.id();
  });
  if (static_cast<int64_t>(jobs.size()) > cap) jobs.resize(cap);
  return jobs;
}

absl::StatusOr<Job> JobManager::Cancel(const std::string& id) {
  std::unique_lock lock(mutex_);
  const auto it = records_.find(id);
  if (it == records_.end()) return absl::NotFoundError(absl::StrCat("no job ", id));
  Record& record = it->second;
  if (IsTerminalJobState(record.job.state())) {
    return absl::FailedPreconditionError(
        absl::StrCat("job ", id, " already ended (", v1::JobState_Name(record.job.state()), ")"));
  }
  record.cancel_requested = true;
  if (record.job.state() == v1::JOB_STATE_QUEUED) {
    queue_.erase(std::remove(queue_.begin(), queue_.end(), id), queue_.end());
    record.job.set_state(v1::JOB_STATE_CANCELLED);
    *record.job.mutable_finished() = ToTimestamp(absl::Now());
    Touch(record);
    if (absl::Status status = Persist(record); !status.ok()) {
      // The cancellation stands in memory; a restart would queue the job again.
      problems_.push_back(
          absl::StrCat("job ", id, ": cannot persist cancellation: ", status.ToString()));
    }
  } else {
    record.stop.request_stop();  // the worker records CANCELLED when the runner returns
  }
  return record.job;
}

absl::StatusOr<Job> JobManager::WaitForChange(const std::string& id, int64_t* seen,
                                              absl::Duration timeout) const {
  std::unique_lock lock(mutex_);
  changed_.wait_for(lock, absl::ToChronoNanoseconds(timeout), [&] {
    const auto it = records_.find(id);
    return it == records_.end() || it->second.changes > *seen;
  });
  const auto it = records_.find(id);
  if (it == records_.end()) return absl::NotFoundError(absl::StrCat("no job ", id));
  *seen = it->second.changes;
  return it->second.job;
}

void JobManager::Shutdown() {
  {
    std::unique_lock lock(mutex_);
    if (shutting_down_ && workers_.empty()) return;
    shutting_down_ = true;
    for (auto& [id, record] : records_) {
      if (record.job.state() == v1::JOB_STATE_RUNNING) record.stop.request_stop();
    }
  }
  changed_.notify_all();
  for (std::thread& worker : workers_) worker.join();
  workers_.clear();
}

std::vector<int64_t> JobManager::CountByState() const {
  std::vector<int64_t> counts(v1::JobState_ARRAYSIZE, 0);
  std::unique_lock lock(mutex_);
  for (const auto& [id, record] : records_) ++counts[record.job.state()];
  return counts;
}

int64_t JobManager::queue_depth() const {
  std::unique_lock lock(mutex_);
  return static_cast<int64_t>(queue_.size());
}

std::vector<std::string> JobManager::problems() const {
  std::unique_lock lock(mutex_);
  return problems_;
}

void JobManager::WorkerLoop() {
  while (true) {
    std::string id;
    {
      std::unique_lock lock(mutex_);
      changed_.wait(lock, [this] { return shutting_down_ || !queue_.empty(); });
      if (shutting_down_) return;
      id = queue_.front();
      queue_.pop_front();
    }
    RunJob(id);
  }
}

void JobManager::RunJob(const std::string& id) {
  v1::TrainRequest request;
  JobContext context;
  context.job_id = id;
  {
    std::unique_lock lock(mutex_);
    Record& record = records_.at(id);
    record.job.set_state(v1::JOB_STATE_RUNNING);
    *record.job.mutable_started() = ToTimestamp(absl::Now());
    record.stop = std::stop_source();
    context.stop = record.stop.get_token();
    context.resume = record.resume;
    request = record.job.request();
    Touch(record);
    if (absl::Status status = Persist(record); !status.ok()) {
      problems_.push_back(absl::StrCat("job ", id, ": ", status.ToString()));
    }
  }
  context.report = [this, id](const v1::JobProgress& progress, const v1::EpochLoss* epoch) {
    std::unique_lock lock(mutex_);
    Record& record = records_.at(id);
    *record.job.mutable_progress() = progress;
    if (epoch != nullptr) *record.job.add_loss_history() = *epoch;
    Touch(record);
    const absl::Time now = absl::Now();
    if (epoch != nullptr || now - record.last_persisted >= options_.progress_persist_interval) {
      record.last_persisted = now;
      (void)Persist(record);  // best effort: the final state is persisted below
    }
  };

  const absl::StatusOr<JobOutcome> outcome = runner_(request, context);

  std::unique_lock lock(mutex_);
  Record& record = records_.at(id);
  if (!outcome.ok() && outcome.status().code() == absl::StatusCode::kCancelled && shutting_down_ &&
      !record.cancel_requested) {
    // Interrupted by a shutdown, not cancelled by a user: queued again, to resume after restart.
    record.job.set_state(v1::JOB_STATE_QUEUED);
    record.resume = true;
  } else {
    if (outcome.ok()) {
      record.job.set_state(v1::JOB_STATE_SUCCEEDED);
      record.job.set_model_version(outcome->model_version);
      record.job.set_stop_reason(outcome->stop_reason);
    } else if (outcome.status().code() == absl::StatusCode::kCancelled) {
      record.job.set_state(v1::JOB_STATE_CANCELLED);
    } else {
      record.job.set_state(v1::JOB_STATE_FAILED);
      record.job.set_error(std::string(outcome.status().message()));
    }
    *record.job.mutable_finished() = ToTimestamp(absl::Now());
  }
  Touch(record);
  if (absl::Status status = Persist(record); !status.ok()) {
    problems_.push_back(absl::StrCat("job ", id, ": cannot persist its end: ", status.ToString()));
  }
}

}  // namespace recurrent::server
