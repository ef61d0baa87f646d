// The JobRunner (server/job_manager.h) that trains: resolves a Train request into core types
// (server/train_request.h), runs core::Train with the job's stop token, reports progress,
// checkpoints into the data directory so that an interrupted job resumes where it stopped, and
// registers the result in the model registry.
#ifndef RECURRENT_SERVER_TRAINING_RUNNER_H_
#define RECURRENT_SERVER_TRAINING_RUNNER_H_

#include <string>

#include "absl/time/time.h"
#include "server/dataset_store.h"
#include "server/job_manager.h"
#include "server/model_registry.h"
#include "server/train_request.h"

namespace recurrent::server {

struct TrainingRunnerOptions {
  std::string checkpoints_dir;  // <data_dir>/checkpoints; one file per job
  // OpenMP threads per training job (0: the engine's adaptive count up to OMP_NUM_THREADS). The
  // server budgets training threads apart from inference threads so that jobs cannot starve
  // serving.
  int threads = 1;
  // Checkpoint interval of a running job (0: none; a job stopped by a cancellation or a shutdown
  // still writes one at the batch boundary where it stops).
  absl::Duration checkpoint_interval = absl::Seconds(30);
  TrainLimits limits;
};

// The returned runner keeps `registry` and `datasets` (which must outlive it; `datasets` may be
// null, and then dataset_id sources fail) and is safe to call from several job workers at once.
JobRunner MakeTrainingRunner(const TrainingRunnerOptions& options, ModelRegistry* registry,
                             const DatasetStore* datasets = nullptr);

}  // namespace recurrent::server

#endif  // RECURRENT_SERVER_TRAINING_RUNNER_H_
