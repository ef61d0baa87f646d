// The training loop (core/trainer.h): determinism, checkpoint/resume, budgets, early stopping,
// clipping, divergence, truncated BPTT, variable lengths, normalization, progress and errors.
// Small synthetic data sets keep every test well under a second.
#include "core/trainer.h"

#include <omp.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <stop_token>
#include <string>
#include <vector>

#include "core/checkpoint.h"
#include "core/random.h"
#include "gtest/gtest.h"

namespace recurrent::core {
namespace {

// y = mean of the first input feature over the sequence, x ~ U[-1, 1): sequence-to-one.
Dataset MeanDataset(int64_t count, int64_t length, uint64_t seed, bool variable_lengths = false) {
  Random random(seed);
  Dataset data;
  data.input_size = 2;
  data.target_size = 1;
  data.kind = TargetKind::kSequenceValues;
  for (int64_t i = 0; i < count; ++i) {
    Sequence sequence;
    sequence.length = variable_lengths ? length - static_cast<int64_t>(random.Below(3)) : length;
    double sum = 0.0;
    for (int64_t t = 0; t < sequence.length; ++t) {
      const float x = static_cast<float>(random.Uniform(-1.0, 1.0));
      sequence.inputs.push_back(x);
      sequence.inputs.push_back(static_cast<float>(random.Uniform(-1.0, 1.0)));
      sum += x;
    }
    sequence.targets.push_back(static_cast<float>(sum / sequence.length));
    data.sequences.push_back(std::move(sequence));
  }
  return data;
}

// Per-step target: the running sum of the first feature (a per-step regression).
Dataset RunningSumDataset(int64_t count, int64_t length, uint64_t seed, bool variable_lengths) {
  Random random(seed);
  Dataset data;
  data.input_size = 1;
  data.target_size = 1;
  data.kind = TargetKind::kPerStepValues;
  for (int64_t i = 0; i < count; ++i) {
    Sequence sequence;
    sequence.length =
        variable_lengths ? length - static_cast<int64_t>(random.Below(length / 2)) : length;
    float sum = 0.0f;
    for (int64_t t = 0; t < sequence.length; ++t) {
      const float x = static_cast<float>(random.Uniform(-0.5, 0.5));
      sum += x;
      sequence.inputs.push_back(x);
      sequence.targets.push_back(sum);
    }
    data.sequences.push_back(std::move(sequence));
  }
  return data;
}

ModelSpec SpecFor(const Dataset& data, CellType cell, int64_t hidden, int64_t layers = 1) {
  ModelSpec spec;
  spec.cell = cell;
  spec.input_size = data.input_size;
  spec.hidden_size = hidden;
  spec.num_layers = layers;
  spec.head = data.per_step() ? HeadMode::kPerStep : HeadMode::kLastStep;
  spec.output_size = data.target_size;
  spec.loss = data.has_labels() ? LossType::kCrossEntropy : LossType::kMse;
  return spec;
}

TrainerOptions BaseOptions() {
  TrainerOptions options;
  options.seed = 7;
  options.batch_size = 8;
  options.max_epochs = 3;
  options.optimizer.kind = OptimizerKind::kAdam;
  options.optimizer.learning_rate = 0.01;
  return options;
}

void ExpectSameWeights(const ParameterSet& a, const ParameterSet& b) {
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, tensor] : a) {
    ASSERT_EQ(tensor.values, b.at(name).values) << name << " differs";
  }
}

std::string TempPath(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          (name + "." + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "." +
           ::testing::UnitTest::GetInstance()->current_test_info()->name()))
      .string();
}

TEST(TrainerTest, LearnsASimpleSequenceToOneTask) {
  const Dataset data = MeanDataset(128, 10, 1);
  const ModelSpec spec = SpecFor(data, CellType::kGru, 16);
  TrainerOptions options = BaseOptions();
  options.max_epochs = 15;
  auto outcome = Train(spec, data, nullptr, options);
  ASSERT_TRUE(outcome.ok()) << outcome.status();
  ASSERT_EQ(outcome->history.size(), 15u);
  // The target's variance is about 1/30; predicting the mean scores that much.
  EXPECT_LT(outcome->history.back().train_loss, 0.2 * outcome->history.front().train_loss);
  EXPECT_LT(outcome->history.back().train_loss, 0.005);
  EXPECT_EQ(outcome->reason, StopReason::kCompleted);
  EXPECT_EQ(outcome->steps, 15 * 16);
}

TEST(TrainerTest, SameSeedGivesBitIdenticalWeightsOnAnyThreadCount) {
  const Dataset data = RunningSumDataset(40, 12, 2, /*variable_lengths=*/true);
  const ModelSpec spec = SpecFor(data, CellType::kLstm, 8, /*layers=*/2);
  TrainerOptions options = BaseOptions();
  options.dropout = 0.25;
  options.validation_split = 0.2;
  options.network.num_threads = 1;
  auto first = Train(spec, data, nullptr, options);
  ASSERT_TRUE(first.ok()) << first.status();
  options.network.num_threads = 2;
  auto second = Train(spec, data, nullptr, options);
  ASSERT_TRUE(second.ok()) << second.status();
  ExpectSameWeights(first->model.parameters, second->model.parameters);
  EXPECT_EQ(first->history, second->history);

  options.seed = 8;
  auto other = Train(spec, data, nullptr, options);
  ASSERT_TRUE(other.ok());
  EXPECT_NE(other->model.parameters.at("weight_hh_l0").values,
            first->model.parameters.at("weight_hh_l0").values);
}

TEST(TrainerTest, ResumingFromAMidEpochCheckpointEndsWithBitIdenticalWeights) {
  const Dataset data = MeanDataset(60, 8, 3);
  const ModelSpec spec = SpecFor(data, CellType::kLstm, 8, /*layers=*/2);
  TrainerOptions options = BaseOptions();
  options.dropout = 0.1;
  options.validation_split = 0.25;
  options.early_stopping.enabled = true;
  options.early_stopping.patience = 5;
  options.schedule.kind = ScheduleKind::kReduceOnPlateau;
  options.schedule.patience = 0;
  options.optimizer.kind = OptimizerKind::kSgd;
  options.optimizer.momentum = 0.9;
  options.max_epochs = 4;
  auto uninterrupted = Train(spec, data, nullptr, options);
  ASSERT_TRUE(uninterrupted.ok()) << uninterrupted.status();

  const std::string path = TempPath("resume.ckpt");
  options.checkpoint.path = path;
  options.checkpoint.every_steps = 1000;  // only the checkpoint written on cancellation
  std::stop_source stop;
  TrainerHooks hooks;
  hooks.stop = stop.get_token();
  // 45 training sequences / batch 8 = 6 batches per epoch: step 9 is mid-epoch 1.
  hooks.on_progress = [&stop](const TrainingProgress& progress) {
    if (progress.event == TrainingProgress::Event::kStep && progress.step == 9) {
      stop.request_stop();
    }
  };
  auto cancelled = Train(spec, data, nullptr, options, hooks);
  ASSERT_EQ(cancelled.status().code(), absl::StatusCode::kCancelled) << cancelled.status();
  auto checkpoint = ReadCheckpointFile(path);
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  EXPECT_EQ(checkpoint->global_step, 9);
  EXPECT_EQ(checkpoint->epoch, 1);
  EXPECT_EQ(checkpoint->batch_in_epoch, 3);

  TrainerHooks resume;
  resume.resume_from = path;
  auto resumed = Train(spec, data, nullptr, options, resume);
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  ExpectSameWeights(uninterrupted->model.parameters, resumed->model.parameters);
  EXPECT_EQ(uninterrupted->history, resumed->history);
  EXPECT_EQ(uninterrupted->steps, resumed->steps);
  std::filesystem::remove(path);
}

TEST(TrainerTest, RefusesToResumeWithDifferentOptionsOrData) {
  const Dataset data = MeanDataset(32, 6, 4);
  const ModelSpec spec = SpecFor(data, CellType::kGru, 4);
  TrainerOptions options = BaseOptions();
  options.max_epochs = 1;
  options.checkpoint.path = TempPath("refuse.ckpt");
  options.checkpoint.every_steps = 1;
  ASSERT_TRUE(Train(spec, data, nullptr, options).ok());
  TrainerHooks hooks;
  hooks.resume_from = options.checkpoint.path;
  TrainerOptions other_seed = options;
  other_seed.seed = 99;
  EXPECT_EQ(Train(spec, data, nullptr, other_seed, hooks).status().code(),
            absl::StatusCode::kFailedPrecondition);
  const Dataset other_data = MeanDataset(32, 6, 5);
  EXPECT_EQ(Train(spec, other_data, nullptr, options, hooks).status().code(),
            absl::StatusCode::kFailedPrecondition);
  // Budgets may change: a longer run continues from the checkpoint.
  TrainerOptions longer = options;
  longer.max_epochs = 2;
  auto continued = Train(spec, data, nullptr, longer, hooks);
  ASSERT_TRUE(continued.ok()) << continued.status();
  EXPECT_EQ(continued->epochs, 2);
  std::filesystem::remove(options.checkpoint.path);
}

TEST(TrainerTest, WritesCheckpointsAtTheStepInterval) {
  const Dataset data = MeanDataset(64, 5, 4);
  const ModelSpec spec = SpecFor(data, CellType::kGru, 4);
  TrainerOptions options = BaseOptions();
  options.max_epochs = 1;
  options.checkpoint.path = TempPath("interval.ckpt");
  options.checkpoint.every_steps = 3;
  std::vector<int64_t> seen_steps;
  TrainerHooks hooks;
  hooks.on_progress = [&](const TrainingProgress& progress) {
    if (progress.event != TrainingProgress::Event::kStep) return;
    auto checkpoint = ReadCheckpointFile(options.checkpoint.path);
    seen_steps.push_back(checkpoint.ok() ? checkpoint->global_step : -1);
  };
  ASSERT_TRUE(Train(spec, data, nullptr, options, hooks).ok());
  // Read during step k's callback, before that batch's checkpoint: the latest multiple of 3.
  EXPECT_EQ(seen_steps, (std::vector<int64_t>{-1, -1, -1, 3, 3, 3, 6, 6}));
  std::filesystem::remove(options.checkpoint.path);
}

TEST(TrainerTest, FineTuningStartsFromTheGivenModel) {
  const Dataset data = MeanDataset(16, 5, 4);
  const ModelSpec spec = SpecFor(data, CellType::kGru, 4);
  Model start;
  start.spec = spec;
  start.parameters = InitParameters(spec, 12345);
  start.normalization.input_mean = {0.5f, 0.5f};
  start.normalization.input_std = {2.0f, 2.0f};
  TrainerOptions options = BaseOptions();
  options.max_steps = 1;
  options.optimizer.kind = OptimizerKind::kSgd;
  options.optimizer.learning_rate = 0.0;  // a step that changes nothing
  TrainerHooks hooks;
  hooks.initial_model = &start;
  auto outcome = Train(spec, data, nullptr, options, hooks);
  ASSERT_TRUE(outcome.ok()) << outcome.status();
  ExpectSameWeights(outcome->model.parameters, start.parameters);
  EXPECT_EQ(outcome->model.normalization, start.normalization);  // kept, not refitted
}

TEST(TrainerTest, StopsAtTheStepBudget) {
  const Dataset data = MeanDataset(64, 5, 6);
  const ModelSpec spec = SpecFor(data, CellType::kRnnTanh, 4);
  TrainerOptions options = BaseOptions();
  options.max_steps = 5;
  auto outcome = Train(spec, data, nullptr, options);
  ASSERT_TRUE(outcome.ok());
  EXPECT_EQ(outcome->steps, 5);
  EXPECT_EQ(outcome->reason, StopReason::kStepBudget);
}

TEST(TrainerTest, StopsAtTheTimeBudgetAndRecordsTheTime) {
  const Dataset data = MeanDataset(64, 20, 6);
  const ModelSpec spec = SpecFor(data, CellType::kLstm, 16);
  TrainerOptions options = BaseOptions();
  options.max_epochs = 1'000'000;
  options.time_budget_seconds = 0.2;
  auto outcome = Train(spec, data, nullptr, options);
  ASSERT_TRUE(outcome.ok());
  EXPECT_EQ(outcome->reason, StopReason::kTimeBudget);
  EXPECT_GE(outcome->elapsed_seconds, 0.2);
  EXPECT_GT(outcome->steps, 0);
  EXPECT_EQ(outcome->model.training.training_seconds(), outcome->elapsed_seconds);
}

TEST(TrainerTest, CancellationIsHonouredWithinOneStep) {
  const Dataset data = MeanDataset(64, 5, 6);
  const ModelSpec spec = SpecFor(data, CellType::kGru, 4);
  std::stop_source stop;
  TrainerHooks hooks;
  hooks.stop = stop.get_token();
  int64_t last_step = 0;
  hooks.on_progress = [&](const TrainingProgress& progress) {
    last_step = progress.step;
    if (progress.step == 2) stop.request_stop();
  };
  auto outcome = Train(spec, data, nullptr, BaseOptions(), hooks);
  EXPECT_EQ(outcome.status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(last_step, 2);
}

TEST(TrainerTest, EarlyStoppingRestoresTheBestEpochsWeights) {
  // The validation targets are the negated training targets: the better the model fits the
  // training data, the worse it does on validation, so epoch 0 is the best.
  const Dataset data = MeanDataset(64, 6, 7);
  Dataset validation = data;
  for (Sequence& sequence : validation.sequences) sequence.targets[0] = -sequence.targets[0];
  const ModelSpec spec = SpecFor(data, CellType::kGru, 8);
  TrainerOptions options = BaseOptions();
  options.max_epochs = 20;
  options.early_stopping.enabled = true;
  options.early_stopping.patience = 3;
  auto outcome = Train(spec, data, &validation, options);
  ASSERT_TRUE(outcome.ok()) << outcome.status();
  EXPECT_EQ(outcome->reason, StopReason::kEarlyStopped);
  EXPECT_EQ(outcome->best_epoch, 0);
  EXPECT_EQ(outcome->epochs, 4);  // epoch 0 best, then 3 epochs without improvement
  ASSERT_TRUE(outcome->history[3].validation_loss.has_value());
  EXPECT_GT(*outcome->history[3].validation_loss, *outcome->history[0].validation_loss);

  TrainerOptions one_epoch = options;
  one_epoch.max_epochs = 1;
  one_epoch.early_stopping.enabled = false;
  auto first_epoch = Train(spec, data, &validation, one_epoch);
  ASSERT_TRUE(first_epoch.ok());
  ExpectSameWeights(first_epoch->model.parameters, outcome->model.parameters);
}

TEST(TrainerTest, ClippingBoundsTheUpdateAndTheNormIsReportedBeforeClipping) {
  const Dataset data = MeanDataset(8, 6, 8);
  const ModelSpec spec = SpecFor(data, CellType::kRnnTanh, 8);
  TrainerOptions options = BaseOptions();
  options.max_steps = 1;
  options.optimizer.kind = OptimizerKind::kSgd;
  options.optimizer.learning_rate = 1.0;
  options.clip_norm = 1e-3;
  double reported_norm = 0.0;
  TrainerHooks hooks;
  hooks.on_progress = [&](const TrainingProgress& progress) {
    if (progress.event == TrainingProgress::Event::kStep) reported_norm = progress.gradient_norm;
  };
  auto outcome = Train(spec, data, nullptr, options, hooks);
  ASSERT_TRUE(outcome.ok());
  ASSERT_GT(reported_norm, 1e-2);  // so the clip really acted
  const ParameterSet initial = InitParameters(spec, options.seed);
  double update_squares = 0.0;
  for (const auto& [name, tensor] : outcome->model.parameters) {
    for (size_t i = 0; i < tensor.values.size(); ++i) {
      const double delta = tensor.values[i] - initial.at(name).values[i];
      update_squares += delta * delta;
    }
  }
  // Plain SGD with lr 1: the update is the clipped gradient, of norm 1e-3.
  EXPECT_NEAR(std::sqrt(update_squares), 1e-3, 1e-5);
}

TEST(TrainerTest, ANonFiniteLossStopsTheRunWithTheLastFiniteWeights) {
  const Dataset data = MeanDataset(32, 20, 9);
  const ModelSpec spec = SpecFor(data, CellType::kRnnRelu, 16);
  TrainerOptions options = BaseOptions();
  options.optimizer.kind = OptimizerKind::kSgd;
  options.optimizer.learning_rate = 1e6;
  options.max_epochs = 50;
  auto outcome = Train(spec, data, nullptr, options);
  ASSERT_TRUE(outcome.ok()) << outcome.status();
  EXPECT_EQ(outcome->reason, StopReason::kDiverged);
  EXPECT_TRUE(ValidateParameters(spec, outcome->model.parameters).ok());  // all finite
}

TEST(TrainerTest, TruncatedBpttStepsOncePerChunkAndCarriesTheState) {
  const Dataset data = RunningSumDataset(16, 20, 10, /*variable_lengths=*/false);
  const ModelSpec spec = SpecFor(data, CellType::kLstm, 8);
  TrainerOptions options = BaseOptions();
  options.batch_size = 16;
  options.max_epochs = 1;
  options.tbptt_steps = 5;
  auto chunked = Train(spec, data, nullptr, options);
  ASSERT_TRUE(chunked.ok()) << chunked.status();
  EXPECT_EQ(chunked->steps, 4);  // one batch of T = 20 in 4 chunks of 5
  // With chunks as long as the sequence, truncated BPTT is plain BPTT, bit for bit.
  options.tbptt_steps = 20;
  auto whole = Train(spec, data, nullptr, options);
  options.tbptt_steps = 0;
  auto plain = Train(spec, data, nullptr, options);
  ASSERT_TRUE(whole.ok() && plain.ok());
  ExpectSameWeights(whole->model.parameters, plain->model.parameters);
  EXPECT_EQ(plain->steps, 1);
}

TEST(TrainerTest, TruncatedBpttOnALastStepHeadStepsOncePerBatch) {
  const Dataset data = MeanDataset(16, 20, 11);
  const ModelSpec spec = SpecFor(data, CellType::kGru, 8);
  TrainerOptions options = BaseOptions();
  options.batch_size = 16;
  options.max_epochs = 2;
  options.tbptt_steps = 6;
  auto outcome = Train(spec, data, nullptr, options);
  ASSERT_TRUE(outcome.ok()) << outcome.status();
  EXPECT_EQ(outcome->steps, 2);
}

TEST(TrainerTest, TrainsOnVariableLengthSequencesForBothHeads) {
  const Dataset per_step = RunningSumDataset(48, 16, 12, /*variable_lengths=*/true);
  TrainerOptions options = BaseOptions();
  options.max_epochs = 8;
  auto outcome = Train(SpecFor(per_step, CellType::kLstm, 16), per_step, nullptr, options);
  ASSERT_TRUE(outcome.ok()) << outcome.status();
  EXPECT_LT(outcome->history.back().train_loss, 0.5 * outcome->history.front().train_loss);

  const Dataset last_step = MeanDataset(48, 10, 13, /*variable_lengths=*/true);
  auto last = Train(SpecFor(last_step, CellType::kGru, 16), last_step, nullptr, options);
  ASSERT_TRUE(last.ok()) << last.status();
  EXPECT_LT(last->history.back().train_loss, last->history.front().train_loss);
}

TEST(TrainerTest, NormalizationIsFittedOnTheTrainingSplitAndStored) {
  Dataset data = MeanDataset(40, 5, 14);
  for (Sequence& sequence : data.sequences) {
    for (float& x : sequence.inputs) x = 100.0f + 10.0f * x;
    sequence.targets[0] = 5.0f + 3.0f * sequence.targets[0];
  }
  const ModelSpec spec = SpecFor(data, CellType::kGru, 4);
  TrainerOptions options = BaseOptions();
  options.max_epochs = 1;
  options.normalize_inputs = true;
  options.normalize_targets = true;
  auto outcome = Train(spec, data, nullptr, options);
  ASSERT_TRUE(outcome.ok()) << outcome.status();
  const Normalization& n = outcome->model.normalization;
  ASSERT_EQ(n.input_mean.size(), 2u);
  ASSERT_EQ(n.target_mean.size(), 1u);
  EXPECT_NEAR(n.input_mean[0], 100.0, 1.0);
  EXPECT_NEAR(n.input_std[0], 10.0 / std::sqrt(3.0), 0.6);  // U[-1,1) scaled by 10
  EXPECT_NEAR(n.target_mean[0], 5.0, 0.5);
  EXPECT_TRUE(ValidateModel(outcome->model).ok());
}

TEST(TrainerTest, ReportsProgressEveryStepAndEveryEpoch) {
  const Dataset data = MeanDataset(40, 5, 15);
  const ModelSpec spec = SpecFor(data, CellType::kGru, 4);
  TrainerOptions options = BaseOptions();
  options.validation_split = 0.2;  // 32 training sequences: 4 batches per epoch
  std::vector<TrainingProgress> events;
  TrainerHooks hooks;
  hooks.on_progress = [&](const TrainingProgress& progress) { events.push_back(progress); };
  auto outcome = Train(spec, data, nullptr, options, hooks);
  ASSERT_TRUE(outcome.ok());
  ASSERT_EQ(events.size(), 3u * (4 + 1));
  int64_t previous_step = 0;
  for (const TrainingProgress& progress : events) {
    if (progress.event == TrainingProgress::Event::kStep) {
      EXPECT_EQ(progress.step, previous_step + 1);
      previous_step = progress.step;
      EXPECT_GT(progress.gradient_norm, 0.0);
      EXPECT_EQ(progress.learning_rate, 0.01);
      EXPECT_EQ(progress.batches_in_epoch, 4);
    } else {
      EXPECT_TRUE(progress.validation_loss.has_value());
      EXPECT_GT(progress.sequences_per_second, 0.0);
    }
    EXPECT_GE(progress.eta_seconds, 0.0);
  }
  EXPECT_EQ(outcome->model.training.loss_history_size(), 3);
  EXPECT_EQ(outcome->model.training.dataset_fingerprint(), DatasetFingerprint(data));
}

TEST(TrainerTest, EtaCountsBatchesNotTruncatedBpttSteps) {
  // 64 sequences of 40 steps in 8 full batches of 8; truncated BPTT over 5-step chunks makes 8
  // optimizer steps per batch. The ETA and the throughput come from the same window of recent
  // progress, so ETA = batches left x batch size / (sequences per second), whatever the machine's
  // speed, up to the batch in progress (counted as done in batch_in_epoch, as left in the ETA).
  // An ETA that took optimizer steps for batches would be 8 times smaller.
  const Dataset data = RunningSumDataset(64, 40, 21, /*variable_lengths=*/false);
  const ModelSpec spec = SpecFor(data, CellType::kLstm, 16);
  TrainerOptions options = BaseOptions();
  options.max_epochs = 3;
  options.tbptt_steps = 5;
  int checked = 0;
  TrainerHooks hooks;
  hooks.on_progress = [&](const TrainingProgress& progress) {
    if (progress.sequences_per_second <= 0.0 || progress.batch_in_epoch == 0) return;
    const int64_t batches_left =
        (progress.max_epochs - progress.epoch) * progress.batches_in_epoch -
        progress.batch_in_epoch;
    const double expected =
        static_cast<double>(batches_left) * options.batch_size / progress.sequences_per_second;
    const double one_batch = options.batch_size / progress.sequences_per_second;
    EXPECT_NEAR(progress.eta_seconds, expected, one_batch * 1.001)
        << "epoch " << progress.epoch << " step " << progress.step;
    ++checked;
  };
  ASSERT_TRUE(Train(spec, data, nullptr, options, hooks).ok());
  EXPECT_GT(checked, 100);
}

TEST(TrainerTest, ForgetGateBiasIsSetOnEveryLayerAndDirection) {
  ModelSpec spec;
  spec.cell = CellType::kLstm;
  spec.hidden_size = 3;
  spec.num_layers = 2;
  spec.bidirectional = true;
  ParameterSet params = InitParameters(spec, 1);
  SetForgetGateBias(spec, 1.0, &params);
  for (const char* suffix : {"_l0", "_l1", "_l0_reverse", "_l1_reverse"}) {
    const std::vector<float>& ih = params.at(std::string("bias_ih") + suffix).values;
    const std::vector<float>& hh = params.at(std::string("bias_hh") + suffix).values;
    for (int h = 0; h < 3; ++h) {
      EXPECT_EQ(ih[3 + h], 1.0f);  // rows [H, 2H): the forget gate in i,f,g,o
      EXPECT_EQ(hh[3 + h], 0.0f);
      EXPECT_NE(ih[h], 1.0f);  // the input gate keeps its random init
    }
  }
}

TEST(TrainerTest, ChronoInitSpreadsForgetBiasesOverLogOneToLogTmax) {
  ModelSpec spec;
  spec.cell = CellType::kLstm;
  spec.hidden_size = 200;
  ParameterSet params = InitParameters(spec, 1);
  SetChronoBias(spec, 100, 5, &params);
  const std::vector<float>& ih = params.at("bias_ih_l0").values;
  const std::vector<float>& hh = params.at("bias_hh_l0").values;
  double largest = 0.0;
  for (int u = 0; u < 200; ++u) {
    const float forget = ih[200 + u];
    EXPECT_GE(forget, 0.0f);
    EXPECT_LT(forget, std::log(99.0f) + 1e-6f);
    EXPECT_EQ(ih[u], -forget);  // input gate opposite
    EXPECT_EQ(hh[u], 0.0f);
    EXPECT_EQ(hh[200 + u], 0.0f);
    largest = std::max(largest, static_cast<double>(forget));
  }
  EXPECT_GT(largest, std::log(80.0));  // the range is really used
}

TEST(TrainerTest, RejectsBadOptionsAndMismatchedData) {
  const Dataset data = MeanDataset(16, 5, 16);
  const ModelSpec spec = SpecFor(data, CellType::kGru, 4);
  const auto code = [&](auto mutate) {
    TrainerOptions options = BaseOptions();
    mutate(options);
    return Train(spec, data, nullptr, options).status().code();
  };
  EXPECT_EQ(code([](TrainerOptions& o) { o.batch_size = 0; }), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code([](TrainerOptions& o) { o.dropout = 1.0; }), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code([](TrainerOptions& o) { o.validation_split = 1.0; }),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code([](TrainerOptions& o) { o.early_stopping.enabled = true; }),
            absl::StatusCode::kInvalidArgument);  // no validation data to monitor
  EXPECT_EQ(code([](TrainerOptions& o) { o.optimizer.learning_rate = -1.0; }),
            absl::StatusCode::kInvalidArgument);
  ModelSpec wrong = spec;
  wrong.input_size = 3;
  EXPECT_EQ(Train(wrong, data, nullptr, BaseOptions()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace recurrent::core
