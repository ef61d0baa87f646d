// One StepPredict stream on gRPC's callback API: a reactor, not a thread, so an idle stream costs
// only its state and buffers.
//
// The session handles one message at a time, as a chain of operations: read a message, run its
// timesteps through the model version's StepBatcher (asynchronously, one step after another),
// write the response, read the next. Exactly one of those is outstanding at any moment, so the
// request, response and state buffers have a single user at a time. Terminate() may be called
// from other threads (idle TTL, shutdown); it and every start of a read or write take `mutex_`,
// and a termination that arrives while the batcher holds the state buffer waits for that step.
#ifndef RECURRENT_SERVER_STEP_SESSION_H_
#define RECURRENT_SERVER_STEP_SESSION_H_

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "grpcpp/support/server_callback.h"
#include "recurrent/v1/service.grpc.pb.h"
#include "server/model_registry.h"
#include "server/step_batcher.h"

namespace recurrent::server {

class InferenceServiceImpl;

class StepSession final : public grpc::ServerBidiReactor<v1::StepRequest, v1::StepResponse> {
 public:
  // Starts reading the first message. Ends at once with RESOURCE_EXHAUSTED or UNAVAILABLE when
  // the service refuses a new stream.
  StepSession(InferenceServiceImpl* service, grpc::CallbackServerContext* context);

  // Ends the stream with `status` unless it has ended already; safe from any thread.
  void Terminate(grpc::Status status);

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  // The client cancelled or its deadline passed: frees the session now rather than at the next
  // read's failure.
  void OnCancel() override;
  void OnDone() override;

 private:
  // The first message: pins the model version and writes `opened`.
  grpc::Status Open();
  // A message after `open`: answers reset/snapshot at once, or starts its timesteps.
  void Handle();
  // Submits timestep `t` of the current step message to the batcher.
  void SubmitStep(int64_t t);
  void OnStepDone(int64_t t, const absl::Status& status);

  void StartReadLocked();
  void StartWriteLocked();
  void FinishLocked(grpc::Status status);
  void Read();
  void Write();
  void End(grpc::Status status);

  InferenceServiceImpl* const service_;
  grpc::CallbackServerContext* const context_;
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
  bool finished_ = false;  // guarded by mutex_
  bool busy_ = false;      // running steps outside any gRPC reaction; guarded by mutex_
  std::optional<grpc::Status> deferred_end_;  // guarded by mutex_
};

}  // namespace recurrent::server

#endif  // RECURRENT_SERVER_STEP_SESSION_H_
