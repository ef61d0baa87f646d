#include "server/inference_service.h"

#include <algorithm>
#include <cstring>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/normalization.h"
#include "core/thread_name.h"
#include "server/grpc_status.h"
#include "server/proto_conversions.h"
#include "server/request_validation.h"

namespace recurrent::server {
namespace {

// Idle networks kept per model version; more concurrent calls create more, returned ones beyond
// this are freed.
constexpr size_t kMaxIdleNetworksPerModel = 8;

}  // namespace

InferenceServiceImpl::InferenceServiceImpl(ModelRegistry* registry, InferenceLimits limits,
                                           ServerMetrics* metrics)
    : registry_(registry), limits_(std::move(limits)), metrics_(metrics) {
  if (limits_.stream_idle_ttl > absl::ZeroDuration()) {
    janitor_ = std::thread([this] {
      core::NameCurrentThread("rcnt-janitor");
      JanitorLoop();
    });
  }
}

InferenceServiceImpl::~InferenceServiceImpl() {
  StopStepThreads();
  {
    std::lock_guard lock(sessions_mutex_);
    stopping_ = true;
  }
  janitor_wake_.notify_all();
  if (janitor_.joinable()) janitor_.join();
}

void InferenceServiceImpl::AttachTo(grpc::ServerBuilder& builder) {
  builder.RegisterService(this);
  for (int i = 0; i < std::max(1, limits_.step_threads); ++i) {
    step_queues_.push_back(builder.AddCompletionQueue());
  }
}

void InferenceServiceImpl::StartStepThreads() {
  for (const auto& queue : step_queues_) {
    grpc::ServerCompletionQueue* const cq = queue.get();
    const std::string name = absl::StrCat("rcnt-step-io-", step_threads_.size());
    // Two calls waiting per queue, so a burst of new streams is accepted without a round trip
    // through the queue for each.
    StepSession::Listen(this, cq);
    StepSession::Listen(this, cq);
    step_threads_.emplace_back([this, cq, name] {
      core::NameCurrentThread(name);
      RunStepQueue(cq);
    });
  }
}

void InferenceServiceImpl::RunStepQueue(grpc::ServerCompletionQueue* queue) {
  using Status = grpc::CompletionQueue::NextStatus;
  const gpr_timespec no_wait = gpr_time_0(GPR_CLOCK_MONOTONIC);
  void* tag = nullptr;
  bool ok = false;
  while (true) {
    Status status = Status::TIMEOUT;
    if (limits_.step_busy_poll > absl::ZeroDuration() &&
        admitted_sessions_.load(std::memory_order_relaxed) <= limits_.batching.inline_max_streams) {
      const absl::Time until = absl::Now() + limits_.step_busy_poll;
      do {
        status = queue->AsyncNext(&tag, &ok, no_wait);
      } while (status == Status::TIMEOUT && absl::Now() < until);
    }
    if (status == Status::TIMEOUT) {
      status = queue->Next(&tag, &ok) ? Status::GOT_EVENT : Status::SHUTDOWN;
    }
    if (status == Status::SHUTDOWN) return;
    StepSession::Proceed(tag, ok);
  }
}

void InferenceServiceImpl::StopStepThreads() {
  if (step_threads_.empty()) return;
  // The server's shutdown cancelled every call and failed every waiting request; the threads are
  // still delivering those events, and a queue must see no new operation once shut down.
  {
    std::unique_lock lock(live_mutex_);
    no_live_sessions_.wait(lock, [&] { return live_sessions_ == 0; });
  }
  for (const auto& queue : step_queues_) queue->Shutdown();
  for (std::thread& thread : step_threads_) thread.join();
  step_threads_.clear();
}

void InferenceServiceImpl::SessionCreated() {
  std::lock_guard lock(live_mutex_);
  ++live_sessions_;
}

void InferenceServiceImpl::SessionDestroyed() {
  std::lock_guard lock(live_mutex_);
  if (--live_sessions_ == 0) no_live_sessions_.notify_all();
}

absl::StatusOr<int64_t> InferenceServiceImpl::AdmitSession(StepSession* session,
                                                           std::string client) {
  std::lock_guard lock(sessions_mutex_);
  if (draining_) {
    return absl::UnavailableError(
        "the server is shutting down; open the stream on another replica");
  }
  if (static_cast<int64_t>(sessions_.size()) >= limits_.max_streams) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "too many open streams (--max_streams=", limits_.max_streams, "); retry later"));
  }
  int64_t& of_client = streams_per_client_[client];
  if (limits_.max_streams_per_client > 0 && of_client >= limits_.max_streams_per_client) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "too many open streams from this client (", client, ", --max_streams_per_client=",
        limits_.max_streams_per_client, "); close some, or retry later"));
  }
  ++of_client;
  const int64_t id = next_session_++;
  sessions_.emplace(id, Session{session, absl::Now(), std::move(client)});
  admitted_sessions_.store(static_cast<int64_t>(sessions_.size()), std::memory_order_relaxed);
  return id;
}

int64_t InferenceServiceImpl::idle_networks() {
  std::lock_guard lock(pool_mutex_);
  int64_t count = 0;
  for (const auto& [key, idle] : idle_) count += static_cast<int64_t>(idle.networks.size());
  return count;
}

int64_t InferenceServiceImpl::open_streams() {
  std::lock_guard lock(sessions_mutex_);
  return static_cast<int64_t>(sessions_.size());
}

void InferenceServiceImpl::DrainStreams(absl::Duration grace) {
  std::unique_lock lock(sessions_mutex_);
  draining_ = true;
  session_ended_.wait_for(lock, absl::ToChronoNanoseconds(grace),
                          [this] { return sessions_.empty(); });
  for (auto& [id, session] : sessions_) {
    session.session->Terminate(grpc::Status(
        grpc::StatusCode::UNAVAILABLE,
        "the server is shutting down; reopen the stream on another replica, resuming from a "
        "snapshot"));
  }
  // The sessions leave the table in OnDone, once gRPC has delivered their status.
  session_ended_.wait(lock, [this] { return sessions_.empty(); });
}

void InferenceServiceImpl::TouchSession(int64_t id) {
  std::lock_guard lock(sessions_mutex_);
  const auto it = sessions_.find(id);
  // An evicted session (activity pushed to the infinite future) stays evicted.
  if (it != sessions_.end() && it->second.last_activity != absl::InfiniteFuture()) {
    it->second.last_activity = absl::Now();
  }
}

void InferenceServiceImpl::UnregisterSession(int64_t id) {
  {
    std::lock_guard lock(sessions_mutex_);
    const auto it = sessions_.find(id);
    if (it != sessions_.end()) {
      const auto count = streams_per_client_.find(it->second.client);
      if (count != streams_per_client_.end() && --count->second == 0) {
        streams_per_client_.erase(count);
      }
      sessions_.erase(it);
      admitted_sessions_.store(static_cast<int64_t>(sessions_.size()), std::memory_order_relaxed);
    }
  }
  session_ended_.notify_all();
}

void InferenceServiceImpl::JanitorLoop() {
  // Checks a few times per TTL, so a session lives at most ~1.25 TTL without a message.
  const absl::Duration period = limits_.stream_idle_ttl / 4;
  std::unique_lock lock(sessions_mutex_);
  while (!stopping_) {
    janitor_wake_.wait_for(lock, absl::ToChronoNanoseconds(period), [this] { return stopping_; });
    const absl::Time now = absl::Now();
    for (auto& [id, session] : sessions_) {
      if (now - session.last_activity > limits_.stream_idle_ttl) {
        // The session leaves the table in OnDone; the pushed-back activity time keeps it from
        // being counted twice meanwhile.
        session.session->Terminate(grpc::Status(
            grpc::StatusCode::DEADLINE_EXCEEDED,
            absl::StrCat("the stream sent nothing for ",
                         absl::FormatDuration(limits_.stream_idle_ttl),
                         " (--stream_idle_ttl_seconds) and was closed; open a new one, resuming "
                         "from a snapshot if you took one")));
        session.last_activity = absl::InfiniteFuture();
        ++idle_evictions_;
        if (metrics_ != nullptr) metrics_->StreamEvicted();
      }
    }
  }
}

absl::StatusOr<std::unique_ptr<core::Network>> InferenceServiceImpl::Acquire(
    const LoadedModel& model) {
  {
    std::lock_guard lock(pool_mutex_);
    auto it = idle_.find({model.name, model.version});
    // Only networks made for this very LoadedModel: a version deleted and loaded again (an
    // import may reuse nothing else, but the registry may reload it) starts a fresh pool.
    if (it != idle_.end() && it->second.model.lock().get() == &model &&
        !it->second.networks.empty()) {
      std::unique_ptr<core::Network> network = std::move(it->second.networks.back());
      it->second.networks.pop_back();
      return network;
    }
  }
  core::NetworkOptions options;
  options.num_threads = limits_.threads;
  options.precision = limits_.precision;
  return core::Network::Create(model.model.spec, model.model.parameters, options);
}

void InferenceServiceImpl::Release(const std::shared_ptr<const LoadedModel>& model,
                                   std::unique_ptr<core::Network> network) {
  std::lock_guard lock(pool_mutex_);
  // Drop the pools of versions the registry no longer holds (deleted, or evicted from its cache).
  std::erase_if(idle_, [](const auto& entry) { return entry.second.model.expired(); });
  IdleNetworks& idle = idle_[{model->name, model->version}];
  if (idle.model.lock() != model) idle = IdleNetworks{model, {}};
  if (idle.networks.size() < kMaxIdleNetworksPerModel) idle.networks.push_back(std::move(network));
}

grpc::Status InferenceServiceImpl::Predict(grpc::ServerContext* context,
                                           const v1::PredictRequest* request,
                                           v1::PredictResponse* response) {
  if (grpc::Status denied = Authorize(auth_, *context, Role::kPredict); !denied.ok()) return denied;
  absl::StatusOr<std::shared_ptr<const LoadedModel>> loaded =
      registry_->Load(ModelRefFromProto(request->model()));
  if (!loaded.ok()) return ToGrpcStatus(loaded.status());
  const LoadedModel& model = **loaded;
  const core::ModelSpec& spec = model.model.spec;
  if (absl::Status valid = ValidatePredictRequest(
          *request, spec,
          PredictLimits{limits_.max_sequences, limits_.max_steps, limits_.max_values});
      !valid.ok()) {
    return ToGrpcStatus(valid);
  }
  const int64_t count = request->sequences_size();

  absl::StatusOr<std::unique_ptr<core::Network>> network = Acquire(model);
  if (!network.ok()) return ToGrpcStatus(network.status());
  // Sequences of one length share a Forward call; results go back in request order.
  std::map<int64_t, std::vector<int64_t>> by_length;
  for (int64_t i = 0; i < count; ++i) {
    by_length[request->sequences(static_cast<int>(i)).steps()].push_back(i);
  }
  const int64_t o = spec.output_size;
  const int64_t state_rows = spec.num_layers * spec.num_directions();
  for (int64_t i = 0; i < count; ++i) response->add_outputs();
  if (request->return_final_states()) {
    for (int64_t i = 0; i < count; ++i) response->add_final_states();
  }
  grpc::Status status = grpc::Status::OK;
  for (const auto& [steps, members] : by_length) {
    // A caller that gave up (cancelled, or past its deadline) gets no more engine time.
    if (context->IsCancelled()) {
      status = grpc::Status(grpc::StatusCode::CANCELLED, "the call was cancelled");
      break;
    }
    const int64_t n = static_cast<int64_t>(members.size());
    core::Tensor inputs({n, steps, spec.input_size});
    for (int64_t b = 0; b < n; ++b) {
      const v1::InputSequence& sequence = request->sequences(static_cast<int>(members[b]));
      std::memcpy(inputs.data() + b * steps * spec.input_size, sequence.values().data(),
                  sizeof(float) * sequence.values_size());
    }
    core::NormalizeInputs(model.model.normalization, inputs.data(), n * steps);
    core::ForwardResult result;
    if (absl::Status forward = (*network)->Forward(inputs, nullptr, &result); !forward.ok()) {
      status = ToGrpcStatus(forward);
      break;
    }
    const bool per_step = spec.head == core::HeadMode::kPerStep;
    const int64_t rows = per_step ? steps : 1;
    core::DenormalizeOutputs(model.model.normalization, result.outputs.data(), n * rows);
    for (int64_t b = 0; b < n; ++b) {
      v1::OutputSequence* out = response->mutable_outputs(static_cast<int>(members[b]));
      out->set_steps(rows);
      out->mutable_values()->Add(result.outputs.data() + b * rows * o,
                                 result.outputs.data() + (b + 1) * rows * o);
      if (request->return_final_states()) {
        v1::RecurrentState* state = response->mutable_final_states(static_cast<int>(members[b]));
        const int64_t h = spec.hidden_size;
        for (int64_t r = 0; r < state_rows; ++r) {  // [L*D, N, H] -> this sequence's [L*D, H]
          const float* row_h = result.final_state.h.data() + (r * n + b) * h;
          state->mutable_h()->Add(row_h, row_h + h);
          if (spec.has_cell_state()) {
            const float* row_c = result.final_state.c.data() + (r * n + b) * h;
            state->mutable_c()->Add(row_c, row_c + h);
          }
        }
      }
    }
  }
  Release(*loaded, *std::move(network));
  if (!status.ok()) return status;
  response->set_model_name(model.name);
  response->set_model_version(model.version);
  return grpc::Status::OK;
}

absl::StatusOr<std::shared_ptr<StepBatcher>> InferenceServiceImpl::BatcherFor(
    std::shared_ptr<const LoadedModel> model) {
  std::lock_guard lock(batchers_mutex_);
  // Forget the batchers whose streams have all ended (a deleted version's would stay forever).
  std::erase_if(batchers_, [](const auto& entry) { return entry.second.expired(); });
  std::weak_ptr<StepBatcher>& slot = batchers_[{model->name, model->version}];
  if (std::shared_ptr<StepBatcher> existing = slot.lock()) return existing;
  StepBatcherOptions options = limits_.batching;
  options.threads = limits_.threads;
  options.precision = limits_.precision;
  absl::StatusOr<std::unique_ptr<StepBatcher>> created =
      StepBatcher::Create(std::move(model), options);
  if (!created.ok()) return created.status();
  std::shared_ptr<StepBatcher> batcher = *std::move(created);
  slot = batcher;
  return batcher;
}

}  // namespace recurrent::server
