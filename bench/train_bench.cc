// train_bench: end-to-end training speed of core::Train (data handling, batching, engine,
// clipping and optimizer included) on the quality suite's models, one JSON object per line.
// bench/torch_train_bench.py runs the same loops in PyTorch; bench/run_train_bench.py compares.
//
//   OMP_NUM_THREADS=1 build/bin/train_bench --cases=adding_gru,adding_lstm,mackey_gru
//
// Cases (keep in sync with bench/torch_train_bench.py):
//   adding_gru   adding problem T=100 (2 inputs), GRU H=64, last-step head, MSE, batch 32, Adam
//   adding_lstm  the same with LSTM H=128, clipping at global norm 1
//   mackey_gru   Mackey-Glass next-value windows of 100 steps (1 input), GRU H=64, per-step head,
//                MSE, batch 32, Adam, normalized inputs and targets
// Iterations per second = optimizer steps / wall time between the end of step --warmup_steps and
// the end of step --steps, measured by the progress callback.
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_split.h"
#include "core/generators.h"
#include "core/trainer.h"

ABSL_FLAG(std::string, cases, "adding_gru,adding_lstm,mackey_gru", "Cases to run.");
ABSL_FLAG(int64_t, steps, 300, "Optimizer steps per case.");
ABSL_FLAG(int64_t, warmup_steps, 30, "Steps before the clock starts.");

namespace recurrent::bench {
namespace {

using Clock = std::chrono::steady_clock;

core::Dataset NextValueWindows(const std::vector<float>& series, int64_t window) {
  core::Dataset data;
  data.input_size = 1;
  data.target_size = 1;
  data.kind = core::TargetKind::kPerStepValues;
  for (int64_t s = 0; s + window + 1 <= static_cast<int64_t>(series.size()); s += 5) {
    core::Sequence sequence;
    sequence.length = window;
    sequence.inputs.assign(series.begin() + s, series.begin() + s + window);
    sequence.targets.assign(series.begin() + s + 1, series.begin() + s + window + 1);
    data.sequences.push_back(std::move(sequence));
  }
  return data;
}

int Run(const std::string& name) {
  core::Dataset data;
  core::ModelSpec spec;
  core::TrainerOptions options;
  options.batch_size = 32;
  options.max_epochs = 1'000'000;
  options.max_steps = absl::GetFlag(FLAGS_steps);
  options.optimizer.kind = core::OptimizerKind::kAdam;
  options.optimizer.learning_rate = 1e-3;
  if (name == "adding_gru" || name == "adding_lstm") {
    absl::StatusOr<core::Dataset> adding = core::MakeAddingProblem(3200, 100, 1);
    if (!adding.ok()) return 1;
    data = *std::move(adding);
    spec.cell = name == "adding_gru" ? core::CellType::kGru : core::CellType::kLstm;
    spec.hidden_size = name == "adding_gru" ? 64 : 128;
    spec.head = core::HeadMode::kLastStep;
    if (name == "adding_lstm") {
      options.clip_norm = 1.0;
      options.forget_gate_bias = 1.0;
    }
  } else if (name == "mackey_gru") {
    absl::StatusOr<std::vector<float>> series = core::MackeyGlassSeries(4000);
    if (!series.ok()) return 1;
    data = NextValueWindows(*series, 100);
    spec.cell = core::CellType::kGru;
    spec.hidden_size = 64;
    spec.head = core::HeadMode::kPerStep;
    options.normalize_inputs = true;
    options.normalize_targets = true;
    options.optimizer.learning_rate = 3e-3;
  } else {
    std::fprintf(stderr, "train_bench: unknown case %s\n", name.c_str());
    return 2;
  }
  spec.input_size = data.input_size;
  spec.output_size = 1;
  const int64_t warmup = absl::GetFlag(FLAGS_warmup_steps);
  Clock::time_point begin, end;
  core::TrainerHooks hooks;
  hooks.on_progress = [&](const core::TrainingProgress& progress) {
    if (progress.event != core::TrainingProgress::Event::kStep) return;
    if (progress.step == warmup) begin = Clock::now();
    if (progress.step == options.max_steps) end = Clock::now();
  };
  absl::StatusOr<core::TrainingOutcome> outcome = core::Train(spec, data, nullptr, options, hooks);
  if (!outcome.ok()) {
    std::fprintf(stderr, "train_bench: %s\n", outcome.status().ToString().c_str());
    return 1;
  }
  const double seconds = std::chrono::duration<double>(end - begin).count();
  const double rate = static_cast<double>(options.max_steps - warmup) / seconds;
  std::printf(
      "{\"impl\": \"engine\", \"case\": \"%s\", \"iterations_per_second\": %.3f, \"steps\": %lld, "
      "\"final_loss\": %.6g}\n",
      name.c_str(), rate, static_cast<long long>(options.max_steps - warmup),
      outcome->final_train_loss);
  std::fflush(stdout);
  return 0;
}

}  // namespace
}  // namespace recurrent::bench

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const std::vector<std::string> cases = absl::StrSplit(absl::GetFlag(FLAGS_cases), ',');
  for (const std::string& name : cases) {
    if (const int status = recurrent::bench::Run(name); status != 0) return status;
  }
  return 0;
}
