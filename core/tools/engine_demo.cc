// recurrent-demo: the engine end to end on built-in data, with no server.
//
// Builds an LSTM forecaster, trains it with Adam on windows of a noisy two-tone signal, streams
// a held-out stretch through Step() one sample at a time, compares with the naive "repeat the
// last value" forecast, then saves the model artifact, reloads it and checks it predicts the same.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "core/artifact.h"
#include "core/network.h"

namespace {

using recurrent::core::ForwardResult;
using recurrent::core::ModelSpec;
using recurrent::core::Network;
using recurrent::core::ParameterSet;
using recurrent::core::Tensor;

constexpr int kWindow = 50;       // timesteps per training example
constexpr int kBatch = 32;        // sequences per training step
constexpr int kTrainSteps = 400;  // Adam steps
constexpr int kSeriesLength = 6000;
constexpr int kHeldOut = 1000;  // last samples, never trained on

std::vector<float> MakeSeries(uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> noise(0.0f, 0.05f);
  std::vector<float> series(kSeriesLength);
  for (int t = 0; t < kSeriesLength; ++t) {
    series[t] = std::sin(0.07f * t) + 0.5f * std::sin(0.23f * t + 1.0f) + noise(rng);
  }
  return series;
}

// Minimal Adam (the trainer proper is a later milestone); state per parameter tensor.
struct Adam {
  float learning_rate = 0.01f, beta1 = 0.9f, beta2 = 0.999f, epsilon = 1e-8f;
  int step = 0;
  ParameterSet m, v;
  void Apply(const ParameterSet& grads, ParameterSet* params) {
    ++step;
    const float c1 = 1.0f - std::pow(beta1, static_cast<float>(step));
    const float c2 = 1.0f - std::pow(beta2, static_cast<float>(step));
    for (auto& [name, tensor] : *params) {
      const Tensor& g = grads.at(name);
      Tensor& mt = m.try_emplace(name, Tensor(tensor.shape)).first->second;
      Tensor& vt = v.try_emplace(name, Tensor(tensor.shape)).first->second;
      for (int64_t i = 0; i < tensor.size(); ++i) {
        mt.values[i] = beta1 * mt.values[i] + (1 - beta1) * g.values[i];
        vt.values[i] = beta2 * vt.values[i] + (1 - beta2) * g.values[i] * g.values[i];
        tensor.values[i] -=
            learning_rate * (mt.values[i] / c1) / (std::sqrt(vt.values[i] / c2) + epsilon);
      }
    }
  }
};

int Fail(const std::string& what, const absl::Status& status) {
  std::fprintf(stderr, "recurrent-demo: %s: %s\n", what.c_str(), status.ToString().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string artifact_path = argc > 1 ? argv[1] : "recurrent-demo-model.rcnt";
  const std::vector<float> series = MakeSeries(7);
  const int train_end = kSeriesLength - kHeldOut;

  ModelSpec spec;
  spec.cell = recurrent::core::CellType::kLstm;
  spec.input_size = 1;
  spec.hidden_size = 32;
  spec.num_layers = 1;
  spec.output_size = 1;
  ParameterSet params = recurrent::core::InitParameters(spec, 1);
  auto created = Network::Create(spec, params);
  if (!created.ok()) return Fail("create", created.status());
  std::unique_ptr<Network> network = *std::move(created);
  std::printf("model: %s, %lld parameters\n", recurrent::core::DescribeSpec(spec).c_str(),
              static_cast<long long>(recurrent::core::ParameterCount(spec)));

  // Each example: inputs x[t..t+W), targets x[t+1..t+W] (next-sample forecasting on every step).
  std::mt19937_64 rng(3);
  std::uniform_int_distribution<int> start(0, train_end - kWindow - 2);
  Tensor inputs({kBatch, kWindow, 1});
  recurrent::core::Targets targets;
  targets.values = Tensor({kBatch, kWindow, 1});
  Adam adam;
  recurrent::core::TrainingResult step_result;
  const auto began = std::chrono::steady_clock::now();
  for (int step = 1; step <= kTrainSteps; ++step) {
    for (int n = 0; n < kBatch; ++n) {
      const int s = start(rng);
      for (int t = 0; t < kWindow; ++t) {
        inputs.values[n * kWindow + t] = series[s + t];
        targets.values.values[n * kWindow + t] = series[s + t + 1];
      }
    }
    if (auto s = network->ForwardBackward(inputs, targets, nullptr, &step_result); !s.ok()) {
      return Fail("train step", s);
    }
    adam.Apply(step_result.gradients, &params);
    if (auto s = network->SetParameters(params); !s.ok()) return Fail("update", s);
    if (step == 1 || step % 50 == 0) {
      std::printf("train step %4d  loss %.5f\n", step, step_result.loss);
    }
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
  std::printf("trained %d steps in %.2f s (%.0f sequences/s)\n", kTrainSteps, seconds,
              kTrainSteps * kBatch / seconds);

  // Stream the series one sample at a time; score the forecasts on the held-out part only.
  std::vector<float> state(network->step_state_size(), 0.0f);
  float* stream_state = state.data();
  double model_sq = 0.0, naive_sq = 0.0;
  float prediction = 0.0f;
  for (int t = 0; t + 1 < kSeriesLength; ++t) {
    if (auto s = network->Step(&series[t], 1, &stream_state, &prediction); !s.ok()) {
      return Fail("step", s);
    }
    if (t >= train_end) {
      model_sq += std::pow(prediction - series[t + 1], 2);
      naive_sq += std::pow(series[t] - series[t + 1], 2);
    }
  }
  const int scored = kHeldOut - 1;
  std::printf("held-out next-sample RMSE: model %.4f, repeat-last-value %.4f (noise floor 0.05)\n",
              std::sqrt(model_sq / scored), std::sqrt(naive_sq / scored));

  // Save, reload, and check the reloaded model computes the same thing.
  recurrent::core::Model model;
  model.spec = spec;
  model.parameters = params;
  model.labels["source"] = "recurrent-demo";
  if (auto s = recurrent::core::WriteModelFile(artifact_path, model); !s.ok()) {
    return Fail("save", s);
  }
  auto loaded = recurrent::core::ReadModelFile(artifact_path);
  if (!loaded.ok()) return Fail("load", loaded.status());
  auto reloaded = Network::Create(loaded->spec, loaded->parameters);
  if (!reloaded.ok()) return Fail("create reloaded", reloaded.status());
  Tensor probe({1, kWindow, 1});
  for (int t = 0; t < kWindow; ++t) probe.values[t] = series[train_end + t];
  ForwardResult before, after;
  if (auto s = network->Forward(probe, nullptr, &before); !s.ok()) return Fail("forward", s);
  if (auto s = (*reloaded)->Forward(probe, nullptr, &after); !s.ok()) return Fail("forward", s);
  const bool same = before.outputs.values == after.outputs.values;
  std::printf("saved %s; reloaded model predicts %s\n", artifact_path.c_str(),
              same ? "identically" : "DIFFERENTLY");
  return same ? 0 : 1;
}
