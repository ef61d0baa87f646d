// Networks used from several threads at once (one per thread, as the server does), created on
// one thread and run on others, while a third thread keeps building primitives of new shapes,
// must compute exactly what they compute alone. oneDNN's default library-managed scratchpad is
// shared by the whole process and documented as unsafe for this; the engine gives every
// primitive its own (core/rnn_layer.cc). Note: this test did not reproduce the crash that the
// shared scratchpad caused in bench/colocation_bench.cc (Predict while a stream steps and a job
// trains, all in one server: SIGSEGV in dnnl_primitive_execute); that benchmark did, every run,
// and runs clean with the fix. This test guards the results under concurrency.
#include <thread>
#include <vector>

#include "core/network.h"
#include "gtest/gtest.h"
#include "tests/testing/tensor_testing.h"

namespace recurrent::core {
namespace {

ModelSpec Lstm(int64_t hidden) {
  ModelSpec spec;
  spec.cell = CellType::kLstm;
  spec.input_size = 8;
  spec.hidden_size = hidden;
  spec.num_layers = 2;
  return spec;
}

TEST(ConcurrentNetworksTest, ForwardAndStepOnTwoThreadsEqualTheirSoloResults) {
  const ModelSpec spec = Lstm(256);
  const ParameterSet params = InitParameters(spec, 3);
  NetworkOptions options;
  options.num_threads = 1;
  const Tensor inputs = testing::RandomTensor({8, 30, 8}, 1.0, 4);
  const std::vector<float> step_inputs(4 * 8, 0.3f);

  // Solo references, computed on this thread.
  auto reference = Network::Create(spec, params, options);
  ASSERT_TRUE(reference.ok());
  ForwardResult expected_forward;
  ASSERT_TRUE((*reference)->Forward(inputs, nullptr, &expected_forward).ok());
  std::vector<float> expected_steps;
  {
    std::vector<std::vector<float>> states(4, std::vector<float>((*reference)->step_state_size()));
    std::vector<float*> pointers;
    for (auto& state : states) pointers.push_back(state.data());
    std::vector<float> outputs(4);
    for (int t = 0; t < 50; ++t) {
      ASSERT_TRUE((*reference)->Step(step_inputs.data(), 4, pointers.data(), outputs.data()).ok());
      expected_steps.insert(expected_steps.end(), outputs.begin(), outputs.end());
    }
  }

  // Created here, run on other threads, concurrently.
  auto forward_network = Network::Create(spec, params, options);
  auto step_network = Network::Create(spec, params, options);
  ASSERT_TRUE(forward_network.ok() && step_network.ok());
  int forward_mismatches = 0, step_mismatches = 0;
  std::thread forward_thread([&] {
    for (int i = 0; i < 40; ++i) {
      ForwardResult result;
      if (!(*forward_network)->Forward(inputs, nullptr, &result).ok() ||
          result.outputs.values != expected_forward.outputs.values) {
        ++forward_mismatches;
      }
    }
  });
  std::thread step_thread([&] {
    for (int round = 0; round < 8; ++round) {
      std::vector<std::vector<float>> states(
          4, std::vector<float>((*step_network)->step_state_size()));
      std::vector<float*> pointers;
      for (auto& state : states) pointers.push_back(state.data());
      std::vector<float> outputs(4), got;
      for (int t = 0; t < 50; ++t) {
        if (!(*step_network)->Step(step_inputs.data(), 4, pointers.data(), outputs.data()).ok()) {
          ++step_mismatches;
        }
        got.insert(got.end(), outputs.begin(), outputs.end());
      }
      if (got != expected_steps) ++step_mismatches;
    }
  });
  // A third thread keeps creating networks of new shapes and training them, as jobs beside
  // serving do: every new shape builds new primitives (with the process-wide scratchpad, each
  // bigger one reallocated it under the feet of the running ones).
  std::thread training_thread([&] {
    for (int64_t hidden = 16; hidden <= 320; hidden += 16) {
      const ModelSpec job = Lstm(hidden);
      auto training = Network::Create(job, InitParameters(job, 5), options);
      if (!training.ok()) return;
      const Tensor job_inputs = testing::RandomTensor({4, 10 + hidden / 8, 8}, 1.0, 6);
      Targets targets;
      targets.values = Tensor({4, 10 + hidden / 8, 1});
      TrainingResult result;
      (void)(*training)->ForwardBackward(job_inputs, targets, nullptr, &result);
    }
  });
  forward_thread.join();
  step_thread.join();
  training_thread.join();
  EXPECT_EQ(forward_mismatches, 0);
  EXPECT_EQ(step_mismatches, 0);
}

}  // namespace
}  // namespace recurrent::core
