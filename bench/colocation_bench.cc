// colocation_bench: does a training job starve inference? Runs the services in process (as
// recurrentd does, with --training_threads=1 and --inference_threads=1 by default), measures
// Predict and StepPredict latency through a real gRPC channel while idle, then again while a
// training job runs, and prints the ratios against the target (within 2x of idle).
//
//   build-bench/bin/colocation_bench [--calls=300] [--training_threads=1] [--inference_threads=1]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "core/spec_proto.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/server_builder.h"
#include "server/inference_service.h"
#include "server/job_manager.h"
#include "server/model_registry.h"
#include "server/training_runner.h"
#include "server/training_service.h"

ABSL_FLAG(int, calls, 300, "Timed calls per measurement.");
ABSL_FLAG(int, training_threads, 1, "OpenMP threads of the training job.");
ABSL_FLAG(int, inference_threads, 1, "OpenMP threads of inference calls.");

namespace recurrent::bench {
namespace {

using Clock = std::chrono::steady_clock;

struct Latency {
  double p50 = 0.0, p99 = 0.0;
};

Latency Summarize(std::vector<double> seconds) {
  std::sort(seconds.begin(), seconds.end());
  return {seconds[seconds.size() / 2], seconds[seconds.size() * 99 / 100]};
}

int Run() {
  const std::string dir = (std::filesystem::temp_directory_path() / "colocation-bench").string();
  std::filesystem::remove_all(dir);
  auto registry = *server::ModelRegistry::Open(dir);
  // The served model: the issue 7 shape, LSTM 2x256, input 8, output 1.
  core::Model served;
  served.spec.cell = core::CellType::kLstm;
  served.spec.input_size = 8;
  served.spec.hidden_size = 256;
  served.spec.num_layers = 2;
  served.parameters = core::InitParameters(served.spec, 1);
  if (!registry->Register("served", served).ok()) return 1;

  server::TrainingRunnerOptions runner;
  runner.checkpoints_dir = dir + "/checkpoints";
  runner.threads = absl::GetFlag(FLAGS_training_threads);
  server::JobManagerOptions jobs_options;
  jobs_options.jobs_dir = dir + "/jobs";
  auto jobs =
      *server::JobManager::Open(jobs_options, server::MakeTrainingRunner(runner, registry.get()));
  server::InferenceLimits limits;
  limits.threads = absl::GetFlag(FLAGS_inference_threads);
  limits.batching.threads = limits.threads;
  server::InferenceServiceImpl inference(registry.get(), limits);
  server::TrainingServiceImpl training(jobs.get(), server::TrainLimits());
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  inference.AttachTo(builder);
  builder.RegisterService(&training);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  inference.StartStepThreads();
  auto channel =
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials());
  auto infer = v1::InferenceService::NewStub(channel);
  auto train = v1::TrainingService::NewStub(channel);

  v1::PredictRequest predict;
  predict.mutable_model()->set_name("served");
  for (int b = 0; b < 8; ++b) {
    v1::InputSequence* sequence = predict.add_sequences();
    sequence->set_steps(50);
    for (int v = 0; v < 50 * 8; ++v) sequence->add_values(0.01f * ((v * 7 + b) % 13));
  }
  const auto measure = [&](const char* label) {
    std::vector<double> predict_seconds, step_seconds;
    grpc::ClientContext stream_context;
    auto stream = infer->StepPredict(&stream_context);
    v1::StepRequest open;
    open.mutable_open()->mutable_model()->set_name("served");
    stream->Write(open);
    v1::StepResponse response;
    stream->Read(&response);
    v1::StepRequest step;
    step.mutable_step()->set_steps(1);
    for (int v = 0; v < 8; ++v) step.mutable_step()->add_values(0.1f * v);
    for (int i = 0; i < absl::GetFlag(FLAGS_calls) + 20; ++i) {
      const Clock::time_point a = Clock::now();
      grpc::ClientContext context;
      v1::PredictResponse predicted;
      infer->Predict(&context, predict, &predicted);
      const Clock::time_point b = Clock::now();
      stream->Write(step);
      stream->Read(&response);
      const Clock::time_point c = Clock::now();
      if (i >= 20) {  // warm-up
        predict_seconds.push_back(std::chrono::duration<double>(b - a).count());
        step_seconds.push_back(std::chrono::duration<double>(c - b).count());
      }
    }
    stream->WritesDone();
    stream->Finish();
    const Latency p = Summarize(predict_seconds), s = Summarize(step_seconds);
    std::printf(
        "%-22s Predict (8 x 50 steps) p50 %8.3f ms p99 %8.3f ms | StepPredict p50 %7.1f us "
        "p99 %7.1f us\n",
        label, p.p50 * 1e3, p.p99 * 1e3, s.p50 * 1e6, s.p99 * 1e6);
    return std::make_pair(p, s);
  };

  const auto [idle_predict, idle_step] = measure("idle");
  v1::TrainRequest request;
  request.set_model_name("trained");
  core::ModelSpec spec;
  spec.cell = core::CellType::kLstm;
  spec.input_size = 2;
  spec.hidden_size = 128;
  spec.head = core::HeadMode::kLastStep;
  *request.mutable_spec() = core::ModelSpecToProto(spec);
  request.mutable_data()->mutable_generator()->mutable_adding_problem()->set_sequences(20000);
  request.mutable_data()->mutable_generator()->mutable_adding_problem()->set_length(100);
  request.mutable_options()->set_max_epochs(100);
  grpc::ClientContext train_context;
  v1::TrainResponse submitted;
  train->Train(&train_context, request, &submitted);
  // Wait until the job is really training.
  for (int64_t seen = 0;;) {
    auto job = jobs->WaitForChange(submitted.job_id(), &seen, absl::Seconds(10));
    if (!job.ok() || job->progress().step() >= 5) break;
  }
  const auto [busy_predict, busy_step] = measure("while a job trains");
  jobs->Cancel(submitted.job_id()).IgnoreError();
  const double predict_ratio = busy_predict.p50 / idle_predict.p50;
  const double step_ratio = busy_step.p50 / idle_step.p50;
  std::printf("%s Predict p50 while training = %.2fx idle (target <= 2x)\n",
              predict_ratio <= 2.0 ? "PASS" : "MISS", predict_ratio);
  std::printf("%s StepPredict p50 while training = %.2fx idle (target <= 2x)\n",
              step_ratio <= 2.0 ? "PASS" : "MISS", step_ratio);
  server->Shutdown();
  inference.StopStepThreads();
  jobs->Shutdown();
  std::filesystem::remove_all(dir);
  return 0;
}

}  // namespace
}  // namespace recurrent::bench

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return recurrent::bench::Run();
}
