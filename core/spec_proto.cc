#include "core/spec_proto.h"

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"

namespace recurrent::core {
namespace {

absl::Status UnknownEnum(absl::string_view what, int proto_value) {
  if (proto_value == 0) {
    return absl::InvalidArgumentError(absl::StrCat("model spec: ", what, " is unspecified"));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("model spec: unknown ", what, " value ", proto_value));
}

}  // namespace

recurrent::v1::CellType CellTypeToProto(CellType cell) {
  switch (cell) {
    case CellType::kRnnTanh:
      return recurrent::v1::CELL_TYPE_RNN_TANH;
    case CellType::kRnnRelu:
      return recurrent::v1::CELL_TYPE_RNN_RELU;
    case CellType::kLstm:
      return recurrent::v1::CELL_TYPE_LSTM;
    case CellType::kGru:
      return recurrent::v1::CELL_TYPE_GRU;
  }
  return recurrent::v1::CELL_TYPE_UNSPECIFIED;
}

absl::StatusOr<CellType> CellTypeFromProto(int proto_value) {
  switch (proto_value) {
    case recurrent::v1::CELL_TYPE_RNN_TANH:
      return CellType::kRnnTanh;
    case recurrent::v1::CELL_TYPE_RNN_RELU:
      return CellType::kRnnRelu;
    case recurrent::v1::CELL_TYPE_LSTM:
      return CellType::kLstm;
    case recurrent::v1::CELL_TYPE_GRU:
      return CellType::kGru;
    default:
      return UnknownEnum("cell type", proto_value);
  }
}

recurrent::v1::HeadMode HeadModeToProto(HeadMode head) {
  switch (head) {
    case HeadMode::kPerStep:
      return recurrent::v1::HEAD_MODE_PER_STEP;
    case HeadMode::kLastStep:
      return recurrent::v1::HEAD_MODE_LAST_STEP;
  }
  return recurrent::v1::HEAD_MODE_UNSPECIFIED;
}

absl::StatusOr<HeadMode> HeadModeFromProto(int proto_value) {
  switch (proto_value) {
    case recurrent::v1::HEAD_MODE_PER_STEP:
      return HeadMode::kPerStep;
    case recurrent::v1::HEAD_MODE_LAST_STEP:
      return HeadMode::kLastStep;
    default:
      return UnknownEnum("head mode", proto_value);
  }
}

recurrent::v1::LossType LossTypeToProto(LossType loss) {
  switch (loss) {
    case LossType::kMse:
      return recurrent::v1::LOSS_TYPE_MSE;
    case LossType::kCrossEntropy:
      return recurrent::v1::LOSS_TYPE_CROSS_ENTROPY;
  }
  return recurrent::v1::LOSS_TYPE_UNSPECIFIED;
}

absl::StatusOr<LossType> LossTypeFromProto(int proto_value) {
  switch (proto_value) {
    case recurrent::v1::LOSS_TYPE_MSE:
      return LossType::kMse;
    case recurrent::v1::LOSS_TYPE_CROSS_ENTROPY:
      return LossType::kCrossEntropy;
    default:
      return UnknownEnum("loss type", proto_value);
  }
}

recurrent::v1::ModelSpec ModelSpecToProto(const ModelSpec& spec) {
  recurrent::v1::ModelSpec proto;
  proto.set_cell(CellTypeToProto(spec.cell));
  proto.set_input_size(spec.input_size);
  proto.set_hidden_size(spec.hidden_size);
  proto.set_num_layers(spec.num_layers);
  proto.set_bidirectional(spec.bidirectional);
  proto.set_head(HeadModeToProto(spec.head));
  proto.set_output_size(spec.output_size);
  proto.set_loss(LossTypeToProto(spec.loss));
  return proto;
}

absl::StatusOr<ModelSpec> ModelSpecFromProto(const recurrent::v1::ModelSpec& proto,
                                             const SpecLimits& limits) {
  ModelSpec spec;
  ASSIGN_OR_RETURN(spec.cell, CellTypeFromProto(proto.cell()));
  ASSIGN_OR_RETURN(spec.head, HeadModeFromProto(proto.head()));
  ASSIGN_OR_RETURN(spec.loss, LossTypeFromProto(proto.loss()));
  spec.input_size = proto.input_size();
  spec.hidden_size = proto.hidden_size();
  spec.num_layers = proto.num_layers();
  spec.bidirectional = proto.bidirectional();
  spec.output_size = proto.output_size();
  RETURN_IF_ERROR(ValidateSpec(spec, limits));
  return spec;
}

}  // namespace recurrent::core
