#include "core/thread_tuner.h"

#include <algorithm>

namespace recurrent::core {
namespace {

// A probe is due after this many calls (once min_window_seconds have passed, so that the
// current count's mean spans many time slices) or this much time at the current count, whichever
// comes first; probes that keep failing back off (doubling) to the maxima.
constexpr int kFirstProbeInterval = 32;
constexpr int kMaxProbeInterval = 512;
constexpr double kFirstProbeSeconds = 2.0;
constexpr double kMaxProbeSeconds = 60.0;
constexpr double kFirstMinWindowSeconds = 0.1;
constexpr double kMaxMinWindowSeconds = 2.0;
// A probe lasts at least this many calls and this much time: a few scheduler time slices (~4 ms
// here), so that it meets the stalls a neighbour causes as often as the current count does.
constexpr int kMinProbeCalls = 2;
// Calls at least this long are probed with one call (they span ~10 time slices each).
constexpr double kLongProbeCallSeconds = 0.04;
constexpr double kMinProbeSeconds = 0.02;
// The first call after a thread-count change pays for resizing the OpenMP team; calls shorter
// than this skip it, longer ones do not notice it.
constexpr double kLongCallSeconds = 0.005;
constexpr double kSwitchMargin = 0.9;  // switch only for a clear (>10%) gain: timings are noisy

}  // namespace

ThreadTuner::ThreadTuner(int max_threads) : max_threads_(std::max(1, max_threads)) {}

ThreadTuner::State& ThreadTuner::StateFor(const CallKey& key) {
  auto [it, inserted] = states_.try_emplace(key);
  if (inserted) {
    it->second.threads = max_threads_;
    it->second.calls_until_probe = kFirstProbeInterval;
    it->second.probe_interval = kFirstProbeInterval;
    it->second.probe_seconds = kFirstProbeSeconds;
    it->second.min_window_seconds = kFirstMinWindowSeconds;
  }
  return it->second;
}

int ThreadTuner::ThreadsFor(const CallKey& key) {
  if (max_threads_ == 1) return 1;
  const State& state = StateFor(key);
  return state.probe_threads != 0 ? state.probe_threads : state.threads;
}

int ThreadTuner::SettledThreads(const CallKey& key) {
  if (max_threads_ == 1) return 1;
  return StateFor(key).threads;
}

void ThreadTuner::StartProbe(State& state) const {
  const int fewer = std::max(1, state.threads / 2);
  const int more = std::min(max_threads_, state.threads * 2);
  int candidate = state.probe_down_next ? fewer : more;
  if (candidate == state.threads) candidate = state.probe_down_next ? more : fewer;
  state.probe_down_next = !state.probe_down_next;
  if (candidate == state.threads || state.window.calls == 0) return;
  state.probe_threads = candidate;
  state.probe = Timing{};
  state.skip_calls = state.window.Mean() < kLongCallSeconds ? 1 : 0;
}

bool ThreadTuner::WarmUp(State& state, int threads) {
  // Primitives are built per thread count, so the first call on each count is not a timing.
  const uint64_t bit = threads < 64 ? uint64_t{1} << threads : 0;
  if (bit == 0 || (state.warmed_counts & bit) != 0) return false;
  state.warmed_counts |= bit;
  return true;
}

void ThreadTuner::Record(const CallKey& key, int threads, double seconds) {
  if (max_threads_ == 1) return;
  State& state = StateFor(key);
  if (WarmUp(state, threads)) return;
  const bool probing = state.probe_threads != 0;
  if (threads != (probing ? state.probe_threads : state.threads)) return;  // a stale report
  if (state.skip_calls > 0) {
    --state.skip_calls;
    return;
  }
  if (probing) {
    state.probe.Add(seconds);
    // Enough time (several time slices) and, unless a single call already spans that many, two
    // calls. A long call's probe is costly when it loses (a 2-thread training step beside a busy
    // process takes ~1.8x the 1-thread one), and one such call already averages over many slices.
    const bool long_calls = state.probe.Mean() >= kLongProbeCallSeconds;
    if ((state.probe.calls < kMinProbeCalls && !long_calls) ||
        state.probe.seconds < kMinProbeSeconds) {
      return;
    }
    const bool switch_count = state.probe.Mean() < kSwitchMargin * state.window.Mean();
    if (switch_count) {
      state.threads = state.probe_threads;
      state.window = state.probe;
      state.probe_interval = kFirstProbeInterval;
      state.probe_seconds = kFirstProbeSeconds;
      state.min_window_seconds = kFirstMinWindowSeconds;
    } else {
      state.probe_interval = std::min(kMaxProbeInterval, state.probe_interval * 2);
      state.probe_seconds = std::min(kMaxProbeSeconds, state.probe_seconds * 2);
      state.min_window_seconds = std::min(kMaxMinWindowSeconds, state.min_window_seconds * 2);
      state.window = Timing{};
      state.skip_calls = state.probe.Mean() < kLongCallSeconds ? 1 : 0;
    }
    state.probe_threads = 0;
    state.calls_until_probe = state.probe_interval;
    return;
  }
  state.window.Add(seconds);
  --state.calls_until_probe;
  if ((state.calls_until_probe <= 0 && state.window.seconds >= state.min_window_seconds) ||
      state.window.seconds >= state.probe_seconds) {
    StartProbe(state);
  }
}

}  // namespace recurrent::core
