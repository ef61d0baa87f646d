// Bearer-token authentication with two roles, checked by every RPC of the recurrent.v1 services
// (the health service and reflection stay open, as /metrics does).
//
//   predict: Predict, StepPredict, and the read-only calls (ListModels, GetModel, GetJob,
//            ListJobs, WatchJob);
//   admin:   everything, including Train, UploadDataset, CancelJob, SetAlias,
//            DeleteModelVersion, ImportModel and ExportModel (exporting copies the weights).
//
// Tokens come from a file (--auth_tokens_file), one "ROLE TOKEN" per line ('#' starts a comment);
// clients send "authorization: Bearer TOKEN" metadata. A missing or unknown token is
// UNAUTHENTICATED; a known token whose role is too low is PERMISSION_DENIED. Tokens are compared
// in constant time (every byte of every token, whatever matches), so timing says nothing about
// them. Thread-safe (immutable after loading).
#ifndef RECURRENT_SERVER_AUTH_H_
#define RECURRENT_SERVER_AUTH_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "grpcpp/server_context.h"

namespace recurrent::server {

enum class Role { kPredict = 0, kAdmin = 1 };

class TokenAuthenticator {
 public:
  // InvalidArgument naming the line for a malformed file; at least one token is required, each
  // at least 16 characters (a guessable token is worse than none, which is at least visible).
  static absl::StatusOr<std::unique_ptr<TokenAuthenticator>> FromFile(const std::string& path);
  static absl::StatusOr<std::unique_ptr<TokenAuthenticator>> FromText(const std::string& text);

  grpc::Status Check(const grpc::ServerContextBase& context, Role needed) const;
  // The 0-based line index of the token the call carries among the file's tokens, or -1.
  int TokenIndex(const grpc::ServerContextBase& context) const;

 private:
  struct Entry {
    std::string token;
    Role role;
  };
  explicit TokenAuthenticator(std::vector<Entry> entries) : entries_(std::move(entries)) {}
  const std::vector<Entry> entries_;
};

// OK when `auth` is null (authentication off), else auth->Check(context, needed).
inline grpc::Status Authorize(const TokenAuthenticator* auth,
                              const grpc::ServerContextBase& context, Role needed) {
  return auth == nullptr ? grpc::Status::OK : auth->Check(context, needed);
}

// Who is calling, for per-client limits: "token N" (N: the token's index in the file) when
// tokens are on and the call carries a known one; otherwise the peer's address without its port
// ("ipv4:10.0.0.7", "ipv6:[::1]"). Behind a proxy that does not keep client addresses every
// client shares the proxy's address, which is one reason to turn tokens on.
std::string ClientKey(const TokenAuthenticator* auth, const grpc::ServerContextBase& context);

}  // namespace recurrent::server

#endif  // RECURRENT_SERVER_AUTH_H_
