// grpc.health.v1.Health on gRPC's sync API, replacing gRPC's default health service.
//
// Why not the default (grpc::EnableDefaultHealthCheckService): in gRPC 1.51 it is a callback-API
// service, and a server with any callback-API service starts gRPC's callback threads, which poll
// the process's shared epoll set and hand every StepPredict message over to the thread that
// serves it. Removing that hop saved a lone stream 25-30 us of latency and ~30% of its server CPU
// per message in A/B runs on this project's 2-core VM (docs/benchmarks.md). With no callback
// service, the StepPredict thread polls for its own messages.
//
// Semantics follow gRPC's health checking protocol and the default service: the empty service
// name and the name of every service this server registers report the server's status; other
// names are NOT_FOUND (Check) or SERVICE_UNKNOWN (Watch). Watch sends the current status, then
// every change, until the client cancels or the server shuts down.
//
// Thread-safe.
#ifndef RECURRENT_SERVER_HEALTH_SERVICE_H_
#define RECURRENT_SERVER_HEALTH_SERVICE_H_

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <set>
#include <string>

#include "grpc/health/v1/health.grpc.pb.h"

namespace recurrent::server {

class HealthService final : public grpc::health::v1::Health::Service {
 public:
  // `services`: the full names ("recurrent.v1.InferenceService") a client may ask about besides
  // "". Starts SERVING.
  explicit HealthService(std::set<std::string> services);

  // SERVING or NOT_SERVING for every name (the drain on SIGTERM sets NOT_SERVING).
  void SetServing(bool serving);
  // Ends every Watch (call before grpc::Server::Shutdown, whose deadline they would hold up).
  void Shutdown();

  grpc::Status Check(grpc::ServerContext* context,
                     const grpc::health::v1::HealthCheckRequest* request,
                     grpc::health::v1::HealthCheckResponse* response) override;
  grpc::Status Watch(grpc::ServerContext* context,
                     const grpc::health::v1::HealthCheckRequest* request,
                     grpc::ServerWriter<grpc::health::v1::HealthCheckResponse>* writer) override;

 private:
  using Status = grpc::health::v1::HealthCheckResponse::ServingStatus;
  bool Known(const std::string& service) const;

  const std::set<std::string> services_;
  std::mutex mutex_;
  std::condition_variable changed_;
  Status status_ = grpc::health::v1::HealthCheckResponse::SERVING;  // guarded by mutex_
  int64_t version_ = 0;         // bumped on every change; guarded by mutex_
  bool shutting_down_ = false;  // guarded by mutex_
};

}  // namespace recurrent::server

#endif  // RECURRENT_SERVER_HEALTH_SERVICE_H_
