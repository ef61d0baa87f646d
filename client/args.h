// Command-line parsing for `recurrent`: each command declares its options (name, value, help),
// gets them parsed from `--name=value`, `--name value` or `--switch`, and its --help text built
// from the same declaration, so help and parser cannot disagree.
#ifndef RECURRENT_CLIENT_ARGS_H_
#define RECURRENT_CLIENT_ARGS_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace recurrent::client {

struct OptionSpec {
  std::string name;        // without the leading "--"
  std::string value_name;  // e.g. "N"; empty for a switch
  std::string help;
  bool repeated = false;  // may be given several times (e.g. --label k=v)
};

struct CommandSpec {
  std::string path;      // "train", "jobs show", ...
  std::string operands;  // e.g. "JOB_ID", shown in the usage line
  std::string summary;   // one line
  std::string details;   // more lines of help, may be empty
  std::vector<OptionSpec> options;
  std::string examples;  // lines of example invocations
  int min_operands = 0;
  int max_operands = 0;
};

// The options every command accepts (--server, --json, --timeout, --help).
const std::vector<OptionSpec>& GlobalOptions();

class ParsedArgs {
 public:
  bool Has(const std::string& name) const { return values_.count(name) > 0; }
  // The last value given, or `fallback`.
  std::string Get(const std::string& name, const std::string& fallback = "") const;
  std::vector<std::string> GetAll(const std::string& name) const;
  // Parsed numbers; InvalidArgument naming the option when the value is not one.
  absl::StatusOr<int64_t> GetInt(const std::string& name, int64_t fallback) const;
  absl::StatusOr<double> GetDouble(const std::string& name, double fallback) const;
  const std::vector<std::string>& operands() const { return operands_; }

 private:
  friend absl::StatusOr<ParsedArgs> ParseArgs(const std::vector<std::string>&, const CommandSpec&);
  std::map<std::string, std::vector<std::string>> values_;  // switches hold "true"
  std::vector<std::string> operands_;
};

// Parses `args` (what follows the command words) against `spec` plus GlobalOptions().
// InvalidArgument for an unknown option, a missing value or the wrong number of operands.
absl::StatusOr<ParsedArgs> ParseArgs(const std::vector<std::string>& args, const CommandSpec& spec);

std::string HelpText(const CommandSpec& spec);

}  // namespace recurrent::client

#endif  // RECURRENT_CLIENT_ARGS_H_
