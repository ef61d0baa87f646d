// StepBatcher (server/step_batcher.h): steps of concurrent streams share engine calls, a lone
// stream never waits, and each stream's results equal its solo run.
#include "server/step_batcher.h"

#include <condition_variable>
#include <functional>
#include <mutex>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "core/thread_name.h"
#include "gtest/gtest.h"

namespace recurrent::server {
namespace {

std::shared_ptr<const LoadedModel> SmallLstm() {
  auto loaded = std::make_shared<LoadedModel>();
  loaded->name = "m";
  loaded->version = 1;
  loaded->model.spec.cell = core::CellType::kLstm;
  loaded->model.spec.input_size = 3;
  loaded->model.spec.hidden_size = 16;
  loaded->model.spec.num_layers = 2;
  loaded->model.parameters = core::InitParameters(loaded->model.spec, 4);
  return loaded;
}

TEST(StepBatcherTest, ALoneStreamNeverWaitsForCompany) {
  StepBatcherOptions options;
  options.max_wait = absl::Seconds(1);  // would make 50 steps take 50 s if it waited
  auto batcher = StepBatcher::Create(SmallLstm(), options);
  ASSERT_TRUE(batcher.ok());
  (*batcher)->StreamOpened();
  std::vector<float> state((*batcher)->state_size(), 0.0f);
  float input[3] = {0.1f, 0.2f, 0.3f}, output[1];
  const absl::Time start = absl::Now();
  for (int t = 0; t < 50; ++t) ASSERT_TRUE((*batcher)->Step(input, state.data(), output).ok());
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(500));
  (*batcher)->StreamClosed();
}

// Run with inline_max_streams 16 (the stream whose step completes a batch runs it) and 1 (the
// worker runs every batch, draining what queues meanwhile).
class ConcurrentStreamsTest : public testing::TestWithParam<int64_t> {};

TEST_P(ConcurrentStreamsTest, ShareEngineCallsAndKeepTheirOwnResults) {
  StepBatcherOptions options;
  options.max_wait = absl::Milliseconds(20);
  options.inline_max_streams = GetParam();
  const std::shared_ptr<const LoadedModel> model = SmallLstm();
  auto batcher = StepBatcher::Create(model, options);
  ASSERT_TRUE(batcher.ok());
  constexpr int kStreams = 4, kSteps = 100;
  for (int s = 0; s < kStreams; ++s) (*batcher)->StreamOpened();
  std::vector<std::vector<float>> outputs(kStreams, std::vector<float>(kSteps));
  std::vector<std::thread> threads;
  for (int s = 0; s < kStreams; ++s) {
    threads.emplace_back([&, s] {
      std::vector<float> state((*batcher)->state_size(), 0.0f);
      for (int t = 0; t < kSteps; ++t) {
        const float input[3] = {0.01f * t, 0.1f * s, -0.02f * t};
        ASSERT_TRUE((*batcher)->Step(input, state.data(), &outputs[s][t]).ok());
      }
      (*batcher)->StreamClosed();
    });
  }
  for (std::thread& thread : threads) thread.join();
  const StepBatchStats stats = (*batcher)->stats();
  EXPECT_EQ(stats.steps, kStreams * kSteps);
  // Only the inline mode promises full batches: the worker runs whatever queued during its
  // previous batch, which under CPU contention is often less than all four streams.
  if (GetParam() > 1) EXPECT_LE(stats.calls, stats.steps * 3 / 4) << "steps were not batched";

  auto solo = core::Network::Create(model->model.spec, model->model.parameters);
  ASSERT_TRUE(solo.ok());
  for (int s = 0; s < kStreams; ++s) {
    std::vector<float> state((*solo)->step_state_size(), 0.0f);
    float* states[1] = {state.data()};
    for (int t = 0; t < kSteps; ++t) {
      const float input[3] = {0.01f * t, 0.1f * s, -0.02f * t};
      float expected = 0.0f;
      ASSERT_TRUE((*solo)->Step(input, 1, states, &expected).ok());
      EXPECT_NEAR(outputs[s][t], expected, 1e-5f * (1.0f + std::abs(expected))) << s << " " << t;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(InlineOrWorker, ConcurrentStreamsTest, testing::Values(16, 1));

TEST(StepBatcherTest, CallbacksThatChainTheNextStepNeitherRecurseNorReorder) {
  // A stream that submits each next step from the previous one's callback (as StepPredict does
  // for a multi-step message) runs on the submitting thread without recursing: 20000 chained
  // steps would overflow the stack otherwise. The outputs equal a solo run's, in order.
  const std::shared_ptr<const LoadedModel> model = SmallLstm();
  auto batcher = StepBatcher::Create(model, StepBatcherOptions());
  ASSERT_TRUE(batcher.ok());
  (*batcher)->StreamOpened();
  constexpr int kSteps = 20000;
  std::vector<float> state((*batcher)->state_size(), 0.0f), outputs(kSteps);
  std::vector<float> inputs(3 * kSteps);
  for (int i = 0; i < 3 * kSteps; ++i) inputs[i] = 0.001f * static_cast<float>(i % 97);
  std::mutex mutex;
  std::condition_variable finished;
  bool done = false;
  std::function<void(int)> submit = [&](int t) {
    (*batcher)->StepAsync(&inputs[3 * t], state.data(), &outputs[t], [&, t](absl::Status status) {
      ASSERT_TRUE(status.ok());
      if (t + 1 < kSteps) {
        submit(t + 1);
        return;
      }
      std::lock_guard lock(mutex);
      done = true;
      finished.notify_all();
    });
  };
  submit(0);
  {
    std::unique_lock lock(mutex);
    ASSERT_TRUE(finished.wait_for(lock, std::chrono::seconds(60), [&] { return done; }));
  }
  (*batcher)->StreamClosed();
  EXPECT_EQ((*batcher)->stats().steps, kSteps);

  auto solo = core::Network::Create(model->model.spec, model->model.parameters);
  ASSERT_TRUE(solo.ok());
  std::vector<float> solo_state((*solo)->step_state_size(), 0.0f);
  float* states[1] = {solo_state.data()};
  // The solo run steps through every input; every 997th output is compared.
  for (int t = 0; t < kSteps; t += 997) {
    for (int u = (t == 0 ? 0 : t - 996); u <= t; ++u) {
      float expected = 0.0f;
      ASSERT_TRUE((*solo)->Step(&inputs[3 * u], 1, states, &expected).ok());
      if (u == t) EXPECT_EQ(outputs[t], expected) << t;
    }
  }
}

struct CallbackThread {
  std::thread::id id;
  std::string name;  // as the kernel shows it (top -H)
};

// Submits one step for each of two open streams from this thread and returns the threads their
// callbacks ran on. The second submission completes the batch.
std::vector<CallbackThread> CallbackThreadsOfOneBatch(int64_t inline_max_streams) {
  StepBatcherOptions options;
  options.max_wait = absl::Seconds(20);  // the batch must start because it is ready, not late
  options.inline_max_streams = inline_max_streams;
  auto batcher = StepBatcher::Create(SmallLstm(), options);
  EXPECT_TRUE(batcher.ok());
  (*batcher)->StreamOpened();
  (*batcher)->StreamOpened();
  std::vector<std::vector<float>> states(2, std::vector<float>((*batcher)->state_size(), 0.0f));
  const float input[3] = {0.1f, 0.2f, 0.3f};
  float outputs[2];
  std::mutex mutex;
  std::condition_variable finished;
  std::vector<CallbackThread> threads;
  for (int s = 0; s < 2; ++s) {
    (*batcher)->StepAsync(input, states[s].data(), &outputs[s], [&](absl::Status status) {
      EXPECT_TRUE(status.ok());
      std::lock_guard lock(mutex);
      threads.push_back({std::this_thread::get_id(), core::CurrentThreadName()});
      finished.notify_all();
    });
  }
  std::unique_lock lock(mutex);
  EXPECT_TRUE(
      finished.wait_for(lock, std::chrono::seconds(10), [&] { return threads.size() == 2; }));
  (*batcher)->StreamClosed();
  (*batcher)->StreamClosed();
  return threads;
}

TEST(StepBatcherTest, AReadyBatchRunsOnTheSubmittingThreadOnlyUpToTheInlineStreamLimit) {
  const std::thread::id here = std::this_thread::get_id();
  // Two open streams, inline only for one: the worker computes, the submitter moves on.
  for (const CallbackThread& ran_on : CallbackThreadsOfOneBatch(1)) {
    EXPECT_NE(ran_on.id, here);
    EXPECT_EQ(ran_on.name, "rcnt-step-batch");  // what operators see in top -H and perf
  }
  // Inline up to two: the submission that completes the batch runs it.
  for (const CallbackThread& ran_on : CallbackThreadsOfOneBatch(2)) EXPECT_EQ(ran_on.id, here);
}

TEST(StepBatcherTest, StepsQueuedDuringABatchRunWithoutWaitingForTheOtherStreams) {
  // Continuous batching on the worker: stream A's next step, queued while the batch of A and B
  // ran, runs as soon as that batch ends, although B (still open) has not sent its next step and
  // the wait for it would last 20 s.
  StepBatcherOptions options;
  options.max_wait = absl::Seconds(20);
  options.inline_max_streams = 1;  // two streams: the worker runs the batches
  auto batcher = StepBatcher::Create(SmallLstm(), options);
  ASSERT_TRUE(batcher.ok());
  (*batcher)->StreamOpened();
  (*batcher)->StreamOpened();
  std::vector<float> state_a((*batcher)->state_size(), 0.0f), state_b(state_a);
  const float input[3] = {0.1f, 0.2f, 0.3f};
  float output_a[2], output_b;
  std::mutex mutex;
  std::condition_variable finished;
  bool a_done = false, b_done = false;
  (*batcher)->StepAsync(input, state_a.data(), &output_a[0], [&](absl::Status status) {
    ASSERT_TRUE(status.ok());
    (*batcher)->StepAsync(input, state_a.data(), &output_a[1], [&](absl::Status second) {
      ASSERT_TRUE(second.ok());
      std::lock_guard lock(mutex);
      a_done = true;
      finished.notify_all();
    });
  });
  (*batcher)->StepAsync(input, state_b.data(), &output_b, [&](absl::Status status) {
    ASSERT_TRUE(status.ok());
    std::lock_guard lock(mutex);
    b_done = true;
    finished.notify_all();
  });
  const absl::Time start = absl::Now();
  {
    std::unique_lock lock(mutex);
    ASSERT_TRUE(
        finished.wait_for(lock, std::chrono::seconds(30), [&] { return a_done && b_done; }));
  }
  EXPECT_LT(absl::Now() - start, absl::Seconds(10)) << "A's second step waited for B";
  EXPECT_EQ((*batcher)->stats().steps, 3);
  (*batcher)->StreamClosed();
  (*batcher)->StreamClosed();
}

// The sizes of the engine calls that ran 8 streams' steps, submitted at once from this thread,
// on the worker path (inline only up to 1 stream) with `cohorts`.
std::vector<int64_t> BatchSizesOfEightQueuedSteps(int64_t cohorts) {
  std::mutex mutex;
  std::vector<int64_t> sizes;
  StepBatcherOptions options;
  options.max_wait = absl::Seconds(20);  // a batch starts because it is ready, never late
  options.inline_max_streams = 1;
  options.cohorts = cohorts;
  options.on_batch = [&](double, int64_t batch) {
    std::lock_guard lock(mutex);
    sizes.push_back(batch);
  };
  auto batcher = StepBatcher::Create(SmallLstm(), options);
  EXPECT_TRUE(batcher.ok());
  constexpr int kStreams = 8;
  for (int s = 0; s < kStreams; ++s) (*batcher)->StreamOpened();
  std::vector<std::vector<float>> states(kStreams,
                                         std::vector<float>((*batcher)->state_size(), 0.0f));
  const float input[3] = {0.1f, 0.2f, 0.3f};
  std::vector<float> outputs(kStreams);
  std::condition_variable finished;
  int done = 0;
  for (int s = 0; s < kStreams; ++s) {
    (*batcher)->StepAsync(input, states[s].data(), &outputs[s], [&](absl::Status status) {
      EXPECT_TRUE(status.ok());
      std::lock_guard lock(mutex);
      ++done;
      finished.notify_all();
    });
  }
  std::unique_lock lock(mutex);
  EXPECT_TRUE(finished.wait_for(lock, std::chrono::seconds(30), [&] { return done == kStreams; }));
  for (int s = 0; s < kStreams; ++s) (*batcher)->StreamClosed();
  return sizes;
}

TEST(StepBatcherTest, WorkerBatchesTakeAtMostOneCohortOfTheStreams) {
  // 8 streams in 4 cohorts: batches of at most 2, every step run once.
  const std::vector<int64_t> cohorts = BatchSizesOfEightQueuedSteps(4);
  EXPECT_EQ(std::accumulate(cohorts.begin(), cohorts.end(), int64_t{0}), 8);
  for (const int64_t size : cohorts) EXPECT_LE(size, 2);
  // Without the cap the batch waits for every stream: one call of all 8.
  EXPECT_EQ(BatchSizesOfEightQueuedSteps(1), std::vector<int64_t>({8}));
}

TEST(StepBatcherTest, RefusesAZeroCohortCount) {
  StepBatcherOptions options;
  options.cohorts = 0;
  EXPECT_EQ(StepBatcher::Create(SmallLstm(), options).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// The engine's answers for one stream stepped alone in `precision`.
std::vector<float> SoloSteps(const LoadedModel& model, core::Precision precision, int steps) {
  core::NetworkOptions options;
  options.precision = precision;
  auto network = core::Network::Create(model.model.spec, model.model.parameters, options);
  EXPECT_TRUE(network.ok()) << network.status();
  std::vector<float> state((*network)->step_state_size(), 0.0f), outputs(steps);
  float* states[1] = {state.data()};
  for (int t = 0; t < steps; ++t) {
    const float input[3] = {0.1f * t, -0.2f, 0.3f};
    EXPECT_TRUE((*network)->Step(input, 1, states, &outputs[t]).ok());
  }
  return outputs;
}

TEST(StepBatcherTest, Bfloat16StepsEqualTheBfloat16EngineAndStayNearFloat32) {
  if (!core::CheckPrecisionSupported(core::Precision::kBfloat16).ok()) {
    GTEST_SKIP() << "this CPU has no bfloat16 support";
  }
  const std::shared_ptr<const LoadedModel> model = SmallLstm();
  StepBatcherOptions options;
  options.precision = core::Precision::kBfloat16;
  auto batcher = StepBatcher::Create(model, options);
  ASSERT_TRUE(batcher.ok());
  (*batcher)->StreamOpened();
  constexpr int kSteps = 30;
  std::vector<float> state((*batcher)->state_size(), 0.0f), outputs(kSteps);
  for (int t = 0; t < kSteps; ++t) {
    const float input[3] = {0.1f * t, -0.2f, 0.3f};
    ASSERT_TRUE((*batcher)->Step(input, state.data(), &outputs[t]).ok());
  }
  (*batcher)->StreamClosed();
  EXPECT_EQ(outputs, SoloSteps(*model, core::Precision::kBfloat16, kSteps));
  const std::vector<float> float32 = SoloSteps(*model, core::Precision::kFloat32, kSteps);
  EXPECT_NE(outputs, float32) << "the batcher did not compute in bfloat16";
  for (int t = 0; t < kSteps; ++t) EXPECT_NEAR(outputs[t], float32[t], 2e-2) << t;
}

TEST(StepBatcherTest, RefusesBidirectionalModels) {
  auto loaded = std::make_shared<LoadedModel>(*SmallLstm());
  loaded->model.spec.bidirectional = true;
  loaded->model.parameters = core::InitParameters(loaded->model.spec, 1);
  EXPECT_EQ(StepBatcher::Create(loaded, StepBatcherOptions()).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace recurrent::server
