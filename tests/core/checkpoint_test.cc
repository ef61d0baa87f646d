#include "core/checkpoint.h"

#include <filesystem>
#include <string>

#include "gtest/gtest.h"

namespace recurrent::core {
namespace {

TrainingCheckpoint Sample() {
  TrainingCheckpoint checkpoint;
  checkpoint.model.spec.cell = CellType::kGru;
  checkpoint.model.spec.hidden_size = 3;
  checkpoint.model.parameters = InitParameters(checkpoint.model.spec, 1);
  checkpoint.hyperparameters = {{"seed", "1"}, {"optimizer", "adam"}};
  checkpoint.dataset_fingerprint = "fnv1a64:0123456789abcdef";
  checkpoint.optimizer.steps = 12;
  checkpoint.optimizer.slots["head.bias"]["exp_avg"] = {0.5f};
  checkpoint.schedule = {2, 0.001, 0.25, 1, 0};
  checkpoint.seed = 1;
  checkpoint.epoch = 2;
  checkpoint.batch_in_epoch = 3;
  checkpoint.global_step = 12;
  checkpoint.epoch_loss_sum = 1.5;
  checkpoint.epoch_loss_weight = 24;
  checkpoint.loss_history = {{0, 0.9, 1.0}, {1, 0.5, std::nullopt}};
  Model best = checkpoint.model;
  best.parameters = InitParameters(best.spec, 2);
  checkpoint.best_model = best;
  checkpoint.best_metric = 0.4;
  checkpoint.best_epoch = 1;
  checkpoint.epochs_without_improvement = 1;
  checkpoint.elapsed_seconds = 3.25;
  return checkpoint;
}

TEST(CheckpointTest, RoundTripsEveryField) {
  const TrainingCheckpoint original = Sample();
  auto bytes = SerializeCheckpoint(original);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  auto parsed = ParseCheckpoint(*bytes);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->model.parameters.at("weight_hh_l0").values,
            original.model.parameters.at("weight_hh_l0").values);
  EXPECT_EQ(parsed->hyperparameters, original.hyperparameters);
  EXPECT_EQ(parsed->dataset_fingerprint, original.dataset_fingerprint);
  EXPECT_EQ(parsed->optimizer.steps, 12);
  EXPECT_EQ(parsed->optimizer.slots, original.optimizer.slots);
  EXPECT_EQ(parsed->schedule.learning_rate, 0.001);
  EXPECT_EQ(parsed->schedule.best, 0.25);
  EXPECT_EQ(parsed->schedule.num_bad_epochs, 1);
  EXPECT_EQ(parsed->epoch, 2);
  EXPECT_EQ(parsed->batch_in_epoch, 3);
  EXPECT_EQ(parsed->global_step, 12);
  EXPECT_EQ(parsed->epoch_loss_sum, 1.5);
  EXPECT_EQ(parsed->loss_history, original.loss_history);
  ASSERT_TRUE(parsed->best_model.has_value());
  EXPECT_EQ(parsed->best_model->parameters.at("head.weight").values,
            original.best_model->parameters.at("head.weight").values);
  EXPECT_EQ(parsed->best_epoch, 1);
  EXPECT_EQ(parsed->elapsed_seconds, 3.25);
  // Serialization is deterministic.
  EXPECT_EQ(*SerializeCheckpoint(*parsed), *bytes);
}

TEST(CheckpointTest, RejectsDamagedBytesWithDataLoss) {
  auto bytes = SerializeCheckpoint(Sample());
  ASSERT_TRUE(bytes.ok());
  std::string flipped = *bytes;
  flipped[flipped.size() / 2] ^= 0x10;
  EXPECT_EQ(ParseCheckpoint(flipped).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(ParseCheckpoint(bytes->substr(0, bytes->size() - 7)).status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(ParseCheckpoint("RCNTMDL1 not a checkpoint").status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(ParseCheckpoint("").status().code(), absl::StatusCode::kDataLoss);
}

TEST(CheckpointTest, FileRoundTripAndMissingFile) {
  const std::string path =
      (std::filesystem::temp_directory_path() / "recurrent_checkpoint_test.ckpt").string();
  ASSERT_TRUE(WriteCheckpointFile(path, Sample()).ok());
  auto read = ReadCheckpointFile(path);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->global_step, 12);
  std::filesystem::remove(path);
  EXPECT_EQ(ReadCheckpointFile(path).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace recurrent::core
