// recurrentd: the Recurrent service. Serves recurrent.v1.TrainingService, InferenceService and
// ModelService, the standard grpc.health.v1.Health service and server reflection.
//
//   build/bin/recurrentd                       # localhost:50051, data in ./recurrent-data
//   build/bin/recurrentd --helpfull            # every flag
//
// SIGTERM / SIGINT: health goes NOT_SERVING (calls are still served for --drain_seconds), then
// new calls are refused, running training jobs checkpoint (they resume after a restart),
// in-flight calls get --shutdown_grace_seconds to finish, exit code 0.
#include <algorithm>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/file_util.h"
#include "core/network.h"
#include "core/thread_name.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/resource_quota.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "prometheus/exposer.h"
#include "server/auth.h"
#include "server/dataset_store.h"
#include "server/health_service.h"
#include "server/inference_service.h"
#include "server/job_manager.h"
#include "server/metrics.h"
#include "server/model_registry.h"
#include "server/model_service.h"
#include "server/role_gate.h"
#include "server/training_runner.h"
#include "server/training_service.h"

ABSL_FLAG(std::string, listen_address, "127.0.0.1",
          "Address to serve gRPC on; 0.0.0.0 (or [::]) for every interface.");
ABSL_FLAG(int, port, 50051, "gRPC port.");
ABSL_FLAG(std::string, metrics_address, "127.0.0.1",
          "Address of the Prometheus /metrics endpoint; 0.0.0.0 for every interface.");
ABSL_FLAG(int, metrics_port, 9464, "Port of the Prometheus /metrics endpoint; 0 disables it.");
ABSL_FLAG(std::string, data_dir, "recurrent-data",
          "Where models, jobs and checkpoints live (created if missing; shareable between "
          "replicas).");
ABSL_FLAG(int, training_workers, 1, "Training jobs that run at once.");
ABSL_FLAG(int, training_threads, 1, "OpenMP threads per training job.");
ABSL_FLAG(int, inference_threads, 1, "OpenMP threads per inference call.");
ABSL_FLAG(std::string, inference_precision, "float32",
          "Arithmetic of Predict and StepPredict: float32 (default; equals PyTorch's float32 "
          "to rounding) or bfloat16 (opt-in: weights, inputs and hidden states in bfloat16 "
          "inside the recurrent layers; batched steps 1.5-1.8x faster on CPUs with AVX-512 BF16 "
          "or AMX, outputs ~5e-4 relative off float32; refused at startup elsewhere).");
ABSL_FLAG(int, grpc_threads, 0,
          "Most threads gRPC's sync server may use for unary and server-streaming calls (its "
          "resource quota; StepPredict streams run on --step_threads and hold none); 0: "
          "gRPC's default.");
ABSL_FLAG(int, step_threads, 1,
          "Threads that accept and drive StepPredict streams (gRPC's async API, one completion "
          "queue each); a stream's steps run on its thread. More than 1 adds throughput with many "
          "streams and costs a lone stream latency (each thread polls for the others).");
ABSL_FLAG(int64_t, max_queued_jobs, 64, "Queued training jobs; more are RESOURCE_EXHAUSTED.");
ABSL_FLAG(int64_t, max_message_bytes, int64_t{64} << 20,
          "Largest gRPC message accepted or sent, in bytes.");
ABSL_FLAG(int64_t, model_cache_bytes, int64_t{2} << 30,
          "Memory budget of the loaded-model cache (parameter bytes).");
ABSL_FLAG(int64_t, max_predict_sequences, 4096, "Sequences in one Predict request.");
ABSL_FLAG(int64_t, max_predict_steps, 100000, "Steps of one sequence in Predict.");
ABSL_FLAG(int64_t, max_streams, 1024, "Open StepPredict sessions; more are RESOURCE_EXHAUSTED.");
ABSL_FLAG(int64_t, max_streams_per_client, 256,
          "Open StepPredict sessions of one client (its token when --auth_tokens_file is set, "
          "else its IP address); more are RESOURCE_EXHAUSTED. 0: no per-client limit.");
ABSL_FLAG(int64_t, max_steps_per_message, 1024, "Timesteps in one StepPredict message.");
ABSL_FLAG(int64_t, step_max_batch, 64, "Most stream steps one engine Step call batches.");
ABSL_FLAG(int64_t, step_max_wait_us, 200,
          "Longest a step waits for other streams to join its batch, in microseconds (a lone "
          "stream never waits).");
ABSL_FLAG(int64_t, step_busy_poll_us, 100,
          "While at most --step_inline_max_streams StepPredict streams are open, a step thread "
          "keeps polling for the next message this long after each one instead of sleeping "
          "(waking up cost a lone stream ~60 us per message); costs up to this much CPU per "
          "message on sparse streams. 0: always sleep.");
ABSL_FLAG(int64_t, step_inline_max_streams, 16,
          "While at most this many StepPredict streams of a model are open, a ready step batch "
          "runs on the thread that completed it (no hand-over: lowest latency); with more, a "
          "worker thread runs every batch while the stream threads keep reading and writing "
          "(higher throughput).");
ABSL_FLAG(int64_t, step_cohorts, 4,
          "Above --step_inline_max_streams open streams of a model, one step batch takes at most "
          "1/N of them (and at most --step_max_batch), so that streams move in N groups, one "
          "computing while the others' messages travel; 1: batches take every queued step.");
ABSL_FLAG(double, stream_idle_ttl_seconds, 600,
          "A StepPredict session silent for this long is ended and its state freed; 0: never.");
ABSL_FLAG(int64_t, max_upload_bytes, int64_t{1} << 30,
          "Bytes of one UploadDataset stream, and of a stored data set.");
ABSL_FLAG(int64_t, max_import_bytes, int64_t{256} << 20, "Artifact bytes in one ImportModel.");
ABSL_FLAG(double, checkpoint_interval_seconds, 30, "How often a running job checkpoints.");
ABSL_FLAG(double, drain_seconds, 0,
          "On SIGTERM, how long to keep serving with health NOT_SERVING before refusing new "
          "calls, so that load balancers and Kubernetes readiness probes move traffic away "
          "first (e.g. 5 behind a Service).");
ABSL_FLAG(double, shutdown_grace_seconds, 10,
          "On SIGTERM, how long in-flight calls may run before they are cancelled.");
ABSL_FLAG(std::string, tls_cert_file, "",
          "PEM certificate chain of the gRPC port; with --tls_key_file it serves TLS only.");
ABSL_FLAG(std::string, tls_key_file, "", "PEM private key of --tls_cert_file.");
ABSL_FLAG(std::string, tls_client_ca_file, "",
          "PEM CA bundle: clients must present a certificate it signed (mutual TLS).");
ABSL_FLAG(std::string, auth_tokens_file, "",
          "Bearer tokens, one \"ROLE TOKEN\" per line (roles: predict, admin); when set, every "
          "recurrent.v1 call needs one (health, reflection and /metrics stay open).");
ABSL_FLAG(std::string, role, "all",
          "What this replica does: all; serving (inference and models, no training: scale these "
          "out); training (training and models, no inference). Replicas share --data_dir's "
          "model registry; requests for a role a replica lacks get FAILED_PRECONDITION.");

namespace recurrent::server {
namespace {

// PEM files are a few kilobytes; the bound keeps a wrong path (a device, a huge file) harmless.
constexpr int64_t kMaxPemBytes = int64_t{1} << 20;

absl::StatusOr<std::string> ReadPem(const std::string& flag, const std::string& path) {
  return core::ReadFileBounded(path, kMaxPemBytes, absl::StrCat("--", flag));
}

// TLS (and mutual TLS) from the --tls_* flags, or plaintext when none is set.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentials() {
  const std::string cert = absl::GetFlag(FLAGS_tls_cert_file);
  const std::string key = absl::GetFlag(FLAGS_tls_key_file);
  const std::string client_ca = absl::GetFlag(FLAGS_tls_client_ca_file);
  if (cert.empty() && key.empty() && client_ca.empty()) return grpc::InsecureServerCredentials();
  if (cert.empty() || key.empty()) {
    return absl::InvalidArgumentError("TLS needs both --tls_cert_file and --tls_key_file");
  }
  grpc::SslServerCredentialsOptions options;
  grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
  absl::StatusOr<std::string> cert_pem = ReadPem("tls_cert_file", cert);
  absl::StatusOr<std::string> key_pem = ReadPem("tls_key_file", key);
  if (!cert_pem.ok()) return cert_pem.status();
  if (!key_pem.ok()) return key_pem.status();
  pair.cert_chain = *cert_pem;
  pair.private_key = *key_pem;
  options.pem_key_cert_pairs.push_back(pair);
  if (!client_ca.empty()) {
    absl::StatusOr<std::string> ca_pem = ReadPem("tls_client_ca_file", client_ca);
    if (!ca_pem.ok()) return ca_pem.status();
    options.pem_root_certs = *ca_pem;
    options.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return grpc::SslServerCredentials(options);
}

int Serve() {
  const std::string role = absl::GetFlag(FLAGS_role);
  if (role != "all" && role != "serving" && role != "training") {
    std::fprintf(stderr, "recurrentd: --role=%s; it must be all, serving or training\n",
                 role.c_str());
    return 1;
  }
  const bool trains = role != "serving";
  const bool serves = role != "training";
  if (absl::GetFlag(FLAGS_step_max_batch) < 1 || absl::GetFlag(FLAGS_step_cohorts) < 1) {
    std::fprintf(stderr, "recurrentd: --step_max_batch and --step_cohorts must be >= 1\n");
    return 1;
  }
  const std::string precision_name = absl::GetFlag(FLAGS_inference_precision);
  if (precision_name != "float32" && precision_name != "bfloat16") {
    std::fprintf(stderr, "recurrentd: --inference_precision=%s; it must be float32 or bfloat16\n",
                 precision_name.c_str());
    return 1;
  }
  const core::Precision precision =
      precision_name == "bfloat16" ? core::Precision::kBfloat16 : core::Precision::kFloat32;
  if (serves) {
    if (const absl::Status supported = core::CheckPrecisionSupported(precision); !supported.ok()) {
      std::fprintf(stderr, "recurrentd: --inference_precision=%s: %s\n", precision_name.c_str(),
                   std::string(supported.message()).c_str());
      return 1;
    }
  }
  const std::string data_dir = absl::GetFlag(FLAGS_data_dir);
  std::error_code error;
  std::filesystem::create_directories(data_dir, error);
  if (error) {
    std::fprintf(stderr, "recurrentd: cannot create --data_dir=%s: %s\n", data_dir.c_str(),
                 error.message().c_str());
    return 1;
  }
  RegistryOptions registry_options;
  registry_options.cache_budget_bytes = absl::GetFlag(FLAGS_model_cache_bytes);
  absl::StatusOr<std::unique_ptr<ModelRegistry>> registry =
      ModelRegistry::Open(data_dir, registry_options);
  if (!registry.ok()) {
    std::fprintf(stderr, "recurrentd: %s\n", registry.status().ToString().c_str());
    return 1;
  }
  TrainLimits train_limits;
  TrainingRunnerOptions runner;
  runner.checkpoints_dir = absl::StrCat(data_dir, "/checkpoints");
  runner.threads = absl::GetFlag(FLAGS_training_threads);
  runner.checkpoint_interval = absl::Seconds(absl::GetFlag(FLAGS_checkpoint_interval_seconds));
  runner.limits = train_limits;
  JobManagerOptions job_options;
  job_options.jobs_dir = absl::StrCat(data_dir, "/jobs");
  job_options.workers = absl::GetFlag(FLAGS_training_workers);
  job_options.max_queued = absl::GetFlag(FLAGS_max_queued_jobs);
  absl::StatusOr<std::unique_ptr<DatasetStore>> datasets = DatasetStore::Open(
      absl::StrCat(data_dir, "/datasets"), absl::GetFlag(FLAGS_max_upload_bytes) * 2);
  if (!datasets.ok()) {
    std::fprintf(stderr, "recurrentd: %s\n", datasets.status().ToString().c_str());
    return 1;
  }
  // A serving replica runs no job queue: the jobs directory belongs to the training replicas.
  std::unique_ptr<JobManager> jobs;
  if (trains) {
    absl::StatusOr<std::unique_ptr<JobManager>> opened =
        JobManager::Open(job_options, MakeTrainingRunner(runner, registry->get(), datasets->get()));
    if (!opened.ok()) {
      std::fprintf(stderr, "recurrentd: %s\n", opened.status().ToString().c_str());
      return 1;
    }
    jobs = *std::move(opened);
    for (const std::string& problem : jobs->problems()) {
      std::fprintf(stderr, "recurrentd: skipped %s\n", problem.c_str());
    }
  }

  InferenceLimits inference_limits;
  inference_limits.max_sequences = absl::GetFlag(FLAGS_max_predict_sequences);
  inference_limits.max_steps = absl::GetFlag(FLAGS_max_predict_steps);
  inference_limits.threads = absl::GetFlag(FLAGS_inference_threads);
  inference_limits.precision = precision;
  inference_limits.max_streams = absl::GetFlag(FLAGS_max_streams);
  inference_limits.max_streams_per_client = absl::GetFlag(FLAGS_max_streams_per_client);
  inference_limits.max_steps_per_message = absl::GetFlag(FLAGS_max_steps_per_message);
  inference_limits.step_threads = absl::GetFlag(FLAGS_step_threads);  // AttachTo makes it >= 1
  inference_limits.batching.max_batch = absl::GetFlag(FLAGS_step_max_batch);
  inference_limits.batching.max_wait = absl::Microseconds(absl::GetFlag(FLAGS_step_max_wait_us));
  inference_limits.batching.inline_max_streams = absl::GetFlag(FLAGS_step_inline_max_streams);
  inference_limits.batching.cohorts = absl::GetFlag(FLAGS_step_cohorts);
  inference_limits.step_busy_poll = absl::Microseconds(absl::GetFlag(FLAGS_step_busy_poll_us));
  inference_limits.stream_idle_ttl = absl::Seconds(absl::GetFlag(FLAGS_stream_idle_ttl_seconds));
  ServerMetrics metrics;
  inference_limits.batching.on_batch = [&metrics](double seconds, int64_t batch) {
    metrics.RecordStep(seconds, batch);
  };
  std::unique_ptr<prometheus::Exposer> exposer;
  const auto state = std::make_shared<StateCollector>(jobs.get(), registry->get());
  if (absl::GetFlag(FLAGS_metrics_port) != 0) {
    const std::string metrics_address =
        absl::StrCat(absl::GetFlag(FLAGS_metrics_address), ":", absl::GetFlag(FLAGS_metrics_port));
    try {  // civetweb reports a port it cannot bind by throwing; nothing else here throws
      exposer = std::make_unique<prometheus::Exposer>(metrics_address, 1);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "recurrentd: cannot serve metrics on %s: %s\n", metrics_address.c_str(),
                   e.what());
      return 1;
    }
    exposer->RegisterCollectable(metrics.registry());
    exposer->RegisterCollectable(state);
    std::fprintf(stderr, "recurrentd: metrics on http://%s/metrics\n", metrics_address.c_str());
  }
  std::unique_ptr<v1::TrainingService::Service> training_service;
  if (trains) {
    training_service = std::make_unique<TrainingServiceImpl>(
        jobs.get(), train_limits, datasets->get(), absl::GetFlag(FLAGS_max_upload_bytes));
  } else {
    training_service = std::make_unique<RefusedTrainingService>();
  }
  std::unique_ptr<InferenceServiceImpl> inference_service;
  std::unique_ptr<RefusedInferenceService> refused_inference;
  if (serves) {
    inference_service =
        std::make_unique<InferenceServiceImpl>(registry->get(), inference_limits, &metrics);
  } else {
    refused_inference = std::make_unique<RefusedInferenceService>();
  }
  ModelServiceImpl model_service(registry->get(),
                                 ModelServiceOptions{absl::GetFlag(FLAGS_max_import_bytes)});

  std::unique_ptr<TokenAuthenticator> authenticator;
  if (!absl::GetFlag(FLAGS_auth_tokens_file).empty()) {
    absl::StatusOr<std::unique_ptr<TokenAuthenticator>> loaded =
        TokenAuthenticator::FromFile(absl::GetFlag(FLAGS_auth_tokens_file));
    if (!loaded.ok()) {
      std::fprintf(stderr, "recurrentd: %s\n", loaded.status().ToString().c_str());
      return 1;
    }
    authenticator = *std::move(loaded);
  }
  if (auto* trainer = dynamic_cast<TrainingServiceImpl*>(training_service.get())) {
    trainer->set_authenticator(authenticator.get());
  }
  if (inference_service != nullptr) inference_service->set_authenticator(authenticator.get());
  model_service.set_authenticator(authenticator.get());
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials = ServerCredentials();
  if (!credentials.ok()) {
    std::fprintf(stderr, "recurrentd: %s\n", credentials.status().ToString().c_str());
    return 1;
  }

  // Our own sync-API health service: gRPC's default one is callback-API (server/health_service.h).
  grpc::EnableDefaultHealthCheckService(false);
  HealthService health({v1::InferenceService::service_full_name(),
                        v1::TrainingService::service_full_name(),
                        v1::ModelService::service_full_name()});
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  const std::string address =
      absl::StrCat(absl::GetFlag(FLAGS_listen_address), ":", absl::GetFlag(FLAGS_port));
  int bound_port = 0;
  builder.AddListeningPort(address, *credentials, &bound_port);
  const int max_message =
      static_cast<int>(std::min<int64_t>(absl::GetFlag(FLAGS_max_message_bytes), INT32_MAX));
  builder.SetMaxReceiveMessageSize(max_message);
  builder.SetMaxSendMessageSize(max_message);
  // Sync-server threads poll their queues with this timeout; gRPC's default (1 s) makes a
  // shutdown wait that long for idle threads.
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::CQ_TIMEOUT_MSEC, 100);
  if (const int threads = absl::GetFlag(FLAGS_grpc_threads); threads > 0) {
    grpc::ResourceQuota quota("recurrentd");
    quota.SetMaxThreads(threads);
    builder.SetResourceQuota(quota);
    builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::NUM_CQS,
                                std::min(threads, 2));
  }
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(std::make_unique<MetricsInterceptorFactory>(&metrics));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  builder.RegisterService(training_service.get());
  if (serves) {
    inference_service->AttachTo(builder);
  } else {
    builder.RegisterService(refused_inference.get());
  }
  builder.RegisterService(&model_service);
  builder.RegisterService(&health);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || bound_port == 0) {
    std::fprintf(stderr, "recurrentd: cannot listen on %s\n", address.c_str());
    return 1;
  }
  if (inference_service != nullptr) inference_service->StartStepThreads();
  std::fprintf(stderr, "recurrentd: listening on %s:%d, data in %s, role %s, inference in %s\n",
               absl::GetFlag(FLAGS_listen_address).c_str(), bound_port, data_dir.c_str(),
               role.c_str(), precision_name.c_str());

  // SIGTERM / SIGINT arrive here (blocked in every other thread, see main()).
  std::thread signals([&] {
    core::NameCurrentThread("rcnt-signals");
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    int signal_number = 0;
    sigwait(&set, &signal_number);
    std::fprintf(stderr, "recurrentd: %s, draining\n",
                 signal_number == SIGTERM ? "SIGTERM" : "SIGINT");
    health.SetServing(false);
    absl::SleepFor(absl::Seconds(absl::GetFlag(FLAGS_drain_seconds)));
    if (jobs != nullptr) jobs->Shutdown();  // running jobs checkpoint and stay queued
    // Shutdown refuses new calls at once and waits for in-flight ones (and idle client
    // connections) until its deadline, then cancels what is left. Streams still open shortly
    // before the deadline end with UNAVAILABLE (DrainStreams) rather than that cancellation.
    const absl::Duration grace = absl::Seconds(absl::GetFlag(FLAGS_shutdown_grace_seconds));
    std::thread shutdown([&] {
      core::NameCurrentThread("rcnt-shutdown");
      health.Shutdown();  // its Watch streams would hold the shutdown up to its deadline
      server->Shutdown(std::chrono::system_clock::now() + absl::ToChronoNanoseconds(grace));
    });
    if (inference_service != nullptr) {
      inference_service->DrainStreams(grace - std::min(absl::Milliseconds(500), grace / 4));
    }
    shutdown.join();
  });
  server->Wait();
  signals.join();
  if (inference_service != nullptr) inference_service->StopStepThreads();
  std::fprintf(stderr, "recurrentd: stopped\n");
  return 0;
}

}  // namespace
}  // namespace recurrent::server

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "The Recurrent service: trains and serves RNN, LSTM and GRU models.");
  absl::ParseCommandLine(argc, argv);
  // Debian's Abseil checks every Mutex acquisition for lock-order cycles (a debug aid gRPC's own
  // mutexes pay for on every call); the server's lock order is fixed, so skip it.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  // Block the shutdown signals before any thread starts, so that only the signal thread gets them.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return recurrent::server::Serve();
}
