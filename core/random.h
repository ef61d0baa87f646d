// A small, fully specified pseudo-random generator for everything the trainer and the data
// generators draw: shuffles, dropout masks, synthetic data sets.
//
// Why not <random>: the standard fixes mt19937_64's bits but not the distributions
// (uniform_real_distribution, normal_distribution, shuffle differ between standard libraries),
// and bit-identical training across builds needs every draw specified. The state is two words, so
// a checkpoint can store it and a resumed run continues the same stream.
//
// Not thread-safe: one Random per consumer.
#ifndef RECURRENT_CORE_RANDOM_H_
#define RECURRENT_CORE_RANDOM_H_

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace recurrent::core {

class Random {
 public:
  struct State {
    uint64_t s0 = 0;
    uint64_t s1 = 0;
    friend bool operator==(const State&, const State&) = default;
  };

  // Seeds through SplitMix64, so nearby seeds give unrelated streams.
  explicit Random(uint64_t seed);
  explicit Random(const State& state) : state_(state) {}

  State state() const { return state_; }

  // xoroshiro128+ next 64 bits.
  uint64_t NextU64();
  // Uniform in [0, 1) with 53 random bits.
  double Uniform();
  // Uniform in [lo, hi).
  double Uniform(double lo, double hi) { return lo + (hi - lo) * Uniform(); }
  // Uniform integer in [0, n), n > 0, without modulo bias (rejection).
  uint64_t Below(uint64_t n);
  // Standard normal (Box-Muller on two Uniform() draws; no cached second value, so the state
  // alone determines the stream).
  double Normal();
  // Fisher-Yates shuffle, specified: for i = size-1 down to 1, swap(v[i], v[Below(i + 1)]).
  template <typename T>
  void Shuffle(std::vector<T>& values) {
    for (std::size_t i = values.size(); i > 1; --i) {
      const std::size_t j = static_cast<std::size_t>(Below(i));
      std::swap(values[i - 1], values[j]);
    }
  }

 private:
  State state_;
};

// A stateless hash of (seed, a, b) to 64 bits: for draws that must not depend on the order in
// which they are made (e.g. dropout masks computed in parallel).
uint64_t HashToU64(uint64_t seed, uint64_t a, uint64_t b);

}  // namespace recurrent::core

#endif  // RECURRENT_CORE_RANDOM_H_
