// Batches the timesteps of concurrent StepPredict streams on one model version into single
// engine Step() calls.
//
// A stream calls StepAsync() (or the blocking Step()) with its input, its state block and room for
// its output; its step runs in a batch of up to `max_batch` waiting steps, at most one per stream
// (a stream submits its next step only after the previous one's callback, so its steps can never
// be reordered), and then its callback runs. Adaptive wait: when the steps queued are all the
// active streams' (open sessions), the batch is ready; otherwise it waits up to `max_wait` for
// more streams to join. A lone stream therefore never waits.
//
// Who runs a batch:
// - With at most `inline_max_streams` active streams (default 16), the thread whose step makes
//   the batch ready runs it itself, callbacks included: no hop to another thread, which costs a
//   wake-up of tens of microseconds on a busy machine. A lone stream's step never changes
//   threads; 16 streams ran as fast or faster this way than with a worker (22.8-26.8k against
//   22.4-22.9k steps/s).
// - With more, one worker thread per batcher runs every batch, so that the threads that read and
//   write the streams' messages go on doing so while it computes. When a batch ends, the worker
//   at once runs the steps queued meanwhile (continuous batching) instead of waiting for the
//   remaining streams: the streams settle into cohorts, one computing while the others'
//   messages travel. Waiting for all of them (one batch of every stream, then their I/O, then
//   the next batch) kept the server on about one of the VM's two cores; 64 streams ran
//   1.17-1.25x faster this way in alternating runs (docs/benchmarks.md).
//   A batch there takes at most 1/`cohorts` of the active streams: a drain that took every
//   queued step let the cohorts merge back into one lock-step group; capped at a quarter, 64
//   streams ran 1.2-1.3x faster in alternating runs.
// - The worker also runs the batches whose wait ran out.
// A callback that submits its stream's next step only queues it; the running thread takes it
// next. One batch runs at a time (the engine's Network is not thread-safe).
//
// Thread-safe. The batcher holds the model (shared_ptr), so the version stays loaded while any
// stream uses it.
#ifndef RECURRENT_SERVER_STEP_BATCHER_H_
#define RECURRENT_SERVER_STEP_BATCHER_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "core/network.h"
#include "server/model_registry.h"

namespace recurrent::server {

struct StepBatcherOptions {
  int64_t max_batch = 64;
  absl::Duration max_wait = absl::Microseconds(200);
  // A ready batch runs on the submitting thread only while at most this many streams are active
  // (see above); otherwise on the worker.
  int64_t inline_max_streams = 16;
  // Above inline_max_streams, a batch takes at most 1/cohorts of the active streams (and at most
  // max_batch), so that the streams keep moving in several groups, one computing while the
  // others' messages travel; a batch that took every queued step let them merge into one
  // lock-step group (see the class comment). 1: no such cap.
  int64_t cohorts = 4;
  int threads = 1;  // OpenMP threads of the engine's Step calls
  // The engine's arithmetic (core::Precision); bfloat16 is opt-in, ~2x faster in batches and
  // ~4e-4 relative off float32 (docs/service.md).
  core::Precision precision = core::Precision::kFloat32;
  // Called after every engine Step call with its wall time (seconds) and batch size; for metrics.
  std::function<void(double seconds, int64_t batch)> on_batch;
};

struct StepBatchStats {
  int64_t calls = 0;  // engine Step calls
  int64_t steps = 0;  // stream steps they ran
};

class StepBatcher {
 public:
  static absl::StatusOr<std::unique_ptr<StepBatcher>> Create(
      std::shared_ptr<const LoadedModel> model, const StepBatcherOptions& options);
  ~StepBatcher();
  StepBatcher(const StepBatcher&) = delete;
  StepBatcher& operator=(const StepBatcher&) = delete;

  // Streams announce themselves so the worker knows how many could join a batch.
  void StreamOpened();
  void StreamClosed();

  // One timestep of one stream: input [input_size] (normalized), state [state_size()] updated in
  // place, output [output_size]. The buffers must stay valid until `done` runs; `done` runs on the
  // worker thread (or inline with UNAVAILABLE once the batcher is stopping) and must not block.
  using StepDone = std::function<void(absl::Status)>;
  void StepAsync(const float* input, float* state, float* output, StepDone done);
  // The same, blocking until the step ran.
  absl::Status Step(const float* input, float* state, float* output);

  int64_t state_size() const { return state_size_; }
  const LoadedModel& model() const { return *model_; }
  StepBatchStats stats() const;

 private:
  struct Pending {
    const float* input;
    float* state;
    float* output;
    StepDone done;
  };

  StepBatcher(std::shared_ptr<const LoadedModel> model, std::unique_ptr<core::Network> network,
              const StepBatcherOptions& options);
  void WorkerLoop();
  // The most steps one batch takes now: max_batch, or on the worker path the cohort cap.
  // Needs mutex_.
  int64_t BatchCapLocked() const;
  // Whether the queue holds a batch that should run now. Needs mutex_.
  bool BatchReadyLocked() const;
  // Runs the queued steps on this thread as a batch (the queue must not be empty; the first batch
  // may be partial), then more while a batch is ready, or while any step is queued if `drain`;
  // `lock` holds mutex_ on entry and exit.
  void RunBatchesLocked(std::unique_lock<std::mutex>& lock, bool drain);
  // Runs batch_ through the engine and calls its callbacks; only while running_.
  void RunBatch();

  const std::shared_ptr<const LoadedModel> model_;
  const std::unique_ptr<core::Network> network_;  // used by the worker thread only
  const StepBatcherOptions options_;
  const int64_t state_size_;

  mutable std::mutex mutex_;
  std::condition_variable work_;  // a step was queued, a run ended, or stopping_
  std::deque<Pending> queue_;     // guarded by mutex_
  int64_t active_streams_ = 0;    // guarded by mutex_
  bool stopping_ = false;         // guarded by mutex_
  bool running_ = false;          // a thread runs batches; guarded by mutex_
  // Used only by the thread that set running_.
  std::vector<Pending> batch_;
  std::vector<float> inputs_, outputs_;
  std::vector<float*> states_;
  std::atomic<int64_t> calls_{0}, steps_{0};
  std::thread worker_;
};

}  // namespace recurrent::server

#endif  // RECURRENT_SERVER_STEP_BATCHER_H_
