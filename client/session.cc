#include "client/session.h"

#include <cstdio>
#include <cstdlib>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/file_util.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"

namespace recurrent::client {
namespace {

const char* CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::UNKNOWN:
      return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    default:
      return "UNKNOWN";
  }
}

absl::StatusOr<std::string> ReadFile(const std::string& flag, const std::string& path) {
  return core::ReadFileBounded(path, int64_t{1} << 20, absl::StrCat("--", flag));
}

// Plaintext, or TLS (with a CA file, and a client certificate for mutual TLS).
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> Credentials(const ParsedArgs& args) {
  const bool tls = args.Has("tls") || args.Has("tls_ca_file") || args.Has("tls_cert_file");
  if (!tls) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions options;
  if (args.Has("tls_ca_file")) {
    absl::StatusOr<std::string> ca = ReadFile("tls_ca_file", args.Get("tls_ca_file"));
    if (!ca.ok()) return ca.status();
    options.pem_root_certs = *ca;
  }
  if (args.Has("tls_cert_file") != args.Has("tls_key_file")) {
    return absl::InvalidArgumentError("mutual TLS needs both --tls_cert_file and --tls_key_file");
  }
  if (args.Has("tls_cert_file")) {
    absl::StatusOr<std::string> cert = ReadFile("tls_cert_file", args.Get("tls_cert_file"));
    absl::StatusOr<std::string> key = ReadFile("tls_key_file", args.Get("tls_key_file"));
    if (!cert.ok()) return cert.status();
    if (!key.ok()) return key.status();
    options.pem_cert_chain = *cert;
    options.pem_private_key = *key;
  }
  return grpc::SslCredentials(options);
}

}  // namespace

absl::StatusOr<Session> Session::FromArgs(const ParsedArgs& args) {
  Session session;
  const char* env = std::getenv("RECURRENT_SERVER");
  session.server_ = args.Get("server", env != nullptr && *env != '\0' ? env : "localhost:50051");
  session.json_ = args.Has("json");
  absl::StatusOr<double> timeout = args.GetDouble("timeout", 30.0);
  if (!timeout.ok()) return timeout.status();
  if (*timeout <= 0) return absl::InvalidArgumentError("--timeout must be > 0 seconds");
  session.timeout_ = absl::Seconds(*timeout);
  const char* token = std::getenv("RECURRENT_TOKEN");
  session.token_ = args.Get("token", token != nullptr ? token : "");
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials = Credentials(args);
  if (!credentials.ok()) return credentials.status();
  grpc::ChannelArguments channel_args;
  channel_args.SetMaxReceiveMessageSize(64 << 20);
  channel_args.SetMaxSendMessageSize(64 << 20);
  session.channel_ = grpc::CreateCustomChannel(session.server_, *credentials, channel_args);
  session.training_ = v1::TrainingService::NewStub(session.channel_);
  session.inference_ = v1::InferenceService::NewStub(session.channel_);
  session.models_ = v1::ModelService::NewStub(session.channel_);
  return session;
}

std::unique_ptr<grpc::ClientContext> Session::Context(bool streaming) const {
  auto context = std::make_unique<grpc::ClientContext>();
  if (!token_.empty()) context->AddMetadata("authorization", "Bearer " + token_);
  if (!streaming) context->set_deadline(absl::ToChronoTime(absl::Now() + timeout_));
  return context;
}

int Session::Fail(const grpc::Status& status) const {
  std::string line =
      absl::StrCat("recurrent: ", CodeName(status.error_code()), ": ", status.error_message());
  int code = kExitFailed;
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
    absl::StrAppend(&line, " (is recurrentd running at ", server_,
                    "? Set --server or RECURRENT_SERVER)");
    code = kExitUnavailable;
  } else if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    absl::StrAppend(&line, " (no answer within --timeout; raise it for big requests)");
  }
  std::fprintf(stderr, "%s\n", line.c_str());
  return code;
}

void Session::PrintJson(const google::protobuf::Message& message) const {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(message, &out, options);
  std::fprintf(stdout, "%s\n", out.c_str());
  std::fflush(stdout);
}

int UsageError(const std::string& message) {
  std::fprintf(stderr, "recurrent: %s\n", message.c_str());
  return kExitUsage;
}

absl::Status AddLabels(const ParsedArgs& args,
                       google::protobuf::Map<std::string, std::string>* labels) {
  for (const std::string& label : args.GetAll("label")) {
    const size_t equals = label.find('=');
    if (equals == std::string::npos || equals == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--label takes KEY=VALUE, not \"", label, "\""));
    }
    (*labels)[label.substr(0, equals)] = label.substr(equals + 1);
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::ModelRef> ParseModelRef(const std::string& text) {
  v1::ModelRef ref;
  const size_t at = text.find('@');
  const size_t colon = text.find(':');
  if (at != std::string::npos) {
    ref.set_name(text.substr(0, at));
    ref.set_alias(text.substr(at + 1));
    if (ref.alias().empty()) return absl::InvalidArgumentError("an empty alias after '@'");
  } else if (colon != std::string::npos) {
    ref.set_name(text.substr(0, colon));
    int64_t version = 0;
    if (!absl::SimpleAtoi(text.substr(colon + 1), &version) || version < 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "\"", text, "\": a version after ':' is a number >= 1 (name:3), or use name@alias"));
    }
    ref.set_version(version);
  } else {
    ref.set_name(text);
  }
  if (ref.name().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", text, "\" names no model; write name, name:VERSION or name@ALIAS"));
  }
  return ref;
}

std::string ModelRefString(const v1::ModelRef& ref) {
  switch (ref.selector_case()) {
    case v1::ModelRef::kVersion:
      return absl::StrCat(ref.name(), ":", ref.version());
    case v1::ModelRef::kAlias:
      return absl::StrCat(ref.name(), "@", ref.alias());
    default:
      return ref.name();
  }
}

}  // namespace recurrent::client
