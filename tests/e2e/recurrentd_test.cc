// End to end: starts the real build/bin/recurrentd on a free port, trains a model through the
// API, predicts, streams, stops the server with SIGTERM, starts it again on the same data
// directory and finds the models, aliases and job history intact.
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "core/artifact.h"
#include "core/model_spec.h"
#include "core/network.h"
#include "core/spec_proto.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/create_channel.h"
#include "gtest/gtest.h"
#include "recurrent/v1/service.grpc.pb.h"
#include "tests/e2e/server_process.h"

namespace recurrent::e2e {
namespace {

v1::PredictRequest AddingInputs() {
  v1::PredictRequest request;
  request.mutable_model()->set_name("adder");
  request.mutable_model()->set_alias("production");
  v1::InputSequence* sequence = request.add_sequences();
  sequence->set_steps(10);
  for (int t = 0; t < 10; ++t) {
    sequence->add_values(0.1f * t);
    sequence->add_values(t == 2 || t == 7 ? 1.0f : 0.0f);
  }
  return request;
}

TEST(RecurrentdTest, TrainPredictStreamRestartAndFindEverything) {
  const std::string data_dir = (std::filesystem::temp_directory_path() / "recurrentd-e2e").string();
  std::filesystem::remove_all(data_dir);
  const int port = FreePort();
  const int metrics_port = FreePort();
  float first_prediction = 0.0f;
  std::string job_id;
  {
    Server server(data_dir, port, metrics_port);
    ASSERT_TRUE(server.Ready()) << "recurrentd did not start";
    auto training = v1::TrainingService::NewStub(server.channel());
    auto models = v1::ModelService::NewStub(server.channel());
    auto inference = v1::InferenceService::NewStub(server.channel());

    v1::TrainRequest train;
    train.set_model_name("adder");
    core::ModelSpec spec;
    spec.cell = core::CellType::kGru;
    spec.input_size = 2;
    spec.hidden_size = 16;
    spec.head = core::HeadMode::kLastStep;
    *train.mutable_spec() = core::ModelSpecToProto(spec);
    train.mutable_data()->mutable_generator()->mutable_adding_problem()->set_sequences(256);
    train.mutable_data()->mutable_generator()->mutable_adding_problem()->set_length(10);
    train.mutable_options()->set_max_epochs(3);
    grpc::ClientContext train_context;
    v1::TrainResponse submitted;
    ASSERT_TRUE(training->Train(&train_context, train, &submitted).ok());
    job_id = submitted.job_id();

    grpc::ClientContext watch_context;
    v1::WatchJobRequest watch;
    watch.set_job_id(job_id);
    auto events = training->WatchJob(&watch_context, watch);
    v1::JobEvent event;
    while (events->Read(&event)) {
    }
    ASSERT_TRUE(events->Finish().ok());
    ASSERT_EQ(event.job().state(), v1::JOB_STATE_SUCCEEDED) << event.job().error();

    grpc::ClientContext alias_context;
    v1::SetAliasRequest alias;
    alias.set_name("adder");
    alias.set_alias("production");
    alias.set_version(event.job().model_version());
    v1::ModelInfo info;
    ASSERT_TRUE(models->SetAlias(&alias_context, alias, &info).ok());

    grpc::ClientContext predict_context;
    v1::PredictResponse predicted;
    ASSERT_TRUE(inference->Predict(&predict_context, AddingInputs(), &predicted).ok());
    first_prediction = predicted.outputs(0).values(0);

    grpc::ClientContext stream_context;
    auto stream = inference->StepPredict(&stream_context);
    v1::StepRequest open;
    open.mutable_open()->mutable_model()->set_name("adder");
    ASSERT_TRUE(stream->Write(open));
    v1::StepResponse response;
    ASSERT_TRUE(stream->Read(&response));
    EXPECT_EQ(response.opened().model_version(), 1);
    v1::StepRequest step;
    step.mutable_step()->set_steps(3);
    for (int v = 0; v < 6; ++v) step.mutable_step()->add_values(0.1f * v);
    ASSERT_TRUE(stream->Write(step));
    ASSERT_TRUE(stream->Read(&response));
    EXPECT_EQ(response.output().values_size(), 3);
    stream->WritesDone();
    EXPECT_TRUE(stream->Finish().ok());

    // The metrics saw all of it, under recurrent_ names.
    const std::string metrics = Scrape(metrics_port);
    EXPECT_NE(metrics.find(R"(recurrent_requests_total{code="OK",rpc="Predict"} 1)"),
              std::string::npos)
        << metrics;
    EXPECT_NE(metrics.find(R"(recurrent_jobs{state="succeeded"} 1)"), std::string::npos);
    EXPECT_NE(metrics.find("recurrent_step_batch_size_count 3"), std::string::npos);
    EXPECT_NE(metrics.find("recurrent_model_cache_models"), std::string::npos);

    // SIGTERM with a stream still open: the stream is served through the grace period
    // (--shutdown_grace_seconds=2), then ends with UNAVAILABLE, and the server exits cleanly.
    grpc::ClientContext open_stream_context;
    auto open_stream = inference->StepPredict(&open_stream_context);
    ASSERT_TRUE(open_stream->Write(open));
    ASSERT_TRUE(open_stream->Read(&response));
    const absl::Time term_sent = absl::Now();
    server.SendTerm();
    absl::SleepFor(absl::Milliseconds(300));
    ASSERT_TRUE(open_stream->Write(step));  // still served while the grace period runs
    ASSERT_TRUE(open_stream->Read(&response));
    EXPECT_EQ(response.output().values_size(), 3);
    EXPECT_FALSE(open_stream->Read(&response));
    const grpc::Status ended = open_stream->Finish();
    EXPECT_EQ(ended.error_code(), grpc::StatusCode::UNAVAILABLE) << ended.error_message();
    EXPECT_GE(absl::Now() - term_sent, absl::Seconds(1.4));  // the grace less 0.5 s
    EXPECT_EQ(server.Wait(), 0) << "recurrentd did not exit cleanly on SIGTERM";
  }
  Server restarted(data_dir, port, metrics_port);
  ASSERT_TRUE(restarted.Ready());
  auto training = v1::TrainingService::NewStub(restarted.channel());
  auto models = v1::ModelService::NewStub(restarted.channel());
  auto inference = v1::InferenceService::NewStub(restarted.channel());
  grpc::ClientContext get_context;
  v1::GetModelRequest get;
  get.set_name("adder");
  v1::ModelInfo info;
  ASSERT_TRUE(models->GetModel(&get_context, get, &info).ok());
  EXPECT_EQ(info.versions_size(), 1);
  EXPECT_EQ(info.aliases().at("production"), 1);
  EXPECT_EQ(info.versions(0).training().job_id(), job_id);

  grpc::ClientContext jobs_context;
  v1::ListJobsResponse jobs;
  ASSERT_TRUE(training->ListJobs(&jobs_context, v1::ListJobsRequest(), &jobs).ok());
  ASSERT_EQ(jobs.jobs_size(), 1);
  EXPECT_EQ(jobs.jobs(0).id(), job_id);
  EXPECT_EQ(jobs.jobs(0).state(), v1::JOB_STATE_SUCCEEDED);

  grpc::ClientContext predict_context;
  v1::PredictResponse predicted;
  ASSERT_TRUE(inference->Predict(&predict_context, AddingInputs(), &predicted).ok());
  EXPECT_EQ(predicted.outputs(0).values(0), first_prediction);
  EXPECT_EQ(restarted.Stop(), 0);
  std::filesystem::remove_all(data_dir);
}

grpc::health::v1::HealthCheckResponse::ServingStatus Health(grpc::Channel& channel) {
  auto health = grpc::health::v1::Health::NewStub(
      std::shared_ptr<grpc::Channel>(&channel, [](grpc::Channel*) {}));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(1));
  grpc::health::v1::HealthCheckResponse response;
  const grpc::Status status =
      health->Check(&context, grpc::health::v1::HealthCheckRequest(), &response);
  return status.ok() ? response.status() : grpc::health::v1::HealthCheckResponse::UNKNOWN;
}

TEST(RecurrentdTest, HealthGoesNotServingWhileDrainingAndCallsStillWork) {
  const std::string data_dir =
      (std::filesystem::temp_directory_path() / "recurrentd-e2e-health").string();
  std::filesystem::remove_all(data_dir);
  Server server(data_dir, FreePort(), FreePort(),
                {"--drain_seconds=2", "--max_message_bytes=65536"});
  ASSERT_TRUE(server.Ready());
  EXPECT_EQ(Health(*server.channel()), grpc::health::v1::HealthCheckResponse::SERVING);

  // --max_message_bytes reaches the server: a larger request is refused, named as such.
  v1::PredictRequest big;
  big.mutable_model()->set_name("anything");
  v1::InputSequence* sequence = big.add_sequences();
  sequence->set_steps(30000);
  for (int v = 0; v < 30000; ++v) sequence->add_values(1.0f);  // ~120 KB
  grpc::ClientContext big_context;
  v1::PredictResponse big_response;
  EXPECT_EQ(v1::InferenceService::NewStub(server.channel())
                ->Predict(&big_context, big, &big_response)
                .error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);

  server.SendTerm();
  grpc::health::v1::HealthCheckResponse::ServingStatus status =
      grpc::health::v1::HealthCheckResponse::SERVING;
  const absl::Time deadline = absl::Now() + absl::Seconds(1.5);
  while (status == grpc::health::v1::HealthCheckResponse::SERVING && absl::Now() < deadline) {
    status = Health(*server.channel());
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_EQ(status, grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  // Still draining: calls are served while load balancers move away.
  grpc::ClientContext context;
  v1::ListModelsResponse models;
  EXPECT_TRUE(v1::ModelService::NewStub(server.channel())
                  ->ListModels(&context, v1::ListModelsRequest(), &models)
                  .ok());
  EXPECT_EQ(server.Wait(), 0);
  std::filesystem::remove_all(data_dir);
}

// VmRSS (kB) and thread count of a process, from /proc.
std::pair<int64_t, int64_t> RssAndThreads(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  int64_t rss = -1, threads = -1;
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmRSS:", 0) == 0) rss = std::stoll(line.substr(6));
    if (line.rfind("Threads:", 0) == 0) threads = std::stoll(line.substr(8));
  }
  return {rss, threads};
}

TEST(RecurrentdTest, IdleStreamsCostMemoryNotThreads) {
  const std::string data_dir =
      (std::filesystem::temp_directory_path() / "recurrentd-e2e-idle").string();
  std::filesystem::remove_all(data_dir);
  Server server(data_dir, FreePort(), FreePort(),
                {"--max_streams=2000", "--max_streams_per_client=2000"});
  ASSERT_TRUE(server.Ready());
  // The serving benchmark's shape: LSTM 2 x 256, 8 inputs, 1 output.
  core::Model model;
  model.spec.cell = core::CellType::kLstm;
  model.spec.input_size = 8;
  model.spec.hidden_size = 256;
  model.spec.num_layers = 2;
  model.spec.head = core::HeadMode::kPerStep;
  model.spec.output_size = 1;
  model.parameters = core::InitParameters(model.spec, 3);
  v1::ImportModelRequest import;
  import.set_name("idle");
  import.set_artifact(*core::SerializeModel(model));
  grpc::ClientContext import_context;
  v1::ModelVersionInfo imported;
  ASSERT_TRUE(v1::ModelService::NewStub(server.channel())
                  ->ImportModel(&import_context, import, &imported)
                  .ok());

  auto inference = v1::InferenceService::NewStub(server.channel());
  struct Stream {
    grpc::ClientContext context;
    std::unique_ptr<grpc::ClientReaderWriter<v1::StepRequest, v1::StepResponse>> stream;
  };
  // Each stream opens and takes one step (so its state exists), then stays open and idle.
  auto open_streams = [&](std::vector<std::unique_ptr<Stream>>* streams, int count) {
    for (int i = 0; i < count; ++i) {
      auto stream = std::make_unique<Stream>();
      stream->stream = inference->StepPredict(&stream->context);
      v1::StepRequest open;
      open.mutable_open()->mutable_model()->set_name("idle");
      v1::StepRequest step;
      step.mutable_step()->set_steps(1);
      step.mutable_step()->mutable_values()->Resize(8, 0.5f);
      v1::StepResponse response;
      ASSERT_TRUE(stream->stream->Write(open) && stream->stream->Read(&response));
      ASSERT_TRUE(stream->stream->Write(step) && stream->stream->Read(&response));
      ASSERT_EQ(response.output().values_size(), 1);
      streams->push_back(std::move(stream));
    }
  };
  std::vector<std::unique_ptr<Stream>> streams;
  open_streams(&streams, 50);  // warm-up: the batcher, its network, gRPC's buffers
  absl::SleepFor(absl::Milliseconds(200));
  const auto [rss_before, threads_before] = RssAndThreads(server.pid());
  constexpr int kIdle = 1000;
  open_streams(&streams, kIdle);
  absl::SleepFor(absl::Milliseconds(200));
  const auto [rss_after, threads_after] = RssAndThreads(server.pid());
  const double kib_per_stream = static_cast<double>(rss_after - rss_before) / kIdle;
  std::printf("%d idle streams: %.1f KiB of RSS each; threads %lld -> %lld\n", kIdle,
              kib_per_stream, static_cast<long long>(threads_before),
              static_cast<long long>(threads_after));
  EXPECT_LT(kib_per_stream, 64.0) << "an idle stream should cost its state and buffers only";
  EXPECT_LE(threads_after, threads_before + 2) << "a thread per stream?";
  for (auto& stream : streams) stream->context.TryCancel();
  streams.clear();
  EXPECT_EQ(server.Stop(), 0);
  std::filesystem::remove_all(data_dir);
}

}  // namespace
}  // namespace recurrent::e2e
