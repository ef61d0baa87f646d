#include "server/proto_conversions.h"

namespace recurrent::server {

google::protobuf::Timestamp ToTimestamp(absl::Time time) {
  google::protobuf::Timestamp timestamp;
  const int64_t nanos = absl::ToUnixNanos(time);
  timestamp.set_seconds(nanos / 1'000'000'000);
  timestamp.set_nanos(static_cast<int32_t>(nanos % 1'000'000'000));
  return timestamp;
}

ModelRef ModelRefFromProto(const v1::ModelRef& proto) {
  ModelRef ref;
  ref.name = proto.name();
  if (proto.has_version()) ref.version = proto.version();
  if (proto.has_alias()) ref.alias = proto.alias();
  return ref;
}

bool IsTerminalJobState(v1::JobState state) {
  return state == v1::JOB_STATE_SUCCEEDED || state == v1::JOB_STATE_FAILED ||
         state == v1::JOB_STATE_CANCELLED;
}

}  // namespace recurrent::server
