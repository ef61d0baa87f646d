#include "server/training_service.h"

#include "absl/strings/str_cat.h"
#include "core/spec_proto.h"
#include "server/grpc_status.h"
#include "server/model_registry.h"

namespace recurrent::server {
namespace {

bool IsTerminal(v1::JobState state) {
  return state == v1::JOB_STATE_SUCCEEDED || state == v1::JOB_STATE_FAILED ||
         state == v1::JOB_STATE_CANCELLED;
}

grpc::Status Invalid(absl::string_view message) {
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, std::string(message));
}

}  // namespace

grpc::Status TrainingServiceImpl::Train(grpc::ServerContext*, const v1::TrainRequest* request,
                                        v1::TrainResponse* response) {
  if (absl::Status status = ValidateModelName(request->model_name(), 128); !status.ok()) {
    return Invalid(absl::StrCat("model_name: ", status.message()));
  }
  if (!request->has_start_from()) {
    absl::StatusOr<core::ModelSpec> spec = core::ModelSpecFromProto(request->spec(), limits_.spec);
    if (!spec.ok()) return Invalid(absl::StrCat("spec: ", spec.status().message()));
  }
  if (absl::StatusOr<core::TrainerOptions> options =
          TrainerOptionsFromProto(request->options(), limits_);
      !options.ok()) {
    return ToGrpcStatus(options.status());
  }
  if (request->data().source_case() == v1::DataSource::SOURCE_NOT_SET) {
    return Invalid("data is empty: give a dataset_id, inline sequences or a generator");
  }
  if (request->data().has_dataset_id()) {
    return grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                        "uploaded data sets are not supported yet; use inline data or a generator");
  }
  absl::StatusOr<std::string> id = jobs_->Submit(*request);
  if (!id.ok()) return ToGrpcStatus(id.status());
  response->set_job_id(*id);
  return grpc::Status::OK;
}

grpc::Status TrainingServiceImpl::WatchJob(grpc::ServerContext* context,
                                           const v1::WatchJobRequest* request,
                                           grpc::ServerWriter<v1::JobEvent>* writer) {
  int64_t seen = 0;
  while (!context->IsCancelled()) {
    absl::StatusOr<v1::Job> job = jobs_->WaitForChange(request->job_id(), &seen, absl::Seconds(1));
    if (!job.ok()) return ToGrpcStatus(job.status());
    v1::JobEvent event;
    *event.mutable_job() = *job;
    if (!writer->Write(event)) return grpc::Status(grpc::StatusCode::CANCELLED, "client gone");
    if (IsTerminal(job->state())) return grpc::Status::OK;
    absl::SleepFor(kWatchInterval);  // at most a few events per second
  }
  return grpc::Status(grpc::StatusCode::CANCELLED, "client cancelled the watch");
}

grpc::Status TrainingServiceImpl::GetJob(grpc::ServerContext*, const v1::GetJobRequest* request,
                                         v1::Job* response) {
  absl::StatusOr<v1::Job> job = jobs_->Get(request->job_id());
  if (!job.ok()) return ToGrpcStatus(job.status());
  *response = *std::move(job);
  return grpc::Status::OK;
}

grpc::Status TrainingServiceImpl::ListJobs(grpc::ServerContext*, const v1::ListJobsRequest* request,
                                           v1::ListJobsResponse* response) {
  for (v1::Job& job : jobs_->List(request->state(), request->model_name(), request->limit())) {
    *response->add_jobs() = std::move(job);
  }
  return grpc::Status::OK;
}

grpc::Status TrainingServiceImpl::CancelJob(grpc::ServerContext*,
                                            const v1::CancelJobRequest* request,
                                            v1::Job* response) {
  absl::StatusOr<v1::Job> job = jobs_->Cancel(request->job_id());
  if (!job.ok()) return ToGrpcStatus(job.status());
  *response = *std::move(job);
  return grpc::Status::OK;
}

grpc::Status TrainingServiceImpl::UploadDataset(grpc::ServerContext*,
                                                grpc::ServerReader<v1::UploadDatasetRequest>*,
                                                v1::DatasetInfo*) {
  return grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                      "UploadDataset is not implemented yet; use inline data or a generator");
}

}  // namespace recurrent::server
