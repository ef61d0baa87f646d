#include "server/step_batcher.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <optional>
#include <utility>

#include "core/thread_name.h"

namespace recurrent::server {

absl::StatusOr<std::unique_ptr<StepBatcher>> StepBatcher::Create(
    std::shared_ptr<const LoadedModel> model, const StepBatcherOptions& options) {
  if (options.max_batch < 1) return absl::InvalidArgumentError("max_batch must be >= 1");
  if (options.cohorts < 1) return absl::InvalidArgumentError("cohorts must be >= 1");
  if (model->model.spec.bidirectional) {
    return absl::FailedPreconditionError(
        "a bidirectional model needs whole sequences: use Predict, not StepPredict");
  }
  core::NetworkOptions network_options;
  network_options.num_threads = options.threads;
  network_options.precision = options.precision;
  absl::StatusOr<std::unique_ptr<core::Network>> network =
      core::Network::Create(model->model.spec, model->model.parameters, network_options);
  if (!network.ok()) return network.status();
  return std::unique_ptr<StepBatcher>(
      new StepBatcher(std::move(model), *std::move(network), options));
}

StepBatcher::StepBatcher(std::shared_ptr<const LoadedModel> model,
                         std::unique_ptr<core::Network> network, const StepBatcherOptions& options)
    : model_(std::move(model)),
      network_(std::move(network)),
      options_(options),
      state_size_(network_->step_state_size()),
      worker_([this] { WorkerLoop(); }) {}

StepBatcher::~StepBatcher() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  work_.notify_all();
  worker_.join();
}

void StepBatcher::StreamOpened() {
  std::lock_guard lock(mutex_);
  ++active_streams_;
}

void StepBatcher::StreamClosed() {
  {
    std::lock_guard lock(mutex_);
    --active_streams_;
  }
  work_.notify_all();  // the worker may be waiting for a stream that just left
}

StepBatchStats StepBatcher::stats() const {
  return StepBatchStats{calls_.load(std::memory_order_relaxed),
                        steps_.load(std::memory_order_relaxed)};
}

namespace {
// The batcher whose batch this thread is running (callbacks included), so that a callback that
// submits its stream's next step queues it instead of recursing into another run.
thread_local const StepBatcher* running_here = nullptr;
}  // namespace

int64_t StepBatcher::BatchCapLocked() const {
  if (active_streams_ <= options_.inline_max_streams) return options_.max_batch;
  const int64_t cohort = (active_streams_ + options_.cohorts - 1) / options_.cohorts;
  return std::min(options_.max_batch, cohort);
}

bool StepBatcher::BatchReadyLocked() const {
  const int64_t queued = static_cast<int64_t>(queue_.size());
  return queued > 0 && (stopping_ || queued >= BatchCapLocked() || queued >= active_streams_);
}

void StepBatcher::StepAsync(const float* input, float* state, float* output, StepDone done) {
  std::unique_lock lock(mutex_);
  if (stopping_) {
    lock.unlock();
    done(absl::UnavailableError("the model is being unloaded"));
    return;
  }
  queue_.push_back(Pending{input, state, output, std::move(done)});
  if (running_ || running_here == this || !BatchReadyLocked() ||
      active_streams_ > options_.inline_max_streams) {
    // Someone runs a batch now (and takes this step after it), or the worker runs it: wake the
    // worker only when it has something new to do, to start a batch's wait (the first step
    // queued) or to run a batch that became ready. (Waking it for every step cost a context
    // switch per step.) A running thread needs no wake-up: it drains the queue or wakes the
    // worker when it stops.
    if (!running_ && (queue_.size() == 1 || BatchReadyLocked())) work_.notify_all();
    return;
  }
  // This step completes a batch: run it on this thread, without a hop to the worker.
  RunBatchesLocked(lock, /*drain=*/false);
}

void StepBatcher::RunBatchesLocked(std::unique_lock<std::mutex>& lock, bool drain) {
  running_ = true;
  running_here = this;
  do {
    const size_t take = std::min<size_t>(queue_.size(), BatchCapLocked());
    batch_.assign(std::make_move_iterator(queue_.begin()),
                  std::make_move_iterator(queue_.begin() + take));
    queue_.erase(queue_.begin(), queue_.begin() + take);
    lock.unlock();
    RunBatch();
    lock.lock();
  } while (drain ? !queue_.empty() : BatchReadyLocked());
  running_here = nullptr;
  running_ = false;
  // A partial batch left: the worker waits for the rest. (Only then: waking the idle worker
  // after every batch costs two context switches per step.)
  if (!queue_.empty() || stopping_) work_.notify_all();
}

absl::Status StepBatcher::Step(const float* input, float* state, float* output) {
  std::mutex mutex;
  std::condition_variable finished;
  std::optional<absl::Status> result;
  StepAsync(input, state, output, [&](absl::Status status) {
    std::lock_guard lock(mutex);
    result = std::move(status);
    finished.notify_all();
  });
  std::unique_lock lock(mutex);
  finished.wait(lock, [&] { return result.has_value(); });
  return *result;
}

void StepBatcher::WorkerLoop() {
  core::NameCurrentThread("rcnt-step-batch");
  std::unique_lock lock(mutex_);
  while (true) {
    work_.wait(lock, [&] { return !running_ && (stopping_ || !queue_.empty()); });
    if (stopping_ && queue_.empty()) return;
    // Wait for more streams only while some active stream has not queued its step yet, at most
    // max_wait; a step that completes the batch meanwhile runs it on its own thread. (Tried: a
    // wait that ends on a gap in arrivals instead; no better on this machine.)
    const auto deadline =
        std::chrono::steady_clock::now() + absl::ToChronoMicroseconds(options_.max_wait);
    work_.wait_until(lock, deadline,
                     [&] { return running_ || queue_.empty() || BatchReadyLocked(); });
    if (running_ || queue_.empty()) continue;
    // Ready, or the wait ran out: run what is queued, then what queues up meanwhile.
    RunBatchesLocked(lock, /*drain=*/true);
  }
}

void StepBatcher::RunBatch() {
  const core::ModelSpec& spec = model_->model.spec;
  const int64_t in = spec.input_size, out = spec.output_size;
  const int64_t n = static_cast<int64_t>(batch_.size());
  inputs_.resize(n * in);
  outputs_.resize(n * out);
  states_.resize(n);
  for (int64_t i = 0; i < n; ++i) {
    std::memcpy(inputs_.data() + i * in, batch_[i].input, sizeof(float) * in);
    states_[i] = batch_[i].state;
  }
  const auto start = std::chrono::steady_clock::now();
  const absl::Status status = network_->Step(inputs_.data(), n, states_.data(), outputs_.data());
  if (options_.on_batch) {
    options_.on_batch(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), n);
  }
  calls_.fetch_add(1, std::memory_order_relaxed);
  steps_.fetch_add(n, std::memory_order_relaxed);
  // The callbacks typically submit their stream's next step; running_here makes that a queue
  // push, run by the loop that called this.
  for (int64_t i = 0; i < n; ++i) {
    if (status.ok()) std::memcpy(batch_[i].output, outputs_.data() + i * out, sizeof(float) * out);
    batch_[i].done(status);
  }
  batch_.clear();
}

}  // namespace recurrent::server
