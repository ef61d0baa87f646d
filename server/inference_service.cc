#include "server/inference_service.h"

#include <cmath>
#include <cstring>
#include <optional>

#include "absl/strings/str_cat.h"
#include "core/normalization.h"
#include "server/grpc_status.h"
#include "server/proto_conversions.h"
#include "server/stream_snapshot.h"

namespace recurrent::server {
namespace {

// Idle networks kept per model version; more concurrent calls create more, returned ones beyond
// this are freed.
constexpr size_t kMaxIdleNetworksPerModel = 8;

grpc::Status Invalid(absl::string_view message) {
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, std::string(message));
}

}  // namespace

InferenceServiceImpl::InferenceServiceImpl(ModelRegistry* registry, InferenceLimits limits,
                                           ServerMetrics* metrics)
    : registry_(registry), limits_(limits), metrics_(metrics) {
  if (limits_.stream_idle_ttl > absl::ZeroDuration()) {
    janitor_ = std::thread([this] { JanitorLoop(); });
  }
}

InferenceServiceImpl::~InferenceServiceImpl() {
  {
    std::lock_guard lock(sessions_mutex_);
    stopping_ = true;
  }
  janitor_wake_.notify_all();
  if (janitor_.joinable()) janitor_.join();
}

int64_t InferenceServiceImpl::RegisterSession(grpc::ServerContext* context) {
  std::lock_guard lock(sessions_mutex_);
  const int64_t id = next_session_++;
  sessions_.emplace(id, Session{context, absl::Now()});
  return id;
}

void InferenceServiceImpl::TouchSession(int64_t id) {
  std::lock_guard lock(sessions_mutex_);
  const auto it = sessions_.find(id);
  if (it != sessions_.end()) it->second.last_activity = absl::Now();
}

void InferenceServiceImpl::UnregisterSession(int64_t id) {
  std::lock_guard lock(sessions_mutex_);
  sessions_.erase(id);
}

void InferenceServiceImpl::JanitorLoop() {
  // Checks a few times per TTL, so a session lives at most ~1.25 TTL without a message.
  const absl::Duration period = limits_.stream_idle_ttl / 4;
  std::unique_lock lock(sessions_mutex_);
  while (!stopping_) {
    janitor_wake_.wait_for(lock, absl::ToChronoNanoseconds(period), [this] { return stopping_; });
    const absl::Time now = absl::Now();
    for (auto it = sessions_.begin(); it != sessions_.end();) {
      if (now - it->second.last_activity > limits_.stream_idle_ttl) {
        // The handler's blocked Read returns false and it frees the session.
        it->second.context->TryCancel();
        ++idle_evictions_;
        if (metrics_ != nullptr) metrics_->StreamEvicted();
        it = sessions_.erase(it);
      } else {
        ++it;
      }
    }
  }
}

absl::StatusOr<std::unique_ptr<core::Network>> InferenceServiceImpl::Acquire(
    const LoadedModel& model) {
  {
    std::lock_guard lock(pool_mutex_);
    auto it = idle_.find({model.name, model.version});
    if (it != idle_.end() && !it->second.empty()) {
      std::unique_ptr<core::Network> network = std::move(it->second.back());
      it->second.pop_back();
      return network;
    }
  }
  core::NetworkOptions options;
  options.num_threads = limits_.threads;
  return core::Network::Create(model.model.spec, model.model.parameters, options);
}

void InferenceServiceImpl::Release(const LoadedModel& model,
                                   std::unique_ptr<core::Network> network) {
  std::lock_guard lock(pool_mutex_);
  std::vector<std::unique_ptr<core::Network>>& idle = idle_[{model.name, model.version}];
  if (idle.size() < kMaxIdleNetworksPerModel) idle.push_back(std::move(network));
}

grpc::Status InferenceServiceImpl::Predict(grpc::ServerContext*, const v1::PredictRequest* request,
                                           v1::PredictResponse* response) {
  absl::StatusOr<std::shared_ptr<const LoadedModel>> loaded =
      registry_->Load(ModelRefFromProto(request->model()));
  if (!loaded.ok()) return ToGrpcStatus(loaded.status());
  const LoadedModel& model = **loaded;
  const core::ModelSpec& spec = model.model.spec;
  const int64_t count = request->sequences_size();
  if (count == 0) return Invalid("sequences is empty: send at least one sequence");
  if (count > limits_.max_sequences) {
    return Invalid(
        absl::StrCat(count, " sequences, over --max_predict_sequences=", limits_.max_sequences));
  }
  int64_t total_values = 0;
  for (int64_t i = 0; i < count; ++i) {
    const v1::InputSequence& sequence = request->sequences(static_cast<int>(i));
    if (sequence.steps() < 1 || sequence.steps() > limits_.max_steps) {
      return Invalid(absl::StrCat("sequences[", i, "].steps is ", sequence.steps(),
                                  "; it must be in [1, ", limits_.max_steps, "]"));
    }
    if (sequence.values_size() != sequence.steps() * spec.input_size) {
      return Invalid(absl::StrCat("sequences[", i, "] has ", sequence.values_size(), " values; ",
                                  sequence.steps(), " steps of the model's ", spec.input_size,
                                  " inputs need ", sequence.steps() * spec.input_size));
    }
    for (int v = 0; v < sequence.values_size(); ++v) {
      if (!std::isfinite(sequence.values(v))) {
        return Invalid(absl::StrCat("sequences[", i, "] value ", v, " is not finite"));
      }
    }
    total_values += sequence.values_size();
    if (total_values > limits_.max_values) {
      return Invalid(absl::StrCat("the request holds more than --max_predict_values=",
                                  limits_.max_values, " input values"));
    }
  }

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
  Release(model, *std::move(network));
  if (!status.ok()) return status;
  response->set_model_name(model.name);
  response->set_model_version(model.version);
  return grpc::Status::OK;
}

absl::StatusOr<std::shared_ptr<StepBatcher>> InferenceServiceImpl::BatcherFor(
    std::shared_ptr<const LoadedModel> model) {
  std::lock_guard lock(batchers_mutex_);
  std::weak_ptr<StepBatcher>& slot = batchers_[{model->name, model->version}];
  if (std::shared_ptr<StepBatcher> existing = slot.lock()) return existing;
  absl::StatusOr<std::unique_ptr<StepBatcher>> created =
      StepBatcher::Create(std::move(model), limits_.batching);
  if (!created.ok()) return created.status();
  std::shared_ptr<StepBatcher> batcher = *std::move(created);
  slot = batcher;
  return batcher;
}

grpc::Status InferenceServiceImpl::StepPredict(
    grpc::ServerContext* context,
    grpc::ServerReaderWriter<v1::StepResponse, v1::StepRequest>* stream) {
  v1::StepRequest request;
  if (!stream->Read(&request)) return grpc::Status::OK;  // closed before opening: nothing to do
  if (!request.has_open()) {
    return Invalid("the first StepPredict message must be `open` (a model, or a snapshot)");
  }
  // Counts this stream for as long as the handler runs.
  struct StreamCount {
    explicit StreamCount(std::atomic<int64_t>& count) : count_(count) { ++count_; }
    ~StreamCount() { --count_; }
    std::atomic<int64_t>& count_;
  } counted(open_streams_);
  if (open_streams_.load() > limits_.max_streams) {
    return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                        absl::StrCat("too many open streams (--max_streams=", limits_.max_streams,
                                     "); retry later"));
  }

  // The model version, pinned for the life of the session, and the starting state.
  ModelRef ref = ModelRefFromProto(request.open().model());
  std::optional<StreamState> resumed;
  if (!request.open().resume_from().empty()) {
    absl::StatusOr<StreamState> decoded =
        DecodeSnapshot(request.open().resume_from(), int64_t{1} << 26);
    if (!decoded.ok()) return ToGrpcStatus(decoded.status());
    resumed = *std::move(decoded);
    ref = ModelRef{resumed->model_name, resumed->model_version, ""};
  }
  absl::StatusOr<std::shared_ptr<const LoadedModel>> loaded = registry_->Load(ref);
  if (!loaded.ok()) return ToGrpcStatus(loaded.status());
  absl::StatusOr<std::shared_ptr<StepBatcher>> batcher = BatcherFor(*loaded);
  if (!batcher.ok()) return ToGrpcStatus(batcher.status());
  StepBatcher& steps = **batcher;
  const LoadedModel& model = **loaded;
  const core::ModelSpec& spec = model.model.spec;
  std::vector<float> state(steps.state_size(), 0.0f);
  int64_t steps_taken = 0;
  if (resumed.has_value()) {
    if (static_cast<int64_t>(resumed->state.size()) != steps.state_size()) {
      return Invalid("resume_from holds a state of the wrong size for its model");
    }
    state = resumed->state;
    steps_taken = resumed->steps_taken;
  }
  steps.StreamOpened();
  if (metrics_ != nullptr) metrics_->StreamOpened();
  const int64_t session = RegisterSession(context);
  struct Closer {
    ~Closer() {
      service.UnregisterSession(session);
      batcher.StreamClosed();
      if (metrics != nullptr) metrics->StreamClosed();
    }
    InferenceServiceImpl& service;
    int64_t session;
    StepBatcher& batcher;
    ServerMetrics* metrics;
  } closer{*this, session, steps, metrics_};

  v1::StepResponse opened;
  opened.mutable_opened()->set_model_name(model.name);
  opened.mutable_opened()->set_model_version(model.version);
  opened.mutable_opened()->set_input_size(spec.input_size);
  opened.mutable_opened()->set_output_size(spec.output_size);
  opened.mutable_opened()->set_steps_taken(steps_taken);
  if (!stream->Write(opened)) return grpc::Status::OK;

  std::vector<float> input(spec.input_size);
  std::vector<float> output(spec.output_size);
  while (!context->IsCancelled() && stream->Read(&request)) {
    TouchSession(session);
    v1::StepResponse response;
    switch (request.kind_case()) {
      case v1::StepRequest::kStep: {
        const v1::StepInput& step = request.step();
        if (step.steps() < 1 || step.steps() > limits_.max_steps_per_message) {
          return Invalid(absl::StrCat("step.steps is ", step.steps(), "; it must be in [1, ",
                                      limits_.max_steps_per_message, "]"));
        }
        if (step.values_size() != step.steps() * spec.input_size) {
          return Invalid(absl::StrCat("step has ", step.values_size(), " values; ", step.steps(),
                                      " steps of ", spec.input_size, " inputs need ",
                                      step.steps() * spec.input_size));
        }
        for (int v = 0; v < step.values_size(); ++v) {
          if (!std::isfinite(step.values(v))) {
            return Invalid(absl::StrCat("step value ", v, " is not finite"));
          }
        }
        v1::StepOutput* out = response.mutable_output();
        out->set_steps(step.steps());
        for (int64_t t = 0; t < step.steps(); ++t) {
          std::memcpy(input.data(), step.values().data() + t * spec.input_size,
                      sizeof(float) * spec.input_size);
          core::NormalizeInputs(model.model.normalization, input.data(), 1);
          if (absl::Status status = steps.Step(input.data(), state.data(), output.data());
              !status.ok()) {
            return ToGrpcStatus(status);
          }
          core::DenormalizeOutputs(model.model.normalization, output.data(), 1);
          out->mutable_values()->Add(output.begin(), output.end());
          ++steps_taken;
        }
        break;
      }
      case v1::StepRequest::kReset:
        std::fill(state.begin(), state.end(), 0.0f);
        steps_taken = 0;
        response.set_reset_done(true);
        break;
      case v1::StepRequest::kSnapshot:
        response.mutable_snapshot()->set_data(
            EncodeSnapshot(StreamState{model.name, model.version, steps_taken, state}));
        break;
      case v1::StepRequest::kOpen:
        return Invalid("the session is already open; `open` is only valid as the first message");
      default:
        return Invalid("an empty StepPredict message: send step, reset or snapshot");
    }
    if (!stream->Write(response)) break;
  }
  return grpc::Status::OK;
}

}  // namespace recurrent::server
