// Turns a Dataset into mini-batches for the engine: the epoch's order, grouping by length, and the
// padded [N, T, C] tensors with their targets and loss mask.
//
// Variable lengths: sequences are grouped with others of similar length (bucketing), so little
// compute goes to padding. How a batch with unequal lengths is built depends on the model:
//   - per-step head, unidirectional: shorter sequences are padded at the end and the padded
//     steps are masked out of the loss (core/network.h Targets::mask). Exact: a unidirectional
//     layer's output at step t never depends on later steps, so padding changes nothing else.
//   - last-step head, or bidirectional: padding would change the result (the last step would be a
//     padded one; the reverse direction would read the padding first), so a batch only ever holds
//     sequences of exactly one length (bucketing without padding).
// With equal lengths (windowed series, the built-in generators) both reduce to plain batching.
#ifndef RECURRENT_CORE_BATCHER_H_
#define RECURRENT_CORE_BATCHER_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "core/dataset.h"
#include "core/network.h"

namespace recurrent::core {

struct Batch {
  Tensor inputs;            // [N, T, C], T = the longest member; padding is zero
  Targets targets;          // per Dataset::kind; `mask` filled only when some step is padding
  int64_t predictions = 0;  // counted (unmasked) predictions: the batch's weight in an epoch mean
};

// Whether batches may mix lengths with padded, masked steps (see above).
bool AllowsPadding(const ModelSpec& spec);

// The batches of one epoch as lists of sequence indices, drawn from `members` (the training
// split). Deterministic for (seed, epoch): the members are shuffled (core::Random), cut into pools
// of 16 batches, each pool sorted by length (stable) and cut into batches of at most
// `batch_size`, splitting additionally at every length change when !allow_padding; finally the
// batches' order is shuffled. With `shuffle` false the members keep their order (validation).
std::vector<std::vector<int64_t>> PlanEpoch(const Dataset& dataset,
                                            const std::vector<int64_t>& members, int64_t batch_size,
                                            bool allow_padding, bool shuffle, uint64_t seed,
                                            int64_t epoch);

// Copies the sequences `members` into `batch` (buffers are reused across calls). The targets'
// layout follows core/network.h: values [N, T, O] or [N, O]; labels N*T or N.
void AssembleBatch(const Dataset& dataset, const std::vector<int64_t>& members, Batch* batch);

// Steps [begin, end) of a per-step batch (inputs, per-step targets and mask): one chunk of
// truncated backpropagation through time. Last-step batches are sliced by the trainer itself.
void SliceSteps(const Batch& batch, bool per_step_targets, int64_t begin, int64_t end,
                Batch* chunk);

}  // namespace recurrent::core

#endif  // RECURRENT_CORE_BATCHER_H_
