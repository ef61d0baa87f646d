// recurrent: the command-line client of recurrentd. It speaks only the public API
// (proto/recurrent/v1/service.proto and grpc.health.v1).
//
//   recurrent [--server HOST:PORT] [--json] COMMAND [SUBCOMMAND] [options]
//   recurrent COMMAND --help
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/commands.h"

namespace recurrent::client {
namespace {

std::vector<Command> AllCommands() {
  std::vector<Command> all;
  for (auto group : {TrainCommands, JobCommands, ModelCommands, PredictCommands, MiscCommands}) {
    for (Command& command : group()) all.push_back(std::move(command));
  }
  return all;
}

void PrintOverview(const std::vector<Command>& commands) {
  std::printf(
      "recurrent: train, manage and query recurrent models on a recurrentd server\n\n"
      "Usage: recurrent [--server HOST:PORT] [--json] COMMAND [options]\n\nCommands:\n");
  size_t width = 0;
  for (const Command& command : commands) width = std::max(width, command.spec.path.size());
  for (const Command& command : commands) {
    std::printf("  %-*s  %s\n", static_cast<int>(width), command.spec.path.c_str(),
                command.spec.summary.c_str());
  }
  std::printf(
      "\nThe server is --server, else $RECURRENT_SERVER, else localhost:50051.\n"
      "Every command takes --help (with examples) and --json (machine-readable output).\n"
      "Exit codes: 0 success, 1 the request failed, 2 bad usage or input, 3 server unavailable.\n");
}

int Main(int argc, char** argv) {
  const std::vector<Command> commands = AllCommands();
  std::vector<std::string> args(argv + 1, argv + argc);
  // Global options may come before the command: set them aside to find the command words.
  std::vector<std::string> leading;
  size_t i = 0;
  while (i < args.size() && args[i].rfind('-', 0) == 0) {
    const std::string& arg = args[i];
    leading.push_back(arg);
    bool takes_value = false;
    for (const OptionSpec& option : GlobalOptions()) {
      takes_value |= arg == "--" + option.name && !option.value_name.empty();
    }
    if (takes_value && i + 1 < args.size()) leading.push_back(args[++i]);
    ++i;
  }
  if (i == args.size()) {
    PrintOverview(commands);
    return leading.empty() ? kExitUsage : 0;  // `recurrent --help` succeeds
  }
  // The longest command path that matches the words: "jobs show" before "jobs".
  const Command* found = nullptr;
  size_t words = 0;
  for (const Command& command : commands) {
    const std::string& path = command.spec.path;
    const size_t space = path.find(' ');
    if (space == std::string::npos) {
      if (args[i] == path && words < 1) {
        found = &command;
        words = 1;
      }
    } else if (args[i] == path.substr(0, space) && i + 1 < args.size() &&
               args[i + 1] == path.substr(space + 1)) {
      found = &command;
      words = 2;
    }
  }
  if (found == nullptr) {
    // A group word alone ("recurrent jobs") lists the group's subcommands; "jobs"/"models"
    // default to their list.
    std::vector<const Command*> group;
    for (const Command& command : commands) {
      if (command.spec.path.rfind(args[i] + " ", 0) == 0) group.push_back(&command);
    }
    if (group.empty()) {
      return UsageError(absl::StrCat("unknown command \"", args[i], "\"; see recurrent --help"));
    }
    const bool asks_help = i + 1 < args.size() && (args[i + 1] == "--help" || args[i + 1] == "-h");
    if (i + 1 < args.size() && args[i + 1].rfind('-', 0) != 0) {
      return UsageError(absl::StrCat("unknown command \"", args[i], " ", args[i + 1],
                                     "\"; see recurrent ", args[i], " --help"));
    }
    if (asks_help || group[0]->spec.path != args[i] + " list") {
      std::printf("Commands of recurrent %s:\n", args[i].c_str());
      for (const Command* command : group) {
        std::printf("  recurrent %-16s %s\n", command->spec.path.c_str(),
                    command->spec.summary.c_str());
      }
      return asks_help ? 0 : kExitUsage;
    }
    found = group[0];
    words = 1;
  }
  std::vector<std::string> rest = leading;
  rest.insert(rest.end(), args.begin() + static_cast<std::ptrdiff_t>(i + words), args.end());
  absl::StatusOr<ParsedArgs> parsed = ParseArgs(rest, found->spec);
  if (!parsed.ok()) return UsageError(std::string(parsed.status().message()));
  if (parsed->Has("help")) {
    std::printf("%s", HelpText(found->spec).c_str());
    return 0;
  }
  absl::StatusOr<Session> session = Session::FromArgs(*parsed);
  if (!session.ok()) return UsageError(std::string(session.status().message()));
  return found->run(*session, *parsed);
}

}  // namespace
}  // namespace recurrent::client

int main(int argc, char** argv) { return recurrent::client::Main(argc, argv); }
