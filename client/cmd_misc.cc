// recurrent health / recurrent data.
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/commands.h"
#include "core/generators.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace recurrent::client {
namespace {

int RunHealth(const Session& session, const ParsedArgs& args) {
  // A channel of its own: the stub API wants a shared_ptr, the session lends a reference.
  std::shared_ptr<grpc::Channel> channel(&session.channel(), [](grpc::Channel*) {});
  auto health = grpc::health::v1::Health::NewStub(channel);
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(args.Get("service"));
  grpc::health::v1::HealthCheckResponse response;
  const grpc::Status status = health->Check(session.Context().get(), request, &response);
  if (!status.ok()) return session.Fail(status);
  const bool serving = response.status() == grpc::health::v1::HealthCheckResponse::SERVING;
  if (session.json()) {
    session.PrintJson(response);
  } else {
    std::printf(
        "%s: %s\n", session.server().c_str(),
        grpc::health::v1::HealthCheckResponse::ServingStatus_Name(response.status()).c_str());
  }
  return serving ? 0 : kExitUnavailable;
}

int RunMackeyGlass(const Session&, const ParsedArgs& args) {
  absl::StatusOr<int64_t> length = args.GetInt("length", 1000);
  absl::StatusOr<int64_t> from = args.GetInt("from", 0);
  absl::StatusOr<double> tau = args.GetDouble("tau", 17.0);
  if (!length.ok()) return UsageError(std::string(length.status().message()));
  if (!from.ok()) return UsageError(std::string(from.status().message()));
  if (!tau.ok()) return UsageError(std::string(tau.status().message()));
  if (*from < 0) return UsageError("--from must be >= 0");
  core::MackeyGlassOptions options;
  options.tau = *tau;
  // The same series as the server's generator: samples [from, from + length) of it.
  absl::StatusOr<std::vector<float>> series = core::MackeyGlassSeries(*from + *length, options);
  if (!series.ok()) return UsageError(std::string(series.status().message()));
  if (args.Has("json")) {  // {"x": [...]}
    std::printf("{\"x\":[");
    for (int64_t i = *from; i < *from + *length; ++i) {
      std::printf("%s%.7g", i == *from ? "" : ",", (*series)[i]);
    }
    std::printf("]}\n");
    return 0;
  }
  std::printf("x\n");
  for (int64_t i = *from; i < *from + *length; ++i) std::printf("%.7g\n", (*series)[i]);
  return 0;
}

}  // namespace

std::vector<Command> MiscCommands() {
  return {
      {{"health",
        "",
        "ask the server's grpc.health.v1 service (exit 0 only when SERVING)",
        "",
        {{"service", "NAME", "a service name (default: the whole server)"}},
        "  recurrent health --server recurrentd:50051"},
       RunHealth},
      {{"data mackey-glass",
        "",
        "print the built-in Mackey-Glass series as CSV (column x)",
        "The same series the server's mackey-glass generator trains on: samples 0..N-1 of it\n"
        "are what `train --generator mackey-glass --series-length N` sees, so --from N gives\n"
        "held-out data that continues it.",
        {{"length", "N", "samples to print (default 1000)"},
         {"from", "N", "start at sample N (default 0)"},
         {"tau", "X", "the delay (default 17)"}},
        "  recurrent data mackey-glass --from 3000 --length 500 > heldout.csv"},
       RunMackeyGlass},
  };
}

}  // namespace recurrent::client
