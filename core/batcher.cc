#include "core/batcher.h"

#include <algorithm>
#include <cstring>

#include "core/random.h"

namespace recurrent::core {
namespace {

constexpr int64_t kBatchesPerPool = 16;

}  // namespace

bool AllowsPadding(const ModelSpec& spec) {
  return spec.head == HeadMode::kPerStep && !spec.bidirectional;
}

std::vector<std::vector<int64_t>> PlanEpoch(const Dataset& dataset,
                                            const std::vector<int64_t>& members, int64_t batch_size,
                                            bool allow_padding, bool shuffle, uint64_t seed,
                                            int64_t epoch) {
  std::vector<int64_t> order = members;
  Random random(HashToU64(seed, static_cast<uint64_t>(epoch), /*b=*/0x0e0c));
  if (shuffle) random.Shuffle(order);
  const auto length = [&](int64_t index) { return dataset.sequences[index].length; };

  std::vector<std::vector<int64_t>> batches;
  const int64_t pool_size = batch_size * kBatchesPerPool;
  for (size_t pool_begin = 0; pool_begin < order.size(); pool_begin += pool_size) {
    const auto begin = order.begin() + static_cast<int64_t>(pool_begin);
    const auto end =
        order.begin() + static_cast<int64_t>(std::min(order.size(), pool_begin + pool_size));
    std::stable_sort(begin, end, [&](int64_t a, int64_t b) { return length(a) < length(b); });
    std::vector<int64_t> current;
    for (auto it = begin; it != end; ++it) {
      const bool full = static_cast<int64_t>(current.size()) == batch_size;
      const bool new_length = !current.empty() && length(current.front()) != length(*it);
      if (full || (new_length && !allow_padding)) {
        batches.push_back(std::move(current));
        current.clear();
      }
      current.push_back(*it);
    }
    if (!current.empty()) batches.push_back(std::move(current));
  }
  if (shuffle) random.Shuffle(batches);
  return batches;
}

void AssembleBatch(const Dataset& dataset, const std::vector<int64_t>& members, Batch* batch) {
  const int64_t n = static_cast<int64_t>(members.size());
  int64_t t = 0;
  bool ragged = false;
  for (const int64_t index : members) {
    const int64_t length = dataset.sequences[index].length;
    ragged = ragged || (t != 0 && length != t);
    t = std::max(t, length);
  }
  const int64_t c = dataset.input_size, o = dataset.target_size;
  const bool per_step = dataset.per_step();
  batch->inputs.shape = {n, t, c};
  batch->inputs.values.assign(n * t * c, 0.0f);
  Targets& targets = batch->targets;
  targets.values = Tensor();
  targets.labels.clear();
  targets.mask.clear();
  if (!dataset.has_labels()) {
    targets.values.shape = per_step ? std::vector<int64_t>{n, t, o} : std::vector<int64_t>{n, o};
    targets.values.values.assign(Tensor::ElementCount(targets.values.shape), 0.0f);
  } else {
    targets.labels.assign(per_step ? n * t : n, 0);
  }
  if (ragged && per_step) targets.mask.assign(n * t, 0);
  batch->predictions = 0;
  for (int64_t i = 0; i < n; ++i) {
    const Sequence& sequence = dataset.sequences[members[i]];
    const int64_t length = sequence.length;
    std::memcpy(batch->inputs.data() + i * t * c, sequence.inputs.data(),
                sizeof(float) * length * c);
    if (per_step) {
      if (dataset.has_labels()) {
        std::copy_n(sequence.labels.data(), length, targets.labels.data() + i * t);
      } else {
        std::memcpy(targets.values.data() + i * t * o, sequence.targets.data(),
                    sizeof(float) * length * o);
      }
      if (!targets.mask.empty()) std::fill_n(targets.mask.data() + i * t, length, 1);
      batch->predictions += length;
    } else {
      if (dataset.has_labels()) {
        targets.labels[i] = sequence.labels[0];
      } else {
        std::memcpy(targets.values.data() + i * o, sequence.targets.data(), sizeof(float) * o);
      }
      batch->predictions += 1;
    }
  }
}

void SliceSteps(const Batch& batch, bool per_step_targets, int64_t begin, int64_t end,
                Batch* chunk) {
  const int64_t n = batch.inputs.shape[0], t = batch.inputs.shape[1], c = batch.inputs.shape[2];
  const int64_t steps = end - begin;
  chunk->inputs.shape = {n, steps, c};
  chunk->inputs.values.resize(n * steps * c);
  for (int64_t i = 0; i < n; ++i) {
    std::memcpy(chunk->inputs.data() + i * steps * c, batch.inputs.data() + (i * t + begin) * c,
                sizeof(float) * steps * c);
  }
  const Targets& from = batch.targets;
  Targets& to = chunk->targets;
  to = Targets();
  if (!per_step_targets) {
    to = from;
    chunk->predictions = batch.predictions;
    return;
  }
  if (!from.values.empty()) {
    const int64_t o = from.values.shape[2];
    to.values.shape = {n, steps, o};
    to.values.values.resize(n * steps * o);
    for (int64_t i = 0; i < n; ++i) {
      std::memcpy(to.values.data() + i * steps * o, from.values.data() + (i * t + begin) * o,
                  sizeof(float) * steps * o);
    }
  }
  const auto slice_rows = [&](const auto& source, auto& destination) {
    if (source.empty()) return;
    destination.resize(n * steps);
    for (int64_t i = 0; i < n; ++i) {
      std::copy_n(source.data() + i * t + begin, steps, destination.data() + i * steps);
    }
  };
  slice_rows(from.labels, to.labels);
  slice_rows(from.mask, to.mask);
  chunk->predictions = n * steps;
  if (!to.mask.empty()) {
    chunk->predictions =
        std::count_if(to.mask.begin(), to.mask.end(), [](uint8_t m) { return m != 0; });
  }
}

}  // namespace recurrent::core
