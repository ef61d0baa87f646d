// recurrent.v1.InferenceService. Predict runs whole sequences through the engine: sequences of
// equal length share one Forward call; normalization stored with the model is applied on the way
// in and undone on the way out. Networks are pooled per model version, one per concurrent call
// (a core::Network is not thread-safe). StepPredict streams share one StepBatcher per model
// version, which batches their timesteps into single engine calls (server/step_batcher.h); a
// session pins its model version for its whole life and can snapshot its state
// (server/stream_snapshot.h). The sync gRPC API holds one thread per open stream for now.
#ifndef RECURRENT_SERVER_INFERENCE_SERVICE_H_
#define RECURRENT_SERVER_INFERENCE_SERVICE_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "core/network.h"
#include "recurrent/v1/service.grpc.pb.h"
#include "server/metrics.h"
#include "server/model_registry.h"
#include "server/step_batcher.h"

namespace recurrent::server {

struct InferenceLimits {
  int64_t max_sequences = 4096;           // per Predict request
  int64_t max_steps = 100'000;            // per sequence
  int64_t max_values = int64_t{1} << 26;  // inputs in one request (256 MiB of floats)
  int threads = 1;                        // OpenMP threads per engine call
  int64_t max_streams = 1024;             // open StepPredict sessions; more: RESOURCE_EXHAUSTED
  int64_t max_steps_per_message = 1024;   // timesteps in one StepInput
  StepBatcherOptions batching;            // StepPredict batching: max batch and wait
};

class InferenceServiceImpl final : public v1::InferenceService::Service {
 public:
  // `metrics` may be null (tests).
  InferenceServiceImpl(ModelRegistry* registry, InferenceLimits limits,
                       ServerMetrics* metrics = nullptr)
      : registry_(registry), limits_(limits), metrics_(metrics) {}

  grpc::Status Predict(grpc::ServerContext* context, const v1::PredictRequest* request,
                       v1::PredictResponse* response) override;
  grpc::Status StepPredict(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<v1::StepResponse, v1::StepRequest>* stream) override;

 private:
  using PoolKey = std::pair<std::string, int64_t>;  // (model name, version)
  // Borrows an idle network for the model (creating one if none is idle); Release gives it back.
  absl::StatusOr<std::unique_ptr<core::Network>> Acquire(const LoadedModel& model);
  void Release(const LoadedModel& model, std::unique_ptr<core::Network> network);

  // The batcher of a model version, created on first use and kept while the version is in use.
  absl::StatusOr<std::shared_ptr<StepBatcher>> BatcherFor(std::shared_ptr<const LoadedModel> model);

  ModelRegistry* const registry_;
  const InferenceLimits limits_;
  ServerMetrics* const metrics_;
  std::mutex batchers_mutex_;
  std::map<PoolKey, std::weak_ptr<StepBatcher>> batchers_;  // guarded by batchers_mutex_
  std::atomic<int64_t> open_streams_{0};
  std::mutex pool_mutex_;
  std::map<PoolKey, std::vector<std::unique_ptr<core::Network>>> idle_;  // guarded by pool_mutex_
};

}  // namespace recurrent::server

#endif  // RECURRENT_SERVER_INFERENCE_SERVICE_H_
