// recurrent.v1.ModelService over the model registry (server/model_registry.h): thin handlers that
// translate protobuf to registry calls and statuses back, nothing else.
#ifndef RECURRENT_SERVER_MODEL_SERVICE_H_
#define RECURRENT_SERVER_MODEL_SERVICE_H_

#include <cstdint>

#include "recurrent/v1/service.grpc.pb.h"
#include "server/auth.h"
#include "server/model_registry.h"

namespace recurrent::server {

struct ModelServiceOptions {
  int64_t max_import_bytes = int64_t{256} << 20;  // the artifact in one ImportModel request
};

class ModelServiceImpl final : public v1::ModelService::Service {
 public:
  // Every call checks `auth` (a TokenAuthenticator, server/auth.h); null: no authentication.
  void set_authenticator(const TokenAuthenticator* auth) { auth_ = auth; }
  ModelServiceImpl(ModelRegistry* registry, ModelServiceOptions options)
      : registry_(registry), options_(options) {}

  grpc::Status ListModels(grpc::ServerContext* context, const v1::ListModelsRequest* request,
                          v1::ListModelsResponse* response) override;
  grpc::Status GetModel(grpc::ServerContext* context, const v1::GetModelRequest* request,
                        v1::ModelInfo* response) override;
  grpc::Status SetAlias(grpc::ServerContext* context, const v1::SetAliasRequest* request,
                        v1::ModelInfo* response) override;
  grpc::Status DeleteModelVersion(grpc::ServerContext* context,
                                  const v1::DeleteModelVersionRequest* request,
                                  v1::ModelInfo* response) override;
  grpc::Status ImportModel(grpc::ServerContext* context, const v1::ImportModelRequest* request,
                           v1::ModelVersionInfo* response) override;
  grpc::Status ExportModel(grpc::ServerContext* context, const v1::ExportModelRequest* request,
                           v1::ExportModelResponse* response) override;

 private:
  ModelRegistry* const registry_;
  const ModelServiceOptions options_;
  const TokenAuthenticator* auth_ = nullptr;
};

}  // namespace recurrent::server

#endif  // RECURRENT_SERVER_MODEL_SERVICE_H_
