// The packed small-batch step kernel (core/small_batch_step.h) against the independent
// double-precision reference (tests/testing/reference_rnn.h), and the properties Network::Step
// promises on top of it: a stream's result independent of its batch and of the thread count,
// weights refreshed after SetParameters, oneDNN's path for larger batches.
//
// Tolerance as in engine_reference_test.cc: norm-wise, relative 1e-5.
#include "core/small_batch_step.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/model_spec.h"
#include "core/network.h"
#include "core/parameters.h"
#include "core/tensor.h"
#include "gtest/gtest.h"
#include "tests/testing/reference_rnn.h"
#include "tests/testing/tensor_testing.h"

namespace recurrent::testing {
namespace {

using core::CellType;
using core::ModelSpec;
using core::Network;
using core::SmallBatchStep;

constexpr double kRelTol = 1e-5;
constexpr double kAbsTol = 1e-9;

ModelSpec SpecFor(CellType cell, int64_t layers, int64_t input_size, int64_t hidden_size) {
  ModelSpec spec;
  spec.cell = cell;
  spec.num_layers = layers;
  spec.input_size = input_size;
  spec.hidden_size = hidden_size;
  spec.output_size = 2;
  return spec;
}

// N streams' state blocks (h of every layer, then c) from the reference's [L, N, H] layout.
std::vector<std::vector<float>> StateBlocks(const ModelSpec& spec, const core::RecurrentState& s,
                                            int64_t streams) {
  const int64_t L = spec.num_layers, H = spec.hidden_size;
  std::vector<std::vector<float>> blocks(streams);
  for (int64_t n = 0; n < streams; ++n) {
    for (int64_t l = 0; l < L; ++l) {
      const float* h = s.h.data() + (l * streams + n) * H;
      blocks[n].insert(blocks[n].end(), h, h + H);
    }
    if (!spec.has_cell_state()) continue;
    for (int64_t l = 0; l < L; ++l) {
      const float* c = s.c.data() + (l * streams + n) * H;
      blocks[n].insert(blocks[n].end(), c, c + H);
    }
  }
  return blocks;
}

// Back to [L, N, H] tensors.
core::RecurrentState StateTensors(const ModelSpec& spec,
                                  const std::vector<std::vector<float>>& blocks) {
  const int64_t L = spec.num_layers, H = spec.hidden_size;
  const auto N = static_cast<int64_t>(blocks.size());
  core::RecurrentState state;
  state.h = core::Tensor({L, N, H});
  if (spec.has_cell_state()) state.c = core::Tensor({L, N, H});
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t l = 0; l < L; ++l) {
      for (int64_t j = 0; j < H; ++j) {
        state.h.values[(l * N + n) * H + j] = blocks[n][l * H + j];
        if (spec.has_cell_state()) state.c.values[(l * N + n) * H + j] = blocks[n][(L + l) * H + j];
      }
    }
  }
  return state;
}

std::vector<float*> Pointers(std::vector<std::vector<float>>& blocks) {
  std::vector<float*> pointers;
  for (auto& block : blocks) pointers.push_back(block.data());
  return pointers;
}

// One timestep [N, I] of a [N, T, I] sequence tensor.
std::vector<float> StepInputs(const core::Tensor& inputs, int64_t t) {
  const int64_t N = inputs.shape[0], T = inputs.shape[1], I = inputs.shape[2];
  std::vector<float> step(N * I);
  for (int64_t n = 0; n < N; ++n) {
    std::copy_n(inputs.data() + (n * T + t) * I, I, step.data() + n * I);
  }
  return step;
}

struct KernelCase {
  CellType cell;
  int64_t layers;
  int64_t input_size;
  int64_t hidden_size;  // 1, a multiple of 16, and sizes that leave a partial last block
};

std::string Describe(const KernelCase& c) {
  return absl::StrCat(core::CellTypeName(c.cell), "_L", c.layers, "_I", c.input_size, "_H",
                      c.hidden_size);
}

class SmallBatchStepTest : public ::testing::TestWithParam<KernelCase> {
 protected:
  ModelSpec spec() const {
    return SpecFor(GetParam().cell, GetParam().layers, GetParam().input_size,
                   GetParam().hidden_size);
  }
};

// Every batch size the kernel takes, T = 5 steps from a random initial state (so the previous h
// and c of every unit matter), against the reference run over the same 5 steps.
TEST_P(SmallBatchStepTest, StepsMatchTheReferenceForEveryBatchSize) {
  const ModelSpec spec = this->spec();
  std::unique_ptr<SmallBatchStep> kernel = SmallBatchStep::Create(spec);
  if (kernel == nullptr) GTEST_SKIP() << "no AVX-512F on this CPU";
  const core::ParameterSet params = core::InitParameters(spec, 11);
  kernel->LoadWeights(params);
  constexpr int64_t kSteps = 5;
  for (int64_t batch = 1; batch <= SmallBatchStep::kMaxStreams; ++batch) {
    SCOPED_TRACE(absl::StrCat("batch ", batch));
    const int64_t L = spec.num_layers, H = spec.hidden_size;
    const core::Tensor inputs = RandomTensor({batch, kSteps, spec.input_size}, 1.0, 20 + batch);
    core::RecurrentState initial;
    initial.h = RandomTensor({L, batch, H}, 0.8, 40 + batch);
    if (spec.has_cell_state()) initial.c = RandomTensor({L, batch, H}, 1.5, 60 + batch);
    std::vector<std::vector<float>> blocks = StateBlocks(spec, initial, batch);
    const std::vector<float*> pointers = Pointers(blocks);
    core::Tensor top({batch, kSteps, H});
    for (int64_t t = 0; t < kSteps; ++t) {
      kernel->Step(StepInputs(inputs, t).data(), batch, pointers.data());
      for (int64_t n = 0; n < batch; ++n) {
        std::copy_n(kernel->top_hidden() + n * kernel->top_stride(), H,
                    top.data() + (n * kSteps + t) * H);
      }
    }
    const DoubleState reference_initial = ToDouble(initial);
    absl::StatusOr<ReferenceResult> reference =
        ReferenceForward(spec, ToDouble(params), ToDouble(inputs), &reference_initial);
    ASSERT_TRUE(reference.ok()) << reference.status();
    EXPECT_TRUE(TensorNear("top h at every step", top, reference->hidden, kRelTol, kAbsTol));
    const core::RecurrentState final_state = StateTensors(spec, blocks);
    EXPECT_TRUE(TensorNear("h_n", final_state.h, reference->final_state.h, kRelTol, kAbsTol));
    if (spec.has_cell_state()) {
      EXPECT_TRUE(TensorNear("c_n", final_state.c, reference->final_state.c, kRelTol, kAbsTol));
    }
  }
}

// Pre-activations of +-100 and more drive every sigmoid and tanh into saturation (and relu far
// out): the vectorized exp must clamp, not overflow into inf/NaN, and still agree with the
// reference. The tolerance is looser here because the problem is ill-conditioned in float32: a
// pre-activation is a sum of terms in the hundreds, rounded to ~1e-5 of them, and units that are
// not quite saturated pass that on (oneDNN's path is off by 2e-5 relative on these cases, this
// kernel by up to 4e-5). A clamping or sign bug is off by O(1).
constexpr double kSaturatedRelTol = 1e-3;
TEST_P(SmallBatchStepTest, SaturatedUnitsStayFiniteAndMatchTheReference) {
  const ModelSpec spec = this->spec();
  std::unique_ptr<SmallBatchStep> kernel = SmallBatchStep::Create(spec);
  if (kernel == nullptr) GTEST_SKIP() << "no AVX-512F on this CPU";
  core::ParameterSet params = core::InitParameters(spec, 12);
  for (auto& [name, tensor] : params) {
    for (float& value : tensor.values) value *= 40.0f;
  }
  kernel->LoadWeights(params);
  const int64_t batch = 2, steps = 3;
  const core::Tensor inputs = RandomTensor({batch, steps, spec.input_size}, 50.0, 13);
  std::vector<std::vector<float>> blocks(
      batch,
      std::vector<float>(spec.num_layers * spec.hidden_size * (spec.has_cell_state() ? 2 : 1)));
  const std::vector<float*> pointers = Pointers(blocks);
  for (int64_t t = 0; t < steps; ++t) {
    kernel->Step(StepInputs(inputs, t).data(), batch, pointers.data());
  }
  for (const auto& block : blocks) {
    for (const float value : block) ASSERT_TRUE(std::isfinite(value));
  }
  absl::StatusOr<ReferenceResult> reference =
      ReferenceForward(spec, ToDouble(params), ToDouble(inputs), nullptr);
  ASSERT_TRUE(reference.ok()) << reference.status();
  const core::RecurrentState final_state = StateTensors(spec, blocks);
  EXPECT_TRUE(
      TensorNear("h_n", final_state.h, reference->final_state.h, kSaturatedRelTol, kAbsTol));
  if (spec.has_cell_state()) {
    EXPECT_TRUE(
        TensorNear("c_n", final_state.c, reference->final_state.c, kSaturatedRelTol, kAbsTol));
  }
}

std::vector<KernelCase> AllKernelCases() {
  std::vector<KernelCase> cases;
  for (const CellType cell :
       {CellType::kRnnTanh, CellType::kRnnRelu, CellType::kLstm, CellType::kGru}) {
    cases.push_back({cell, 1, 1, 1});
    cases.push_back({cell, 2, 5, 16});
    cases.push_back({cell, 3, 7, 37});
    cases.push_back({cell, 2, 33, 64});
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(CellsAndSizes, SmallBatchStepTest, ::testing::ValuesIn(AllKernelCases()),
                         [](const ::testing::TestParamInfo<KernelCase>& info) {
                           return Describe(info.param);
                         });

TEST(SmallBatchStepCreateTest, BidirectionalModelsAreNotTaken) {
  ModelSpec spec = SpecFor(CellType::kLstm, 1, 3, 8);
  spec.bidirectional = true;
  EXPECT_EQ(SmallBatchStep::Create(spec), nullptr);
}

// --- Through Network::Step. ---

struct Streams {
  std::vector<std::vector<float>> states;
  std::vector<float> outputs;  // [streams, T, O]
};

// Steps `stream_ids` of `inputs` ([S, T, I]) together as one batch, from zero state.
Streams StepStreams(Network& network, const core::Tensor& inputs,
                    const std::vector<int64_t>& stream_ids) {
  const ModelSpec& spec = network.spec();
  const int64_t T = inputs.shape[1], I = spec.input_size, O = spec.output_size;
  const auto batch = static_cast<int64_t>(stream_ids.size());
  Streams result;
  result.states.assign(batch, std::vector<float>(network.step_state_size(), 0.0f));
  result.outputs.resize(batch * T * O);
  const std::vector<float*> pointers = Pointers(result.states);
  std::vector<float> step_inputs(batch * I), step_outputs(batch * O);
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t b = 0; b < batch; ++b) {
      std::copy_n(inputs.data() + (stream_ids[b] * T + t) * I, I, step_inputs.data() + b * I);
    }
    EXPECT_TRUE(network.Step(step_inputs.data(), batch, pointers.data(), step_outputs.data()).ok());
    for (int64_t b = 0; b < batch; ++b) {
      std::copy_n(step_outputs.data() + b * O, O, result.outputs.data() + (b * T + t) * O);
    }
  }
  return result;
}

std::unique_ptr<Network> MakeNetwork(const ModelSpec& spec, const core::ParameterSet& params,
                                     int threads, bool small_batch_step) {
  core::NetworkOptions options;
  options.num_threads = threads;
  options.small_batch_step = small_batch_step;
  absl::StatusOr<std::unique_ptr<Network>> network = Network::Create(spec, params, options);
  EXPECT_TRUE(network.ok()) << network.status();
  return network.ok() ? *std::move(network) : nullptr;
}

// A stream stepped alone, or in a batch of 2-4 with other streams in any position, on 1 or 2
// threads, gets the same bits: a StepPredict client's answer does not depend on who else the
// batcher grouped it with (up to kMaxStreams), nor on the thread count.
TEST(NetworkSmallBatchStepTest, AStreamsBitsDoNotDependOnItsBatchOrThreadCount) {
  for (const CellType cell : {CellType::kLstm, CellType::kGru, CellType::kRnnTanh}) {
    SCOPED_TRACE(core::CellTypeName(cell));
    const ModelSpec spec = SpecFor(cell, 2, 4, 40);
    const core::ParameterSet params = core::InitParameters(spec, 14);
    const core::Tensor inputs = RandomTensor({4, 6, spec.input_size}, 1.0, 15);
    std::unique_ptr<Network> one_thread = MakeNetwork(spec, params, 1, true);
    std::unique_ptr<Network> two_threads = MakeNetwork(spec, params, 2, true);
    ASSERT_NE(one_thread, nullptr);
    ASSERT_NE(two_threads, nullptr);
    const Streams alone = StepStreams(*one_thread, inputs, {2});
    const int64_t per_stream = 6 * spec.output_size;
    const std::vector<float> expected(alone.outputs.begin(), alone.outputs.begin() + per_stream);
    for (Network* network : {one_thread.get(), two_threads.get()}) {
      for (const std::vector<int64_t>& batch :
           std::vector<std::vector<int64_t>>{{2}, {2, 0}, {1, 3, 2}, {0, 1, 2, 3}, {2, 3, 0, 1}}) {
        const auto position = std::find(batch.begin(), batch.end(), 2) - batch.begin();
        const Streams together = StepStreams(*network, inputs, batch);
        const std::vector<float> got(together.outputs.begin() + position * per_stream,
                                     together.outputs.begin() + (position + 1) * per_stream);
        EXPECT_EQ(got, expected) << "batch of " << batch.size() << ", position " << position;
        EXPECT_EQ(together.states[position], alone.states[0]);
      }
    }
  }
}

// Network::Step of 1-4 streams runs the packed kernel (same bits as the kernel itself), and
// larger batches run oneDNN's primitive; both agree with the reference.
TEST(NetworkSmallBatchStepTest, SmallBatchesRunTheKernelAndLargerOnesOneDnn) {
  const ModelSpec spec = SpecFor(CellType::kLstm, 2, 3, 24);
  const core::ParameterSet params = core::InitParameters(spec, 16);
  std::unique_ptr<SmallBatchStep> kernel = SmallBatchStep::Create(spec);
  if (kernel == nullptr) GTEST_SKIP() << "no AVX-512F on this CPU";
  kernel->LoadWeights(params);
  std::unique_ptr<Network> network = MakeNetwork(spec, params, 0, true);
  std::unique_ptr<Network> onednn_only = MakeNetwork(spec, params, 0, false);
  ASSERT_NE(network, nullptr);
  ASSERT_NE(onednn_only, nullptr);
  for (const int64_t batch : {1, 3, 4, 5, 9}) {
    SCOPED_TRACE(absl::StrCat("batch ", batch));
    const core::Tensor inputs = RandomTensor({batch, 4, spec.input_size}, 1.0, 17 + batch);
    std::vector<int64_t> ids(batch);
    for (int64_t b = 0; b < batch; ++b) ids[b] = b;
    const Streams stepped = StepStreams(*network, inputs, ids);
    const Streams stepped_onednn = StepStreams(*onednn_only, inputs, ids);
    if (batch <= SmallBatchStep::kMaxStreams) {
      std::vector<std::vector<float>> blocks(batch,
                                             std::vector<float>(network->step_state_size(), 0.0f));
      const std::vector<float*> pointers = Pointers(blocks);
      for (int64_t t = 0; t < 4; ++t) {
        kernel->Step(StepInputs(inputs, t).data(), batch, pointers.data());
      }
      EXPECT_EQ(stepped.states, blocks);
    } else {
      EXPECT_EQ(stepped.states, stepped_onednn.states);
    }
    absl::StatusOr<ReferenceResult> reference =
        ReferenceForward(spec, ToDouble(params), ToDouble(inputs), nullptr);
    ASSERT_TRUE(reference.ok());
    const core::Tensor outputs({batch, 4, spec.output_size}, stepped.outputs);
    EXPECT_TRUE(TensorNear("outputs", outputs, reference->outputs, kRelTol, kAbsTol));
    const core::Tensor outputs_onednn({batch, 4, spec.output_size}, stepped_onednn.outputs);
    EXPECT_TRUE(TensorNear("oneDNN outputs", outputs_onednn, reference->outputs, kRelTol, kAbsTol));
  }
}

// The packed copy of the weights follows SetParameters: stepping after it equals a network
// created with the new weights, bit for bit.
TEST(NetworkSmallBatchStepTest, SetParametersRefreshesThePackedWeights) {
  const ModelSpec spec = SpecFor(CellType::kGru, 2, 3, 20);
  const core::ParameterSet before = core::InitParameters(spec, 18);
  const core::ParameterSet after = core::InitParameters(spec, 19);
  std::unique_ptr<Network> network = MakeNetwork(spec, before, 1, true);
  std::unique_ptr<Network> fresh = MakeNetwork(spec, after, 1, true);
  ASSERT_NE(network, nullptr);
  ASSERT_NE(fresh, nullptr);
  const core::Tensor inputs = RandomTensor({2, 3, spec.input_size}, 1.0, 20);
  const Streams old_weights = StepStreams(*network, inputs, {0, 1});
  ASSERT_TRUE(network->SetParameters(after).ok());
  const Streams updated = StepStreams(*network, inputs, {0, 1});
  const Streams expected = StepStreams(*fresh, inputs, {0, 1});
  EXPECT_EQ(updated.outputs, expected.outputs);
  EXPECT_EQ(updated.states, expected.states);
  EXPECT_NE(old_weights.outputs, expected.outputs);
}

}  // namespace
}  // namespace recurrent::testing
