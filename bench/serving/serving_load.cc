// Closed-loop load generator of the serving benchmark (bench/serving/run_serving_bench.py).
//
//   --mode=step:    --streams StepPredict streams, each sending one timestep and waiting for its
//                   prediction before sending the next;
//   --mode=predict: --clients concurrent callers of Predict, each with a batch of --sequences
//                   sequences of --steps timesteps;
//   --mode=engine:  the engine's in-process Step time (no gRPC) of --engine_batch streams stepped
//                   together, from --artifact.
//
// Warm-up, then a fixed measured window. Prints one JSON line: throughput, latency p50/p90/p99/max
// (from every request's latency), this process's CPU time per request over the window, and, with
// --server_pid, the server's (utime + stime from /proc). The two together are what one request
// costs the machine when client and server share it (run_serving_bench.py's CPU budget). The client
// runs on gRPC's callback API (no thread per stream), so the client's own cost is the same for
// every server it drives.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_format.h"
#include "core/artifact.h"
#include "core/network.h"
#include "grpcpp/grpcpp.h"
#include "recurrent/v1/service.grpc.pb.h"

ABSL_FLAG(std::string, server, "127.0.0.1:50051", "The server to load.");
ABSL_FLAG(std::string, mode, "step", "step, predict or engine.");
ABSL_FLAG(std::string, model, "bench", "Model name sent in requests.");
ABSL_FLAG(int, streams, 1, "step mode: concurrent streams.");
ABSL_FLAG(int, clients, 4, "predict mode: concurrent callers.");
ABSL_FLAG(int, sequences, 8, "predict mode: sequences per request.");
ABSL_FLAG(int, steps, 50, "predict mode: timesteps per sequence.");
ABSL_FLAG(int, input_size, 8, "Inputs per timestep.");
ABSL_FLAG(double, warmup_s, 2, "Seconds of load before measuring.");
ABSL_FLAG(double, duration_s, 10, "Seconds measured.");
ABSL_FLAG(int, server_pid, 0, "The server's pid, for its CPU time per request.");
ABSL_FLAG(std::string, artifact, "", "engine mode: the model artifact.");
ABSL_FLAG(int, engine_batch, 1, "engine mode: streams per Step call.");
ABSL_FLAG(std::string, engine_precision, "float32", "engine mode: float32 or bfloat16.");
ABSL_FLAG(std::string, label, "", "A name for this run, echoed in the JSON.");

namespace recurrent::bench {
namespace {

using Clock = std::chrono::steady_clock;

// Shared by all streams/callers: the phase and the latencies of the measured window.
struct Recorder {
  std::atomic<bool> measuring{false};
  std::atomic<bool> stopping{false};
  std::mutex mutex;
  std::vector<float> micros;  // guarded by mutex
  std::atomic<int64_t> errors{0};
  std::string first_error;  // guarded by mutex

  void Record(Clock::duration latency, std::vector<float>* local) {
    if (measuring.load(std::memory_order_relaxed)) {
      local->push_back(std::chrono::duration<float, std::micro>(latency).count());
    }
  }
  void Merge(const std::vector<float>& local) {
    std::lock_guard lock(mutex);
    micros.insert(micros.end(), local.begin(), local.end());
  }
  void Error(const grpc::Status& status) {
    ++errors;
    std::lock_guard lock(mutex);
    if (first_error.empty()) first_error = status.error_message();
  }
};

// One StepPredict stream: open, then step after step until told to stop.
class StepStream final : public grpc::ClientBidiReactor<v1::StepRequest, v1::StepResponse> {
 public:
  StepStream(v1::InferenceService::Stub* stub, Recorder* recorder, int input_size, int seed)
      : recorder_(recorder) {
    open_.mutable_open()->mutable_model()->set_name(absl::GetFlag(FLAGS_model));
    step_.mutable_step()->set_steps(1);
    for (int i = 0; i < input_size; ++i) {
      step_.mutable_step()->add_values(0.01f * static_cast<float>((seed * 7 + i) % 13));
    }
    stub->async()->StepPredict(&context_, this);
    // A cycle is a write and a read; the next starts when both are back (two writes may not be
    // outstanding at once, and the read can complete before its write does).
    pending_ = 2;
    StartWrite(&open_);
    StartRead(&response_);
    StartCall();
  }
  void OnWriteDone(bool ok) override {
    if (ok) Arrive();  // on failure the read reports it
  }
  void OnReadDone(bool ok) override {
    if (!ok) return;  // the call is over; OnDone follows
    if (response_.has_output()) recorder_->Record(Clock::now() - sent_, &latencies_);
    Arrive();
  }
  void OnDone(const grpc::Status& status) override {
    if (!status.ok()) recorder_->Error(status);
    recorder_->Merge(latencies_);
    std::lock_guard lock(mutex_);
    done_ = true;
    cv_.notify_all();
  }
  void Await() {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [this] { return done_; });
  }

 private:
  void Arrive() {
    if (pending_.fetch_sub(1) != 1) return;
    if (recorder_->stopping.load()) {
      StartWritesDone();
      return;
    }
    pending_ = 2;
    sent_ = Clock::now();
    StartWrite(&step_);
    StartRead(&response_);
  }

  Recorder* const recorder_;
  std::atomic<int> pending_{0};
  grpc::ClientContext context_;
  v1::StepRequest open_, step_;
  v1::StepResponse response_;
  Clock::time_point sent_;
  std::vector<float> latencies_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool done_ = false;
};

// One Predict caller: request after request until told to stop.
class PredictCaller {
 public:
  PredictCaller(v1::InferenceService::Stub* stub, Recorder* recorder, const v1::PredictRequest& r)
      : stub_(stub), recorder_(recorder), request_(r) {
    Next();
  }
  void Await() {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [this] { return done_; });
  }

 private:
  void Next() {
    if (recorder_->stopping.load()) {
      recorder_->Merge(latencies_);
      std::lock_guard lock(mutex_);
      done_ = true;
      cv_.notify_all();
      return;
    }
    context_ = std::make_unique<grpc::ClientContext>();
    response_.Clear();
    sent_ = Clock::now();
    stub_->async()->Predict(context_.get(), &request_, &response_, [this](grpc::Status status) {
      if (status.ok()) {
        recorder_->Record(Clock::now() - sent_, &latencies_);
      } else {
        recorder_->Error(status);
      }
      Next();
    });
  }

  v1::InferenceService::Stub* const stub_;
  Recorder* const recorder_;
  const v1::PredictRequest request_;
  std::unique_ptr<grpc::ClientContext> context_;
  v1::PredictResponse response_;
  Clock::time_point sent_;
  std::vector<float> latencies_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool done_ = false;
};

double ProcessCpuSeconds(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), {});
  const size_t close = text.rfind(')');
  if (close == std::string::npos) return 0.0;
  std::istringstream fields(text.substr(close + 2));
  std::string field;
  double utime = 0, stime = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i) {  // fields 14 and 15: utime, stime
    if (i == 14) utime = std::stod(field);
    if (i == 15) stime = std::stod(field);
  }
  return (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// Per request: server_cpu_seconds, client_cpu_seconds (0: not measured), and for the engine mode
// `batch`, the streams per call (1 elsewhere).
void Report(std::vector<float> micros, double seconds, double server_cpu_seconds,
            double client_cpu_seconds, int64_t errors, const std::string& first_error,
            int concurrency, int batch) {
  std::sort(micros.begin(), micros.end());
  auto at = [&](double q) {
    return micros.empty() ? 0.0 : micros[static_cast<size_t>(q * (micros.size() - 1))];
  };
  auto per_request = [&](double cpu_seconds) {
    return micros.empty() || cpu_seconds <= 0 ? 0.0 : cpu_seconds * 1e6 / micros.size();
  };
  std::printf(
      "{\"label\": \"%s\", \"mode\": \"%s\", \"concurrency\": %d, \"requests\": %zu, "
      "\"seconds\": %.3f, \"throughput\": %.1f, \"p50_us\": %.1f, \"p90_us\": %.1f, "
      "\"p99_us\": %.1f, \"max_us\": %.1f, \"server_cpu_us_per_request\": %.1f, "
      "\"client_cpu_us_per_request\": %.1f, \"batch\": %d, \"errors\": %lld, "
      "\"first_error\": \"%s\"}\n",
      absl::GetFlag(FLAGS_label).c_str(), absl::GetFlag(FLAGS_mode).c_str(), concurrency,
      micros.size(), seconds, micros.size() / seconds, at(0.5), at(0.9), at(0.99),
      micros.empty() ? 0.0 : micros.back(), per_request(server_cpu_seconds),
      per_request(client_cpu_seconds), batch, static_cast<long long>(errors), first_error.c_str());
  std::fflush(stdout);
}

int RunEngine() {
  absl::StatusOr<core::Model> model = core::ReadModelFile(absl::GetFlag(FLAGS_artifact));
  if (!model.ok()) {
    std::fprintf(stderr, "serving_load: %s\n", model.status().ToString().c_str());
    return 1;
  }
  const int batch = absl::GetFlag(FLAGS_engine_batch);
  if (batch < 1) {
    std::fprintf(stderr, "serving_load: --engine_batch must be >= 1\n");
    return 2;
  }
  core::NetworkOptions options;
  options.num_threads = 1;
  if (absl::GetFlag(FLAGS_engine_precision) == "bfloat16") {
    options.precision = core::Precision::kBfloat16;
  } else if (absl::GetFlag(FLAGS_engine_precision) != "float32") {
    std::fprintf(stderr, "serving_load: --engine_precision is float32 or bfloat16\n");
    return 2;
  }
  auto network = core::Network::Create(model->spec, model->parameters, options);
  if (!network.ok()) {
    std::fprintf(stderr, "serving_load: %s\n", network.status().ToString().c_str());
    return 1;
  }
  // Each stream's state in its own allocation, as the server's sessions hold them.
  std::vector<std::vector<float>> states(batch,
                                         std::vector<float>((*network)->step_state_size(), 0.0f));
  std::vector<float*> state_pointers;
  for (std::vector<float>& state : states) state_pointers.push_back(state.data());
  std::vector<float> inputs(batch * model->spec.input_size, 0.1f),
      outputs(batch * model->spec.output_size);
  const auto step = [&] {
    (void)(*network)->Step(inputs.data(), batch, state_pointers.data(), outputs.data());
  };
  std::vector<float> micros;
  const auto warm_end = Clock::now() + std::chrono::duration<double>(absl::GetFlag(FLAGS_warmup_s));
  while (Clock::now() < warm_end) step();
  const auto start = Clock::now();
  const auto end = start + std::chrono::duration<double>(absl::GetFlag(FLAGS_duration_s));
  while (Clock::now() < end) {
    const auto t0 = Clock::now();
    step();
    micros.push_back(std::chrono::duration<float, std::micro>(Clock::now() - t0).count());
  }
  Report(std::move(micros), std::chrono::duration<double>(Clock::now() - start).count(), 0, 0, 0,
         "", 1, batch);
  return 0;
}

int Main() {
  if (absl::GetFlag(FLAGS_mode) == "engine") return RunEngine();
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  auto channel = grpc::CreateCustomChannel(absl::GetFlag(FLAGS_server),
                                           grpc::InsecureChannelCredentials(), args);
  if (!channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10))) {
    std::fprintf(stderr, "serving_load: cannot connect to %s\n",
                 absl::GetFlag(FLAGS_server).c_str());
    return 1;
  }
  auto stub = v1::InferenceService::NewStub(channel);
  Recorder recorder;
  const int pid = absl::GetFlag(FLAGS_server_pid);
  std::vector<std::unique_ptr<StepStream>> streams;
  std::vector<std::unique_ptr<PredictCaller>> callers;
  int concurrency = 0;
  if (absl::GetFlag(FLAGS_mode) == "step") {
    concurrency = absl::GetFlag(FLAGS_streams);
    for (int s = 0; s < concurrency; ++s) {
      streams.push_back(
          std::make_unique<StepStream>(stub.get(), &recorder, absl::GetFlag(FLAGS_input_size), s));
    }
  } else if (absl::GetFlag(FLAGS_mode) == "predict") {
    concurrency = absl::GetFlag(FLAGS_clients);
    v1::PredictRequest request;
    request.mutable_model()->set_name(absl::GetFlag(FLAGS_model));
    for (int s = 0; s < absl::GetFlag(FLAGS_sequences); ++s) {
      v1::InputSequence* sequence = request.add_sequences();
      sequence->set_steps(absl::GetFlag(FLAGS_steps));
      for (int v = 0; v < absl::GetFlag(FLAGS_steps) * absl::GetFlag(FLAGS_input_size); ++v) {
        sequence->add_values(0.01f * static_cast<float>((s * 31 + v) % 17));
      }
    }
    for (int c = 0; c < concurrency; ++c) {
      callers.push_back(std::make_unique<PredictCaller>(stub.get(), &recorder, request));
    }
  } else {
    std::fprintf(stderr, "serving_load: --mode is step, predict or engine\n");
    return 2;
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(absl::GetFlag(FLAGS_warmup_s)));
  const double cpu_before = pid > 0 ? ProcessCpuSeconds(pid) : 0.0;
  const double own_cpu_before = ProcessCpuSeconds(getpid());
  const auto start = Clock::now();
  recorder.measuring = true;
  std::this_thread::sleep_for(std::chrono::duration<double>(absl::GetFlag(FLAGS_duration_s)));
  recorder.measuring = false;
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const double cpu = pid > 0 ? ProcessCpuSeconds(pid) - cpu_before : 0.0;
  const double own_cpu = ProcessCpuSeconds(getpid()) - own_cpu_before;
  recorder.stopping = true;
  for (auto& stream : streams) stream->Await();
  for (auto& caller : callers) caller->Await();
  std::lock_guard lock(recorder.mutex);
  Report(recorder.micros, seconds, cpu, own_cpu, recorder.errors.load(), recorder.first_error,
         concurrency, 1);
  return recorder.errors.load() > 0 ? 1 : 0;
}

}  // namespace
}  // namespace recurrent::bench

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return recurrent::bench::Main();
}
