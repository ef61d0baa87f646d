// The one place where absl::Status becomes grpc::Status: same code, same message.
#ifndef RECURRENT_SERVER_GRPC_STATUS_H_
#define RECURRENT_SERVER_GRPC_STATUS_H_

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace recurrent::server {

// absl and gRPC share the canonical code numbering (both follow google.rpc.Code).
inline grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

}  // namespace recurrent::server

#endif  // RECURRENT_SERVER_GRPC_STATUS_H_
