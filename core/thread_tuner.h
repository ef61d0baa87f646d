// Chooses how many OpenMP threads each kind of engine call runs on, by measuring.
//
// oneDNN splits a primitive's work evenly over its OpenMP threads. When another process competes
// for one of the cores, the thread sharing that core finishes last and the others wait for it, so
// a 2-thread call can take longer than the same call on 1 thread (measured here: 2.5-3.4x the
// quiet 2-thread time beside one busy process, against 1.9x on 1 thread). No static setting wins
// everywhere: waiting passively makes small streaming steps 4x slower on a quiet machine, and a
// short spin makes them 5x slower under contention. So the engine measures: each call shape
// keeps running on the thread count that has been fastest for it, and now and then probes a
// neighbour (half or twice as many threads) to follow changes in the machine's load. The probe
// runs for at least a few scheduler time slices and wins when its mean call time beats the mean
// at the current count since the last probe by 10%. Means, not best calls: beside a busy process
// a multi-threaded call is either fast (the neighbour happened to be off-CPU) or stalls for up to
// a time slice (a 30 us step then takes 4 ms, in ~3% of calls), and only the mean over many time
// slices sees the stalls a caller pays for.
//
// Changing the thread count does not change results: the engine's kernels give the same bits on
// any thread count (the one reduction whose split depended on it, the head's weight gradient, runs
// on one thread; tests/core/thread_count_test.cc checks this).
//
// Not thread-safe: one tuner per Network.
#ifndef RECURRENT_CORE_THREAD_TUNER_H_
#define RECURRENT_CORE_THREAD_TUNER_H_

#include <array>
#include <cstdint>
#include <map>
#include <tuple>

namespace recurrent::core {

class ThreadTuner {
 public:
  // (kind of call, batch, steps): calls with equal keys do the same work.
  using CallKey = std::tuple<int, int64_t, int64_t>;

  // Tunes within [1, max_threads]; with max_threads == 1 it always answers 1.
  explicit ThreadTuner(int max_threads);

  // The thread count the next call with `key` should run on.
  int ThreadsFor(const CallKey& key);
  // The count calls with `key` have settled on, whatever a running probe is trying.
  int SettledThreads(const CallKey& key);
  // Reports that a call with `key` ran on `threads` threads for `seconds` of wall time.
  void Record(const CallKey& key, int threads, double seconds);

  int max_threads() const { return max_threads_; }

 private:
  // Calls' count and total time: their mean is what a caller pays, stalls included.
  struct Timing {
    int64_t calls = 0;
    double seconds = 0.0;
    void Add(double call_seconds) {
      ++calls;
      seconds += call_seconds;
    }
    double Mean() const { return seconds / static_cast<double>(calls); }
  };

  struct State {
    int threads;                 // the current choice
    Timing window;               // calls at `threads` since the last probe or switch
    int skip_calls = 0;          // calls not to time (the first after a thread-count change)
    uint64_t warmed_counts = 0;  // bit t: a call ran on t threads (its primitives exist)
    int calls_until_probe;       // calls left before the next probe
    int probe_interval;          // grows while probes fail, resets after a switch
    double probe_seconds;        // the time-based probe interval, same policy
    double min_window_seconds;   // a call-count-triggered probe waits for this much time
    int probe_threads = 0;       // thread count being probed (0 = no probe running)
    Timing probe;
    bool probe_down_next = true;  // alternate probing fewer and more threads
  };

  State& StateFor(const CallKey& key);
  void StartProbe(State& state) const;
  // True (and marks it) if this is the first call of `state` on `threads`.
  static bool WarmUp(State& state, int threads);

  const int max_threads_;
  std::map<CallKey, State> states_;
};

}  // namespace recurrent::core

#endif  // RECURRENT_CORE_THREAD_TUNER_H_
