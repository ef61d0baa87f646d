#include "server/step_batcher.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <optional>
#include <utility>

namespace recurrent::server {

absl::StatusOr<std::unique_ptr<StepBatcher>> StepBatcher::Create(
    std::shared_ptr<const LoadedModel> model, const StepBatcherOptions& options) {
  if (options.max_batch < 1) return absl::InvalidArgumentError("max_batch must be >= 1");
  if (model->model.spec.bidirectional) {
    return absl::FailedPreconditionError(
        "a bidirectional model needs whole sequences: use Predict, not StepPredict");
  }
  core::NetworkOptions network_options;
  network_options.num_threads = options.threads;
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
  std::lock_guard lock(mutex_);
  return stats_;
}

void StepBatcher::StepAsync(const float* input, float* state, float* output, StepDone done) {
  {
    std::lock_guard lock(mutex_);
    if (!stopping_) {
      queue_.push_back(Pending{input, state, output, std::move(done)});
      work_.notify_all();
      return;
    }
  }
  done(absl::UnavailableError("the model is being unloaded"));
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
  const core::ModelSpec& spec = model_->model.spec;
  const int64_t in = spec.input_size, out = spec.output_size;
  std::vector<float> inputs, outputs;
  std::vector<float*> states;
  std::vector<Pending> batch;
  while (true) {
    {
      std::unique_lock lock(mutex_);
      work_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (stopping_ && queue_.empty()) return;
      // Wait for more streams only while some active stream has not queued its step yet.
      const auto deadline =
          std::chrono::steady_clock::now() + absl::ToChronoMicroseconds(options_.max_wait);
      work_.wait_until(lock, deadline, [&] {
        return stopping_ || static_cast<int64_t>(queue_.size()) >= options_.max_batch ||
               static_cast<int64_t>(queue_.size()) >= active_streams_;
      });
      const size_t take = std::min<size_t>(queue_.size(), options_.max_batch);
      batch.assign(std::make_move_iterator(queue_.begin()),
                   std::make_move_iterator(queue_.begin() + take));
      queue_.erase(queue_.begin(), queue_.begin() + take);
    }
    const int64_t n = static_cast<int64_t>(batch.size());
    inputs.resize(n * in);
    outputs.resize(n * out);
    states.resize(n);
    for (int64_t i = 0; i < n; ++i) {
      std::memcpy(inputs.data() + i * in, batch[i].input, sizeof(float) * in);
      states[i] = batch[i].state;
    }
    const auto start = std::chrono::steady_clock::now();
    const absl::Status status = network_->Step(inputs.data(), n, states.data(), outputs.data());
    if (options_.on_batch) {
      options_.on_batch(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), n);
    }
    {
      std::lock_guard lock(mutex_);
      ++stats_.calls;
      stats_.steps += n;
    }
    // Outside the lock: a callback typically submits the stream's next step.
    for (int64_t i = 0; i < n; ++i) {
      if (status.ok()) std::memcpy(batch[i].output, outputs.data() + i * out, sizeof(float) * out);
      batch[i].done(status);
    }
    batch.clear();
  }
}

}  // namespace recurrent::server
