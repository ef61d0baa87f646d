#include "server/health_service.h"

#include <chrono>
#include <utility>

namespace recurrent::server {

using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

HealthService::HealthService(std::set<std::string> services) : services_(std::move(services)) {}

bool HealthService::Known(const std::string& service) const {
  return service.empty() || services_.count(service) > 0;
}

void HealthService::SetServing(bool serving) {
  {
    std::lock_guard lock(mutex_);
    const Status status = serving ? HealthCheckResponse::SERVING : HealthCheckResponse::NOT_SERVING;
    if (status == status_) return;
    status_ = status;
    ++version_;
  }
  changed_.notify_all();
}

void HealthService::Shutdown() {
  {
    std::lock_guard lock(mutex_);
    shutting_down_ = true;
  }
  changed_.notify_all();
}

grpc::Status HealthService::Check(grpc::ServerContext* /*context*/,
                                  const HealthCheckRequest* request,
                                  HealthCheckResponse* response) {
  if (!Known(request->service())) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND, "unknown service " + request->service());
  }
  std::lock_guard lock(mutex_);
  response->set_status(status_);
  return grpc::Status::OK;
}

grpc::Status HealthService::Watch(grpc::ServerContext* context, const HealthCheckRequest* request,
                                  grpc::ServerWriter<HealthCheckResponse>* writer) {
  HealthCheckResponse response;
  const bool known = Known(request->service());
  if (!known) {
    // As the protocol says: not an error, the service may appear later (here it never does).
    response.set_status(HealthCheckResponse::SERVICE_UNKNOWN);
    writer->Write(response);
  }
  std::unique_lock lock(mutex_);
  int64_t sent = -1;
  while (!shutting_down_ && !context->IsCancelled()) {
    if (known && sent != version_) {
      sent = version_;
      response.set_status(status_);
      lock.unlock();
      const bool written = writer->Write(response);
      lock.lock();
      if (!written) break;  // the client went away
    }
    // A sync handler learns of a cancellation only by looking, so it looks a few times a second.
    changed_.wait_for(lock, std::chrono::milliseconds(200));
  }
  return grpc::Status::OK;
}

}  // namespace recurrent::server
