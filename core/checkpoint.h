// Training checkpoints: the complete state of a training run (core/trainer.h), so that a run
// stopped at any batch boundary (a crash, a cancelled job, a rolling restart) resumes and ends
// with bit-identical weights to an uninterrupted run on the same thread count.
//
// File layout: the 8-byte magic "RCNTCKP1", then an ArtifactEnvelope (proto/recurrent/v1/
// model.proto) whose payload is a TrainingCheckpoint (checkpoint.proto), with a format version and
// a CRC-32C, written atomically (core/file_util.h). Reading validates the checksum, every size
// and the embedded model artifacts; errors are DataLoss for damaged bytes and InvalidArgument for
// intact but inconsistent content, as for model artifacts.
#ifndef RECURRENT_CORE_CHECKPOINT_H_
#define RECURRENT_CORE_CHECKPOINT_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/artifact.h"
#include "core/optimizer.h"

namespace recurrent::core {

inline constexpr uint32_t kCheckpointFormatVersion = 1;
inline constexpr absl::string_view kCheckpointMagic = "RCNTCKP1";

struct EpochRecord {
  int64_t epoch = 0;  // 0-based
  double train_loss = 0.0;
  std::optional<double> validation_loss;
  friend bool operator==(const EpochRecord&, const EpochRecord&) = default;
};

// The learning-rate schedule's mutable state (core/lr_schedule.h).
struct ScheduleSnapshot {
  int64_t epoch = 0;
  double learning_rate = 0.0;
  double best = 0.0;
  int64_t num_bad_epochs = 0;
  int64_t cooldown_counter = 0;
};

struct TrainingCheckpoint {
  Model model;  // current weights, spec and normalization (training metadata unused)
  std::map<std::string, std::string> hyperparameters;
  std::string dataset_fingerprint;
  OptimizerState optimizer;
  ScheduleSnapshot schedule;
  uint64_t seed = 0;
  int64_t epoch = 0;           // the epoch in progress
  int64_t batch_in_epoch = 0;  // the next batch of that epoch
  int64_t global_step = 0;     // optimizer steps taken
  double epoch_loss_sum = 0.0;
  double epoch_loss_weight = 0.0;
  std::vector<EpochRecord> loss_history;
  std::optional<Model> best_model;  // the best weights so far (early stopping)
  double best_metric = 0.0;
  int64_t best_epoch = -1;
  int64_t epochs_without_improvement = 0;
  double elapsed_seconds = 0.0;
};

absl::StatusOr<std::string> SerializeCheckpoint(const TrainingCheckpoint& checkpoint,
                                                const ArtifactLimits& limits = {});
// `limits.max_bytes` bounds the whole checkpoint (two models' worth of bytes plus optimizer
// slots fit in twice the artifact default, which is what ReadCheckpointFile uses by default).
absl::StatusOr<TrainingCheckpoint> ParseCheckpoint(absl::string_view bytes,
                                                   const ArtifactLimits& limits = {});
absl::Status WriteCheckpointFile(const std::string& path, const TrainingCheckpoint& checkpoint);
absl::StatusOr<TrainingCheckpoint> ReadCheckpointFile(const std::string& path);

}  // namespace recurrent::core

#endif  // RECURRENT_CORE_CHECKPOINT_H_
