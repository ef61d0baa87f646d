#include "server/step_session.h"

#include <cstring>
#include <string>
#include <utility>

#include "core/normalization.h"
#include "server/grpc_status.h"
#include "server/inference_service.h"
#include "server/proto_conversions.h"
#include "server/request_validation.h"
#include "server/stream_snapshot.h"

namespace recurrent::server {
namespace {

grpc::Status Invalid(const std::string& message) {
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, message);
}

}  // namespace

void StepSession::Listen(InferenceServiceImpl* service, grpc::ServerCompletionQueue* queue) {
  new StepSession(service, queue);  // deletes itself: last Unref(), or never accepted
}

void StepSession::Proceed(void* tag, bool ok) {
  const Tag& event = *static_cast<const Tag*>(tag);
  StepSession* session = event.session;
  switch (event.event) {
    case Event::kAccepted:
      session->OnAccepted(ok);
      return;
    case Event::kRead:
      session->OnReadDone(ok);
      return;
    case Event::kWritten:
      session->OnWriteDone(ok);
      return;
    case Event::kFinished:
      session->Unref();  // the finish's reference
      return;
    case Event::kDone:
      session->OnCallDone();
      return;
  }
}

StepSession::StepSession(InferenceServiceImpl* service, grpc::ServerCompletionQueue* queue)
    : service_(service), queue_(queue) {
  service_->SessionCreated();
  // Before the request: the done event is how a cancelled call (client gone, deadline, server
  // shutdown) reaches a session that has no read or write outstanding.
  context_.AsyncNotifyWhenDone(&done_tag_);
  service_->RequestStepPredict(&context_, &stream_, queue_, queue_, &accepted_tag_);
}

StepSession::~StepSession() { service_->SessionDestroyed(); }

void StepSession::OnAccepted(bool ok) {
  if (!ok) {  // the server is shutting down: no call was matched, so no done event will come
    delete this;
    return;
  }
  {
    std::lock_guard lock(mutex_);
    refs_ = 2;  // the done event, and this handler
  }
  Listen(service_, queue_);  // the next call's session
  if (grpc::Status denied = Authorize(service_->auth_, context_, Role::kPredict); !denied.ok()) {
    End(denied);
  } else if (absl::StatusOr<int64_t> admitted =
                 service_->AdmitSession(this, ClientKey(service_->auth_, context_));
             !admitted.ok()) {
    End(ToGrpcStatus(admitted.status()));
  } else {
    std::lock_guard lock(mutex_);
    session_id_ = *admitted;
    StartReadLocked();
  }
  Unref();
}

void StepSession::Terminate(grpc::Status status) {
  std::lock_guard lock(mutex_);
  if (finished_) return;
  if (busy_) {  // the batcher holds our buffers: end once its step is back
    if (!deferred_end_.has_value()) deferred_end_ = std::move(status);
    return;
  }
  FinishLocked(status);
}

void StepSession::OnReadDone(bool ok) {
  // This handler holds the read's reference until it returns.
  if (!ok) {  // the client half-closed, or the call ended
    End(grpc::Status::OK);
  } else {
    service_->TouchSession(session_id_);
    if (model_ == nullptr) {
      if (grpc::Status opened = Open(); !opened.ok()) {
        End(opened);
      } else {
        Write();
      }
    } else {
      Handle();
    }
  }
  Unref();
}

void StepSession::OnWriteDone(bool ok) {
  if (!ok) {
    End(grpc::Status(grpc::StatusCode::CANCELLED, "the client went away"));
  } else {
    Read();
  }
  Unref();  // the write's reference
}

void StepSession::OnCallDone() {
  {
    std::lock_guard lock(mutex_);
    finished_ = true;  // a cancelled call takes no more operations
  }
  Unref();  // the done event's reference
}

void StepSession::Unref() {
  {
    std::lock_guard lock(mutex_);
    if (--refs_ > 0) return;
  }
  if (session_id_ >= 0) service_->UnregisterSession(session_id_);
  if (batcher_ != nullptr) {
    batcher_->StreamClosed();
    if (service_->metrics_ != nullptr) service_->metrics_->StreamClosed();
  }
  delete this;
}

grpc::Status StepSession::Open() {
  if (absl::Status valid = ValidateOpenRequest(request_); !valid.ok()) return ToGrpcStatus(valid);
  ModelRef ref = ModelRefFromProto(request_.open().model());
  std::optional<StreamState> resumed;
  if (!request_.open().resume_from().empty()) {
    absl::StatusOr<StreamState> decoded =
        DecodeSnapshot(request_.open().resume_from(), kMaxSnapshotStateFloats);
    if (!decoded.ok()) return ToGrpcStatus(decoded.status());
    resumed = *std::move(decoded);
    ref = ModelRef{resumed->model_name, resumed->model_version, ""};
  }
  absl::StatusOr<std::shared_ptr<const LoadedModel>> loaded = service_->registry_->Load(ref);
  if (!loaded.ok()) return ToGrpcStatus(loaded.status());
  absl::StatusOr<std::shared_ptr<StepBatcher>> batcher = service_->BatcherFor(*loaded);
  if (!batcher.ok()) return ToGrpcStatus(batcher.status());
  state_.assign((*batcher)->state_size(), 0.0f);
  if (resumed.has_value()) {
    if (absl::Status valid = ValidateResumedState(static_cast<int64_t>(resumed->state.size()),
                                                  (*batcher)->state_size());
        !valid.ok()) {
      return ToGrpcStatus(valid);
    }
    state_ = std::move(resumed->state);
    steps_taken_ = resumed->steps_taken;
  }
  model_ = *std::move(loaded);
  batcher_ = *std::move(batcher);
  batcher_->StreamOpened();
  if (service_->metrics_ != nullptr) service_->metrics_->StreamOpened();

  const core::ModelSpec& spec = model_->model.spec;
  input_.resize(spec.input_size);
  output_.resize(spec.output_size);
  response_.Clear();
  auto* opened = response_.mutable_opened();
  opened->set_model_name(model_->name);
  opened->set_model_version(model_->version);
  opened->set_input_size(spec.input_size);
  opened->set_output_size(spec.output_size);
  opened->set_steps_taken(steps_taken_);
  return grpc::Status::OK;
}

void StepSession::Handle() {
  const core::ModelSpec& spec = model_->model.spec;
  const int64_t max_steps = service_->limits_.max_steps_per_message;
  response_.Clear();
  switch (request_.kind_case()) {
    case v1::StepRequest::kStep: {
      const v1::StepInput& step = request_.step();
      if (absl::Status valid = ValidateStepInput(step, spec, max_steps); !valid.ok()) {
        End(ToGrpcStatus(valid));
        return;
      }
      v1::StepOutput* out = response_.mutable_output();
      out->set_steps(step.steps());
      out->mutable_values()->Reserve(static_cast<int>(step.steps() * spec.output_size));
      {
        std::lock_guard lock(mutex_);
        if (finished_) return;
        busy_ = true;
      }
      SubmitStep(0);
      return;
    }
    case v1::StepRequest::kReset:
      std::fill(state_.begin(), state_.end(), 0.0f);
      steps_taken_ = 0;
      response_.set_reset_done(true);
      Write();
      return;
    case v1::StepRequest::kSnapshot:
      response_.mutable_snapshot()->set_data(
          EncodeSnapshot(StreamState{model_->name, model_->version, steps_taken_, state_}));
      Write();
      return;
    case v1::StepRequest::kOpen:
      End(Invalid("the session is already open; `open` is only valid as the first message"));
      return;
    default:
      End(Invalid("an empty StepPredict message: send step, reset or snapshot"));
      return;
  }
}

void StepSession::SubmitStep(int64_t t) {
  {
    std::lock_guard lock(mutex_);
    ++refs_;  // the batcher's, until OnStepDone(t) returns
  }
  const int64_t in = model_->model.spec.input_size;
  std::memcpy(input_.data(), request_.step().values().data() + t * in, sizeof(float) * in);
  core::NormalizeInputs(model_->model.normalization, input_.data(), 1);
  batcher_->StepAsync(input_.data(), state_.data(), output_.data(),
                      [this, t](const absl::Status& status) { OnStepDone(t, status); });
}

void StepSession::OnStepDone(int64_t t, const absl::Status& status) {
  if (status.ok()) {
    core::DenormalizeOutputs(model_->model.normalization, output_.data(), 1);
    response_.mutable_output()->mutable_values()->Add(output_.begin(), output_.end());
    ++steps_taken_;
  }
  const bool more = status.ok() && t + 1 < request_.step().steps();
  bool next = false;
  {
    std::lock_guard lock(mutex_);
    if (!status.ok() || deferred_end_.has_value() || finished_) {
      busy_ = false;
      if (!finished_) {
        FinishLocked(deferred_end_.has_value() ? *deferred_end_ : ToGrpcStatus(status));
      }
    } else if (!more) {
      busy_ = false;
      StartWriteLocked();
    } else {
      next = true;
    }
  }
  if (next) SubmitStep(t + 1);  // still busy_, so nobody finishes the session meanwhile
  Unref();                      // the batcher's reference to step t
}

void StepSession::StartReadLocked() {
  if (finished_) return;
  ++refs_;
  stream_.Read(&request_, &read_tag_);
}

void StepSession::StartWriteLocked() {
  if (finished_) return;
  ++refs_;
  stream_.Write(response_, &written_tag_);
}

void StepSession::FinishLocked(const grpc::Status& status) {
  finished_ = true;
  ++refs_;
  stream_.Finish(status, &finished_tag_);
}

void StepSession::Read() {
  std::lock_guard lock(mutex_);
  StartReadLocked();
}

void StepSession::Write() {
  std::lock_guard lock(mutex_);
  StartWriteLocked();
}

void StepSession::End(const grpc::Status& status) {
  std::lock_guard lock(mutex_);
  if (!finished_) FinishLocked(status);
}

}  // namespace recurrent::server
