// Conversions between core::ModelSpec and its wire form recurrent.v1.ModelSpec
// (proto/recurrent/v1/model.proto), shared by the artifact reader/writer and the service.
//
// Keep in sync with the enums in model.proto and core/model_spec.h: every core enumerator has
// exactly one proto value, and the proto's *_UNSPECIFIED (0) values never map to a core value.
#ifndef RECURRENT_CORE_SPEC_PROTO_H_
#define RECURRENT_CORE_SPEC_PROTO_H_

#include "absl/status/statusor.h"
#include "core/model_spec.h"
#include "recurrent/v1/model.pb.h"

namespace recurrent::core {

// Always succeeds for a spec with known enum values (which every core::ModelSpec has).
recurrent::v1::ModelSpec ModelSpecToProto(const ModelSpec& spec);

// Converts and validates: returns a spec that passes ValidateSpec(spec, limits), or
// InvalidArgument naming the problem: an UNSPECIFIED or unknown enum value (proto3 enums are open,
// so a newer writer or a hostile client can send any int32), or a size out of range / over limits.
absl::StatusOr<ModelSpec> ModelSpecFromProto(const recurrent::v1::ModelSpec& proto,
                                             const SpecLimits& limits = {});

// The enum halves of the conversion, for messages that carry one enum on its own.
recurrent::v1::CellType CellTypeToProto(CellType cell);
absl::StatusOr<CellType> CellTypeFromProto(int proto_value);
recurrent::v1::HeadMode HeadModeToProto(HeadMode head);
absl::StatusOr<HeadMode> HeadModeFromProto(int proto_value);
recurrent::v1::LossType LossTypeToProto(LossType loss);
absl::StatusOr<LossType> LossTypeFromProto(int proto_value);

}  // namespace recurrent::core

#endif  // RECURRENT_CORE_SPEC_PROTO_H_
