// Stand-ins for the services a replica's --role leaves out, so that a request sent to the wrong
// replica gets FAILED_PRECONDITION saying where to send it, rather than UNIMPLEMENTED.
//
//   --role=serving:  inference and models; training requests are refused (no job queue runs).
//   --role=training: training and models; inference requests are refused (the cores train).
#ifndef RECURRENT_SERVER_ROLE_GATE_H_
#define RECURRENT_SERVER_ROLE_GATE_H_

#include "recurrent/v1/service.grpc.pb.h"

namespace recurrent::server {

class RefusedTrainingService final : public v1::TrainingService::Service {
 public:
  grpc::Status Train(grpc::ServerContext*, const v1::TrainRequest*, v1::TrainResponse*) override;
  grpc::Status WatchJob(grpc::ServerContext*, const v1::WatchJobRequest*,
                        grpc::ServerWriter<v1::JobEvent>*) override;
  grpc::Status GetJob(grpc::ServerContext*, const v1::GetJobRequest*, v1::Job*) override;
  grpc::Status ListJobs(grpc::ServerContext*, const v1::ListJobsRequest*,
                        v1::ListJobsResponse*) override;
  grpc::Status CancelJob(grpc::ServerContext*, const v1::CancelJobRequest*, v1::Job*) override;
  grpc::Status UploadDataset(grpc::ServerContext*, grpc::ServerReader<v1::UploadDatasetRequest>*,
                             v1::DatasetInfo*) override;
};

class RefusedInferenceService final : public v1::InferenceService::Service {
 public:
  grpc::Status Predict(grpc::ServerContext*, const v1::PredictRequest*,
                       v1::PredictResponse*) override;
  grpc::Status StepPredict(grpc::ServerContext*,
                           grpc::ServerReaderWriter<v1::StepResponse, v1::StepRequest>*) override;
};

}  // namespace recurrent::server

#endif  // RECURRENT_SERVER_ROLE_GATE_H_
