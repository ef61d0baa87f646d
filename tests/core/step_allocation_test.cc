// The step path must not allocate per call: it runs once per timestep of every stream.
// This binary counts every operator new in the process. oneDNN 2.6's dnnl_primitive_execute()
// itself builds an std::unordered_map of the primitive's ~11 arguments on each execution
// (12 small allocations per layer, one per argument node plus the table, 13 when brgemm runs on
// two threads; the scratchpad argument of user-managed scratchpads, core/rnn_layer.cc, is one of
// them); the engine's own code must add nothing on top.
#include <atomic>
#include <cstdlib>
#include <new>
#include <vector>

#include "core/network.h"
#include "core/small_batch_step.h"
#include "gtest/gtest.h"

namespace {
std::atomic<long> g_allocations{0};
}  // namespace

void* operator new(size_t size) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

namespace recurrent::core {
namespace {

// Measured for oneDNN 2.6.3's execute(); a rise means an allocation crept into our step path.
constexpr long kOneDnnAllocationsPerLayerExecution = 13;

long AllocationsPerStep(Network& network, int64_t batch, int repetitions) {
  const ModelSpec& spec = network.spec();
  std::vector<float> inputs(batch * spec.input_size, 0.25f), outputs(batch * spec.output_size);
  std::vector<std::vector<float>> states(batch, std::vector<float>(network.step_state_size()));
  std::vector<float*> state_ptrs;
  for (auto& s : states) state_ptrs.push_back(s.data());
  // Warm-up: each shape's first call builds its primitives once.
  for (int i = 0; i < 200; ++i) {
    EXPECT_TRUE(network.Step(inputs.data(), batch, state_ptrs.data(), outputs.data()).ok());
  }
  const long before = g_allocations.load();
  for (int i = 0; i < repetitions; ++i) {
    EXPECT_TRUE(network.Step(inputs.data(), batch, state_ptrs.data(), outputs.data()).ok());
  }
  return (g_allocations.load() - before) / repetitions;
}

// On 1 and on 2 threads, fixed: with the adaptive count (NetworkOptions::num_threads = 0) the
// tuner may first probe a count, and build its primitives, at any call (when depends on call
// times, so under a sanitizer it fell inside the measured calls), which is warm-up, not a per-step
// allocation. Batches of 1-4 run the packed kernel (core/small_batch_step.h), which calls no
// oneDNN primitive and so must allocate nothing at all.
TEST(StepAllocationTest, StepAllocatesNothingBeyondOneDnnExecuteAfterWarmUp) {
  for (const CellType cell : {CellType::kLstm, CellType::kGru, CellType::kRnnTanh}) {
    ModelSpec spec;
    spec.cell = cell;
    spec.input_size = 8;
    spec.hidden_size = 32;
    spec.num_layers = 2;
    const bool kernel_available = SmallBatchStep::Create(spec) != nullptr;  // an AVX-512 CPU
    for (const int threads : {1, 2}) {
      NetworkOptions options;
      options.num_threads = threads;
      auto network = Network::Create(spec, InitParameters(spec, 1), options);
      ASSERT_TRUE(network.ok()) << network.status();
      for (const int64_t batch : {1, 5, 64}) {
        const long per_step = AllocationsPerStep(**network, batch, 50);
        const bool packed = kernel_available && batch <= SmallBatchStep::kMaxStreams;
        const long allowed = packed ? 0 : kOneDnnAllocationsPerLayerExecution * spec.num_layers;
        EXPECT_LE(per_step, allowed)
            << CellTypeName(cell) << " batch " << batch << ", " << threads << " threads";
      }
    }
  }
}

}  // namespace
}  // namespace recurrent::core
