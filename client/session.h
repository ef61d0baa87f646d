// What every command shares: the server address, the channel and stubs, call deadlines, and the
// two ways a command ends (success, or one clear error line with a non-zero exit code).
#ifndef RECURRENT_CLIENT_SESSION_H_
#define RECURRENT_CLIENT_SESSION_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/args.h"
#include "google/protobuf/map.h"
#include "google/protobuf/message.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "recurrent/v1/service.grpc.pb.h"

namespace recurrent::client {

// Exit codes: 0 success, 1 the server refused or failed the request, 2 bad usage or input,
// 3 the server is unreachable or not serving.
inline constexpr int kExitFailed = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitUnavailable = 3;

class Session {
 public:
  // Reads --server (else $RECURRENT_SERVER, else localhost:50051), --json, --timeout, --token
  // (else $RECURRENT_TOKEN) and the --tls* flags.
  static absl::StatusOr<Session> FromArgs(const ParsedArgs& args);

  const std::string& server() const { return server_; }
  bool json() const { return json_; }
  grpc::Channel& channel() const { return *channel_; }
  v1::TrainingService::Stub& training() const { return *training_; }
  v1::InferenceService::Stub& inference() const { return *inference_; }
  v1::ModelService::Stub& models() const { return *models_; }

  // A context with the --timeout deadline; `streaming` calls (watch, stream) get none.
  std::unique_ptr<grpc::ClientContext> Context(bool streaming = false) const;

  // Prints "recurrent: <CODE>: <message>" (with a hint for the usual causes) to stderr and
  // returns the exit code for it.
  int Fail(const grpc::Status& status) const;
  // Prints `message` as a JSON object on one line to stdout.
  void PrintJson(const google::protobuf::Message& message) const;

 private:
  std::string server_;
  bool json_ = false;
  absl::Duration timeout_;
  std::string token_;
  std::shared_ptr<grpc::Channel> channel_;
  std::shared_ptr<v1::TrainingService::Stub> training_;
  std::shared_ptr<v1::InferenceService::Stub> inference_;
  std::shared_ptr<v1::ModelService::Stub> models_;
};

// Prints "recurrent: <message>" to stderr and returns kExitUsage: for bad flags and bad input.
int UsageError(const std::string& message);

// Every --label KEY=VALUE into `labels`; InvalidArgument for a malformed one.
absl::Status AddLabels(const ParsedArgs& args,
                       google::protobuf::Map<std::string, std::string>* labels);

// "name", "name:3" (version 3) or "name@production" (an alias).
absl::StatusOr<v1::ModelRef> ParseModelRef(const std::string& text);
std::string ModelRefString(const v1::ModelRef& ref);

}  // namespace recurrent::client

#endif  // RECURRENT_CLIENT_SESSION_H_
