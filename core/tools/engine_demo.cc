// recurrent-demo: the engine and the trainer end to end on built-in data, with no server.
//
// Trains an LSTM forecaster with core::Train on next-value windows of the Mackey-Glass series
// (validation split, early stopping, normalization), streams a held-out stretch through Step()
// one sample at a time, compares with the naive "repeat the last value" forecast, then saves the
// model artifact, reloads it and checks that it predicts the same.
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "core/artifact.h"
#include "core/generators.h"
#include "core/network.h"
#include "core/normalization.h"
#include "core/trainer.h"

namespace recurrent::core {
namespace {

constexpr int64_t kWindow = 50;  // timesteps per training example
constexpr int64_t kSeriesLength = 6000;
constexpr int64_t kHeldOut = 1000;  // last samples, never trained on

int Fail(const std::string& what, const absl::Status& status) {
  std::fprintf(stderr, "recurrent-demo: %s: %s\n", what.c_str(), status.ToString().c_str());
  return 1;
}

// Per-step next-value examples: inputs x[s..s+W), targets x[s+1..s+W].
Dataset NextValueWindows(const std::vector<float>& series, int64_t end) {
  Dataset data;
  data.input_size = 1;
  data.target_size = 1;
  data.kind = TargetKind::kPerStepValues;
  data.input_names = {"x"};
  data.target_names = {"x_next"};
  for (int64_t s = 0; s + kWindow + 1 <= end; s += 5) {
    Sequence sequence;
    sequence.length = kWindow;
    sequence.inputs.assign(series.begin() + s, series.begin() + s + kWindow);
    sequence.targets.assign(series.begin() + s + 1, series.begin() + s + kWindow + 1);
    data.sequences.push_back(std::move(sequence));
  }
  return data;
}

// The demo itself (main() below only calls it).
int Run(int argc, char** argv) {
  const std::string artifact_path = argc > 1 ? argv[1] : "recurrent-demo-model.rcnt";
  absl::StatusOr<std::vector<float>> generated = MackeyGlassSeries(kSeriesLength);
  if (!generated.ok()) return Fail("data", generated.status());
  const std::vector<float>& series = *generated;
  const int64_t train_end = kSeriesLength - kHeldOut;
  const Dataset data = NextValueWindows(series, train_end);

  ModelSpec spec;
  spec.cell = CellType::kLstm;
  spec.input_size = 1;
  spec.hidden_size = 32;
  spec.head = HeadMode::kPerStep;
  spec.output_size = 1;
  std::printf("model: %s, %lld parameters; data: Mackey-Glass (tau 17), %zu windows of %lld\n",
              DescribeSpec(spec).c_str(), static_cast<long long>(ParameterCount(spec)),
              data.sequences.size(), static_cast<long long>(kWindow));

  TrainerOptions options;
  options.batch_size = 32;
  options.max_epochs = 30;
  options.optimizer.learning_rate = 3e-3;
  options.validation_split = 0.1;
  options.early_stopping.enabled = true;
  options.early_stopping.patience = 5;
  options.normalize_inputs = true;
  options.normalize_targets = true;
  options.clip_norm = 1.0;
  options.forget_gate_bias = 1.0;
  TrainerHooks hooks;
  hooks.on_progress = [](const TrainingProgress& p) {
    if (p.event != TrainingProgress::Event::kEpochEnd) return;
    std::printf("epoch %2lld  train %.6f  validation %.6f  lr %.4g  %6.0f seq/s  %5.1f s\n",
                static_cast<long long>(p.epoch) + 1, p.loss, p.validation_loss.value_or(NAN),
                p.learning_rate, p.sequences_per_second, p.elapsed_seconds);
  };
  absl::StatusOr<TrainingOutcome> outcome = Train(spec, data, nullptr, options, hooks);
  if (!outcome.ok()) return Fail("train", outcome.status());
  std::printf(
      "stopped: %s after %lld epochs, %lld steps, %.1f s; best validation loss %.6f "
      "(epoch %lld)\n",
      std::string(StopReasonName(outcome->reason)).c_str(), static_cast<long long>(outcome->epochs),
      static_cast<long long>(outcome->steps), outcome->elapsed_seconds,
      outcome->best_loss.value_or(NAN), static_cast<long long>(outcome->best_epoch) + 1);
  const Model& model = outcome->model;

  // Stream the series one sample at a time; score the forecasts on the held-out part only.
  auto created = Network::Create(spec, model.parameters);
  if (!created.ok()) return Fail("create", created.status());
  std::unique_ptr<Network> network = *std::move(created);
  std::vector<float> state(network->step_state_size(), 0.0f);
  float* stream_state = state.data();
  double model_sq = 0.0, naive_sq = 0.0;
  for (int64_t t = 0; t + 1 < kSeriesLength; ++t) {
    float input = series[t], prediction = 0.0f;
    NormalizeInputs(model.normalization, &input, 1);
    if (auto s = network->Step(&input, 1, &stream_state, &prediction); !s.ok()) {
      return Fail("step", s);
    }
    DenormalizeOutputs(model.normalization, &prediction, 1);
    if (t >= train_end) {
      model_sq += std::pow(prediction - series[t + 1], 2);
      naive_sq += std::pow(series[t] - series[t + 1], 2);
    }
  }
  const int64_t scored = kHeldOut - 1;
  std::printf("held-out next-sample RMSE: model %.5f, repeat-last-value %.5f\n",
              std::sqrt(model_sq / scored), std::sqrt(naive_sq / scored));

  // Save, reload, and check the reloaded model computes the same thing.
  if (auto s = WriteModelFile(artifact_path, model); !s.ok()) return Fail("save", s);
  auto loaded = ReadModelFile(artifact_path);
  if (!loaded.ok()) return Fail("load", loaded.status());
  auto reloaded = Network::Create(loaded->spec, loaded->parameters);
  if (!reloaded.ok()) return Fail("create reloaded", reloaded.status());
  Tensor probe({1, kWindow, 1});
  for (int64_t t = 0; t < kWindow; ++t) probe.values[t] = series[train_end + t];
  ForwardResult before, after;
  if (auto s = network->Forward(probe, nullptr, &before); !s.ok()) return Fail("forward", s);
  if (auto s = (*reloaded)->Forward(probe, nullptr, &after); !s.ok()) return Fail("forward", s);
  const bool same =
      before.outputs.values == after.outputs.values && loaded->normalization == model.normalization;
  std::printf("saved %s (%d epochs of loss history, data set %s); reloaded model predicts %s\n",
              artifact_path.c_str(), loaded->training.loss_history_size(),
              loaded->training.dataset_fingerprint().c_str(), same ? "identically" : "DIFFERENTLY");
  return same ? 0 : 1;
}

}  // namespace
}  // namespace recurrent::core

int main(int argc, char** argv) { return recurrent::core::Run(argc, argv); }
