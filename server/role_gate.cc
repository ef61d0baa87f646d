#include "server/role_gate.h"

namespace recurrent::server {
namespace {

grpc::Status NotTraining() {
  return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                      "this replica only serves (--role=serving): send training requests to a "
                      "replica with --role=training or --role=all");
}

grpc::Status NotServing() {
  return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                      "this replica only trains (--role=training): send inference requests to a "
                      "replica with --role=serving or --role=all");
}

}  // namespace

grpc::Status RefusedTrainingService::Train(grpc::ServerContext*, const v1::TrainRequest*,
                                           v1::TrainResponse*) {
  return NotTraining();
}
grpc::Status RefusedTrainingService::WatchJob(grpc::ServerContext*, const v1::WatchJobRequest*,
                                              grpc::ServerWriter<v1::JobEvent>*) {
  return NotTraining();
}
grpc::Status RefusedTrainingService::GetJob(grpc::ServerContext*, const v1::GetJobRequest*,
                                            v1::Job*) {
  return NotTraining();
}
grpc::Status RefusedTrainingService::ListJobs(grpc::ServerContext*, const v1::ListJobsRequest*,
                                              v1::ListJobsResponse*) {
  return NotTraining();
}
grpc::Status RefusedTrainingService::CancelJob(grpc::ServerContext*, const v1::CancelJobRequest*,
                                               v1::Job*) {
  return NotTraining();
}
grpc::Status RefusedTrainingService::UploadDataset(grpc::ServerContext*,
                                                   grpc::ServerReader<v1::UploadDatasetRequest>*,
                                                   v1::DatasetInfo*) {
  return NotTraining();
}

grpc::Status RefusedInferenceService::Predict(grpc::ServerContext*, const v1::PredictRequest*,
                                              v1::PredictResponse*) {
  return NotServing();
}
grpc::Status RefusedInferenceService::StepPredict(
    grpc::ServerContext*, grpc::ServerReaderWriter<v1::StepResponse, v1::StepRequest>*) {
  return NotServing();
}

}  // namespace recurrent::server
