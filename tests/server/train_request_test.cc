#include "server/train_request.h"

#include "gtest/gtest.h"

namespace recurrent::server {
namespace {

TEST(TrainerOptionsFromProtoTest, ZeroFieldsTakeTheTrainersDefaults) {
  auto options = TrainerOptionsFromProto(v1::TrainingOptions(), TrainLimits());
  ASSERT_TRUE(options.ok()) << options.status();
  const core::TrainerOptions defaults;
  EXPECT_EQ(options->seed, defaults.seed);
  EXPECT_EQ(options->batch_size, defaults.batch_size);
  EXPECT_EQ(options->max_epochs, defaults.max_epochs);
  EXPECT_EQ(options->optimizer.kind, core::OptimizerKind::kAdam);
  EXPECT_EQ(options->optimizer.learning_rate, defaults.optimizer.learning_rate);
  EXPECT_FALSE(options->forget_gate_bias.has_value());
}

TEST(TrainerOptionsFromProtoTest, CopiesEveryField) {
  v1::TrainingOptions proto;
  proto.set_seed(0);  // explicit zero is a real seed
  proto.set_batch_size(16);
  proto.set_max_epochs(3);
  proto.set_optimizer(v1::OPTIMIZER_KIND_SGD);
  proto.set_learning_rate(0.0);
  proto.set_momentum(0.9);
  proto.set_nesterov(true);
  proto.set_schedule(v1::SCHEDULE_KIND_COSINE);
  proto.set_schedule_t_max(7);
  proto.set_clip_norm(1.0);
  proto.set_dropout(0.2);
  proto.set_tbptt_steps(25);
  proto.set_forget_gate_bias(1.0);
  proto.set_chrono_max_steps(40);
  proto.set_validation_split(0.1);
  proto.set_early_stopping(true);
  proto.set_early_stopping_patience(4);
  proto.set_normalize_inputs(true);
  auto options = TrainerOptionsFromProto(proto, TrainLimits());
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->seed, 0u);
  EXPECT_EQ(options->batch_size, 16);
  EXPECT_EQ(options->optimizer.kind, core::OptimizerKind::kSgd);
  EXPECT_EQ(options->optimizer.learning_rate, 0.0);
  EXPECT_TRUE(options->optimizer.nesterov);
  EXPECT_EQ(options->schedule.kind, core::ScheduleKind::kCosine);
  EXPECT_EQ(options->schedule.t_max, 7);
  EXPECT_EQ(options->tbptt_steps, 25);
  EXPECT_EQ(options->forget_gate_bias, 1.0);
  EXPECT_EQ(options->chrono_max_steps, 40);
  EXPECT_TRUE(options->early_stopping.enabled);
  EXPECT_EQ(options->early_stopping.patience, 4);
  EXPECT_TRUE(options->normalize_inputs);
}

TEST(TrainerOptionsFromProtoTest, RejectsValuesOutsideTheLimitsNamingTheField) {
  v1::TrainingOptions proto;
  proto.set_batch_size(100000);
  auto options = TrainerOptionsFromProto(proto, TrainLimits());
  EXPECT_EQ(options.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(options.status().message().find("options.batch_size"), absl::string_view::npos);

  v1::TrainingOptions dropout;
  dropout.set_dropout(1.5);
  auto bad = TrainerOptionsFromProto(dropout, TrainLimits());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("dropout"), absl::string_view::npos);
}

TEST(DatasetFromSourceTest, BuildsGeneratorData) {
  v1::DataSource source;
  source.mutable_generator()->set_seed(3);
  source.mutable_generator()->mutable_adding_problem()->set_sequences(10);
  source.mutable_generator()->mutable_adding_problem()->set_length(20);
  auto data = DatasetFromSource(source, TrainLimits());
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->sequences.size(), 10u);
  EXPECT_EQ(data->sequences[0].length, 20);

  v1::DataSource mackey;
  mackey.mutable_generator()->mutable_mackey_glass()->set_series_length(300);
  mackey.mutable_generator()->mutable_mackey_glass()->mutable_window()->set_window(20);
  auto series = DatasetFromSource(mackey, TrainLimits());
  ASSERT_TRUE(series.ok()) << series.status();
  EXPECT_EQ(series->kind, core::TargetKind::kSequenceValues);
}

TEST(DatasetFromSourceTest, BuildsAndValidatesInlineData) {
  v1::DataSource source;
  v1::InlineDataset* data = source.mutable_inline_();
  data->set_input_size(2);
  data->set_target_size(1);
  data->set_kind(v1::TARGET_KIND_SEQUENCE_VALUES);
  v1::LabeledSequence* sequence = data->add_sequences();
  sequence->set_steps(2);
  sequence->add_inputs(1);
  sequence->add_inputs(2);
  sequence->add_inputs(3);
  sequence->add_inputs(4);
  sequence->add_targets(0.5);
  auto built = DatasetFromSource(source, TrainLimits());
  ASSERT_TRUE(built.ok()) << built.status();
  EXPECT_EQ(built->sequences[0].inputs, (std::vector<float>{1, 2, 3, 4}));

  sequence->add_inputs(5);  // 5 values for 2 steps x 2 features
  auto ragged = DatasetFromSource(source, TrainLimits());
  EXPECT_EQ(ragged.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(ragged.status().message().find("data.inline"), absl::string_view::npos);
}

TEST(DatasetFromSourceTest, RejectsEmptyAndOversizedSources) {
  EXPECT_EQ(DatasetFromSource(v1::DataSource(), TrainLimits()).status().code(),
            absl::StatusCode::kInvalidArgument);
  v1::DataSource huge;
  huge.mutable_generator()->mutable_adding_problem()->set_sequences(1'000'000'000);
  huge.mutable_generator()->mutable_adding_problem()->set_length(10);
  auto result = DatasetFromSource(huge, TrainLimits());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(result.status().message().find("adding_problem.sequences"), absl::string_view::npos);
}

// Found by tests/fuzz/fuzz_train_request: tau sizes the integrator's history buffer, and tau = 1e7
// made a 30-byte request allocate 800 MB.
TEST(DatasetFromSourceTest, BoundsTheMackeyGlassDelay) {
  v1::DataSource source;
  v1::MackeyGlassSpec* mackey = source.mutable_generator()->mutable_mackey_glass();
  mackey->set_series_length(20);
  mackey->mutable_window()->set_window(4);
  mackey->set_tau(1e7);
  TrainLimits limits;
  limits.max_generated_length = 1000;
  auto refused = DatasetFromSource(source, limits);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("mackey_glass.tau"), absl::string_view::npos)
      << refused.status();
  mackey->set_tau(30);
  EXPECT_TRUE(DatasetFromSource(source, limits).ok());
}

TEST(CompleteSpecFromDataTest, FillsSizesHeadAndLossThatTheSpecLeavesOpen) {
  v1::DataSource copying;
  copying.mutable_generator()->mutable_copying_memory()->set_sequences(4);
  copying.mutable_generator()->mutable_copying_memory()->set_delay(5);
  auto labels = DatasetFromSource(copying, TrainLimits());
  ASSERT_TRUE(labels.ok()) << labels.status();
  v1::ModelSpec spec;
  spec.set_cell(v1::CELL_TYPE_LSTM);
  spec.set_hidden_size(8);
  CompleteSpecFromData(*labels, &spec);
  EXPECT_EQ(spec.input_size(), 10);
  EXPECT_EQ(spec.output_size(), 9);
  EXPECT_EQ(spec.head(), v1::HEAD_MODE_PER_STEP);
  EXPECT_EQ(spec.loss(), v1::LOSS_TYPE_CROSS_ENTROPY);

  v1::DataSource adding;
  adding.mutable_generator()->mutable_adding_problem()->set_sequences(4);
  adding.mutable_generator()->mutable_adding_problem()->set_length(6);
  auto values = DatasetFromSource(adding, TrainLimits());
  ASSERT_TRUE(values.ok()) << values.status();
  v1::ModelSpec given;
  given.set_input_size(2);
  given.set_output_size(1);
  given.set_head(v1::HEAD_MODE_PER_STEP);  // what the client set stays
  CompleteSpecFromData(*values, &given);
  EXPECT_EQ(given.head(), v1::HEAD_MODE_PER_STEP);
  EXPECT_EQ(given.loss(), v1::LOSS_TYPE_MSE);
  v1::ModelSpec open;
  CompleteSpecFromData(*values, &open);
  EXPECT_EQ(open.input_size(), 2);
  EXPECT_EQ(open.output_size(), 1);
  EXPECT_EQ(open.head(), v1::HEAD_MODE_LAST_STEP);
}

}  // namespace
}  // namespace recurrent::server
