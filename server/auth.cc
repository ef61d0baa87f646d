#include "server/auth.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "core/file_util.h"

namespace recurrent::server {
namespace {

constexpr size_t kMinTokenLength = 16;
constexpr int64_t kMaxTokenFileBytes = int64_t{1} << 20;
constexpr absl::string_view kBearer = "Bearer ";

// Equal in time that depends only on the lengths, never on where the bytes differ.
bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  unsigned char difference = a.size() == b.size() ? 0 : 1;
  const size_t n = std::max(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    difference |= x ^ y;
  }
  return difference == 0;
}

}  // namespace

absl::StatusOr<std::unique_ptr<TokenAuthenticator>> TokenAuthenticator::FromFile(
    const std::string& path) {
  absl::StatusOr<std::string> text =
      core::ReadFileBounded(path, kMaxTokenFileBytes, "--auth_tokens_file");
  if (!text.ok()) return text.status();
  absl::StatusOr<std::unique_ptr<TokenAuthenticator>> parsed = FromText(*text);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", parsed.status().message()));
  }
  return parsed;
}

absl::StatusOr<std::unique_ptr<TokenAuthenticator>> TokenAuthenticator::FromText(
    const std::string& text) {
  std::vector<Entry> entries;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line.substr(0, line.find('#')));
    if (line.empty()) continue;
    const std::vector<absl::string_view> fields = absl::StrSplit(line, ' ', absl::SkipWhitespace());
    if (fields.size() != 2) {
      return absl::InvalidArgumentError(
          absl::StrCat("line ", line_number, ": expected \"ROLE TOKEN\" (predict or admin)"));
    }
    Role role;
    if (fields[0] == "predict") {
      role = Role::kPredict;
    } else if (fields[0] == "admin") {
      role = Role::kAdmin;
    } else {
      return absl::InvalidArgumentError(absl::StrCat("line ", line_number, ": unknown role \"",
                                                     fields[0], "\" (predict or admin)"));
    }
    if (fields[1].size() < kMinTokenLength) {
      return absl::InvalidArgumentError(absl::StrCat(
          "line ", line_number, ": tokens need at least ", kMinTokenLength, " characters"));
    }
    entries.push_back(Entry{std::string(fields[1]), role});
  }
  if (entries.empty())
    return absl::InvalidArgumentError("no tokens: authentication would lock everyone out");
  return std::unique_ptr<TokenAuthenticator>(new TokenAuthenticator(std::move(entries)));
}

int TokenAuthenticator::TokenIndex(const grpc::ServerContextBase& context) const {
  const auto& metadata = context.client_metadata();
  const auto found = metadata.find("authorization");
  if (found == metadata.end()) return -1;
  absl::string_view value(found->second.data(), found->second.size());
  if (!absl::ConsumePrefix(&value, kBearer)) return -1;
  // Every token is compared, whatever matched, so the time taken says nothing about them.
  int matched = -1;
  for (size_t i = 0; i < entries_.size(); ++i) {
    if (ConstantTimeEquals(value, entries_[i].token)) matched = static_cast<int>(i);
  }
  return matched;
}

std::string ClientKey(const TokenAuthenticator* auth, const grpc::ServerContextBase& context) {
  if (auth != nullptr) {
    if (const int index = auth->TokenIndex(context); index >= 0) {
      return absl::StrCat("token ", index);
    }
  }
  // "ipv4:10.0.0.7:51234" or "ipv6:[::1]:51234": drop the port, which changes per connection.
  std::string peer = context.peer();
  if (absl::StartsWith(peer, "ipv4:") || absl::StartsWith(peer, "ipv6:")) {
    if (const size_t colon = peer.rfind(':'); colon != std::string::npos && colon > 5) {
      peer.resize(colon);
    }
  }
  return peer;
}

grpc::Status TokenAuthenticator::Check(const grpc::ServerContextBase& context, Role needed) const {
  const auto& metadata = context.client_metadata();
  const auto found = metadata.find("authorization");
  if (found == metadata.end()) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "no token: send \"authorization: Bearer TOKEN\" metadata");
  }
  absl::string_view value(found->second.data(), found->second.size());
  if (!absl::ConsumePrefix(&value, kBearer)) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "the authorization metadata must be \"Bearer TOKEN\"");
  }
  const int index = TokenIndex(context);
  if (index < 0) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "unknown token");
  }
  if (static_cast<int>(entries_[index].role) < static_cast<int>(needed)) {
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                        "this call needs the admin role; the token has the predict role");
  }
  return grpc::Status::OK;
}

}  // namespace recurrent::server
