// recurrent models list|show|alias|delete|import|export.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/commands.h"
#include "client/format.h"
#include "core/file_util.h"

namespace recurrent::client {
namespace {

std::string CellName(v1::CellType cell) {
  switch (cell) {
    case v1::CELL_TYPE_LSTM:
      return "lstm";
    case v1::CELL_TYPE_GRU:
      return "gru";
    case v1::CELL_TYPE_RNN_TANH:
      return "rnn";
    case v1::CELL_TYPE_RNN_RELU:
      return "rnn-relu";
    default:
      return "?";
  }
}

std::string SpecSummary(const v1::ModelSpec& spec) {
  return absl::StrCat(CellName(spec.cell()), " ", spec.num_layers(), "x", spec.hidden_size(),
                      spec.bidirectional() ? " bidirectional" : "", ", ", spec.input_size(),
                      " in, ", spec.output_size(), " out, ",
                      spec.head() == v1::HEAD_MODE_PER_STEP ? "per-step" : "last-step", " head");
}

std::string AliasList(const google::protobuf::Map<std::string, int64_t>& aliases) {
  std::map<std::string, int64_t> sorted(aliases.begin(), aliases.end());
  std::vector<std::string> parts;
  parts.reserve(sorted.size());
  for (const auto& [alias, version] : sorted) parts.push_back(absl::StrCat(alias, "->", version));
  return parts.empty() ? "-" : absl::StrJoin(parts, " ");
}

std::string MetricValue(const v1::ModelVersionInfo& version, const std::string& name) {
  for (const v1::MetricValue& metric : version.training().final_metrics()) {
    if (metric.name() == name) return FormatLoss(metric.value());
  }
  return "-";
}

int RunList(const Session& session, const ParsedArgs&) {
  v1::ListModelsResponse response;
  const grpc::Status status =
      session.models().ListModels(session.Context().get(), v1::ListModelsRequest(), &response);
  if (!status.ok()) return session.Fail(status);
  if (session.json()) {
    session.PrintJson(response);
    return 0;
  }
  if (response.models().empty()) {
    std::printf("no models\n");
    return 0;
  }
  Table table({"MODEL", "VERSIONS", "LATEST", "ALIASES"}, {false, true, true, false});
  for (const v1::ModelSummary& model : response.models()) {
    table.AddRow({model.name(), absl::StrCat(model.versions()),
                  absl::StrCat(model.latest_version()), AliasList(model.aliases())});
  }
  table.Print(stdout);
  return 0;
}

int RunShow(const Session& session, const ParsedArgs& args) {
  v1::GetModelRequest request;
  request.set_name(args.operands()[0]);
  v1::ModelInfo info;
  const grpc::Status status = session.models().GetModel(session.Context().get(), request, &info);
  if (!status.ok()) return session.Fail(status);
  if (session.json()) {
    session.PrintJson(info);
    return 0;
  }
  std::printf("model %s   aliases: %s\n\n", info.name().c_str(), AliasList(info.aliases()).c_str());
  Table table({"VERSION", "CREATED", "SPEC", "LOSS", "VAL LOSS", "JOB", "DATA", "ALIASES"},
              {true, false, false, true, true, false, false, false});
  for (const v1::ModelVersionInfo& version : info.versions()) {
    table.AddRow({absl::StrCat(version.version()), FormatTimestamp(version.created()),
                  SpecSummary(version.spec()), MetricValue(version, "train_loss"),
                  MetricValue(version, "validation_loss"),
                  version.training().job_id().empty() ? "-" : version.training().job_id(),
                  version.training().dataset_fingerprint().empty()
                      ? "-"
                      : version.training().dataset_fingerprint(),
                  version.aliases().empty() ? "-" : absl::StrJoin(version.aliases(), ",")});
  }
  table.Print(stdout);
  // Lineage of the newest version: how it was trained.
  if (!info.versions().empty()) {
    const v1::ModelVersionInfo& newest = *info.versions().rbegin();
    if (!newest.training().hyperparameters().empty()) {
      std::printf("\nversion %lld was trained with:\n", static_cast<long long>(newest.version()));
      std::map<std::string, std::string> sorted(newest.training().hyperparameters().begin(),
                                                newest.training().hyperparameters().end());
      Table hyper({"", ""});
      for (const auto& [key, value] : sorted) hyper.AddRow({"  " + key, value});
      hyper.Print(stdout);
    }
  }
  return 0;
}

absl::StatusOr<int64_t> ParseVersion(const std::string& text) {
  int64_t version = 0;
  if (!absl::SimpleAtoi(text, &version) || version < 1) {
    return absl::InvalidArgumentError(absl::StrCat("\"", text, "\" is not a version number"));
  }
  return version;
}

int RunAlias(const Session& session, const ParsedArgs& args) {
  v1::SetAliasRequest request;
  request.set_name(args.operands()[0]);
  request.set_alias(args.operands()[1]);
  if (args.operands()[2] == "latest") {  // the newest version, looked up first
    v1::GetModelRequest get;
    get.set_name(request.name());
    v1::ModelInfo model;
    const grpc::Status got = session.models().GetModel(session.Context().get(), get, &model);
    if (!got.ok()) return session.Fail(got);
    for (const v1::ModelVersionInfo& version : model.versions()) {
      request.set_version(std::max(request.version(), version.version()));
    }
  } else {
    absl::StatusOr<int64_t> version = ParseVersion(args.operands()[2]);
    if (!version.ok()) return UsageError(std::string(version.status().message()));
    request.set_version(*version);
  }
  v1::ModelInfo info;
  const grpc::Status status = session.models().SetAlias(session.Context().get(), request, &info);
  if (!status.ok()) return session.Fail(status);
  if (session.json()) {
    session.PrintJson(info);
  } else {
    std::printf("%s@%s -> version %lld\n", request.name().c_str(), request.alias().c_str(),
                static_cast<long long>(request.version()));
  }
  return 0;
}

int RunDelete(const Session& session, const ParsedArgs& args) {
  v1::DeleteModelVersionRequest request;
  request.set_name(args.operands()[0]);
  absl::StatusOr<int64_t> version = ParseVersion(args.operands()[1]);
  if (!version.ok()) return UsageError(std::string(version.status().message()));
  request.set_version(*version);
  v1::ModelInfo info;
  const grpc::Status status =
      session.models().DeleteModelVersion(session.Context().get(), request, &info);
  if (!status.ok()) return session.Fail(status);
  if (session.json()) {
    session.PrintJson(info);
  } else {
    std::printf("deleted %s version %lld\n", request.name().c_str(),
                static_cast<long long>(request.version()));
  }
  return 0;
}

int RunImport(const Session& session, const ParsedArgs& args) {
  // The server refuses artifacts over --max_import_bytes (256 MiB by default); 2 GiB bounds
  // what the client will hold in memory.
  absl::StatusOr<std::string> artifact =
      core::ReadFileBounded(args.operands()[1], int64_t{2} << 30, "artifact");
  if (!artifact.ok()) return UsageError(std::string(artifact.status().message()));
  v1::ImportModelRequest request;
  request.set_name(args.operands()[0]);
  request.set_artifact(*std::move(artifact));
  if (absl::Status labels = AddLabels(args, request.mutable_labels()); !labels.ok()) {
    return UsageError(std::string(labels.message()));
  }
  v1::ModelVersionInfo info;
  const grpc::Status status = session.models().ImportModel(session.Context().get(), request, &info);
  if (!status.ok()) return session.Fail(status);
  if (session.json()) {
    session.PrintJson(info);
  } else {
    std::printf("imported %s as version %lld (%s)\n", info.name().c_str(),
                static_cast<long long>(info.version()), SpecSummary(info.spec()).c_str());
  }
  return 0;
}

int RunExport(const Session& session, const ParsedArgs& args) {
  absl::StatusOr<v1::ModelRef> ref = ParseModelRef(args.operands()[0]);
  if (!ref.ok()) return UsageError(std::string(ref.status().message()));
  v1::ExportModelRequest request;
  *request.mutable_model() = *ref;
  v1::ExportModelResponse response;
  const grpc::Status status =
      session.models().ExportModel(session.Context().get(), request, &response);
  if (!status.ok()) return session.Fail(status);
  std::ofstream out(args.operands()[1], std::ios::binary);
  out.write(response.artifact().data(), static_cast<std::streamsize>(response.artifact().size()));
  out.close();
  if (!out) return UsageError(absl::StrCat("cannot write ", args.operands()[1]));
  if (session.json()) {
    v1::ModelVersionInfo info;  // what was written, without the bytes
    info.set_name(ref->name());
    info.set_version(response.version());
    info.set_size_bytes(static_cast<int64_t>(response.artifact().size()));
    session.PrintJson(info);
  } else {
    std::printf("wrote %s version %lld to %s (%zu bytes)\n", ref->name().c_str(),
                static_cast<long long>(response.version()), args.operands()[1].c_str(),
                response.artifact().size());
  }
  return 0;
}

}  // namespace

std::vector<Command> ModelCommands() {
  return {
      {{"models list",
        "",
        "list registered models with their versions and aliases",
        "",
        {},
        "  recurrent models list"},
       RunList},
      {{"models show",
        "NAME",
        "a model's versions, aliases, metrics and lineage",
        "",
        {},
        "  recurrent models show mg",
        1,
        1},
       RunShow},
      {{"models alias",
        "NAME ALIAS VERSION",
        "point an alias at a version (atomic: new requests see it, open streams keep theirs)",
        "VERSION is a number, or `latest` for the newest version.",
        {},
        "  recurrent models alias mg production 3\n  recurrent models alias mg canary latest",
        3,
        3},
       RunAlias},
      {{"models delete",
        "NAME VERSION",
        "delete a version (refused while an alias points at it)",
        "",
        {},
        "  recurrent models delete mg 1",
        2,
        2},
       RunDelete},
      {{"models import",
        "NAME FILE",
        "register an artifact file as a new version",
        "",
        {{"label", "KEY=VALUE", "a label on the version (repeatable)", true}},
        "  recurrent models import mg mg-v3.rcnt --label source=laptop",
        2,
        2},
       RunImport},
      {{"models export",
        "MODEL FILE",
        "write a version's artifact to a file",
        "MODEL is name (newest), name:VERSION or name@ALIAS.",
        {},
        "  recurrent models export mg@production mg.rcnt",
        2,
        2},
       RunExport},
  };
}

}  // namespace recurrent::client
