// The gRPC services against an in-process server on an ephemeral port: a real channel, real
// stubs, the real registry and job queue in a temporary data directory.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/artifact.h"
#include "core/network.h"
#include "core/spec_proto.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/server_builder.h"
#include "gtest/gtest.h"
#include "server/auth.h"
#include "server/dataset_store.h"
#include "server/inference_service.h"
#include "server/job_manager.h"
#include "server/model_registry.h"
#include "server/model_service.h"
#include "server/training_runner.h"
#include "server/training_service.h"

namespace recurrent::server {
namespace {

class ServicesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (std::filesystem::temp_directory_path() /
            (std::string("services-") +
             ::testing::UnitTest::GetInstance()->current_test_info()->name()))
               .string();
    std::filesystem::remove_all(dir_);
    registry_ = *ModelRegistry::Open(dir_);
    datasets_ = *DatasetStore::Open(dir_ + "/datasets", int64_t{1} << 30);
    TrainingRunnerOptions runner;
    runner.checkpoints_dir = dir_ + "/checkpoints";
    JobManagerOptions jobs;
    jobs.jobs_dir = dir_ + "/jobs";
    jobs.max_queued = 4;
    jobs_ = *JobManager::Open(jobs, MakeTrainingRunner(runner, registry_.get(), datasets_.get()));
    training_ = std::make_unique<TrainingServiceImpl>(jobs_.get(), TrainLimits(), datasets_.get(),
                                                      kMaxUploadBytes);
    InferenceLimits inference_limits;
    inference_limits.stream_idle_ttl = absl::Milliseconds(400);
    inference_ = std::make_unique<InferenceServiceImpl>(registry_.get(), inference_limits);
    models_ = std::make_unique<ModelServiceImpl>(registry_.get(), ModelServiceOptions());
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(training_.get());
    inference_->AttachTo(builder);
    builder.RegisterService(models_.get());
    server_ = builder.BuildAndStart();
    inference_->StartStepThreads();
    ASSERT_NE(port, 0);
    auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                       grpc::InsecureChannelCredentials());
    training_stub_ = v1::TrainingService::NewStub(channel);
    inference_stub_ = v1::InferenceService::NewStub(channel);
    model_stub_ = v1::ModelService::NewStub(channel);
  }
  void TearDown() override {
    server_->Shutdown();
    inference_->StopStepThreads();
    jobs_->Shutdown();
  }

  // Registers a small GRU directly (no training) and returns its model.
  core::Model RegisterGru(const std::string& name) {
    core::Model model;
    model.spec.cell = core::CellType::kGru;
    model.spec.input_size = 2;
    model.spec.hidden_size = 5;
    model.spec.head = core::HeadMode::kPerStep;
    model.spec.output_size = 3;
    model.parameters = core::InitParameters(model.spec, 9);
    EXPECT_TRUE(registry_->Register(name, model).ok());
    return model;
  }

  static constexpr int64_t kMaxUploadBytes = 1 << 20;
  std::string dir_;
  std::unique_ptr<ModelRegistry> registry_;
  std::unique_ptr<DatasetStore> datasets_;
  std::unique_ptr<JobManager> jobs_;
  std::unique_ptr<TrainingServiceImpl> training_;
  std::unique_ptr<InferenceServiceImpl> inference_;
  std::unique_ptr<ModelServiceImpl> models_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::TrainingService::Stub> training_stub_;
  std::unique_ptr<v1::InferenceService::Stub> inference_stub_;
  std::unique_ptr<v1::ModelService::Stub> model_stub_;
};

TEST_F(ServicesTest, TrainWatchThenPredictWithTheRegisteredModel) {
  v1::TrainRequest request;
  request.set_model_name("adder");
  core::ModelSpec spec;
  spec.cell = core::CellType::kGru;
  spec.input_size = 2;
  spec.hidden_size = 8;
  spec.head = core::HeadMode::kLastStep;
  *request.mutable_spec() = core::ModelSpecToProto(spec);
  request.mutable_data()->mutable_generator()->mutable_adding_problem()->set_sequences(64);
  request.mutable_data()->mutable_generator()->mutable_adding_problem()->set_length(10);
  request.mutable_options()->set_max_epochs(2);
  grpc::ClientContext train_context;
  v1::TrainResponse submitted;
  ASSERT_TRUE(training_stub_->Train(&train_context, request, &submitted).ok());

  grpc::ClientContext watch_context;
  v1::WatchJobRequest watch;
  watch.set_job_id(submitted.job_id());
  auto reader = training_stub_->WatchJob(&watch_context, watch);
  v1::JobEvent event;
  v1::JobState last = v1::JOB_STATE_UNSPECIFIED;
  int events = 0;
  while (reader->Read(&event)) {
    last = event.job().state();
    ++events;
  }
  ASSERT_TRUE(reader->Finish().ok());
  ASSERT_EQ(last, v1::JOB_STATE_SUCCEEDED) << event.job().error();
  EXPECT_GE(events, 1);
  EXPECT_EQ(event.job().model_version(), 1);

  // Predict equals the engine's Forward on the registered weights, bit for bit.
  auto loaded = registry_->Load(ModelRef{"adder", 1, ""});
  ASSERT_TRUE(loaded.ok());
  v1::PredictRequest predict;
  predict.mutable_model()->set_name("adder");
  core::Tensor inputs({2, 10, 2});
  for (int64_t i = 0; i < inputs.size(); ++i) inputs.values[i] = 0.01f * static_cast<float>(i % 37);
  for (int b = 0; b < 2; ++b) {
    v1::InputSequence* sequence = predict.add_sequences();
    sequence->set_steps(10);
    sequence->mutable_values()->Add(inputs.data() + b * 20, inputs.data() + (b + 1) * 20);
  }
  grpc::ClientContext predict_context;
  v1::PredictResponse predicted;
  ASSERT_TRUE(inference_stub_->Predict(&predict_context, predict, &predicted).ok());
  auto network = core::Network::Create((*loaded)->model.spec, (*loaded)->model.parameters);
  core::ForwardResult expected;
  ASSERT_TRUE((*network)->Forward(inputs, nullptr, &expected).ok());
  ASSERT_EQ(predicted.outputs_size(), 2);
  EXPECT_EQ(predicted.model_version(), 1);
  for (int b = 0; b < 2; ++b) {
    ASSERT_EQ(predicted.outputs(b).values_size(), 1);
    EXPECT_EQ(predicted.outputs(b).values(0), expected.outputs.values[b]);
  }
}

TEST_F(ServicesTest, PredictRejectsBadInputWithInvalidArgumentAndUnknownModelsWithNotFound) {
  RegisterGru("tagger");
  v1::PredictRequest request;
  request.mutable_model()->set_name("tagger");
  grpc::ClientContext empty_context;
  v1::PredictResponse response;
  EXPECT_EQ(inference_stub_->Predict(&empty_context, request, &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  v1::InputSequence* sequence = request.add_sequences();
  sequence->set_steps(2);
  sequence->add_values(1.0f);  // 1 value for 2 steps x 2 inputs
  grpc::ClientContext shape_context;
  const grpc::Status shape = inference_stub_->Predict(&shape_context, request, &response);
  EXPECT_EQ(shape.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(shape.error_message().find("need 4"), std::string::npos) << shape.error_message();

  sequence->clear_values();
  for (float v : {1.0f, 2.0f, std::nanf(""), 4.0f}) sequence->add_values(v);
  grpc::ClientContext nan_context;
  EXPECT_EQ(inference_stub_->Predict(&nan_context, request, &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  request.mutable_model()->set_name("nobody");
  grpc::ClientContext missing_context;
  EXPECT_EQ(inference_stub_->Predict(&missing_context, request, &response).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(ServicesTest, PredictKeepsRequestOrderAcrossLengthsAndReturnsStates) {
  const core::Model model = RegisterGru("tagger");
  v1::PredictRequest request;
  request.mutable_model()->set_name("tagger");
  request.set_return_final_states(true);
  const int lengths[] = {3, 1, 3};
  for (int length : lengths) {
    v1::InputSequence* sequence = request.add_sequences();
    sequence->set_steps(length);
    for (int v = 0; v < length * 2; ++v) sequence->add_values(0.1f * (v + length));
  }
  grpc::ClientContext context;
  v1::PredictResponse response;
  ASSERT_TRUE(inference_stub_->Predict(&context, request, &response).ok());
  auto network = core::Network::Create(model.spec, model.parameters);
  for (int i = 0; i < 3; ++i) {
    core::Tensor inputs({1, lengths[i], 2});
    for (int v = 0; v < lengths[i] * 2; ++v) inputs.values[v] = 0.1f * (v + lengths[i]);
    core::ForwardResult expected;
    ASSERT_TRUE((*network)->Forward(inputs, nullptr, &expected).ok());
    EXPECT_EQ(response.outputs(i).steps(), lengths[i]);
    ASSERT_EQ(response.outputs(i).values_size(), lengths[i] * 3);
    for (int v = 0; v < lengths[i] * 3; ++v) {
      EXPECT_NEAR(response.outputs(i).values(v), expected.outputs.values[v], 1e-6) << i;
    }
    EXPECT_EQ(response.final_states(i).h_size(), 5);
  }
}

TEST_F(ServicesTest, ModelServiceAliasesExportAndImport) {
  RegisterGru("tagger");
  grpc::ClientContext alias_context;
  v1::SetAliasRequest alias;
  alias.set_name("tagger");
  alias.set_alias("production");
  alias.set_version(1);
  v1::ModelInfo info;
  ASSERT_TRUE(model_stub_->SetAlias(&alias_context, alias, &info).ok());
  EXPECT_EQ(info.aliases().at("production"), 1);

  grpc::ClientContext delete_context;
  v1::DeleteModelVersionRequest remove;
  remove.set_name("tagger");
  remove.set_version(1);
  EXPECT_EQ(model_stub_->DeleteModelVersion(&delete_context, remove, &info).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);

  grpc::ClientContext export_context;
  v1::ExportModelRequest export_request;
  export_request.mutable_model()->set_name("tagger");
  export_request.mutable_model()->set_alias("production");
  v1::ExportModelResponse exported;
  ASSERT_TRUE(model_stub_->ExportModel(&export_context, export_request, &exported).ok());
  EXPECT_TRUE(core::ParseModel(exported.artifact()).ok());

  grpc::ClientContext import_context;
  v1::ImportModelRequest import_request;
  import_request.set_name("copy");
  import_request.set_artifact(exported.artifact());
  v1::ModelVersionInfo imported;
  ASSERT_TRUE(model_stub_->ImportModel(&import_context, import_request, &imported).ok());
  EXPECT_EQ(imported.version(), 1);

  grpc::ClientContext corrupt_context;
  import_request.set_artifact(exported.artifact().substr(0, 20));
  EXPECT_EQ(model_stub_->ImportModel(&corrupt_context, import_request, &imported).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  grpc::ClientContext list_context;
  v1::ListModelsResponse listed;
  ASSERT_TRUE(model_stub_->ListModels(&list_context, v1::ListModelsRequest(), &listed).ok());
  EXPECT_EQ(listed.models_size(), 2);
}

TEST_F(ServicesTest, TrainRejectsBadRequestsAtOnce) {
  v1::TrainRequest request;
  request.set_model_name("../escape");
  grpc::ClientContext name_context;
  v1::TrainResponse response;
  EXPECT_EQ(training_stub_->Train(&name_context, request, &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  request.set_model_name("ok");
  grpc::ClientContext spec_context;
  const grpc::Status no_spec = training_stub_->Train(&spec_context, request, &response);
  EXPECT_EQ(no_spec.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(no_spec.error_message().find("spec"), std::string::npos);

  grpc::ClientContext job_context;
  v1::GetJobRequest get;
  get.set_job_id("job-nope");
  v1::Job job;
  EXPECT_EQ(training_stub_->GetJob(&job_context, get, &job).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

// Steps one stream through StepPredict: opens it (`open` filled by the caller), sends each
// timestep of `inputs` ([T, I]) as its own message and returns the outputs ([T, O]).
struct StepSession {
  explicit StepSession(v1::InferenceService::Stub& stub) : stream(stub.StepPredict(&context)) {}
  StepSession(v1::InferenceService::Stub& stub, std::chrono::system_clock::time_point deadline)
      : stream((context.set_deadline(deadline), stub.StepPredict(&context))) {}
  StepSession(v1::InferenceService::Stub& stub, const std::string& token)
      : stream((context.AddMetadata("authorization", "Bearer " + token),
                stub.StepPredict(&context))) {}
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReaderWriter<v1::StepRequest, v1::StepResponse>> stream;

  v1::SessionOpened Open(const v1::OpenSession& open) {
    v1::StepRequest request;
    *request.mutable_open() = open;
    EXPECT_TRUE(stream->Write(request));
    v1::StepResponse response;
    EXPECT_TRUE(stream->Read(&response));
    return response.opened();
  }
  std::vector<float> Steps(const std::vector<float>& inputs, int64_t input_size) {
    std::vector<float> outputs;
    for (size_t t = 0; t < inputs.size() / input_size; ++t) {
      v1::StepRequest request;
      request.mutable_step()->set_steps(1);
      request.mutable_step()->mutable_values()->Add(inputs.begin() + t * input_size,
                                                    inputs.begin() + (t + 1) * input_size);
      EXPECT_TRUE(stream->Write(request));
      v1::StepResponse response;
      EXPECT_TRUE(stream->Read(&response));
      outputs.insert(outputs.end(), response.output().values().begin(),
                     response.output().values().end());
    }
    return outputs;
  }
  std::string Snapshot() {
    v1::StepRequest request;
    request.set_snapshot(true);
    EXPECT_TRUE(stream->Write(request));
    v1::StepResponse response;
    EXPECT_TRUE(stream->Read(&response));
    return response.snapshot().data();
  }
  grpc::Status Close() {
    stream->WritesDone();
    return stream->Finish();
  }
};

std::vector<float> Ramp(int64_t count, float scale) {
  std::vector<float> values(count);
  for (int64_t i = 0; i < count; ++i) values[i] = scale * static_cast<float>((i * 7) % 11 - 5);
  return values;
}

// The engine's own answer: the same steps through core::Network::Step, one stream.
std::vector<float> SoloSteps(const core::Model& model, const std::vector<float>& inputs,
                             core::Precision precision = core::Precision::kFloat32) {
  core::NetworkOptions options;
  options.precision = precision;
  auto network = core::Network::Create(model.spec, model.parameters, options);
  std::vector<float> state((*network)->step_state_size(), 0.0f);
  float* states[1] = {state.data()};
  std::vector<float> outputs(inputs.size() / model.spec.input_size * model.spec.output_size);
  for (size_t t = 0; t < inputs.size() / model.spec.input_size; ++t) {
    EXPECT_TRUE((*network)
                    ->Step(inputs.data() + t * model.spec.input_size, 1, states,
                           outputs.data() + t * model.spec.output_size)
                    .ok());
  }
  return outputs;
}

TEST_F(ServicesTest, StepPredictEqualsTheEnginesStepsAndResumesFromASnapshot) {
  const core::Model model = RegisterGru("tagger");
  v1::OpenSession open;
  open.mutable_model()->set_name("tagger");
  const std::vector<float> inputs = Ramp(40, 0.1f);  // 20 steps of 2 inputs
  const std::vector<float> expected = SoloSteps(model, inputs);

  StepSession whole(*inference_stub_);
  EXPECT_EQ(whole.Open(open).model_version(), 1);
  EXPECT_EQ(whole.Steps(inputs, 2), expected);  // bit for bit
  EXPECT_TRUE(whole.Close().ok());

  StepSession first(*inference_stub_);
  first.Open(open);
  const std::vector<float> head = first.Steps({inputs.begin(), inputs.begin() + 20}, 2);
  const std::string snapshot = first.Snapshot();
  EXPECT_TRUE(first.Close().ok());
  StepSession second(*inference_stub_);
  v1::OpenSession resume;
  resume.set_resume_from(snapshot);
  EXPECT_EQ(second.Open(resume).steps_taken(), 10);
  std::vector<float> joined = head;
  const std::vector<float> tail = second.Steps({inputs.begin() + 20, inputs.end()}, 2);
  joined.insert(joined.end(), tail.begin(), tail.end());
  EXPECT_EQ(joined, expected);
  EXPECT_TRUE(second.Close().ok());
}

TEST_F(ServicesTest, StepPredictRejectsBadMessages) {
  RegisterGru("tagger");
  {
    StepSession session(*inference_stub_);
    v1::StepRequest step;
    step.mutable_step()->set_steps(1);
    session.stream->Write(step);
    EXPECT_EQ(session.Close().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
  {
    StepSession session(*inference_stub_);
    v1::OpenSession open;
    open.mutable_model()->set_name("tagger");
    session.Open(open);
    v1::StepRequest step;
    step.mutable_step()->set_steps(1);
    step.mutable_step()->add_values(1.0f);  // the model has 2 inputs
    session.stream->Write(step);
    EXPECT_EQ(session.Close().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
  {
    StepSession session(*inference_stub_);
    v1::StepRequest request;
    request.mutable_open()->mutable_model()->set_name("nobody");
    session.stream->Write(request);
    EXPECT_EQ(session.Close().error_code(), grpc::StatusCode::NOT_FOUND);
  }
  {
    StepSession session(*inference_stub_);
    v1::StepRequest request;
    request.mutable_open()->set_resume_from("RCNTSNP1 garbage");
    session.stream->Write(request);
    EXPECT_EQ(session.Close().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
}

// Uploads `csv` in chunks of 100 bytes with a window of 10 over columns x -> y.
grpc::Status UploadCsv(v1::TrainingService::Stub& stub, const std::string& csv,
                       v1::DatasetInfo* info) {
  grpc::ClientContext context;
  auto writer = stub.UploadDataset(&context, info);
  v1::UploadDatasetRequest header;
  header.mutable_header()->set_name("sensors");
  v1::CsvFormat* format = header.mutable_header()->mutable_csv();
  format->set_has_header(true);
  format->add_feature_columns("x");
  format->add_target_columns("y");
  format->mutable_window()->set_window(10);
  writer->Write(header);
  for (size_t offset = 0; offset < csv.size(); offset += 100) {
    v1::UploadDatasetRequest chunk;
    chunk.set_csv_chunk(csv.substr(offset, 100));
    if (!writer->Write(chunk)) break;
  }
  writer->WritesDone();
  return writer->Finish();
}

TEST_F(ServicesTest, UploadsACsvSeriesAndTrainsOnItById) {
  std::string csv = "x,y\n";
  for (int t = 0; t < 200; ++t) {
    csv += std::to_string(std::sin(0.1 * t)) + "," + std::to_string(std::sin(0.1 * t + 0.1)) + "\n";
  }
  v1::DatasetInfo info;
  ASSERT_TRUE(UploadCsv(*training_stub_, csv, &info).ok());
  EXPECT_EQ(info.sequences(), 190);  // windows of 10 over 200 rows, horizon 1
  EXPECT_EQ(info.input_size(), 1);
  EXPECT_EQ(info.kind(), v1::TARGET_KIND_SEQUENCE_VALUES);
  v1::DatasetInfo again;
  ASSERT_TRUE(UploadCsv(*training_stub_, csv, &again).ok());
  EXPECT_EQ(again.id(), info.id());  // same content, same id

  v1::TrainRequest request;
  request.set_model_name("sine");
  core::ModelSpec spec;
  spec.cell = core::CellType::kLstm;
  spec.hidden_size = 8;
  spec.head = core::HeadMode::kLastStep;
  *request.mutable_spec() = core::ModelSpecToProto(spec);
  request.mutable_data()->set_dataset_id(info.id());
  request.mutable_options()->set_max_epochs(2);
  grpc::ClientContext train_context;
  v1::TrainResponse submitted;
  ASSERT_TRUE(training_stub_->Train(&train_context, request, &submitted).ok());
  int64_t seen = 0;
  v1::Job job;
  for (int i = 0;
       i < 100 && job.state() != v1::JOB_STATE_SUCCEEDED && job.state() != v1::JOB_STATE_FAILED;
       ++i) {
    job = *jobs_->WaitForChange(submitted.job_id(), &seen, absl::Milliseconds(200));
  }
  EXPECT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED) << job.error();

  request.mutable_data()->set_dataset_id("ds-0000000000000000");
  grpc::ClientContext missing_context;
  EXPECT_EQ(training_stub_->Train(&missing_context, request, &submitted).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(ServicesTest, UploadErrorsNameTheLineAndTheLimit) {
  v1::DatasetInfo info;
  const grpc::Status bad = UploadCsv(*training_stub_, "x,y\n1,2\n3,abc\n", &info);
  EXPECT_EQ(bad.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(bad.error_message().find("line 3"), std::string::npos) << bad.error_message();
  std::string huge = "x,y\n";
  while (huge.size() < kMaxUploadBytes + 1000) huge += "1.000000,2.000000\n";
  EXPECT_EQ(UploadCsv(*training_stub_, huge, &info).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
}

TEST_F(ServicesTest, AnIdleStreamIsEndedAfterTheTtlAndCounted) {
  RegisterGru("tagger");
  StepSession session(*inference_stub_);
  v1::OpenSession open;
  open.mutable_model()->set_name("tagger");
  session.Open(open);
  EXPECT_EQ(session.Steps(Ramp(2, 0.1f), 2).size(), 3u);  // active: not evicted
  absl::SleepFor(absl::Seconds(1));                       // silent for 2.5 TTLs
  v1::StepResponse response;
  EXPECT_FALSE(session.stream->Read(&response));
  const grpc::Status ended = session.stream->Finish();
  EXPECT_EQ(ended.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_NE(ended.error_message().find("--stream_idle_ttl_seconds"), std::string::npos);
  EXPECT_EQ(inference_->idle_evictions(), 1);
  EXPECT_EQ(inference_->open_streams(), 0);
}

// Waits up to a second for the service to hold the state of `streams` streams (none by default).
bool AllStreamsFreed(InferenceServiceImpl& inference, int64_t streams = 0) {
  const absl::Time deadline = absl::Now() + absl::Seconds(1);
  while (inference.open_streams() != streams && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  return inference.open_streams() == streams;
}

TEST_F(ServicesTest, AStreamPastItsDeadlineEndsWithDeadlineExceededAndIsFreed) {
  RegisterGru("tagger");
  // Shorter than the idle TTL (400 ms), so the deadline, not the janitor, ends the stream.
  StepSession session(*inference_stub_,
                      std::chrono::system_clock::now() + std::chrono::milliseconds(250));
  v1::OpenSession open;
  open.mutable_model()->set_name("tagger");
  session.Open(open);
  EXPECT_EQ(session.Steps(Ramp(4, 0.1f), 2).size(), 6u);
  EXPECT_EQ(inference_->open_streams(), 1);
  v1::StepResponse response;
  EXPECT_FALSE(session.stream->Read(&response));  // returns when the deadline passes
  EXPECT_EQ(session.stream->Finish().error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_TRUE(AllStreamsFreed(*inference_));
  EXPECT_EQ(inference_->idle_evictions(), 0);
}

TEST_F(ServicesTest, ACancelledStreamIsFreedAtOnce) {
  RegisterGru("tagger");
  StepSession session(*inference_stub_);
  v1::OpenSession open;
  open.mutable_model()->set_name("tagger");
  session.Open(open);
  EXPECT_EQ(session.Steps(Ramp(2, 0.1f), 2).size(), 3u);
  session.context.TryCancel();
  EXPECT_EQ(session.stream->Finish().error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_TRUE(AllStreamsFreed(*inference_));
}

TEST_F(ServicesTest, DrainingEndsOpenStreamsWithUnavailableAndRefusesNewOnes) {
  RegisterGru("tagger");
  StepSession session(*inference_stub_);
  v1::OpenSession open;
  open.mutable_model()->set_name("tagger");
  session.Open(open);
  const absl::Time start = absl::Now();
  std::thread drain([&] { inference_->DrainStreams(absl::Milliseconds(200)); });
  absl::SleepFor(absl::Milliseconds(50));
  // During the grace period the open stream is still served...
  EXPECT_EQ(session.Steps(Ramp(2, 0.1f), 2).size(), 3u);
  // ... and a new one is refused.
  StepSession late(*inference_stub_);
  v1::StepRequest late_open;
  *late_open.mutable_open() = open;
  late.stream->Write(late_open);
  v1::StepResponse response;
  EXPECT_FALSE(late.stream->Read(&response));
  EXPECT_EQ(late.stream->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
  // After it the stream ends with UNAVAILABLE, and DrainStreams returns once it is freed.
  EXPECT_FALSE(session.stream->Read(&response));
  EXPECT_EQ(session.stream->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
  drain.join();
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(200));
  EXPECT_EQ(inference_->open_streams(), 0);
}

// Every thread of this process by the name the kernel shows (top -H, ps -L, perf).
std::multiset<std::string> ThreadNames() {
  std::multiset<std::string> names;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream comm(task.path() / "comm");
    std::string name;
    if (std::getline(comm, name)) names.insert(name);
  }
  return names;
}

TEST_F(ServicesTest, ServerThreadsAreNamedForOperators) {
  // Each thread names itself as it starts: give the newest one (the step thread) a moment.
  std::multiset<std::string> names = ThreadNames();
  for (int tries = 0; tries < 500 && names.count("rcnt-step-io-0") == 0; ++tries) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    names = ThreadNames();
  }
  EXPECT_EQ(names.count("rcnt-step-io-0"), 1u);  // StepPredict's completion queue
  EXPECT_EQ(names.count("rcnt-janitor"), 1u);    // idle stream eviction
  EXPECT_EQ(names.count("rcnt-train-0"), 1u);    // the one training job worker
}

// An inference service of its own (other limits than the fixture's) on a loopback port.
struct ServedInference {
  explicit ServedInference(InferenceServiceImpl* service) : service(service) {
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    service->AttachTo(builder);
    server = builder.BuildAndStart();
    service->StartStepThreads();
    stub = v1::InferenceService::NewStub(grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                                             grpc::InsecureChannelCredentials()));
  }
  ~ServedInference() {
    server->Shutdown();
    service->StopStepThreads();
  }
  InferenceServiceImpl* service;
  std::unique_ptr<grpc::Server> server;
  std::unique_ptr<v1::InferenceService::Stub> stub;
};

TEST_F(ServicesTest, Bfloat16InferenceAnswersLikeTheBfloat16EngineAndNearFloat32) {
  if (!core::CheckPrecisionSupported(core::Precision::kBfloat16).ok()) {
    GTEST_SKIP() << "this CPU has no bfloat16 support";
  }
  core::Model model;
  model.spec.cell = core::CellType::kLstm;
  model.spec.input_size = 2;
  model.spec.hidden_size = 32;
  model.spec.num_layers = 2;
  model.spec.output_size = 3;
  model.parameters = core::InitParameters(model.spec, 5);
  ASSERT_TRUE(registry_->Register("wide", model).ok());
  InferenceLimits limits;
  limits.precision = core::Precision::kBfloat16;  // Predict's and StepPredict's
  InferenceServiceImpl bfloat16(registry_.get(), limits);
  ServedInference served(&bfloat16);
  const std::vector<float> inputs = Ramp(40, 0.1f);  // 20 steps of 2 inputs

  // StepPredict: bit for bit the bfloat16 engine's steps, within bfloat16's rounding of float32.
  StepSession stream(*served.stub);
  v1::OpenSession open;
  open.mutable_model()->set_name("wide");
  stream.Open(open);
  const std::vector<float> stepped = stream.Steps(inputs, 2);
  EXPECT_TRUE(stream.Close().ok());
  EXPECT_EQ(stepped, SoloSteps(model, inputs, core::Precision::kBfloat16));
  const std::vector<float> float32 = SoloSteps(model, inputs);
  EXPECT_NE(stepped, float32) << "StepPredict did not compute in bfloat16";
  for (size_t i = 0; i < float32.size(); ++i) EXPECT_NEAR(stepped[i], float32[i], 2e-2) << i;

  // Predict: the bfloat16 engine's forward pass.
  v1::PredictRequest request;
  request.mutable_model()->set_name("wide");
  v1::InputSequence* sequence = request.add_sequences();
  sequence->set_steps(20);
  for (const float value : inputs) sequence->add_values(value);
  grpc::ClientContext context;
  v1::PredictResponse response;
  ASSERT_TRUE(served.stub->Predict(&context, request, &response).ok());
  core::NetworkOptions options;
  options.precision = core::Precision::kBfloat16;
  auto network = core::Network::Create(model.spec, model.parameters, options);
  core::Tensor tensor({1, 20, 2}, inputs);
  core::ForwardResult expected;
  ASSERT_TRUE((*network)->Forward(tensor, nullptr, &expected).ok());
  ASSERT_EQ(response.outputs(0).values_size(), 60);
  bool differs_from_float32 = false;
  for (int v = 0; v < 60; ++v) {
    EXPECT_EQ(response.outputs(0).values(v), expected.outputs.values[v]) << v;
    EXPECT_NEAR(response.outputs(0).values(v), float32[v], 2e-2) << v;
    differs_from_float32 |= response.outputs(0).values(v) != float32[v];
  }
  EXPECT_TRUE(differs_from_float32) << "Predict did not compute in bfloat16";
}

TEST_F(ServicesTest, StreamsOverTheLimitAreResourceExhausted) {
  RegisterGru("tagger");
  InferenceLimits limits;
  limits.max_streams = 2;
  InferenceServiceImpl limited(registry_.get(), limits);
  ServedInference served(&limited);
  v1::InferenceService::Stub* stub = served.stub.get();
  v1::OpenSession open;
  open.mutable_model()->set_name("tagger");
  {
    // Each stream starts only after the one before is admitted (its Open returned): the server
    // admits streams in the order their calls arrive, not the order they are written to.
    StepSession first(*stub);
    first.Open(open);
    StepSession second(*stub);
    second.Open(open);
    StepSession third(*stub);
    v1::StepRequest request;
    *request.mutable_open() = open;
    third.stream->Write(request);
    v1::StepResponse response;
    EXPECT_FALSE(third.stream->Read(&response));
    const grpc::Status refused = third.stream->Finish();
    EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
    EXPECT_NE(refused.error_message().find("--max_streams=2"), std::string::npos);
    EXPECT_TRUE(first.Close().ok());
    EXPECT_TRUE(AllStreamsFreed(limited, 1));
    StepSession fourth(*stub);  // a slot is free again
    EXPECT_EQ(fourth.Open(open).model_name(), "tagger");
    EXPECT_TRUE(fourth.Close().ok());
    EXPECT_TRUE(second.Close().ok());
  }
}

TEST_F(ServicesTest, StepThreadsServeAndStopWithAndWithoutBusyPolling) {
  // The step threads poll their queues for --step_busy_poll_us after each event instead of
  // sleeping. Off, on, and with a 30 s window (so the thread is always polling): the answers are
  // the engine's, and the shutdown still ends the poll at once instead of after the window.
  const core::Model model = RegisterGru("tagger");
  const std::vector<float> inputs = Ramp(40, 0.1f);
  const std::vector<float> expected = SoloSteps(model, inputs);
  v1::OpenSession open;
  open.mutable_model()->set_name("tagger");
  for (const absl::Duration poll :
       {absl::ZeroDuration(), absl::Microseconds(100), absl::Seconds(30)}) {
    InferenceLimits limits;
    limits.step_busy_poll = poll;
    InferenceServiceImpl service(registry_.get(), limits);
    absl::Time stopping;
    {
      ServedInference served(&service);
      StepSession session(*served.stub);
      session.Open(open);
      EXPECT_EQ(session.Steps(inputs, 2), expected) << poll;
      EXPECT_TRUE(session.Close().ok()) << poll;
      stopping = absl::Now();
    }
    EXPECT_LT(absl::Now() - stopping, absl::Seconds(10)) << "shutdown waited for the poll " << poll;
  }
}

TEST_F(ServicesTest, OneClientCannotTakeEveryStreamSlot) {
  RegisterGru("tagger");
  InferenceLimits limits;
  limits.max_streams = 10;
  limits.max_streams_per_client = 2;
  InferenceServiceImpl limited(registry_.get(), limits);
  const std::string token_a = "predict-token-aaaaaaaa", token_b = "predict-token-bbbbbbbb";
  absl::StatusOr<std::unique_ptr<TokenAuthenticator>> auth =
      TokenAuthenticator::FromText(absl::StrCat("predict ", token_a, "\npredict ", token_b, "\n"));
  ASSERT_TRUE(auth.ok()) << auth.status();
  limited.set_authenticator(auth->get());
  // Both clients share one connection: the limit follows the token, not the connection.
  ServedInference served(&limited);
  v1::InferenceService::Stub* stub = served.stub.get();
  v1::OpenSession open;
  open.mutable_model()->set_name("tagger");
  const auto refused = [&](StepSession& session) {
    v1::StepRequest request;
    *request.mutable_open() = open;
    session.stream->Write(request);
    v1::StepResponse response;
    EXPECT_FALSE(session.stream->Read(&response));
    return session.stream->Finish();
  };
  {
    // Each stream starts only after the one before is admitted (see StreamsOverTheLimit...).
    StepSession a1(*stub, token_a);
    EXPECT_EQ(a1.Open(open).model_name(), "tagger");
    StepSession a2(*stub, token_a);
    EXPECT_EQ(a2.Open(open).model_name(), "tagger");
    StepSession a3(*stub, token_a);
    const grpc::Status status = refused(a3);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
    EXPECT_NE(status.error_message().find("--max_streams_per_client=2"), std::string::npos)
        << status.error_message();
    // Another client still gets its own slots.
    StepSession b1(*stub, token_b);
    EXPECT_EQ(b1.Open(open).model_name(), "tagger");
    StepSession b2(*stub, token_b);
    EXPECT_EQ(b2.Open(open).model_name(), "tagger");
    StepSession b3(*stub, token_b);
    EXPECT_EQ(refused(b3).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
    // A closed stream gives its client the slot back.
    EXPECT_TRUE(a1.Close().ok());
    EXPECT_TRUE(AllStreamsFreed(limited, 3));
    StepSession a4(*stub, token_a);
    EXPECT_EQ(a4.Open(open).model_name(), "tagger");
    for (StepSession* session : {&a2, &a4, &b1, &b2}) EXPECT_TRUE(session->Close().ok());
  }
  // Without tokens a client is its address: one more stream from 127.0.0.1 is refused.
  InferenceServiceImpl by_address(registry_.get(), limits);
  ServedInference address_served(&by_address);
  v1::InferenceService::Stub* address_stub = address_served.stub.get();
  {
    StepSession first(*address_stub);
    first.Open(open);
    StepSession second(*address_stub);
    second.Open(open);
    StepSession third(*address_stub);
    const grpc::Status status = refused(third);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
    EXPECT_NE(status.error_message().find("ipv4:127.0.0.1,"), std::string::npos)
        << status.error_message();
    EXPECT_TRUE(first.Close().ok());
    EXPECT_TRUE(second.Close().ok());
  }
}

// The soak test found this leak: every deleted version kept its pooled networks (a copy of the
// weights and cached primitives each) for the life of the process.
TEST_F(ServicesTest, ADeletedVersionsPooledNetworksAreFreed) {
  RegisterGru("old");
  RegisterGru("other");
  const auto predict_once = [&](const std::string& model) {
    v1::PredictRequest request;
    request.mutable_model()->set_name(model);
    v1::InputSequence* sequence = request.add_sequences();
    sequence->set_steps(2);
    sequence->mutable_values()->Resize(4, 0.5f);
    grpc::ClientContext context;
    v1::PredictResponse response;
    return inference_stub_->Predict(&context, request, &response);
  };
  ASSERT_TRUE(predict_once("old").ok());
  ASSERT_TRUE(predict_once("other").ok());
  EXPECT_EQ(inference_->idle_networks(), 2);
  ASSERT_TRUE(registry_->DeleteVersion("old", 1).ok());
  ASSERT_TRUE(predict_once("other").ok());  // any later call drops the deleted version's pool
  EXPECT_EQ(inference_->idle_networks(), 1);
}

TEST_F(ServicesTest, ConcurrentStreamsEachGetTheirSoloResults) {
  const core::Model model = RegisterGru("tagger");
  constexpr int kStreams = 8;
  std::vector<std::vector<float>> got(kStreams);
  std::vector<std::thread> threads;
  for (int s = 0; s < kStreams; ++s) {
    threads.emplace_back([&, s] {
      StepSession session(*inference_stub_);
      v1::OpenSession open;
      open.mutable_model()->set_name("tagger");
      session.Open(open);
      got[s] = session.Steps(Ramp(100, 0.05f * (s + 1)), 2);
      EXPECT_TRUE(session.Close().ok());
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int s = 0; s < kStreams; ++s) {
    const std::vector<float> expected = SoloSteps(model, Ramp(100, 0.05f * (s + 1)));
    ASSERT_EQ(got[s].size(), expected.size());
    // Batched with other streams, a GEMM may block differently: equal to float rounding.
    for (size_t i = 0; i < expected.size(); ++i) {
      EXPECT_NEAR(got[s][i], expected[i], 1e-5f * (1.0f + std::abs(expected[i]))) << s << " " << i;
    }
  }
}

}  // namespace
}  // namespace recurrent::server
