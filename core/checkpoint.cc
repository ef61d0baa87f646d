#include "core/checkpoint.h"

#include <cmath>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/crc32c.h"
#include "core/file_util.h"
#include "core/status_macros.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "recurrent/v1/checkpoint.pb.h"

namespace recurrent::core {
namespace {

// A checkpoint holds two models and the optimizer's slots (up to three more copies of the
// weights), so its bound is protobuf's own 2 GiB.
constexpr int64_t kMaxCheckpointBytes = kMaxSupportedArtifactBytes;

absl::StatusOr<std::string> SerializeDeterministic(const google::protobuf::MessageLite& message) {
  const size_t size = message.ByteSizeLong();
  if (size > static_cast<size_t>(kMaxCheckpointBytes)) {
    return absl::ResourceExhaustedError(
        absl::StrCat("checkpoint would be ", size, " bytes, over protobuf's 2 GiB limit"));
  }
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    message.SerializeWithCachedSizes(&coded);
    if (coded.HadError()) return absl::InternalError("serializing a checkpoint failed");
  }
  return bytes;
}

absl::Status Corrupt(absl::string_view why) {
  return absl::DataLossError(absl::StrCat("checkpoint is corrupt or truncated: ", why));
}

}  // namespace

absl::StatusOr<std::string> SerializeCheckpoint(const TrainingCheckpoint& checkpoint,
                                                const ArtifactLimits& limits) {
  recurrent::v1::TrainingCheckpoint proto;
  proto.set_format_version(kCheckpointFormatVersion);
  ASSIGN_OR_RETURN(*proto.mutable_model(), SerializeModel(checkpoint.model, limits));
  for (const auto& [key, value] : checkpoint.hyperparameters) {
    (*proto.mutable_hyperparameters())[key] = value;
  }
  proto.set_dataset_fingerprint(checkpoint.dataset_fingerprint);
  proto.set_optimizer_steps(checkpoint.optimizer.steps);
  for (const auto& [parameter, slots] : checkpoint.optimizer.slots) {
    for (const auto& [slot, values] : slots) {
      recurrent::v1::OptimizerSlot* entry = proto.add_optimizer_slots();
      entry->set_parameter(parameter);
      entry->set_slot(slot);
      entry->mutable_values()->Add(values.begin(), values.end());
    }
  }
  recurrent::v1::ScheduleState* schedule = proto.mutable_schedule();
  schedule->set_epoch(checkpoint.schedule.epoch);
  schedule->set_learning_rate(checkpoint.schedule.learning_rate);
  schedule->set_best(checkpoint.schedule.best);
  schedule->set_num_bad_epochs(checkpoint.schedule.num_bad_epochs);
  schedule->set_cooldown_counter(checkpoint.schedule.cooldown_counter);
  proto.set_seed(checkpoint.seed);
  proto.set_epoch(checkpoint.epoch);
  proto.set_batch_in_epoch(checkpoint.batch_in_epoch);
  proto.set_global_step(checkpoint.global_step);
  proto.set_epoch_loss_sum(checkpoint.epoch_loss_sum);
  proto.set_epoch_loss_weight(checkpoint.epoch_loss_weight);
  for (const EpochRecord& record : checkpoint.loss_history) {
    recurrent::v1::EpochLoss* entry = proto.add_loss_history();
    entry->set_epoch(record.epoch);
    entry->set_train_loss(record.train_loss);
    entry->set_has_validation_loss(record.validation_loss.has_value());
    entry->set_validation_loss(record.validation_loss.value_or(0.0));
  }
  proto.set_has_best(checkpoint.best_model.has_value());
  if (checkpoint.best_model.has_value()) {
    ASSIGN_OR_RETURN(*proto.mutable_best_model(), SerializeModel(*checkpoint.best_model, limits));
  }
  proto.set_best_metric(checkpoint.best_metric);
  proto.set_best_epoch(checkpoint.best_epoch);
  proto.set_epochs_without_improvement(checkpoint.epochs_without_improvement);
  proto.set_elapsed_seconds(checkpoint.elapsed_seconds);

  ASSIGN_OR_RETURN(std::string payload, SerializeDeterministic(proto));
  recurrent::v1::ArtifactEnvelope envelope;
  envelope.set_format_version(kCheckpointFormatVersion);
  envelope.set_crc32c(Crc32c(payload));
  envelope.set_artifact(std::move(payload));
  ASSIGN_OR_RETURN(const std::string envelope_bytes, SerializeDeterministic(envelope));
  return absl::StrCat(kCheckpointMagic, envelope_bytes);
}

absl::StatusOr<TrainingCheckpoint> ParseCheckpoint(absl::string_view bytes,
                                                   const ArtifactLimits& limits) {
  if (!absl::StartsWith(bytes, kCheckpointMagic)) {
    return absl::DataLossError(
        absl::StrCat("not a training checkpoint: expected the magic \"", kCheckpointMagic, "\""));
  }
  if (static_cast<int64_t>(bytes.size()) > kMaxCheckpointBytes) {
    return absl::InvalidArgumentError("checkpoint is over protobuf's 2 GiB limit");
  }
  const absl::string_view body = bytes.substr(kCheckpointMagic.size());
  recurrent::v1::ArtifactEnvelope envelope;
  if (body.empty() || !envelope.ParseFromArray(body.data(), static_cast<int>(body.size()))) {
    return Corrupt("its envelope does not parse");
  }
  if (envelope.format_version() == 0 || envelope.format_version() > kCheckpointFormatVersion) {
    return absl::InvalidArgumentError(
        absl::StrCat("checkpoint format version ", envelope.format_version(),
                     " is not one this build reads (1..", kCheckpointFormatVersion, ")"));
  }
  if (Crc32c(envelope.artifact()) != envelope.crc32c()) return Corrupt("CRC-32C mismatch");
  recurrent::v1::TrainingCheckpoint proto;
  if (!proto.ParseFromString(envelope.artifact())) return Corrupt("its payload does not parse");

  TrainingCheckpoint checkpoint;
  absl::StatusOr<Model> model = ParseModel(proto.model(), limits);
  if (!model.ok()) {
    return absl::Status(model.status().code(),
                        absl::StrCat("checkpoint's model: ", model.status().message()));
  }
  checkpoint.model = *std::move(model);
  checkpoint.hyperparameters.insert(proto.hyperparameters().begin(), proto.hyperparameters().end());
  checkpoint.dataset_fingerprint = proto.dataset_fingerprint();
  checkpoint.optimizer.steps = proto.optimizer_steps();
  for (const recurrent::v1::OptimizerSlot& slot : proto.optimizer_slots()) {
    checkpoint.optimizer.slots[slot.parameter()][slot.slot()].assign(slot.values().begin(),
                                                                     slot.values().end());
  }
  const recurrent::v1::ScheduleState& schedule = proto.schedule();
  checkpoint.schedule = {schedule.epoch(), schedule.learning_rate(), schedule.best(),
                         schedule.num_bad_epochs(), schedule.cooldown_counter()};
  checkpoint.seed = proto.seed();
  checkpoint.epoch = proto.epoch();
  checkpoint.batch_in_epoch = proto.batch_in_epoch();
  checkpoint.global_step = proto.global_step();
  checkpoint.epoch_loss_sum = proto.epoch_loss_sum();
  checkpoint.epoch_loss_weight = proto.epoch_loss_weight();
  if (checkpoint.epoch < 0 || checkpoint.batch_in_epoch < 0 || checkpoint.global_step < 0 ||
      checkpoint.optimizer.steps < 0) {
    return absl::InvalidArgumentError("checkpoint has a negative epoch, batch or step counter");
  }
  for (const recurrent::v1::EpochLoss& entry : proto.loss_history()) {
    EpochRecord record{entry.epoch(), entry.train_loss(), std::nullopt};
    if (entry.has_validation_loss()) record.validation_loss = entry.validation_loss();
    checkpoint.loss_history.push_back(record);
  }
  if (proto.has_best()) {
    absl::StatusOr<Model> best = ParseModel(proto.best_model(), limits);
    if (!best.ok()) {
      return absl::Status(best.status().code(),
                          absl::StrCat("checkpoint's best model: ", best.status().message()));
    }
    if (!(best->spec == checkpoint.model.spec)) {
      return absl::InvalidArgumentError("checkpoint's best model has a different spec");
    }
    checkpoint.best_model = *std::move(best);
  }
  checkpoint.best_metric = proto.best_metric();
  checkpoint.best_epoch = proto.best_epoch();
  checkpoint.epochs_without_improvement = proto.epochs_without_improvement();
  checkpoint.elapsed_seconds = proto.elapsed_seconds();
  return checkpoint;
}

absl::Status WriteCheckpointFile(const std::string& path, const TrainingCheckpoint& checkpoint) {
  ASSIGN_OR_RETURN(const std::string bytes, SerializeCheckpoint(checkpoint));
  return WriteFileAtomically(path, bytes);
}

absl::StatusOr<TrainingCheckpoint> ReadCheckpointFile(const std::string& path) {
  ASSIGN_OR_RETURN(const std::string bytes,
                   ReadFileBounded(path, kMaxCheckpointBytes, "checkpoint"));
  absl::StatusOr<TrainingCheckpoint> checkpoint = ParseCheckpoint(bytes);
  if (!checkpoint.ok()) {
    return absl::Status(checkpoint.status().code(),
                        absl::StrCat(path, ": ", checkpoint.status().message()));
  }
  return checkpoint;
}

}  // namespace recurrent::core
