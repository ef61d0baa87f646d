// engine_bench: times the engine (core/network.h) on the benchmark shapes and oneDNN's sgemm on
// 2048^3, one JSON object per line on stdout. bench/torch_bench.py measures the same cases in
// PyTorch; bench/run_engine_bench.py runs both and prints the comparison (docs/benchmarks.md).
//
//   OMP_NUM_THREADS=1 build/bin/engine_bench --cases=sgemm,train_b_lstm,step_1_lstm
//
// Cases (keep in sync with CASES in bench/torch_bench.py):
//   sgemm                      dnnl_sgemm, M = N = K = 2048
//   {infer,train}_{a,b}_{cell} cell in {lstm, gru}; infer = Forward, train = ForwardBackward
//                              (forward + per-step linear head + MSE + full backward + gradients)
//     a: N = 32 sequences, T = 100 steps, I = 32 inputs, H = 128 hidden, L = 1 layer, O = 1
//     b: N = 64, T = 50, I = 128, H = 512, L = 2, O = 1
//   step_{1,64}_{cell}         Step() of N = 1 or 64 streams by one timestep,
//                              I = 8, H = 256, L = 2, O = 1; the state is carried between calls
//
// FLOPs count the recurrent layers' multiply-adds only (the O = 1 head is negligible): per
// timestep, layer l and direction, 2 * N * G * H * (I_l + H) forward, G = 4 (LSTM) or 3 (GRU);
// a training step counts 3x the forward (forward, backward data, backward weights).
//
// Each case runs warm-up iterations, then timed iterations (each timed on its own) until both
// --min_iters and --min_seconds are reached; it reports the median, min and p90 of the iterations.
// The thread count is OpenMP's (OMP_NUM_THREADS, or --threads); the engine picks between 1 and it
// per call shape (core/thread_tuner.h) unless --fixed_threads fixes it. Records carry the count the
// last call ran on ("engine_threads").
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/status/status.h"
#include "absl/strings/str_split.h"
#include "core/model_spec.h"
#include "core/network.h"
#include "core/parameters.h"
#include "core/tensor.h"
#include "oneapi/dnnl/dnnl.h"

ABSL_FLAG(std::string, cases,
          "sgemm,infer_a_lstm,train_a_lstm,infer_b_lstm,train_b_lstm,step_1_lstm,step_64_lstm",
          "Comma-separated cases to run (see the file comment).");
ABSL_FLAG(int, threads, 0, "OpenMP threads; 0 keeps OMP_NUM_THREADS / the OpenMP default.");
ABSL_FLAG(int, fixed_threads, 0,
          "NetworkOptions::num_threads of the timed networks: 0 = the engine's adaptive thread "
          "count (core/thread_tuner.h), N > 0 = always N threads.");
ABSL_FLAG(bool, small_batch_step, true,
          "NetworkOptions::small_batch_step: false runs steps of 1-4 streams on oneDNN's primitive "
          "(for an A/B comparison with the packed kernel).");
ABSL_FLAG(int, warmup_iters, 2, "Untimed iterations before timing (at least).");
ABSL_FLAG(double, warmup_seconds, 0.3, "Keep warming up until this much time has passed.");
ABSL_FLAG(int, min_iters, 5, "Timed iterations per case (at least).");
ABSL_FLAG(double, min_seconds, 1.0, "Keep timing until this much time has passed.");
ABSL_FLAG(int, max_iters, 20000, "Stop timing after this many iterations.");
ABSL_FLAG(double, max_seconds, 60.0,
          "Stop a case after this much time (warm-up included) once one timed iteration is done; "
          "bounds runs under CPU contention.");
ABSL_FLAG(bool, markers, false,
          "Print 'bench_marker,<case>,<iteration>' before and 'bench_time,<case>,<iteration>,"
          "<seconds>,<engine threads>' after every timed iteration, so that ONEDNN_VERBOSE "
          "output can be attributed to iterations (engine threads: the thread count the call "
          "ran on, 0 for sgemm). Warm-up iterations are not marked: with --warmup_iters=0 "
          "--warmup_seconds=0 every call is.");

namespace recurrent::bench {
namespace {

using core::CellType;
using Clock = std::chrono::steady_clock;

struct ShapeDims {
  int64_t n, t, i, h, l, o;
};
// Keep in sync with SHAPES in bench/torch_bench.py.
constexpr ShapeDims kShapeA = {32, 100, 32, 128, 1, 1};
constexpr ShapeDims kShapeB = {64, 50, 128, 512, 2, 1};
constexpr ShapeDims kStepShape = {1, 1, 8, 256, 2, 1};  // n is replaced by the case's batch

struct Case {
  std::string name;
  std::string kind;   // "sgemm", "infer", "train", "step"
  std::string cell;   // "lstm", "gru"; empty for sgemm
  bool bf16 = false;  // "_bf16" suffix: NetworkOptions::precision = kBfloat16
  ShapeDims dims{};
};

bool ParseCase(const std::string& name, Case* c) {
  c->name = name;
  if (name == "sgemm") {
    c->kind = "sgemm";
    c->dims = {2048, 1, 2048, 2048, 0, 0};  // M = n, K = i, N = h
    return true;
  }
  std::vector<std::string> parts = absl::StrSplit(name, '_');
  if (parts.size() == 4 && parts[3] == "bf16") {
    c->bf16 = true;
    parts.pop_back();
  }
  if (parts.size() != 3 || (parts[2] != "lstm" && parts[2] != "gru")) return false;
  c->kind = parts[0];
  c->cell = parts[2];
  if (c->kind == "infer" || c->kind == "train") {
    if (parts[1] == "a") {
      c->dims = kShapeA;
    } else if (parts[1] == "b") {
      c->dims = kShapeB;
    } else {
      return false;
    }
    return true;
  }
  if (c->kind == "step") {
    const int64_t batch = std::atoll(parts[1].c_str());
    if (batch < 1) return false;
    c->dims = kStepShape;
    c->dims.n = batch;
    return true;
  }
  return false;
}

// Forward multiply-add FLOPs of the recurrent layers over `steps` timesteps (see file comment).
double ForwardFlops(const Case& c, int64_t steps) {
  const int64_t gates = c.cell == "lstm" ? 4 : 3;
  const ShapeDims& d = c.dims;
  double flops = 0.0;
  for (int64_t layer = 0; layer < d.l; ++layer) {
    const int64_t in = layer == 0 ? d.i : d.h;
    flops += 2.0 * d.n * gates * d.h * (in + d.h);
  }
  return flops * steps;
}

double CaseFlops(const Case& c) {
  if (c.kind == "sgemm") return 2.0 * c.dims.n * c.dims.i * c.dims.h;
  if (c.kind == "train") return 3.0 * ForwardFlops(c, c.dims.t);
  if (c.kind == "step") return ForwardFlops(c, 1);
  return ForwardFlops(c, c.dims.t);
}

std::vector<float> RandomValues(int64_t count, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<float> values(count);
  for (float& v : values) v = uniform(rng);
  return values;
}

// Prints an error record (and the reason on stderr) and exits with status 1.
[[noreturn]] void Fail(const std::string& case_name, const std::string& message) {
  std::string quoted;  // a JSON string body: no quotes, backslashes or control characters
  for (const char ch : message) quoted += (ch == '"' || ch == '\\' || ch < ' ') ? '\'' : ch;
  std::printf("{\"impl\": \"engine\", \"case\": \"%s\", \"error\": \"%s\"}\n", case_name.c_str(),
              quoted.c_str());
  std::fprintf(stderr, "engine_bench: %s: %s\n", case_name.c_str(), message.c_str());
  std::fflush(stdout);
  std::exit(1);
}

// The network being timed, for the per-iteration markers; null for sgemm.
const core::Network* g_network = nullptr;

struct Timing {
  std::vector<double> seconds;  // timed iterations, sorted
  double Percentile(double p) const {
    const size_t index = static_cast<size_t>(p * static_cast<double>(seconds.size() - 1) + 0.5);
    return seconds[std::min(index, seconds.size() - 1)];
  }
};

// Runs `body` for warm-up, then times it iteration by iteration (see the flags).
Timing TimeIterations(const Case& c, const std::function<absl::Status()>& body) {
  const double max_seconds = absl::GetFlag(FLAGS_max_seconds);
  const bool markers = absl::GetFlag(FLAGS_markers);
  const auto elapsed_since = [](Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
  };
  const Clock::time_point start = Clock::now();
  for (int i = 0; i < absl::GetFlag(FLAGS_warmup_iters) ||
                  elapsed_since(start) < absl::GetFlag(FLAGS_warmup_seconds);
       ++i) {
    if (const absl::Status status = body(); !status.ok()) Fail(c.name, status.ToString());
    // A slow iteration (contention) must not eat the whole budget in warm-up.
    if (elapsed_since(start) > max_seconds / 4) break;
  }
  Timing timing;
  const Clock::time_point timed_start = Clock::now();
  while (true) {
    const double timed = elapsed_since(timed_start);
    const int64_t done = static_cast<int64_t>(timing.seconds.size());
    if (done >= absl::GetFlag(FLAGS_max_iters)) break;
    if (done >= absl::GetFlag(FLAGS_min_iters) && timed >= absl::GetFlag(FLAGS_min_seconds)) break;
    if (done >= 1 && elapsed_since(start) >= max_seconds) break;
    if (markers)
      std::printf("bench_marker,%s,%lld\n", c.name.c_str(), static_cast<long long>(done));
    const Clock::time_point t0 = Clock::now();
    if (const absl::Status status = body(); !status.ok()) Fail(c.name, status.ToString());
    timing.seconds.push_back(elapsed_since(t0));
    if (markers) {
      std::printf("bench_time,%s,%lld,%.9g,%d\n", c.name.c_str(), static_cast<long long>(done),
                  timing.seconds.back(), g_network != nullptr ? g_network->last_call_threads() : 0);
    }
  }
  std::sort(timing.seconds.begin(), timing.seconds.end());
  return timing;
}

Timing RunSgemm(const Case& c) {
  const int64_t m = c.dims.n, k = c.dims.i, n = c.dims.h;
  const std::vector<float> a = RandomValues(m * k, 1), b = RandomValues(k * n, 2);
  std::vector<float> out(m * n);
  return TimeIterations(c, [&]() {
    if (dnnl_sgemm('N', 'N', m, n, k, 1.0f, a.data(), k, b.data(), n, 0.0f, out.data(), n) !=
        dnnl_success) {
      return absl::InternalError("dnnl_sgemm failed");
    }
    return absl::OkStatus();
  });
}

// Facts about the last network case beyond its timing, for the JSON record.
struct NetworkFacts {
  int engine_threads = 0;          // thread count the engine's tuner settled on (last call)
  double rel_error_vs_f32 = -1.0;  // bf16 cases: ||out_bf16 - out_f32|| / ||out_f32||
};
NetworkFacts g_facts;

// Norm-wise relative error of a bfloat16 network's outputs against float32 with the same weights.
double Bfloat16OutputError(const core::ModelSpec& spec, const core::Tensor& inputs) {
  const core::ParameterSet params = core::InitParameters(spec, /*seed=*/7);
  core::NetworkOptions options;
  options.precision = core::Precision::kBfloat16;
  auto f32 = core::Network::Create(spec, params);
  auto bf16 = core::Network::Create(spec, params, options);
  core::ForwardResult expected, actual;
  if (!f32.ok() || !bf16.ok() || !(*f32)->Forward(inputs, nullptr, &expected).ok() ||
      !(*bf16)->Forward(inputs, nullptr, &actual).ok()) {
    return -1.0;
  }
  double diff = 0.0, norm = 0.0;
  for (int64_t i = 0; i < expected.outputs.size(); ++i) {
    diff += std::pow(double{actual.outputs.values[i]} - expected.outputs.values[i], 2);
    norm += std::pow(double{expected.outputs.values[i]}, 2);
  }
  return std::sqrt(diff / norm);
}

Timing RunNetwork(const Case& c) {
  const ShapeDims& d = c.dims;
  core::ModelSpec spec;
  spec.cell = c.cell == "lstm" ? CellType::kLstm : CellType::kGru;
  spec.input_size = d.i;
  spec.hidden_size = d.h;
  spec.num_layers = d.l;
  spec.head = core::HeadMode::kPerStep;
  spec.output_size = d.o;
  spec.loss = core::LossType::kMse;
  core::NetworkOptions options;
  if (c.bf16) options.precision = core::Precision::kBfloat16;
  options.num_threads = absl::GetFlag(FLAGS_fixed_threads);
  options.small_batch_step = absl::GetFlag(FLAGS_small_batch_step);
  absl::StatusOr<std::unique_ptr<core::Network>> created =
      core::Network::Create(spec, core::InitParameters(spec, /*seed=*/7), options);
  if (!created.ok()) Fail(c.name, created.status().ToString());
  core::Network& network = **created;
  g_facts = {};
  if (c.bf16) {
    g_facts.rel_error_vs_f32 = Bfloat16OutputError(
        spec, core::Tensor({d.n, std::max<int64_t>(d.t, 1), d.i},
                           RandomValues(d.n * std::max<int64_t>(d.t, 1) * d.i, 3)));
  }
  g_network = &network;
  struct RecordThreads {
    core::Network& network;
    ~RecordThreads() {
      g_facts.engine_threads = network.last_call_threads();
      g_network = nullptr;
    }
  } record_threads{network};

  if (c.kind == "step") {
    const int64_t state_size = network.step_state_size();
    std::vector<float> states(d.n * state_size, 0.0f);
    std::vector<float*> state_ptrs(d.n);
    for (int64_t s = 0; s < d.n; ++s) state_ptrs[s] = states.data() + s * state_size;
    const std::vector<float> inputs = RandomValues(d.n * d.i, 3);
    std::vector<float> outputs(d.n * d.o);
    return TimeIterations(
        c, [&]() { return network.Step(inputs.data(), d.n, state_ptrs.data(), outputs.data()); });
  }
  const core::Tensor inputs({d.n, d.t, d.i}, RandomValues(d.n * d.t * d.i, 3));
  if (c.kind == "infer") {
    core::ForwardResult result;
    return TimeIterations(c, [&]() { return network.Forward(inputs, nullptr, &result); });
  }
  core::Targets targets;
  targets.values = core::Tensor({d.n, d.t, d.o}, RandomValues(d.n * d.t * d.o, 4));
  core::TrainingResult result;
  return TimeIterations(
      c, [&]() { return network.ForwardBackward(inputs, targets, nullptr, &result); });
}

const char* EnvOr(const char* name, const char* fallback) {
  const char* value = std::getenv(name);
  return value != nullptr ? value : fallback;
}

int Main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  if (absl::GetFlag(FLAGS_threads) > 0) omp_set_num_threads(absl::GetFlag(FLAGS_threads));
  const int threads = omp_get_max_threads();
  const dnnl_version_t* version = dnnl_version();
  std::printf(
      "{\"impl\": \"engine\", \"info\": true, \"threads\": %d, \"onednn\": \"%d.%d.%d\", "
      "\"OMP_NUM_THREADS\": \"%s\", \"OMP_WAIT_POLICY\": \"%s\", \"GOMP_SPINCOUNT\": \"%s\", "
      "\"fixed_threads\": %d, \"small_batch_step\": %s}\n",
      threads, version->major, version->minor, version->patch, EnvOr("OMP_NUM_THREADS", ""),
      EnvOr("OMP_WAIT_POLICY", ""), EnvOr("GOMP_SPINCOUNT", ""), absl::GetFlag(FLAGS_fixed_threads),
      absl::GetFlag(FLAGS_small_batch_step) ? "true" : "false");
  std::fflush(stdout);

  const std::vector<std::string> names =
      absl::StrSplit(absl::GetFlag(FLAGS_cases), ',', absl::SkipEmpty());
  for (const std::string& name : names) {
    Case c;
    if (!ParseCase(name, &c)) Fail(name, "unknown case");
    const Timing timing = c.kind == "sgemm" ? RunSgemm(c) : RunNetwork(c);
    const double median = timing.Percentile(0.5);
    const double flops = CaseFlops(c);
    const ShapeDims& d = c.dims;
    std::printf(
        "{\"impl\": \"engine\", \"case\": \"%s\", \"kind\": \"%s\", \"cell\": \"%s\", "
        "\"N\": %lld, \"T\": %lld, \"I\": %lld, \"H\": %lld, \"L\": %lld, \"O\": %lld, "
        "\"threads\": %d, \"iters\": %zu, \"median_s\": %.9g, \"min_s\": %.9g, \"p90_s\": %.9g, "
        "\"flops\": %.6g, \"gflops\": %.4g, \"precision\": \"%s\", \"engine_threads\": %d, "
        "\"rel_error_vs_f32\": %.4g}\n",
        c.name.c_str(), c.kind.c_str(), c.cell.c_str(), static_cast<long long>(d.n),
        static_cast<long long>(d.t), static_cast<long long>(d.i), static_cast<long long>(d.h),
        static_cast<long long>(d.l), static_cast<long long>(d.o), threads, timing.seconds.size(),
        median, timing.seconds.front(), timing.Percentile(0.9), flops, flops / median / 1e9,
        c.bf16 ? "bf16" : "f32", c.kind == "sgemm" ? 0 : g_facts.engine_threads,
        g_facts.rel_error_vs_f32);
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace
}  // namespace recurrent::bench

int main(int argc, char** argv) { return recurrent::bench::Main(argc, argv); }
