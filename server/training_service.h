// recurrent.v1.TrainingService: Train submits to the job manager after validating what can be
// checked at once (so a bad request fails with INVALID_ARGUMENT, not as a failed job), the rest
// reads job records. UploadDataset stores a data set (CSV chunks windowed into examples, or
// sequences) in the data set store, bounded by max_upload_bytes.
#ifndef RECURRENT_SERVER_TRAINING_SERVICE_H_
#define RECURRENT_SERVER_TRAINING_SERVICE_H_

#include "absl/time/time.h"
#include "recurrent/v1/service.grpc.pb.h"
#include "server/auth.h"
#include "server/dataset_store.h"
#include "server/job_manager.h"
#include "server/train_request.h"

namespace recurrent::server {

class TrainingServiceImpl final : public v1::TrainingService::Service {
 public:
  // Every call checks `auth` (a TokenAuthenticator, server/auth.h); null: no authentication.
  void set_authenticator(const TokenAuthenticator* auth) { auth_ = auth; }
  // `datasets` may be null: then UploadDataset and dataset_id sources are UNIMPLEMENTED.
  TrainingServiceImpl(JobManager* jobs, TrainLimits limits, DatasetStore* datasets = nullptr,
                      int64_t max_upload_bytes = int64_t{1} << 30)
      : jobs_(jobs), limits_(limits), datasets_(datasets), max_upload_bytes_(max_upload_bytes) {}

  grpc::Status Train(grpc::ServerContext* context, const v1::TrainRequest* request,
                     v1::TrainResponse* response) override;
  // Streams a snapshot at every change (at most one per `kWatchInterval`) until the job ends or
  // the client goes away.
  grpc::Status WatchJob(grpc::ServerContext* context, const v1::WatchJobRequest* request,
                        grpc::ServerWriter<v1::JobEvent>* writer) override;
  grpc::Status GetJob(grpc::ServerContext* context, const v1::GetJobRequest* request,
                      v1::Job* response) override;
  grpc::Status ListJobs(grpc::ServerContext* context, const v1::ListJobsRequest* request,
                        v1::ListJobsResponse* response) override;
  grpc::Status CancelJob(grpc::ServerContext* context, const v1::CancelJobRequest* request,
                         v1::Job* response) override;
  grpc::Status UploadDataset(grpc::ServerContext* context,
                             grpc::ServerReader<v1::UploadDatasetRequest>* reader,
                             v1::DatasetInfo* response) override;

 private:
  static constexpr absl::Duration kWatchInterval = absl::Milliseconds(200);
  JobManager* const jobs_;
  const TrainLimits limits_;
  DatasetStore* const datasets_;
  const int64_t max_upload_bytes_;
  const TokenAuthenticator* auth_ = nullptr;
};

}  // namespace recurrent::server

#endif  // RECURRENT_SERVER_TRAINING_SERVICE_H_
