// A float32 Step() for 1 to kMaxStreams streams that reads every weight exactly once per call.
//
// Why it exists: a step of one stream is a matrix-vector product per layer, bound by how fast
// the weights stream in, not by arithmetic. The service's reference model (LSTM, 2 layers,
// H=256) holds 3.2 MB of float32 weights, more than a core's L2 cache, so every step reads them
// from L3. oneDNN 2.6's RNN primitive runs such a step through its GEMM at ~67 GB/s on one Zen 4
// core; here the weights are packed in exactly the order this kernel reads them (one sequential
// stream per layer) and read at ~85-90 GB/s. Past a few streams the step turns compute-bound and
// oneDNN's GEMM wins, so Network uses this only up to kMaxStreams.
//
// Packing, per layer: hidden units are cut into blocks of 16 (one AVX-512 register); block b
// holds, for every input column k (the layer's inputs, then its hidden state), the 16 weights of
// each gate, zero-padded past H: [blocks][in + H][gates][16]. A block therefore owns complete
// hidden units and finishes them (gates, cell update) without waiting for other blocks; threads
// split a layer's blocks and meet once per layer. Every value is computed in the same order on
// any thread count and for any batch of 1..kMaxStreams streams, so a stream's result does not
// depend on either.
//
// Numerics: PyTorch's cell equations (core/model_spec.h) with float32 accumulation; exp, tanh and
// the sigmoid are vectorized (Cephes-style, within a few ulp), so results agree with oneDNN's
// path and with PyTorch to float rounding, not bit for bit.
//
// Needs AVX-512F; Create() returns null on other CPUs (Network then keeps oneDNN's path).
// Not thread-safe (one per Network); Step() uses the calling thread's OpenMP thread count.
#ifndef RECURRENT_CORE_SMALL_BATCH_STEP_H_
#define RECURRENT_CORE_SMALL_BATCH_STEP_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "core/model_spec.h"
#include "core/parameters.h"

namespace recurrent::core {

class SmallBatchStep {
 public:
  static constexpr int64_t kMaxStreams = 4;

  // Null when the CPU has no AVX-512F or the model is bidirectional. Allocates every buffer,
  // so Step() never does; weights are zero until LoadWeights().
  static std::unique_ptr<SmallBatchStep> Create(const ModelSpec& spec);

  // Packs the layers' weights from PyTorch layout (params validated against the spec).
  void LoadWeights(const ParameterSet& params);

  // Advances `batch` (1..kMaxStreams) streams by one step, with Network::Step's layouts:
  // `inputs` [batch, I], `states[i]` stream i's state block (h of every layer, then c for LSTM),
  // updated in place. Stream i's new top-layer h is left at top_hidden() + i * top_stride().
  void Step(const float* inputs, int64_t batch, float* const* states);
  const float* top_hidden() const;
  int64_t top_stride() const { return padded_hidden_; }

  ~SmallBatchStep();
  SmallBatchStep(const SmallBatchStep&) = delete;
  SmallBatchStep& operator=(const SmallBatchStep&) = delete;

 private:
  struct Layer {
    int64_t input_size = 0;
    int64_t weight_offset = 0;  // floats into weights_: [blocks][input_size + H][gates][16]
    int64_t bias_offset = 0;    // floats into biases_: [blocks][bias rows][16]
  };

  explicit SmallBatchStep(const ModelSpec& spec);
  // Computes hidden-unit block `block` of layer `l` for `batch` streams.
  void RunBlock(int64_t l, int64_t block, int64_t batch, const float* inputs, float* const* states);
  float* NewHidden(int64_t l, int64_t stream) {
    return new_state_ + (l * kMaxStreams + stream) * padded_hidden_;
  }
  float* NewCell(int64_t l, int64_t stream) {
    return new_state_ + ((num_layers_ + l) * kMaxStreams + stream) * padded_hidden_;
  }

  const CellType cell_;
  const int64_t num_layers_;
  const int64_t hidden_;
  const int64_t padded_hidden_;  // hidden_ rounded up to a multiple of 16
  const int64_t blocks_;         // padded_hidden_ / 16
  const int64_t gates_;          // 1 (RNN), 4 (LSTM), 3 (GRU)
  std::vector<Layer> layers_;
  // 64-byte-aligned views into the storage vectors (a weight row is one cache line).
  std::vector<float> weight_storage_, bias_storage_, state_storage_;
  float* weights_ = nullptr;
  float* biases_ = nullptr;
  float* new_state_ = nullptr;  // [2 (h, c)][L][kMaxStreams][padded_hidden_]
};

}  // namespace recurrent::core

#endif  // RECURRENT_CORE_SMALL_BATCH_STEP_H_
