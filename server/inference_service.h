// recurrent.v1.InferenceService. Predict runs whole sequences through the engine: sequences of
// equal length share one Forward call; normalization stored with the model is applied on the way
// in and undone on the way out. Networks are pooled per model version, one per concurrent call
// (a core::Network is not thread-safe). StepPredict streams share one StepBatcher per model
// version, which batches their timesteps into single engine calls (server/step_batcher.h); a
// session pins its model version for its whole life and can snapshot its state
// (server/stream_snapshot.h). StepPredict runs on gRPC's async API with a few threads of its own
// (server/step_session.h), so an open stream holds no thread; Predict uses the sync API.
#ifndef RECURRENT_SERVER_INFERENCE_SERVICE_H_
#define RECURRENT_SERVER_INFERENCE_SERVICE_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "core/network.h"
#include "grpcpp/server_builder.h"
#include "recurrent/v1/service.grpc.pb.h"
#include "server/auth.h"
#include "server/metrics.h"
#include "server/model_registry.h"
#include "server/step_batcher.h"
#include "server/step_session.h"

namespace recurrent::server {

struct InferenceLimits {
  int64_t max_sequences = 4096;           // per Predict request
  int64_t max_steps = 100'000;            // per sequence
  int64_t max_values = int64_t{1} << 26;  // inputs in one request (256 MiB of floats)
  // OpenMP threads and arithmetic of every engine call, Predict's and StepPredict's batches
  // alike (they override batching.threads and batching.precision).
  int threads = 1;
  core::Precision precision = core::Precision::kFloat32;
  int64_t max_streams = 1024;  // open StepPredict sessions; more: RESOURCE_EXHAUSTED
  // Open sessions of one client (server/auth.h ClientKey: its token, else its address), so that
  // one client cannot take every slot; 0: no per-client limit.
  int64_t max_streams_per_client = 256;
  int64_t max_steps_per_message = 1024;  // timesteps in one StepInput
  StepBatcherOptions batching;  // StepPredict batching: max batch, wait, inline limit, cohorts
  // Threads that accept and drive StepPredict streams, each with its own completion queue; a
  // stream stays on one. A lone stream's step runs on its queue's thread.
  int step_threads = 1;
  // After each event a step thread keeps polling its queue, without sleeping, for this long,
  // while at most batching.inline_max_streams streams are open (above that the threads are
  // seldom idle, and a spinning one would take a core from the batch worker). Waking from a
  // sleep cost a lone stream ~60 us per message on this project's VM (docs/benchmarks.md).
  // 0: always sleep.
  absl::Duration step_busy_poll = absl::Microseconds(100);
  // A session that sends nothing for this long is cancelled (its state freed) and counted in
  // recurrent_stream_evictions_total; 0 disables the check.
  absl::Duration stream_idle_ttl = absl::Minutes(10);
};

// Predict runs on gRPC's sync API, StepPredict on the async API with its own threads (see
// server/step_session.h for why). Serving takes three calls around the server's lifetime:
//   service.AttachTo(builder);      // registers the service and adds its completion queues
//   server = builder.BuildAndStart();
//   service.StartStepThreads();
//   ... server->Shutdown(...);
//   service.StopStepThreads();      // before the grpc::Server is destroyed
class InferenceServiceImpl final
    : public v1::InferenceService::WithAsyncMethod_StepPredict<v1::InferenceService::Service> {
 public:
  // Every call checks `auth` (a TokenAuthenticator, server/auth.h); null: no authentication.
  void set_authenticator(const TokenAuthenticator* auth) { auth_ = auth; }
  // `metrics` may be null (tests).
  InferenceServiceImpl(ModelRegistry* registry, InferenceLimits limits,
                       ServerMetrics* metrics = nullptr);
  // Stops the idle-session janitor and the step threads.
  ~InferenceServiceImpl() override;

  // Registers this service with `builder` and adds limits.step_threads completion queues.
  void AttachTo(grpc::ServerBuilder& builder);
  // After BuildAndStart: starts one thread per queue, each accepting and driving StepPredict
  // calls. Until then StepPredict calls wait.
  void StartStepThreads();
  // After grpc::Server::Shutdown has returned and before the server is destroyed (its failed
  // pending requests still refer to it): waits for the sessions to end (the shutdown cancelled
  // them), then shuts the queues down and joins their threads. Idempotent; the destructor calls
  // it too, which is only safe where the server was never built.
  void StopStepThreads();

  int64_t idle_evictions() const { return idle_evictions_.load(); }
  // StepPredict streams whose state is held right now.
  int64_t open_streams();
  // Networks idle in the Predict pools, over every model version.
  int64_t idle_networks();

  // Shutdown: refuses new streams with UNAVAILABLE, waits up to `grace` for the open ones to end
  // on their own, then ends the rest with UNAVAILABLE (their clients reconnect elsewhere, resuming
  // from a snapshot). Call it after grpc::Server::Shutdown has started, with a later deadline.
  void DrainStreams(absl::Duration grace);

  grpc::Status Predict(grpc::ServerContext* context, const v1::PredictRequest* request,
                       v1::PredictResponse* response) override;

 private:
  friend class StepSession;

  using PoolKey = std::pair<std::string, int64_t>;  // (model name, version)
  // Borrows an idle network for the model (creating one if none is idle); Release gives it back.
  absl::StatusOr<std::unique_ptr<core::Network>> Acquire(const LoadedModel& model);
  void Release(const std::shared_ptr<const LoadedModel>& model,
               std::unique_ptr<core::Network> network);
  // Idle networks of one loaded model version. They live only as long as the registry keeps that
  // version loaded: a deleted or evicted version's networks (each a copy of its weights plus its
  // cached primitives) are dropped on the next Release, not kept forever.
  struct IdleNetworks {
    std::weak_ptr<const LoadedModel> model;
    std::vector<std::unique_ptr<core::Network>> networks;
  };

  // The batcher of a model version, created on first use and kept while the version is in use.
  absl::StatusOr<std::shared_ptr<StepBatcher>> BatcherFor(std::shared_ptr<const LoadedModel> model);

  // Open sessions and when each last heard from its client, for the idle TTL and the drain.
  struct Session {
    StepSession* session;
    absl::Time last_activity;
    std::string client;  // ClientKey
  };
  // Enters a new stream of `client` in the session table and returns its id; RESOURCE_EXHAUSTED
  // over --max_streams or --max_streams_per_client, UNAVAILABLE while draining.
  absl::StatusOr<int64_t> AdmitSession(StepSession* session, std::string client);
  void TouchSession(int64_t id);
  void UnregisterSession(int64_t id);
  void JanitorLoop();
  // The loop of one step thread: delivers `queue`'s events to their sessions until it shuts down.
  void RunStepQueue(grpc::ServerCompletionQueue* queue);

  ModelRegistry* const registry_;
  const InferenceLimits limits_;
  ServerMetrics* const metrics_;
  std::mutex sessions_mutex_;
  std::condition_variable janitor_wake_;
  std::condition_variable session_ended_;
  std::map<int64_t, Session> sessions_;                // guarded by sessions_mutex_
  std::atomic<int64_t> admitted_sessions_{0};          // sessions_.size(), read without the lock
  std::map<std::string, int64_t> streams_per_client_;  // open sessions; guarded by sessions_mutex_
  int64_t next_session_ = 0;                           // guarded by sessions_mutex_
  bool stopping_ = false;                              // guarded by sessions_mutex_
  bool draining_ = false;                              // guarded by sessions_mutex_
  std::atomic<int64_t> idle_evictions_{0};
  std::thread janitor_;
  std::mutex batchers_mutex_;
  std::map<PoolKey, std::weak_ptr<StepBatcher>> batchers_;  // guarded by batchers_mutex_
  std::mutex pool_mutex_;
  std::map<PoolKey, IdleNetworks> idle_;  // guarded by pool_mutex_
  const TokenAuthenticator* auth_ = nullptr;
  std::vector<std::unique_ptr<grpc::ServerCompletionQueue>> step_queues_;
  std::vector<std::thread> step_threads_;
  // Sessions alive (accepted or waiting for a call), so StopStepThreads knows when the queues
  // can go; StepSession's constructor and destructor count them.
  void SessionCreated();
  void SessionDestroyed();
  std::mutex live_mutex_;
  std::condition_variable no_live_sessions_;
  int64_t live_sessions_ = 0;  // guarded by live_mutex_
};

}  // namespace recurrent::server

#endif  // RECURRENT_SERVER_INFERENCE_SERVICE_H_
