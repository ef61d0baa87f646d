// Built-in synthetic data sets: the standard long-memory benchmarks for recurrent networks.
//
// Every generator is a pure function of its arguments: the same parameters and seed give the
// same data on every machine (all draws come from core::Random in the order documented for each
// generator; changing that order changes every data set a recorded seed names, so don't).
// Parameters are validated first, sizes against DatasetLimits before anything is allocated;
// errors are InvalidArgument naming the parameter. Every data set returned fills input_names and
// target_names and passes ValidateDataset(dataset, limits).
//
// Thread-safe (no shared state).
#ifndef RECURRENT_CORE_GENERATORS_H_
#define RECURRENT_CORE_GENERATORS_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "core/dataset.h"
#include "core/windowing.h"

namespace recurrent::core {

// ---- Adding problem (Hochreiter & Schmidhuber 1997; the recipe of Le, Jaitly & Hinton 2015 and
// Arjovsky, Shah & Bengio 2016).
//
// num_sequences sequences of `length` T >= 2 steps with 2 features per step:
//   inputs [T, 2]   feature 0 "value": U[0, 1);  feature 1 "marker": 1 at exactly two steps, else 0
//   the markers: one at a uniform step in [0, T/2), one at a uniform step in [T/2, T)
//                (T/2 rounds down)
//   target [1]      "sum": the sum of the two marked values (float addition of the stored values)
// TargetKind::kSequenceValues, input_size 2, target_size 1: head kLastStep, MSE.
// Draw order per sequence: T values Uniform(), then Below(T/2), then Below(T - T/2).
absl::StatusOr<Dataset> MakeAddingProblem(int64_t num_sequences, int64_t length, uint64_t seed,
                                          const DatasetLimits& limits = {});

// The MSE of always predicting 1 (the expected sum): Var(U1 + U2) = 2/12. A model must beat it to
// have learned anything.
inline constexpr double kAddingProblemBaselineMse = 1.0 / 6.0;

// ---- Copying memory (Arjovsky, Shah & Bengio 2016, section 4.1).
//
// Categories, shared by inputs and targets:
//   0       blank
//   1 .. 8  the data symbols
//   9       the marker (delimiter): "now reproduce the symbols" (inputs only)
// A sequence has T + 20 steps (T = delay >= 1):
//   inputs  10 uniform data symbols, T - 1 blanks, the marker, 10 blanks    one-hot [T + 20, 10]
//   labels  T + 10 blanks, then the 10 data symbols in order                 [T + 20]
// TargetKind::kPerStepLabels with target_size 9 (blank + 8 symbols; the marker is never a
// target): head kPerStep, cross-entropy, input_size 10, output_size 9.
// Draw order per sequence: 10 x (1 + Below(8)).
inline constexpr int64_t kCopyingDataSymbols = 8;  // classes 1..8
inline constexpr int64_t kCopyingLength = 10;      // symbols to remember
inline constexpr int64_t kCopyingInputSize = 10;   // blank, 8 symbols, marker
inline constexpr int64_t kCopyingNumClasses = 9;   // blank, 8 symbols
inline constexpr int32_t kCopyingBlank = 0;
inline constexpr int32_t kCopyingMarker = 9;

absl::StatusOr<Dataset> MakeCopyingMemory(int64_t num_sequences, int64_t delay, uint64_t seed,
                                          const DatasetLimits& limits = {});

// The mean per-step cross-entropy (nats) of the memoryless strategy: blank for the first T + 10
// steps (exact, zero loss), then uniform over the 8 symbols: 10 ln 8 / (T + 20).
double CopyingMemoryBaselineCrossEntropy(int64_t delay);

// ---- Mackey-Glass chaotic series (Mackey & Glass 1977), the usual forecasting benchmark.
//
//   dx/dt = beta x(t - tau) / (1 + x(t - tau)^n) - gamma x(t),  x(t) = initial_value for t <= 0
//
// Integrated with classic fourth-order Runge-Kutta at dt = 1 / steps_per_unit on the grid
// t_i = i dt; the delayed value x(t - tau) at the half step is the cubic (4-point Lagrange)
// interpolation between grid points, so the scheme stays fourth-order in dt instead of dropping
// to second. tau * steps_per_unit must be an integer >= 2 so that the other delayed values fall
// on grid points. The series is sampled every time unit, starting at t = transient (the
// transient lets the solution settle on the attractor; with tau = 17 it then stays within about
// [0.2, 1.4]). No randomness: the result depends only on the options.
struct MackeyGlassOptions {
  double tau = 17.0;  // time units; 17 gives the classic mildly chaotic attractor
  double beta = 0.2;
  double gamma = 0.1;
  double n = 10.0;
  double initial_value = 1.2;   // the constant history, > 0
  int64_t steps_per_unit = 10;  // dt = 0.1
  int64_t transient = 1000;     // time units discarded before the first sample
};

// `length` samples x(transient), x(transient + 1), ...; InvalidArgument on a bad option or a
// length outside [1, limits.max_total_values].
absl::StatusOr<std::vector<float>> MackeyGlassSeries(int64_t length,
                                                     const MackeyGlassOptions& options = {},
                                                     const DatasetLimits& limits = {});

// A forecasting data set over MackeyGlassSeries(series_length, options): the series is a table
// with one column "x", windowed by MakeWindowedDataset (core/windowing.h) with `window`; empty
// feature_columns / target_columns there default to {"x"}. One-step forecasting: horizon 1;
// multi-step: horizon H, with all_horizon_steps for every step up to H.
absl::StatusOr<Dataset> MakeMackeyGlassDataset(int64_t series_length, const WindowOptions& window,
                                               const MackeyGlassOptions& options = {},
                                               const DatasetLimits& limits = {});

// ---- Noisy multi-frequency sines.
//
//   y(t) = sum_k a_k sin(2 pi f_k t + phi_k) + noise_std * N(0, 1),   t = 0, 1, 2, ...
// with f_k ~ U[min_frequency, max_frequency) in cycles per step, phi_k ~ U[0, 2 pi),
// a_k ~ U[min_amplitude, max_amplitude), and independent Gaussian noise per step.
// Draw order: for k = 0..K-1: f_k, phi_k, a_k; then one Normal() per step.
struct SinesOptions {
  int64_t num_components = 3;   // K, in [1, 64]
  double min_frequency = 0.01;  // cycles per step, > 0
  double max_frequency = 0.1;   // <= 0.5 (Nyquist)
  double min_amplitude = 0.5;   // >= 0
  double max_amplitude = 1.0;
  double noise_std = 0.1;  // >= 0
  uint64_t seed = 0;
};

absl::StatusOr<std::vector<float>> NoisySinesSeries(int64_t length, const SinesOptions& options,
                                                    const DatasetLimits& limits = {});

// As MakeMackeyGlassDataset, over NoisySinesSeries; the column is named "y".
absl::StatusOr<Dataset> MakeNoisySinesDataset(int64_t series_length, const WindowOptions& window,
                                              const SinesOptions& options,
                                              const DatasetLimits& limits = {});

}  // namespace recurrent::core

#endif  // RECURRENT_CORE_GENERATORS_H_
