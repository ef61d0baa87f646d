#include "core/random.h"

#include <cmath>
#include <numbers>

namespace recurrent::core {
namespace {

uint64_t SplitMix64(uint64_t& x) {
  uint64_t z = (x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t RotateLeft(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

}  // namespace

Random::Random(uint64_t seed) {
  state_.s0 = SplitMix64(seed);
  state_.s1 = SplitMix64(seed);
  if (state_.s0 == 0 && state_.s1 == 0) state_.s1 = 1;  // the one state xoroshiro cannot leave
}

uint64_t Random::NextU64() {
  const uint64_t s0 = state_.s0;
  uint64_t s1 = state_.s1;
  const uint64_t result = s0 + s1;
  s1 ^= s0;
  state_.s0 = RotateLeft(s0, 24) ^ s1 ^ (s1 << 16);
  state_.s1 = RotateLeft(s1, 37);
  return result;
}

double Random::Uniform() { return static_cast<double>(NextU64() >> 11) * 0x1.0p-53; }

uint64_t Random::Below(uint64_t n) {
  // Accept only draws below the largest multiple of n, so every residue is equally likely.
  const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t draw;
  do {
    draw = NextU64();
  } while (draw >= limit);
  return draw % n;
}

double Random::Normal() {
  const double u1 = 1.0 - Uniform();  // (0, 1]: log stays finite
  const double u2 = Uniform();
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
}

uint64_t HashToU64(uint64_t seed, uint64_t a, uint64_t b) {
  uint64_t x = seed ^ (a * 0xD6E8FEB86659FD93ull) ^ RotateLeft(b * 0x9E3779B97F4A7C15ull, 32);
  SplitMix64(x);
  return SplitMix64(x);
}

}  // namespace recurrent::core
