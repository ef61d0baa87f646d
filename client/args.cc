#include "client/args.h"

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace recurrent::client {
namespace {

const OptionSpec* FindOption(const CommandSpec& spec, const std::string& name) {
  for (const OptionSpec& option : spec.options) {
    if (option.name == name) return &option;
  }
  for (const OptionSpec& option : GlobalOptions()) {
    if (option.name == name) return &option;
  }
  return nullptr;
}

std::string OptionColumn(const OptionSpec& option) {
  return option.value_name.empty() ? absl::StrCat("--", option.name)
                                   : absl::StrCat("--", option.name, " ", option.value_name);
}

void AppendOptions(const std::vector<OptionSpec>& options, std::string* out) {
  size_t width = 0;
  for (const OptionSpec& option : options) width = std::max(width, OptionColumn(option).size());
  for (const OptionSpec& option : options) {
    const std::string column = OptionColumn(option);
    absl::StrAppend(out, "  ", column, std::string(width - column.size() + 2, ' '), option.help,
                    "\n");
  }
}

}  // namespace

const std::vector<OptionSpec>& GlobalOptions() {
  static const auto* const options = new std::vector<OptionSpec>{
      {"server", "HOST:PORT",
       "the recurrentd to talk to (default: $RECURRENT_SERVER or "
       "localhost:50051)"},
      {"json", "", "machine-readable JSON output"},
      {"timeout", "SECONDS", "deadline of each call (default 30; watching and streaming: none)"},
      {"token", "TOKEN",
       "bearer token for a server with --auth_tokens_file (default: "
       "$RECURRENT_TOKEN)"},
      {"tls", "", "connect with TLS, verifying the server against the system's CAs"},
      {"tls_ca_file", "FILE",
       "connect with TLS, verifying the server against this PEM CA (implies "
       "--tls)"},
      {"tls_cert_file", "FILE", "client certificate for mutual TLS (with --tls_key_file)"},
      {"tls_key_file", "FILE", "private key of --tls_cert_file"},
      {"help", "", "show this help"},
  };
  return *options;
}

std::string ParsedArgs::Get(const std::string& name, const std::string& fallback) const {
  const auto it = values_.find(name);
  return it == values_.end() ? fallback : it->second.back();
}

std::vector<std::string> ParsedArgs::GetAll(const std::string& name) const {
  const auto it = values_.find(name);
  return it == values_.end() ? std::vector<std::string>{} : it->second;
}

absl::StatusOr<int64_t> ParsedArgs::GetInt(const std::string& name, int64_t fallback) const {
  if (!Has(name)) return fallback;
  int64_t value = 0;
  if (!absl::SimpleAtoi(Get(name), &value)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", name, " takes a whole number, not \"", Get(name), "\""));
  }
  return value;
}

absl::StatusOr<double> ParsedArgs::GetDouble(const std::string& name, double fallback) const {
  if (!Has(name)) return fallback;
  double value = 0;
  if (!absl::SimpleAtod(Get(name), &value)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", name, " takes a number, not \"", Get(name), "\""));
  }
  return value;
}

absl::StatusOr<ParsedArgs> ParseArgs(const std::vector<std::string>& args,
                                     const CommandSpec& spec) {
  ParsedArgs parsed;
  bool options_done = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (options_done || arg.size() < 2 || arg[0] != '-' || arg == "-") {
      parsed.operands_.push_back(arg);
      continue;
    }
    if (arg == "--") {
      options_done = true;
      continue;
    }
    if (arg == "-h") {
      parsed.values_["help"].push_back("true");
      continue;
    }
    if (arg.rfind("--", 0) != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown option ", arg, "; options are spelled --name"));
    }
    const size_t equals = arg.find('=');
    const std::string name = arg.substr(2, equals == std::string::npos ? arg.npos : equals - 2);
    const OptionSpec* option = FindOption(spec, name);
    if (option == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("unknown option --", name, " for 'recurrent ",
                                                     spec.path, "'; see recurrent ", spec.path,
                                                     " --help"));
    }
    std::vector<std::string>& values = parsed.values_[name];
    if (option->value_name.empty()) {
      if (equals != std::string::npos) {
        return absl::InvalidArgumentError(absl::StrCat("--", name, " takes no value"));
      }
      values.assign(1, "true");
      continue;
    }
    std::string value;
    if (equals != std::string::npos) {
      value = arg.substr(equals + 1);
    } else if (i + 1 < args.size()) {
      value = args[++i];
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("--", name, " needs a value (", option->value_name, ")"));
    }
    if (!option->repeated) values.clear();
    values.push_back(std::move(value));
  }
  if (parsed.Has("help")) return parsed;  // the caller prints help; operands do not matter
  const int count = static_cast<int>(parsed.operands_.size());
  if (count < spec.min_operands || count > spec.max_operands) {
    if (spec.max_operands == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "'recurrent ", spec.path, "' takes no operand, got \"", parsed.operands_[0], "\""));
    }
    return absl::InvalidArgumentError(
        absl::StrCat("usage: recurrent ", spec.path, " ", spec.operands, " [options]"));
  }
  return parsed;
}

std::string HelpText(const CommandSpec& spec) {
  std::string out =
      absl::StrCat("recurrent ", spec.path, ": ", spec.summary, "\n\nUsage: recurrent ", spec.path,
                   spec.operands.empty() ? "" : " ", spec.operands, " [options]\n");
  if (!spec.details.empty()) absl::StrAppend(&out, "\n", spec.details, "\n");
  if (!spec.options.empty()) {
    absl::StrAppend(&out, "\nOptions:\n");
    AppendOptions(spec.options, &out);
  }
  absl::StrAppend(&out, "\nGlobal options:\n");
  AppendOptions(GlobalOptions(), &out);
  if (!spec.examples.empty()) absl::StrAppend(&out, "\nExamples:\n", spec.examples, "\n");
  return out;
}

}  // namespace recurrent::client
