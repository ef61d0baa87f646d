// The engine's results must not depend on how many threads computed them: the thread tuner
// changes the count at run time, and training must stay reproducible.
#include <cmath>
#include <vector>

#include "core/network.h"
#include "gtest/gtest.h"

namespace recurrent::core {
namespace {

struct Results {
  ForwardResult forward;
  TrainingResult training;
  std::vector<float> step_outputs;
  std::vector<std::vector<float>> step_states;
};

Results RunOnThreads(const ModelSpec& spec, int threads) {
  NetworkOptions options;
  options.num_threads = threads;
  auto network = Network::Create(spec, InitParameters(spec, 5), options);
  EXPECT_TRUE(network.ok()) << network.status();
  const int64_t n = 24, t = 30;
  Tensor x({n, t, spec.input_size});
  for (int64_t i = 0; i < x.size(); ++i) x.values[i] = std::cos(0.11f * static_cast<float>(i));
  Results results;
  EXPECT_TRUE((*network)->Forward(x, nullptr, &results.forward).ok());
  Targets targets;
  targets.values = Tensor(results.forward.outputs.shape);
  for (int64_t i = 0; i < targets.values.size(); ++i) targets.values.values[i] = 0.1f * (i % 7);
  EXPECT_TRUE((*network)->ForwardBackward(x, targets, nullptr, &results.training).ok());
  if (!spec.bidirectional) {
    results.step_states.assign(n, std::vector<float>((*network)->step_state_size(), 0.0f));
    std::vector<float*> states;
    for (auto& s : results.step_states) states.push_back(s.data());
    std::vector<float> inputs(n * spec.input_size, 0.5f);
    results.step_outputs.resize(n * spec.output_size);
    for (int step = 0; step < 3; ++step) {
      EXPECT_TRUE(
          (*network)->Step(inputs.data(), n, states.data(), results.step_outputs.data()).ok());
    }
  }
  return results;
}

TEST(ThreadCountTest, OneAndTwoThreadsGiveBitIdenticalResults) {
  for (const CellType cell : {CellType::kRnnTanh, CellType::kLstm, CellType::kGru}) {
    for (const bool bidirectional : {false, true}) {
      ModelSpec spec;
      spec.cell = cell;
      spec.input_size = 24;
      spec.hidden_size = 96;
      spec.num_layers = 2;
      spec.bidirectional = bidirectional;
      spec.output_size = 3;
      SCOPED_TRACE(DescribeSpec(spec));
      const Results one = RunOnThreads(spec, 1);
      const Results two = RunOnThreads(spec, 2);
      EXPECT_EQ(one.forward.outputs.values, two.forward.outputs.values);
      EXPECT_EQ(one.forward.final_state.h.values, two.forward.final_state.h.values);
      EXPECT_EQ(one.training.loss, two.training.loss);
      for (const auto& [name, gradient] : one.training.gradients) {
        EXPECT_EQ(gradient.values, two.training.gradients.at(name).values) << name;
      }
      EXPECT_EQ(one.training.initial_state_gradients.h.values,
                two.training.initial_state_gradients.h.values);
      EXPECT_EQ(one.step_outputs, two.step_outputs);
      EXPECT_EQ(one.step_states, two.step_states);
    }
  }
}

}  // namespace
}  // namespace recurrent::core
