// recurrent predict / recurrent stream.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/commands.h"
#include "client/format.h"
#include "client/plot.h"
#include "client/rows.h"
#include "core/file_util.h"

namespace recurrent::client {
namespace {

// The input named by the operand: a file, or stdin for none or "-".
struct Input {
  std::ifstream file;
  std::istream* stream = &std::cin;
  std::string name = "stdin";
};

absl::Status OpenInput(const ParsedArgs& args, Input* input) {
  const std::string path = args.operands().empty() ? "-" : args.operands()[0];
  if (path == "-") return absl::OkStatus();
  input->file.open(path);
  if (!input->file) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  input->stream = &input->file;
  input->name = path;
  return absl::OkStatus();
}

absl::StatusOr<char> Delimiter(const ParsedArgs& args) {
  const std::string delimiter = args.Get("delimiter", ",");
  if (delimiter.size() != 1) return absl::InvalidArgumentError("--delimiter is one character");
  return delimiter[0];
}

std::string Row(const float* values, int64_t count) {
  std::string line;
  for (int64_t i = 0; i < count; ++i)
    absl::StrAppend(&line, i ? "," : "", absl::StrFormat("%.7g", values[i]));
  return line;
}

int RunPredict(const Session& session, const ParsedArgs& args) {
  if (!args.Has("model")) return UsageError("predict needs --model NAME[:VERSION|@ALIAS]");
  absl::StatusOr<v1::ModelRef> ref = ParseModelRef(args.Get("model"));
  if (!ref.ok()) return UsageError(std::string(ref.status().message()));
  absl::StatusOr<char> delimiter = Delimiter(args);
  if (!delimiter.ok()) return UsageError(std::string(delimiter.status().message()));
  Input input;
  if (absl::Status opened = OpenInput(args, &input); !opened.ok()) {
    return UsageError(std::string(opened.message()));
  }
  // Rows are timesteps; a blank line or a change of --sequence-column starts a new sequence.
  RowReader reader(*input.stream, input.name, *delimiter);
  v1::PredictRequest request;
  *request.mutable_model() = *ref;
  request.set_return_final_states(args.Has("states"));
  std::vector<int64_t> features;
  int64_t id_column = -1;
  float current_id = NAN;
  std::vector<float> row;
  v1::InputSequence* sequence = nullptr;
  while (true) {
    absl::StatusOr<RowReader::Row> next = reader.Next(&row);
    if (!next.ok()) return UsageError(std::string(next.status().message()));
    if (*next == RowReader::Row::kEnd) break;
    if (*next == RowReader::Row::kBlank) {
      sequence = nullptr;
      continue;
    }
    if (features.empty()) {  // the first data row: resolve the columns
      if (args.Has("sequence-column")) {
        absl::StatusOr<std::vector<int64_t>> id = reader.Columns(args.Get("sequence-column"));
        if (!id.ok() || id->size() != 1) {
          return UsageError(id.ok() ? "--sequence-column names one column"
                                    : std::string(id.status().message()));
        }
        id_column = (*id)[0];
      }
      if (args.Has("features")) {
        absl::StatusOr<std::vector<int64_t>> chosen = reader.Columns(args.Get("features"));
        if (!chosen.ok()) return UsageError(std::string(chosen.status().message()));
        features = *chosen;
      } else {
        for (int64_t c = 0; c < static_cast<int64_t>(row.size()); ++c) {
          if (c != id_column) features.push_back(c);
        }
      }
    }
    if (id_column >= 0 && row[id_column] != current_id) {
      current_id = row[id_column];
      sequence = nullptr;
    }
    if (sequence == nullptr) sequence = request.add_sequences();
    for (int64_t c : features) sequence->add_values(row[c]);
    sequence->set_steps(sequence->steps() + 1);
  }
  if (request.sequences().empty()) return UsageError(absl::StrCat(input.name, " holds no rows"));

  v1::PredictResponse response;
  const grpc::Status status =
      session.inference().Predict(session.Context().get(), request, &response);
  if (!status.ok()) return session.Fail(status);
  if (session.json() || args.Get("format") == "json") {
    session.PrintJson(response);
    return 0;
  }
  // CSV: sequence, step (per-step outputs only), then the outputs.
  const bool per_step = !response.outputs().empty() && response.outputs(0).steps() > 1;
  for (int s = 0; s < response.outputs_size(); ++s) {
    const v1::OutputSequence& out = response.outputs(s);
    const int64_t width = out.steps() > 0 ? out.values_size() / out.steps() : 0;
    for (int64_t t = 0; t < out.steps(); ++t) {
      std::printf("%d,%s%s\n", s, per_step ? absl::StrCat(t, ",").c_str() : "",
                  Row(out.values().data() + t * width, width).c_str());
    }
  }
  return 0;
}

struct Latencies {
  std::vector<double> micros;
  void Print() {
    if (micros.empty()) return;
    std::sort(micros.begin(), micros.end());
    auto at = [&](double q) { return micros[static_cast<size_t>(q * (micros.size() - 1))]; };
    std::fprintf(stderr, "%zu steps: latency p50 %.0f us, p90 %.0f us, p99 %.0f us, max %.0f us\n",
                 micros.size(), at(0.5), at(0.9), at(0.99), micros.back());
  }
};

int RunStream(const Session& session, const ParsedArgs& args) {
  if (!args.Has("model") && !args.Has("resume")) {
    return UsageError("stream needs --model NAME[:VERSION|@ALIAS] (or --resume SNAPSHOT_FILE)");
  }
  absl::StatusOr<char> delimiter = Delimiter(args);
  if (!delimiter.ok()) return UsageError(std::string(delimiter.status().message()));
  absl::StatusOr<int64_t> horizon = args.GetInt("horizon", 1);
  absl::StatusOr<int64_t> skip = args.GetInt("skip", 0);
  if (!horizon.ok() || !skip.ok()) {
    return UsageError(std::string((!horizon.ok() ? horizon : skip).status().message()));
  }
  Input input;
  if (absl::Status opened = OpenInput(args, &input); !opened.ok()) {
    return UsageError(std::string(opened.message()));
  }
  v1::StepRequest open;
  if (args.Has("resume")) {
    absl::StatusOr<std::string> snapshot =
        core::ReadFileBounded(args.Get("resume"), int64_t{256} << 20, "snapshot");
    if (!snapshot.ok()) return UsageError(std::string(snapshot.status().message()));
    open.mutable_open()->set_resume_from(*std::move(snapshot));
  } else {
    absl::StatusOr<v1::ModelRef> ref = ParseModelRef(args.Get("model"));
    if (!ref.ok()) return UsageError(std::string(ref.status().message()));
    *open.mutable_open()->mutable_model() = *ref;
  }

  std::unique_ptr<grpc::ClientContext> context = session.Context(/*streaming=*/true);
  auto stream = session.inference().StepPredict(context.get());
  v1::StepResponse response;
  if (!stream->Write(open) || !stream->Read(&response)) return session.Fail(stream->Finish());
  const v1::SessionOpened opened = response.opened();
  if (!session.json()) {
    std::fprintf(stderr, "streaming to %s version %lld (%lld inputs, %lld outputs per step)\n",
                 opened.model_name().c_str(), static_cast<long long>(opened.model_version()),
                 static_cast<long long>(opened.input_size()),
                 static_cast<long long>(opened.output_size()));
  }

  RowReader reader(*input.stream, input.name, *delimiter);
  std::vector<int64_t> features;
  int64_t target_column = -1;
  std::vector<float> row;
  Latencies latencies;
  // Evaluation: the prediction made at row t is compared with the target at row t + horizon.
  std::vector<double> predicted, actual;
  int64_t steps = 0;
  int exit_code = 0;
  while (true) {
    absl::StatusOr<RowReader::Row> next = reader.Next(&row);
    if (!next.ok()) {
      exit_code = UsageError(std::string(next.status().message()));
      break;
    }
    if (*next == RowReader::Row::kEnd) break;
    if (*next == RowReader::Row::kBlank) continue;
    if (features.empty()) {
      if (args.Has("features")) {
        absl::StatusOr<std::vector<int64_t>> chosen = reader.Columns(args.Get("features"));
        if (!chosen.ok()) {
          exit_code = UsageError(std::string(chosen.status().message()));
          break;
        }
        features = *chosen;
      } else {
        for (int64_t c = 0; c < static_cast<int64_t>(row.size()); ++c) features.push_back(c);
      }
      if (args.Has("target")) {
        absl::StatusOr<std::vector<int64_t>> target = reader.Columns(args.Get("target"));
        if (!target.ok() || target->size() != 1) {
          exit_code = UsageError(target.ok() ? "--target names one column"
                                             : std::string(target.status().message()));
          break;
        }
        target_column = (*target)[0];
      }
      if (static_cast<int64_t>(features.size()) != opened.input_size()) {
        exit_code = UsageError(absl::StrCat(input.name, " gives ", features.size(),
                                            " inputs per row; the model takes ",
                                            opened.input_size(), " (choose them with --features)"));
        break;
      }
    }
    if (target_column >= 0) actual.push_back(row[target_column]);
    v1::StepRequest step;
    step.mutable_step()->set_steps(1);
    for (int64_t c : features) step.mutable_step()->add_values(row[c]);
    const auto start = std::chrono::steady_clock::now();
    if (!stream->Write(step) || !stream->Read(&response)) break;
    const double micros =
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count();
    latencies.micros.push_back(micros);
    const v1::StepOutput& out = response.output();
    if (session.json()) {
      session.PrintJson(response);
    } else {
      std::printf("%lld,%s\n", static_cast<long long>(steps),
                  Row(out.values().data(), out.values_size()).c_str());
      if (args.Has("verbose"))
        std::fprintf(stderr, "step %lld: %.0f us\n", static_cast<long long>(steps), micros);
      std::fflush(stdout);
    }
    if (target_column >= 0 && out.values_size() > 0) predicted.push_back(out.values(0));
    ++steps;
  }
  if (exit_code == 0 && args.Has("snapshot-file")) {
    v1::StepRequest ask;
    ask.set_snapshot(true);
    if (stream->Write(ask) && stream->Read(&response)) {
      std::ofstream out(args.Get("snapshot-file"), std::ios::binary);
      out << response.snapshot().data();
      if (!session.json()) {
        std::fprintf(stderr, "state saved to %s (resume with --resume)\n",
                     args.Get("snapshot-file").c_str());
      }
    }
  }
  stream->WritesDone();
  const grpc::Status status = stream->Finish();
  if (!status.ok()) return session.Fail(status);
  if (exit_code != 0) return exit_code;
  if (args.Has("verbose") || (!session.json() && target_column >= 0)) latencies.Print();

  if (target_column >= 0) {
    // Pairs (prediction at t, truth at t + horizon), after the warm-up rows.
    double squared = 0, naive_squared = 0;
    int64_t count = 0;
    PlotSeries truth{"actual", '.', {}, {}}, forecast{"forecast", '*', {}, {}};
    for (int64_t t = *skip; t + *horizon < static_cast<int64_t>(actual.size()) &&
                            t < static_cast<int64_t>(predicted.size());
         ++t) {
      const double error = predicted[t] - actual[t + *horizon];
      const double naive = actual[t] - actual[t + *horizon];  // "tomorrow = today"
      squared += error * error;
      naive_squared += naive * naive;
      ++count;
      truth.x.push_back(static_cast<double>(t + *horizon));
      truth.y.push_back(actual[t + *horizon]);
      forecast.x.push_back(static_cast<double>(t + *horizon));
      forecast.y.push_back(predicted[t]);
    }
    if (count == 0) {
      std::fprintf(stderr, "no step to evaluate (need more than --skip + --horizon rows)\n");
    } else {
      const double rmse = std::sqrt(squared / count);
      const double naive_rmse = std::sqrt(naive_squared / count);
      std::fprintf(
          stderr, "RMSE %.5g over %lld steps (repeating the last value: %.5g, %.1fx worse)\n", rmse,
          static_cast<long long>(count), naive_rmse, rmse > 0 ? naive_rmse / rmse : 0.0);
      if (args.Has("plot")) {
        PlotOptions options{"forecast (*) against the actual series (.)",
                            "step",
                            args.Get("target"),
                            false,
                            72,
                            16};
        std::fprintf(stderr, "%s", TextPlot({truth, forecast}, options).c_str());
      }
    }
  }
  return 0;
}

}  // namespace

std::vector<Command> PredictCommands() {
  return {
      {{"predict",
        "[FILE]",
        "run whole sequences through a model (rows are timesteps)",
        "Reads FILE (or stdin) as CSV: one timestep per row, a header is detected. A blank line,\n"
        "or a new value in --sequence-column, starts the next sequence. Prints CSV rows\n"
        "\"sequence,step,outputs...\" (per-step models) or \"sequence,outputs...\".",
        {{"model", "MODEL", "name (newest version), name:VERSION or name@ALIAS (required)"},
         {"features", "COLUMNS", "the input columns by name or 0-based position (default: all)"},
         {"sequence-column", "COLUMN", "rows with the same value form one sequence"},
         {"delimiter", "C", "the field separator (default ,)"},
         {"states", "", "also return the final recurrent states (JSON output)"},
         {"format", "FORMAT", "csv (default) or json"}},
        "  recurrent predict --model mg@production window.csv\n"
        "  printf '0.1,0\\n0.5,1\\n0.3,0\\n' | recurrent predict --model adder --json",
        0,
        1},
       RunPredict},
      {{"stream",
        "[FILE]",
        "stream timesteps one by one; each prediction prints as it arrives",
        "Reads FILE (or stdin) line by line, sends each row as one timestep of a StepPredict\n"
        "session (the server keeps the recurrent state) and prints \"step,outputs...\" at once.\n"
        "With --target it also scores the forecasts: the prediction at row t against the\n"
        "target column at row t + --horizon, as an RMSE (and a plot with --plot).",
        {{"model", "MODEL", "name, name:VERSION or name@ALIAS (pinned for the whole stream)"},
         {"features", "COLUMNS", "the input columns by name or position (default: all)"},
         {"target", "COLUMN", "score the forecasts against this column"},
         {"horizon", "N", "the forecast is for N rows ahead (default 1)"},
         {"skip", "N", "leave the first N predictions (warm-up) out of the score"},
         {"plot", "", "plot forecasts against the actual series (with --target)"},
         {"verbose", "", "per-step round-trip latency on stderr, and a summary"},
         {"snapshot-file", "FILE", "save the stream's state at the end"},
         {"resume", "FILE", "start from a saved state (same model version)"},
         {"delimiter", "C", "the field separator (default ,)"}},
        "  recurrent stream --model mg@production series.csv --target x --plot\n"
        "  tail -f sensor.csv | recurrent stream --model mg@production --verbose",
        0,
        1},
       RunStream},
  };
}

}  // namespace recurrent::client
