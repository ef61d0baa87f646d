// Small conversions between the service's protobuf types and the server's own, shared by the
// services, the job manager and the training runner.
#ifndef RECURRENT_SERVER_PROTO_CONVERSIONS_H_
#define RECURRENT_SERVER_PROTO_CONVERSIONS_H_

#include "absl/time/time.h"
#include "google/protobuf/timestamp.pb.h"
#include "recurrent/v1/service.pb.h"
#include "server/model_registry.h"

namespace recurrent::server {

google::protobuf::Timestamp ToTimestamp(absl::Time time);

// A proto ModelRef as the registry's (a version or an alias; neither: the newest).
ModelRef ModelRefFromProto(const v1::ModelRef& proto);

// SUCCEEDED, FAILED or CANCELLED: the job will not change any more.
bool IsTerminalJobState(v1::JobState state);

}  // namespace recurrent::server

#endif  // RECURRENT_SERVER_PROTO_CONVERSIONS_H_
