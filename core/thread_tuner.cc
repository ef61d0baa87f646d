#include "core/thread_tuner.h"

#include <algorithm>

namespace recurrent::core {
namespace {

// A probe is due after this many calls or this much time at the current count, whichever comes
// first; probes that keep failing back off (doubling) to the maxima.
constexpr int kFirstProbeInterval = 32;
constexpr int kMaxProbeInterval = 512;
constexpr double kFirstProbeSeconds = 2.0;
constexpr double kMaxProbeSeconds = 60.0;
// A probe's time is the best of this many calls; one suffices for long calls, whose timings vary
// less and whose probes cost the most.
constexpr int kProbeCalls = 2;
constexpr double kLongCallSeconds = 0.05;
constexpr double kSwitchMargin = 0.9;   // switch only for a clear (>10%) gain: timings are noisy
constexpr double kAverageWeight = 0.2;  // weight of the newest call in the running average

}  // namespace

ThreadTuner::ThreadTuner(int max_threads) : max_threads_(std::max(1, max_threads)) {}

ThreadTuner::State& ThreadTuner::StateFor(const CallKey& key) {
  auto [it, inserted] = states_.try_emplace(key);
  if (inserted) {
    it->second.threads = max_threads_;
    it->second.calls_until_probe = kFirstProbeInterval;
    it->second.probe_interval = kFirstProbeInterval;
    it->second.probe_seconds = kFirstProbeSeconds;
  }
  return it->second;
}

int ThreadTuner::ThreadsFor(const CallKey& key) {
  if (max_threads_ == 1) return 1;
  const State& state = StateFor(key);
  return state.probe_threads != 0 ? state.probe_threads : state.threads;
}

void ThreadTuner::StartProbe(State& state) const {
  const int fewer = std::max(1, state.threads / 2);
  const int more = std::min(max_threads_, state.threads * 2);
  int candidate = state.probe_down_next ? fewer : more;
  if (candidate == state.threads) candidate = state.probe_down_next ? more : fewer;
  state.probe_down_next = !state.probe_down_next;
  if (candidate == state.threads) return;
  state.probe_threads = candidate;
  state.probe_calls_left = state.window_best >= kLongCallSeconds ? 1 : kProbeCalls;
  state.probe_best = 0.0;
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
  if (state.probe_threads != 0 && threads == state.probe_threads) {
    state.probe_best = state.probe_best == 0.0 ? seconds : std::min(state.probe_best, seconds);
    if (--state.probe_calls_left > 0) return;
    // Best against best: a single slow call (a page fault, a noisy neighbour's burst) on either
    // side does not decide.
    const bool switch_count = state.probe_best < kSwitchMargin * state.window_best;
    if (switch_count) {
      state.threads = state.probe_threads;
      state.probe_interval = kFirstProbeInterval;
      state.probe_seconds = kFirstProbeSeconds;
    } else {
      state.probe_interval = std::min(kMaxProbeInterval, state.probe_interval * 2);
      state.probe_seconds = std::min(kMaxProbeSeconds, state.probe_seconds * 2);
    }
    state.probe_threads = 0;
    state.window_best = switch_count ? state.probe_best : 0.0;
    state.calls_until_probe = state.probe_interval;
    state.seconds_since_probe = 0.0;
    return;
  }
  if (threads != state.threads) return;  // a stale report
  state.window_best = state.window_best == 0.0 ? seconds : std::min(state.window_best, seconds);
  state.seconds_since_probe += seconds;
  if (--state.calls_until_probe <= 0 || state.seconds_since_probe >= state.probe_seconds) {
    StartProbe(state);
  }
}

}  // namespace recurrent::core
