// The subcommands of `recurrent`. Each cmd_*.cc file contributes its commands (spec + run).
#ifndef RECURRENT_CLIENT_COMMANDS_H_
#define RECURRENT_CLIENT_COMMANDS_H_

#include <string>
#include <vector>

#include "client/args.h"
#include "client/session.h"

namespace recurrent::client {

struct Command {
  CommandSpec spec;
  int (*run)(const Session& session, const ParsedArgs& args);
};

std::vector<Command> TrainCommands();    // train, upload
std::vector<Command> JobCommands();      // jobs list|show|watch|cancel
std::vector<Command> ModelCommands();    // models list|show|alias|delete|import|export
std::vector<Command> PredictCommands();  // predict, stream
std::vector<Command> MiscCommands();     // health, data

// Follows a job until it ends, showing progress (a live bar on a terminal, a line per epoch
// otherwise, JSON lines with --json). Returns the exit code: 0 only when the job succeeded.
int WatchJob(const Session& session, const std::string& job_id);

}  // namespace recurrent::client

#endif  // RECURRENT_CLIENT_COMMANDS_H_
