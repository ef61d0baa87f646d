#include "server/training_service.h"

#include "absl/strings/str_cat.h"
#include "core/csv.h"
#include "core/spec_proto.h"
#include "core/windowing.h"
#include "server/grpc_status.h"
#include "server/model_registry.h"
#include "server/proto_conversions.h"

namespace recurrent::server {
namespace {

grpc::Status Invalid(absl::string_view message) {
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, std::string(message));
}

}  // namespace

grpc::Status TrainingServiceImpl::Train(grpc::ServerContext* context,
                                        const v1::TrainRequest* request,
                                        v1::TrainResponse* response) {
  if (grpc::Status denied = Authorize(auth_, *context, Role::kAdmin); !denied.ok()) return denied;
  if (absl::Status status = ValidateModelName(request->model_name(), 128); !status.ok()) {
    return Invalid(absl::StrCat("model_name: ", status.message()));
  }
  if (!request->has_start_from()) {
    absl::StatusOr<core::ModelSpec> spec =
        core::ModelSpecFromProto(SpecWithPlaceholders(request->spec()), limits_.spec);
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
  for (const v1::DataSource* source : {&request->data(), &request->validation()}) {
    if (!source->has_dataset_id()) continue;
    if (datasets_ == nullptr) {
      return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "this server stores no data sets");
    }
    if (!datasets_->Contains(source->dataset_id())) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND,
                          absl::StrCat("no data set ", source->dataset_id()));
    }
  }
  absl::StatusOr<std::string> id = jobs_->Submit(*request);
  if (!id.ok()) return ToGrpcStatus(id.status());
  response->set_job_id(*id);
  return grpc::Status::OK;
}

grpc::Status TrainingServiceImpl::WatchJob(grpc::ServerContext* context,
                                           const v1::WatchJobRequest* request,
                                           grpc::ServerWriter<v1::JobEvent>* writer) {
  if (grpc::Status denied = Authorize(auth_, *context, Role::kPredict); !denied.ok()) return denied;
  int64_t seen = 0;
  while (!context->IsCancelled()) {
    absl::StatusOr<v1::Job> job = jobs_->WaitForChange(request->job_id(), &seen, absl::Seconds(1));
    if (!job.ok()) return ToGrpcStatus(job.status());
    v1::JobEvent event;
    *event.mutable_job() = *job;
    if (!writer->Write(event)) return grpc::Status(grpc::StatusCode::CANCELLED, "client gone");
    if (IsTerminalJobState(job->state())) return grpc::Status::OK;
    absl::SleepFor(kWatchInterval);  // at most a few events per second
  }
  return grpc::Status(grpc::StatusCode::CANCELLED, "client cancelled the watch");
}

grpc::Status TrainingServiceImpl::GetJob(grpc::ServerContext* context,
                                         const v1::GetJobRequest* request, v1::Job* response) {
  if (grpc::Status denied = Authorize(auth_, *context, Role::kPredict); !denied.ok()) return denied;
  absl::StatusOr<v1::Job> job = jobs_->Get(request->job_id());
  if (!job.ok()) return ToGrpcStatus(job.status());
  *response = *std::move(job);
  return grpc::Status::OK;
}

grpc::Status TrainingServiceImpl::ListJobs(grpc::ServerContext* context,
                                           const v1::ListJobsRequest* request,
                                           v1::ListJobsResponse* response) {
  if (grpc::Status denied = Authorize(auth_, *context, Role::kPredict); !denied.ok()) return denied;
  for (v1::Job& job : jobs_->List(request->state(), request->model_name(), request->limit())) {
    *response->add_jobs() = std::move(job);
  }
  return grpc::Status::OK;
}

grpc::Status TrainingServiceImpl::CancelJob(grpc::ServerContext* context,
                                            const v1::CancelJobRequest* request,
                                            v1::Job* response) {
  if (grpc::Status denied = Authorize(auth_, *context, Role::kAdmin); !denied.ok()) return denied;
  absl::StatusOr<v1::Job> job = jobs_->Cancel(request->job_id());
  if (!job.ok()) return ToGrpcStatus(job.status());
  *response = *std::move(job);
  return grpc::Status::OK;
}

grpc::Status TrainingServiceImpl::UploadDataset(
    grpc::ServerContext* context, grpc::ServerReader<v1::UploadDatasetRequest>* reader,
    v1::DatasetInfo* response) {
  if (grpc::Status denied = Authorize(auth_, *context, Role::kAdmin); !denied.ok()) return denied;
  if (datasets_ == nullptr) {
    return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "this server stores no data sets");
  }
  v1::UploadDatasetRequest message;
  if (!reader->Read(&message) || !message.has_header()) {
    return Invalid("the first UploadDataset message must be the header");
  }
  const v1::UploadDatasetHeader header = message.header();
  std::string csv;
  v1::DataSource sequences;
  if (header.has_sequences()) *sequences.mutable_inline_() = header.sequences();
  int64_t received = 0;
  while (reader->Read(&message)) {
    if (context->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
    received += static_cast<int64_t>(message.ByteSizeLong());
    if (received > max_upload_bytes_) {
      return grpc::Status(
          grpc::StatusCode::RESOURCE_EXHAUSTED,
          absl::StrCat("the upload is over --max_upload_bytes=", max_upload_bytes_));
    }
    switch (message.part_case()) {
      case v1::UploadDatasetRequest::kCsvChunk:
        if (!header.has_csv()) return Invalid("csv_chunk in an upload whose header is not csv");
        csv += message.csv_chunk();
        break;
      case v1::UploadDatasetRequest::kSequence:
        if (!header.has_sequences()) {
          return Invalid("sequence in an upload whose header is not sequences");
        }
        *sequences.mutable_inline_()->add_sequences() = message.sequence();
        break;
      default:
        return Invalid("after the header, send only csv_chunk or sequence messages");
    }
  }
  absl::StatusOr<core::Dataset> data;
  if (header.has_csv()) {
    const v1::CsvFormat& format = header.csv();
    core::CsvOptions options;
    options.has_header = format.has_header();
    if (!format.delimiter().empty()) {
      if (format.delimiter().size() != 1) return Invalid("csv.delimiter must be one character");
      options.delimiter = format.delimiter()[0];
    }
    options.max_bytes = max_upload_bytes_;
    absl::StatusOr<core::CsvTable> table = core::ParseCsv(csv, options);
    if (!table.ok()) return ToGrpcStatus(table.status());
    if (format.window().window() < 1) {
      return Invalid("csv uploads need csv.window.window >= 1 (the series becomes windows)");
    }
    core::WindowOptions window;
    window.window = format.window().window();
    window.horizon = format.window().horizon() == 0 ? 1 : format.window().horizon();
    window.stride = format.window().stride() == 0 ? 1 : format.window().stride();
    window.all_horizon_steps = format.window().all_horizon_steps();
    window.per_step_targets = format.window().per_step_targets();
    window.feature_columns.assign(format.feature_columns().begin(), format.feature_columns().end());
    window.target_columns.assign(format.target_columns().begin(), format.target_columns().end());
    data = core::MakeWindowedDataset(*table, window, limits_.data);
  } else if (header.has_sequences()) {
    data = DatasetFromSource(sequences, limits_);
  } else {
    return Invalid("the header names no format (csv or sequences)");
  }
  if (!data.ok()) return ToGrpcStatus(data.status());
  absl::StatusOr<v1::DatasetInfo> info = datasets_->Put(header.name(), *data);
  if (!info.ok()) return ToGrpcStatus(info.status());
  *response = *std::move(info);
  return grpc::Status::OK;
}

}  // namespace recurrent::server
