#include "server/model_service.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "core/artifact.h"
#include "core/spec_proto.h"
#include "server/grpc_status.h"
#include "server/proto_conversions.h"

namespace recurrent::server {
namespace {

void VersionToProto(const std::string& name, const VersionInfo& info, v1::ModelVersionInfo* out) {
  out->set_name(name);
  out->set_version(info.version);
  *out->mutable_spec() = core::ModelSpecToProto(info.spec);
  *out->mutable_created() = ToTimestamp(info.created);
  out->set_size_bytes(info.size_bytes);
  *out->mutable_training() = info.training;
  for (const auto& [key, value] : info.labels) (*out->mutable_labels())[key] = value;
  for (const std::string& alias : info.aliases) out->add_aliases(alias);
}

void ModelInfoToProto(const ModelInfo& info, v1::ModelInfo* out) {
  out->set_name(info.name);
  for (const VersionInfo& version : info.versions) {
    VersionToProto(info.name, version, out->add_versions());
  }
  for (const auto& [alias, version] : info.aliases) (*out->mutable_aliases())[alias] = version;
}

grpc::Status AnswerWithModel(ModelRegistry& registry, const std::string& name,
                             v1::ModelInfo* response) {
  absl::StatusOr<ModelInfo> info = registry.GetModel(name);
  if (!info.ok()) return ToGrpcStatus(info.status());
  ModelInfoToProto(*info, response);
  return grpc::Status::OK;
}

}  // namespace

grpc::Status ModelServiceImpl::ListModels(grpc::ServerContext* context,
                                          const v1::ListModelsRequest*,
                                          v1::ListModelsResponse* response) {
  if (grpc::Status denied = Authorize(auth_, *context, Role::kPredict); !denied.ok()) return denied;
  for (const ModelSummary& summary : registry_->ListModels()) {
    v1::ModelSummary* out = response->add_models();
    out->set_name(summary.name);
    out->set_versions(summary.version_count);
    out->set_latest_version(summary.latest_version);
    for (const auto& [alias, version] : summary.aliases) (*out->mutable_aliases())[alias] = version;
  }
  return grpc::Status::OK;
}

grpc::Status ModelServiceImpl::GetModel(grpc::ServerContext* context,
                                        const v1::GetModelRequest* request,
                                        v1::ModelInfo* response) {
  if (grpc::Status denied = Authorize(auth_, *context, Role::kPredict); !denied.ok()) return denied;
  return AnswerWithModel(*registry_, request->name(), response);
}

grpc::Status ModelServiceImpl::SetAlias(grpc::ServerContext* context,
                                        const v1::SetAliasRequest* request,
                                        v1::ModelInfo* response) {
  if (grpc::Status denied = Authorize(auth_, *context, Role::kAdmin); !denied.ok()) return denied;
  if (absl::Status status =
          registry_->SetAlias(request->name(), request->alias(), request->version());
      !status.ok()) {
    return ToGrpcStatus(status);
  }
  return AnswerWithModel(*registry_, request->name(), response);
}

grpc::Status ModelServiceImpl::DeleteModelVersion(grpc::ServerContext* context,
                                                  const v1::DeleteModelVersionRequest* request,
                                                  v1::ModelInfo* response) {
  if (grpc::Status denied = Authorize(auth_, *context, Role::kAdmin); !denied.ok()) return denied;
  if (absl::Status status = registry_->DeleteVersion(request->name(), request->version());
      !status.ok()) {
    return ToGrpcStatus(status);
  }
  return AnswerWithModel(*registry_, request->name(), response);
}

grpc::Status ModelServiceImpl::ImportModel(grpc::ServerContext* context,
                                           const v1::ImportModelRequest* request,
                                           v1::ModelVersionInfo* response) {
  if (grpc::Status denied = Authorize(auth_, *context, Role::kAdmin); !denied.ok()) return denied;
  if (static_cast<int64_t>(request->artifact().size()) > options_.max_import_bytes) {
    return grpc::Status(
        grpc::StatusCode::RESOURCE_EXHAUSTED,
        absl::StrCat("artifact is ", request->artifact().size(),
                     " bytes, over --max_import_bytes=", options_.max_import_bytes));
  }
  absl::StatusOr<core::Model> model = core::ParseModel(request->artifact());
  if (!model.ok()) {
    // DataLoss from the parser means the client sent damaged bytes: its argument is wrong.
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("artifact: ", model.status().message()));
  }
  for (const auto& [key, value] : request->labels()) model->labels[key] = value;
  absl::StatusOr<int64_t> version = registry_->Register(request->name(), *model);
  if (!version.ok()) return ToGrpcStatus(version.status());
  absl::StatusOr<ModelInfo> info = registry_->GetModel(request->name());
  if (!info.ok()) return ToGrpcStatus(info.status());
  for (const VersionInfo& entry : info->versions) {
    if (entry.version == *version) VersionToProto(request->name(), entry, response);
  }
  return grpc::Status::OK;
}

grpc::Status ModelServiceImpl::ExportModel(grpc::ServerContext* context,
                                           const v1::ExportModelRequest* request,
                                           v1::ExportModelResponse* response) {
  if (grpc::Status denied = Authorize(auth_, *context, Role::kAdmin); !denied.ok()) return denied;
  absl::StatusOr<std::shared_ptr<const LoadedModel>> loaded =
      registry_->Load(ModelRefFromProto(request->model()));
  if (!loaded.ok()) return ToGrpcStatus(loaded.status());
  absl::StatusOr<std::string> bytes = core::SerializeModel((*loaded)->model);
  if (!bytes.ok()) return ToGrpcStatus(bytes.status());
  response->set_version((*loaded)->version);
  response->set_artifact(*std::move(bytes));
  return grpc::Status::OK;
}

}  // namespace recurrent::server
