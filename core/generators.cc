#include "core/generators.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/random.h"
#include "core/status_macros.h"

namespace recurrent::core {
namespace {

absl::Status CheckRange(absl::string_view what, int64_t value, int64_t min, int64_t max) {
  if (value < min || value > max) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " must be in [", min, ", ", max, "], got ", value));
  }
  return absl::OkStatus();
}

// num_sequences x values_per_sequence against limits.max_total_values, by division.
absl::Status CheckTotal(absl::string_view what, int64_t num_sequences, int64_t values_per_sequence,
                        const DatasetLimits& limits) {
  if (values_per_sequence > limits.max_total_values / num_sequences) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": ", num_sequences, " sequences of ", values_per_sequence,
                     " values are more than max_total_values ", limits.max_total_values));
  }
  return absl::OkStatus();
}

absl::Status CheckFiniteOption(absl::string_view what, double value) {
  if (!std::isfinite(value)) {
    return absl::InvalidArgumentError(absl::StrCat(what, " must be finite, got ", value));
  }
  return absl::OkStatus();
}

// Windows a one-column series; empty column lists default to that column.
absl::StatusOr<Dataset> WindowSeries(const std::vector<float>& series, const std::string& column,
                                     WindowOptions window, const DatasetLimits& limits) {
  if (window.feature_columns.empty()) window.feature_columns = {column};
  if (window.target_columns.empty()) window.target_columns = {column};
  return MakeWindowedDataset(series, {column}, window, limits);
}

}  // namespace

absl::StatusOr<Dataset> MakeAddingProblem(int64_t num_sequences, int64_t length, uint64_t seed,
                                          const DatasetLimits& limits) {
  RETURN_IF_ERROR(
      CheckRange("adding problem: num_sequences", num_sequences, 1, limits.max_sequences));
  RETURN_IF_ERROR(CheckRange("adding problem: length", length, 2, limits.max_sequence_length));
  // 2 inputs per step and one target; length <= max_sequence_length keeps 2 * length + 1 small.
  RETURN_IF_ERROR(CheckTotal("adding problem", num_sequences, 2 * length + 1, limits));

  Dataset dataset;
  dataset.kind = TargetKind::kSequenceValues;
  dataset.input_size = 2;
  dataset.target_size = 1;
  dataset.input_names = {"value", "marker"};
  dataset.target_names = {"sum"};
  dataset.sequences.resize(static_cast<size_t>(num_sequences));
  Random random(seed);
  const int64_t half = length / 2;
  for (Sequence& sequence : dataset.sequences) {
    sequence.length = length;
    sequence.inputs.assign(static_cast<size_t>(2 * length), 0.0f);
    for (int64_t t = 0; t < length; ++t) {
      sequence.inputs[2 * t] = static_cast<float>(random.Uniform());
    }
    const int64_t first = static_cast<int64_t>(random.Below(static_cast<uint64_t>(half)));
    const int64_t second =
        half + static_cast<int64_t>(random.Below(static_cast<uint64_t>(length - half)));
    sequence.inputs[2 * first + 1] = 1.0f;
    sequence.inputs[2 * second + 1] = 1.0f;
    sequence.targets = {sequence.inputs[2 * first] + sequence.inputs[2 * second]};
  }
  RETURN_IF_ERROR(ValidateDataset(dataset, limits));
  return dataset;
}

absl::StatusOr<Dataset> MakeCopyingMemory(int64_t num_sequences, int64_t delay, uint64_t seed,
                                          const DatasetLimits& limits) {
  RETURN_IF_ERROR(
      CheckRange("copying memory: num_sequences", num_sequences, 1, limits.max_sequences));
  const int64_t extra = 2 * kCopyingLength;  // the symbols and the blanks after the marker
  RETURN_IF_ERROR(
      CheckRange("copying memory: delay", delay, 1, limits.max_sequence_length - extra));
  const int64_t length = delay + extra;
  RETURN_IF_ERROR(
      CheckTotal("copying memory", num_sequences, length * (kCopyingInputSize + 1), limits));

  Dataset dataset;
  dataset.kind = TargetKind::kPerStepLabels;
  dataset.input_size = kCopyingInputSize;
  dataset.target_size = kCopyingNumClasses;
  dataset.target_names = {"blank"};
  for (int64_t symbol = 1; symbol <= kCopyingDataSymbols; ++symbol) {
    dataset.target_names.push_back(absl::StrCat("s", symbol));
  }
  dataset.input_names = dataset.target_names;
  dataset.input_names.emplace_back("marker");
  dataset.sequences.resize(static_cast<size_t>(num_sequences));
  Random random(seed);
  for (Sequence& sequence : dataset.sequences) {
    sequence.length = length;
    std::vector<int32_t> input_classes(static_cast<size_t>(length), kCopyingBlank);
    sequence.labels.assign(static_cast<size_t>(length), kCopyingBlank);
    for (int64_t i = 0; i < kCopyingLength; ++i) {
      const auto symbol =
          static_cast<int32_t>(1 + random.Below(static_cast<uint64_t>(kCopyingDataSymbols)));
      input_classes[i] = symbol;
      sequence.labels[length - kCopyingLength + i] = symbol;
    }
    // Steps [10, 10 + T - 1) stay blank; the marker comes at step T + 9, 10 steps before the end.
    input_classes[length - kCopyingLength - 1] = kCopyingMarker;
    sequence.inputs.assign(static_cast<size_t>(length * kCopyingInputSize), 0.0f);
    for (int64_t t = 0; t < length; ++t) {
      sequence.inputs[t * kCopyingInputSize + input_classes[t]] = 1.0f;
    }
  }
  RETURN_IF_ERROR(ValidateDataset(dataset, limits));
  return dataset;
}

double CopyingMemoryBaselineCrossEntropy(int64_t delay) {
  return static_cast<double>(kCopyingLength) * std::log(static_cast<double>(kCopyingDataSymbols)) /
         static_cast<double>(delay + 2 * kCopyingLength);
}

absl::StatusOr<std::vector<float>> MackeyGlassSeries(int64_t length,
                                                     const MackeyGlassOptions& options,
                                                     const DatasetLimits& limits) {
  RETURN_IF_ERROR(CheckRange("Mackey-Glass: length", length, 1, limits.max_total_values));
  for (const auto& [name, value] : {std::pair<absl::string_view, double>{"tau", options.tau},
                                    {"beta", options.beta},
                                    {"gamma", options.gamma},
                                    {"n", options.n},
                                    {"initial_value", options.initial_value}}) {
    RETURN_IF_ERROR(CheckFiniteOption(absl::StrCat("Mackey-Glass: ", name), value));
  }
  if (options.beta < 0 || options.gamma < 0 || options.n <= 0 || options.initial_value <= 0) {
    // A positive history keeps x positive (dx/dt >= -gamma x), so x^n stays real for any n.
    return absl::InvalidArgumentError(
        "Mackey-Glass: beta and gamma must be >= 0, n and initial_value > 0");
  }
  RETURN_IF_ERROR(CheckRange("Mackey-Glass: steps_per_unit", options.steps_per_unit, 1, 10'000));
  // A bound that keeps (transient + length) * steps_per_unit far from overflow.
  RETURN_IF_ERROR(CheckRange("Mackey-Glass: transient", options.transient, 0, 100'000'000));
  const double delay_steps_exact = options.tau * static_cast<double>(options.steps_per_unit);
  const double delay_steps_rounded = std::round(delay_steps_exact);
  if (std::abs(delay_steps_exact - delay_steps_rounded) > 1e-9 * std::max(1.0, delay_steps_exact) ||
      delay_steps_rounded < 2 || delay_steps_rounded > 1e8) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Mackey-Glass: tau x steps_per_unit must be an integer in [2, 1e8] (the delay in grid "
        "steps), got ",
        options.tau, " x ", options.steps_per_unit));
  }
  const auto delay = static_cast<int64_t>(delay_steps_rounded);

  const double beta = options.beta;
  const double gamma = options.gamma;
  const double n = options.n;
  const auto derivative = [beta, gamma, n](double x, double delayed) {
    return beta * delayed / (1.0 + std::pow(delayed, n)) - gamma * x;
  };
  // x at grid index i: the constant history for i <= 0, else the ring. The RK4 step from i reads
  // indices i - delay - 1 .. i, so the ring holds delay + 3 values and step i + 1's write only
  // evicts an index no longer needed.
  const int64_t ring_size = delay + 3;
  std::vector<double> ring(static_cast<size_t>(ring_size), options.initial_value);
  const double initial = options.initial_value;
  const auto at = [&ring, ring_size, initial](int64_t i) {
    return i <= 0 ? initial : ring[static_cast<size_t>(i % ring_size)];
  };

  const int64_t steps_per_unit = options.steps_per_unit;
  const double dt = 1.0 / static_cast<double>(steps_per_unit);
  std::vector<float> series;
  series.reserve(static_cast<size_t>(length));
  double x = initial;
  for (int64_t i = 0;; ++i) {  // x holds x(i dt)
    if (i % steps_per_unit == 0 && i / steps_per_unit >= options.transient) {
      series.push_back(static_cast<float>(x));
      if (static_cast<int64_t>(series.size()) == length) break;
    }
    const double delayed_start = at(i - delay);
    const double delayed_end = at(i - delay + 1);
    const double delayed_half =
        (-at(i - delay - 1) + 9.0 * delayed_start + 9.0 * delayed_end - at(i - delay + 2)) / 16.0;
    const double k1 = derivative(x, delayed_start);
    const double k2 = derivative(x + 0.5 * dt * k1, delayed_half);
    const double k3 = derivative(x + 0.5 * dt * k2, delayed_half);
    const double k4 = derivative(x + dt * k3, delayed_end);
    x += dt / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4);
    ring[static_cast<size_t>((i + 1) % ring_size)] = x;
  }
  for (const float value : series) {
    if (!std::isfinite(value)) {
      return absl::InvalidArgumentError(
          "Mackey-Glass: the integration diverged; use a smaller step (larger steps_per_unit)");
    }
  }
  return series;
}

absl::StatusOr<Dataset> MakeMackeyGlassDataset(int64_t series_length, const WindowOptions& window,
                                               const MackeyGlassOptions& options,
                                               const DatasetLimits& limits) {
  ASSIGN_OR_RETURN(std::vector<float> series, MackeyGlassSeries(series_length, options, limits));
  return WindowSeries(series, "x", window, limits);
}

absl::StatusOr<std::vector<float>> NoisySinesSeries(int64_t length, const SinesOptions& options,
                                                    const DatasetLimits& limits) {
  RETURN_IF_ERROR(CheckRange("sines: length", length, 1, limits.max_total_values));
  RETURN_IF_ERROR(CheckRange("sines: num_components", options.num_components, 1, 64));
  for (const auto& [name, value] :
       {std::pair<absl::string_view, double>{"min_frequency", options.min_frequency},
        {"max_frequency", options.max_frequency},
        {"min_amplitude", options.min_amplitude},
        {"max_amplitude", options.max_amplitude},
        {"noise_std", options.noise_std}}) {
    RETURN_IF_ERROR(CheckFiniteOption(absl::StrCat("sines: ", name), value));
  }
  if (!(options.min_frequency > 0 && options.min_frequency <= options.max_frequency &&
        options.max_frequency <= 0.5)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "sines: frequencies must satisfy 0 < min_frequency <= max_frequency <= 0.5 (cycles per "
        "step; 0.5 is the Nyquist limit), got ",
        options.min_frequency, " and ", options.max_frequency));
  }
  if (!(options.min_amplitude >= 0 && options.min_amplitude <= options.max_amplitude)) {
    return absl::InvalidArgumentError(
        absl::StrCat("sines: amplitudes must satisfy 0 <= min_amplitude <= max_amplitude, got ",
                     options.min_amplitude, " and ", options.max_amplitude));
  }
  if (options.noise_std < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("sines: noise_std must be >= 0, got ", options.noise_std));
  }

  struct Component {
    double frequency;
    double phase;
    double amplitude;
  };
  Random random(options.seed);
  std::vector<Component> components;
  for (int64_t k = 0; k < options.num_components; ++k) {
    // Separate statements: the draw order is part of the contract.
    const double frequency = random.Uniform(options.min_frequency, options.max_frequency);
    const double phase = random.Uniform(0.0, 2.0 * std::numbers::pi);
    const double amplitude = random.Uniform(options.min_amplitude, options.max_amplitude);
    components.push_back({frequency, phase, amplitude});
  }
  std::vector<float> series(static_cast<size_t>(length));
  for (int64_t t = 0; t < length; ++t) {
    double y = 0.0;
    for (const Component& c : components) {
      y += c.amplitude *
           std::sin(2.0 * std::numbers::pi * c.frequency * static_cast<double>(t) + c.phase);
    }
    series[t] = static_cast<float>(y + options.noise_std * random.Normal());
  }
  return series;
}

absl::StatusOr<Dataset> MakeNoisySinesDataset(int64_t series_length, const WindowOptions& window,
                                              const SinesOptions& options,
                                              const DatasetLimits& limits) {
  ASSIGN_OR_RETURN(std::vector<float> series, NoisySinesSeries(series_length, options, limits));
  return WindowSeries(series, "y", window, limits);
}

}  // namespace recurrent::core
