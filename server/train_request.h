// Turns a Train RPC's request (proto/recurrent/v1/service.proto) into what core::Train takes: the
// spec, the data (a built-in generator or inline sequences; uploaded data sets are resolved by
// the caller) and the trainer's options, validating everything on the way. Every error is
// InvalidArgument naming the field to fix, e.g. "options.batch_size is 0; it must be >= 1".
#ifndef RECURRENT_SERVER_TRAIN_REQUEST_H_
#define RECURRENT_SERVER_TRAIN_REQUEST_H_

#include <cstdint>
#include <optional>

#include "absl/status/statusor.h"
#include "core/dataset.h"
#include "core/model_spec.h"
#include "core/trainer.h"
#include "recurrent/v1/service.pb.h"

namespace recurrent::server {

// Bounds on what one request may ask for; all are server flags.
struct TrainLimits {
  core::SpecLimits spec;
  core::DatasetLimits data;
  int64_t max_epochs = 100'000;
  int64_t max_steps = 100'000'000;
  int64_t max_batch_size = 4096;
  int64_t max_generated_sequences = 1'000'000;
  int64_t max_generated_length = 100'000;  // time steps; also bounds Mackey-Glass's tau
};

// The trainer's options from the request's; zero fields take the trainer's defaults.
absl::StatusOr<core::TrainerOptions> TrainerOptionsFromProto(const v1::TrainingOptions& proto,
                                                             const TrainLimits& limits);

// A data set from a built-in generator or inline sequences. dataset_id sources are the caller's:
// this returns FailedPrecondition for them.
absl::StatusOr<core::Dataset> DatasetFromSource(const v1::DataSource& source,
                                                const TrainLimits& limits);

// Fills what a spec leaves open from the data it trains on: num_layers 0 -> 1, input_size 0 ->
// the data's inputs,
// output_size 0 -> its targets (or classes), an unspecified head -> per-step or last-step as the
// targets are, an unspecified loss -> cross-entropy for labels, MSE for values. So a client can
// name only the cell and its size.
void CompleteSpecFromData(const core::Dataset& data, v1::ModelSpec* spec);

// The spec as it will be validated at submit time, before the data is known: CompleteSpecFromData
// with placeholders, so that every other field is still checked at once.
v1::ModelSpec SpecWithPlaceholders(const v1::ModelSpec& spec);

}  // namespace recurrent::server

#endif  // RECURRENT_SERVER_TRAIN_REQUEST_H_
