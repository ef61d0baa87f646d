// One StepPredict stream on gRPC's async API: a state machine driven by the one thread that
// drains its completion queue (InferenceServiceImpl's step threads), not a thread of its own, so
// an idle stream costs only its state and buffers.
//
// Why the async API and not the callback API: gRPC 1.51 runs callback reactions on two
// "nexting" threads per server that take turns message by message, each waking the other to keep
// polling; with a step computed inside the reaction that hop cost a lone stream ~30 us per message
// on this project's 2-core VM (docs/benchmarks.md). A queue drained by one thread polls, reads,
// steps and writes on that thread, but only while the server has no callback-API service at all:
// any one starts those threads, and they poll for every service (hence server/health_service.h).
//
// The session handles one message at a time, as a chain of operations: read a message, run its
// timesteps through the model version's StepBatcher (asynchronously, one step after another),
// write the response, read the next. Exactly one of those is outstanding at any moment, so the
// request, response and state buffers have a single user at a time. Batcher callbacks run on
// other threads, and Terminate() may be called from any thread (idle TTL, shutdown); they and
// every start of a read, write or finish take `mutex_`. A termination that arrives while the
// batcher holds the state buffer waits for that step. The session deletes itself once gRPC has
// reported the call done and no operation or step of it is outstanding.
#ifndef RECURRENT_SERVER_STEP_SESSION_H_
#define RECURRENT_SERVER_STEP_SESSION_H_

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "grpcpp/completion_queue.h"
#include "grpcpp/server_context.h"
#include "grpcpp/support/async_stream.h"
#include "recurrent/v1/service.grpc.pb.h"
#include "server/model_registry.h"
#include "server/step_batcher.h"

namespace recurrent::server {

class InferenceServiceImpl;

class StepSession final {
 public:
  // Creates a session that waits on `queue` for the next StepPredict call; each accepted call
  // creates the next waiting session. `queue`'s thread must pass every tag it gets to Proceed().
  static void Listen(InferenceServiceImpl* service, grpc::ServerCompletionQueue* queue);

  // Delivers one completion-queue event (`tag` is what the queue returned).
  static void Proceed(void* tag, bool ok);

  // Ends the stream with `status` unless it has ended already; safe from any thread.
  void Terminate(grpc::Status status);

 private:
  enum class Event { kAccepted, kRead, kWritten, kFinished, kDone };
  struct Tag {
    StepSession* session;
    Event event;
  };

  StepSession(InferenceServiceImpl* service, grpc::ServerCompletionQueue* queue);
  ~StepSession();
  void OnAccepted(bool ok);
  void OnReadDone(bool ok);
  void OnWriteDone(bool ok);
  // The call is over (finished, or cancelled by the client, its deadline or the shutdown).
  void OnCallDone();
  // References: every outstanding read, write or finish, the batcher while it holds a step, the
  // done event until it arrives, and the handler running. The last Unref() deletes the session,
  // so nothing can touch it afterwards.
  void Unref();

  // The first message: pins the model version and writes `opened`.
  grpc::Status Open();
  // A message after `open`: answers reset/snapshot at once, or starts its timesteps.
  void Handle();
  // Submits timestep `t` of the current step message to the batcher.
  void SubmitStep(int64_t t);
  void OnStepDone(int64_t t, const absl::Status& status);

  void StartReadLocked();
  void StartWriteLocked();
  void FinishLocked(const grpc::Status& status);
  void Read();
  void Write();
  void End(const grpc::Status& status);

  InferenceServiceImpl* const service_;
  grpc::ServerCompletionQueue* const queue_;
  grpc::ServerContext context_;
  grpc::ServerAsyncReaderWriter<v1::StepResponse, v1::StepRequest> stream_{&context_};
  Tag accepted_tag_{this, Event::kAccepted}, read_tag_{this, Event::kRead},
      written_tag_{this, Event::kWritten}, finished_tag_{this, Event::kFinished},
      done_tag_{this, Event::kDone};
  int64_t session_id_ = -1;  // in the service's session table once registered

  std::shared_ptr<const LoadedModel> model_;
  std::shared_ptr<StepBatcher> batcher_;
  std::vector<float> state_;
  std::vector<float> input_;
  std::vector<float> output_;
  int64_t steps_taken_ = 0;
  v1::StepRequest request_;
  v1::StepResponse response_;

  std::mutex mutex_;
  bool finished_ = false;  // no more reads or writes: Finish started or the call is over
  bool busy_ = false;      // the batcher holds the buffers (a step is running)
  int refs_ = 0;           // see Unref()
  std::optional<grpc::Status> deferred_end_;  // all guarded by mutex_
};

}  // namespace recurrent::server

#endif  // RECURRENT_SERVER_STEP_SESSION_H_
