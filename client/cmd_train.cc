// recurrent train / recurrent upload.
#include <cstdio>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "client/commands.h"
#include "client/format.h"

namespace recurrent::client {
namespace {

constexpr size_t kUploadChunkBytes = 1 << 20;

// Maps a flag's word to an enum value, or says which words are valid.
template <typename Enum>
absl::StatusOr<Enum> Choose(const ParsedArgs& args, const std::string& name, Enum fallback,
                            const std::map<std::string, Enum>& choices) {
  if (!args.Has(name)) return fallback;
  const auto it = choices.find(args.Get(name));
  if (it != choices.end()) return it->second;
  std::string valid;
  for (const auto& [word, value] : choices)
    absl::StrAppend(&valid, valid.empty() ? "" : ", ", word);
  return absl::InvalidArgumentError(
      absl::StrCat("--", name, " is \"", args.Get(name), "\"; choose one of: ", valid));
}

std::vector<std::string> SplitList(const std::string& text) {
  return absl::StrSplit(text, ',', absl::SkipEmpty());
}

// The CSV options shared by `train --csv` and `upload`: the header is read here so that the
// feature columns default to every column.
absl::StatusOr<v1::CsvFormat> CsvFormatFromArgs(const ParsedArgs& args, const std::string& path) {
  v1::CsvFormat format;
  format.set_has_header(!args.Has("no-header"));
  format.set_delimiter(args.Get("delimiter", ","));
  if (format.delimiter().size() != 1) {
    return absl::InvalidArgumentError("--delimiter is one character");
  }
  if (!args.Has("target")) {
    return absl::InvalidArgumentError(
        "a CSV needs --target COLUMN[,COLUMN...] (the column(s) to forecast)");
  }
  for (const std::string& column : SplitList(args.Get("target"))) format.add_target_columns(column);
  std::vector<std::string> features = SplitList(args.Get("features"));
  if (features.empty()) {
    if (!format.has_header()) {
      return absl::InvalidArgumentError("without a header, name the --features columns");
    }
    std::ifstream in(path);
    std::string header;
    if (!in || !std::getline(in, header)) {
      return absl::NotFoundError(absl::StrCat("cannot read ", path));
    }
    for (absl::string_view column : absl::StrSplit(header, format.delimiter()[0])) {
      features.emplace_back(absl::StripAsciiWhitespace(column));
    }
  }
  for (const std::string& column : features) format.add_feature_columns(column);
  absl::StatusOr<int64_t> window = args.GetInt("window", 32);
  absl::StatusOr<int64_t> horizon = args.GetInt("horizon", 1);
  absl::StatusOr<int64_t> stride = args.GetInt("stride", 1);
  for (const auto* value : {&window, &horizon, &stride}) {
    if (!value->ok()) return value->status();
  }
  format.mutable_window()->set_window(*window);
  format.mutable_window()->set_horizon(*horizon);
  format.mutable_window()->set_stride(*stride);
  format.mutable_window()->set_per_step_targets(args.Has("per-step"));
  return format;
}

// Streams the file to UploadDataset in chunks.
grpc::Status UploadCsv(const Session& session, const std::string& path, const v1::CsvFormat& format,
                       const std::string& name, v1::DatasetInfo* info) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return grpc::Status(grpc::StatusCode::NOT_FOUND, absl::StrCat("cannot open ", path));
  std::unique_ptr<grpc::ClientContext> context = session.Context(/*streaming=*/true);
  auto writer = session.training().UploadDataset(context.get(), info);
  v1::UploadDatasetRequest header;
  header.mutable_header()->set_name(name);
  *header.mutable_header()->mutable_csv() = format;
  bool sending = writer->Write(header);
  std::string chunk(kUploadChunkBytes, '\0');
  while (sending && in) {
    in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
    if (in.gcount() == 0) break;
    v1::UploadDatasetRequest part;
    part.set_csv_chunk(chunk.data(), static_cast<size_t>(in.gcount()));
    sending = writer->Write(part);
  }
  writer->WritesDone();
  return writer->Finish();
}

const std::vector<OptionSpec>& CsvOptions() {
  static const auto* const options = new std::vector<OptionSpec>{
      {"target", "COLUMNS", "CSV: the column(s) to forecast, comma-separated"},
      {"features", "COLUMNS", "CSV: the input columns (default: every column)"},
      {"window", "N", "input steps per example (default 32)"},
      {"horizon", "N", "forecast this many steps past the window (default 1)"},
      {"stride", "N", "steps between consecutive windows (default 1)"},
      {"per-step", "", "a target on every step of a window (for models streamed over a series)"},
      {"no-header", "", "CSV: the first line is data, not column names"},
      {"delimiter", "C", "CSV: the field separator (default ,)"},
  };
  return *options;
}

// The data source from the flags. A CSV is not uploaded here: `csv` gets its format, and the
// caller uploads it once the rest of the request is known to be well-formed. Every error is bad
// usage.
absl::Status FillData(const ParsedArgs& args, v1::DataSource* data,
                      std::optional<v1::CsvFormat>* csv) {
  const int sources = args.Has("csv") + args.Has("dataset") + args.Has("generator");
  if (sources != 1) {
    return absl::InvalidArgumentError(
        "give exactly one data source: --csv FILE, --dataset ID or --generator NAME");
  }
  if (args.Has("dataset")) {
    data->set_dataset_id(args.Get("dataset"));
    return absl::OkStatus();
  }
  if (args.Has("csv")) {
    absl::StatusOr<v1::CsvFormat> format = CsvFormatFromArgs(args, args.Get("csv"));
    if (!format.ok()) return format.status();
    *csv = *std::move(format);
    return absl::OkStatus();
  }
  v1::GeneratorSpec* generator = data->mutable_generator();
  absl::StatusOr<int64_t> seed = args.GetInt("data-seed", 1);
  absl::StatusOr<int64_t> sequences = args.GetInt("sequences", 2000);
  absl::StatusOr<int64_t> length = args.GetInt("length", 50);
  absl::StatusOr<int64_t> series = args.GetInt("series-length", 3000);
  absl::StatusOr<int64_t> window = args.GetInt("window", 32);
  absl::StatusOr<int64_t> horizon = args.GetInt("horizon", 1);
  absl::StatusOr<int64_t> stride = args.GetInt("stride", 1);
  absl::StatusOr<double> tau = args.GetDouble("tau", 17.0);
  for (const auto* value : {&seed, &sequences, &length, &series, &window, &horizon, &stride}) {
    if (!value->ok()) return value->status();
  }
  if (!tau.ok()) return tau.status();
  generator->set_seed(static_cast<uint64_t>(*seed));
  v1::WindowSpec windows;
  windows.set_window(*window);
  windows.set_horizon(*horizon);
  windows.set_stride(*stride);
  windows.set_per_step_targets(args.Has("per-step"));
  const std::string name = args.Get("generator");
  if (name == "adding") {
    generator->mutable_adding_problem()->set_sequences(*sequences);
    generator->mutable_adding_problem()->set_length(*length);
  } else if (name == "copying") {
    generator->mutable_copying_memory()->set_sequences(*sequences);
    generator->mutable_copying_memory()->set_delay(*length);
  } else if (name == "mackey-glass") {
    generator->mutable_mackey_glass()->set_series_length(*series);
    *generator->mutable_mackey_glass()->mutable_window() = windows;
    generator->mutable_mackey_glass()->set_tau(*tau);
  } else if (name == "sines") {
    generator->mutable_noisy_sines()->set_series_length(*series);
    *generator->mutable_noisy_sines()->mutable_window() = windows;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "--generator is \"", name, "\"; choose one of: adding, copying, mackey-glass, sines"));
  }
  return absl::OkStatus();
}

absl::Status FillSpec(const ParsedArgs& args, v1::ModelSpec* spec) {
  absl::StatusOr<v1::CellType> cell = Choose<v1::CellType>(args, "cell", v1::CELL_TYPE_LSTM,
                                                           {{"lstm", v1::CELL_TYPE_LSTM},
                                                            {"gru", v1::CELL_TYPE_GRU},
                                                            {"rnn", v1::CELL_TYPE_RNN_TANH},
                                                            {"rnn-relu", v1::CELL_TYPE_RNN_RELU}});
  absl::StatusOr<v1::HeadMode> head = Choose<v1::HeadMode>(
      args, "head", v1::HEAD_MODE_UNSPECIFIED,
      {{"last", v1::HEAD_MODE_LAST_STEP}, {"per-step", v1::HEAD_MODE_PER_STEP}});
  absl::StatusOr<v1::LossType> loss = Choose<v1::LossType>(
      args, "loss", v1::LOSS_TYPE_UNSPECIFIED,
      {{"mse", v1::LOSS_TYPE_MSE}, {"cross-entropy", v1::LOSS_TYPE_CROSS_ENTROPY}});
  absl::StatusOr<int64_t> hidden = args.GetInt("hidden", 32);
  absl::StatusOr<int64_t> layers = args.GetInt("layers", 1);
  absl::StatusOr<int64_t> inputs = args.GetInt("inputs", 0);
  absl::StatusOr<int64_t> outputs = args.GetInt("outputs", 0);
  if (!cell.ok()) return cell.status();
  if (!head.ok()) return head.status();
  if (!loss.ok()) return loss.status();
  for (const auto* value : {&hidden, &layers, &inputs, &outputs}) {
    if (!value->ok()) return value->status();
  }
  spec->set_cell(*cell);
  spec->set_hidden_size(*hidden);
  spec->set_num_layers(*layers);
  spec->set_bidirectional(args.Has("bidirectional"));
  spec->set_head(*head);
  spec->set_loss(*loss);
  spec->set_input_size(*inputs);
  spec->set_output_size(*outputs);
  return absl::OkStatus();
}

absl::Status FillOptions(const ParsedArgs& args, v1::TrainingOptions* options) {
  absl::StatusOr<v1::OptimizerKind> optimizer =
      Choose<v1::OptimizerKind>(args, "optimizer", v1::OPTIMIZER_KIND_ADAM,
                                {{"adam", v1::OPTIMIZER_KIND_ADAM},
                                 {"adamw", v1::OPTIMIZER_KIND_ADAMW},
                                 {"sgd", v1::OPTIMIZER_KIND_SGD},
                                 {"rmsprop", v1::OPTIMIZER_KIND_RMSPROP}});
  absl::StatusOr<v1::ScheduleKind> schedule =
      Choose<v1::ScheduleKind>(args, "schedule", v1::SCHEDULE_KIND_CONSTANT,
                               {{"constant", v1::SCHEDULE_KIND_CONSTANT},
                                {"step", v1::SCHEDULE_KIND_STEP_DECAY},
                                {"cosine", v1::SCHEDULE_KIND_COSINE},
                                {"plateau", v1::SCHEDULE_KIND_REDUCE_ON_PLATEAU}});
  if (!optimizer.ok()) return optimizer.status();
  if (!schedule.ok()) return schedule.status();
  options->set_optimizer(*optimizer);
  options->set_schedule(*schedule);
  struct IntField {
    const char* flag;
    void (v1::TrainingOptions::*set)(int64_t);
  };
  for (const IntField& field : std::initializer_list<IntField>{
           {"epochs", &v1::TrainingOptions::set_max_epochs},
           {"batch-size", &v1::TrainingOptions::set_batch_size},
           {"max-steps", &v1::TrainingOptions::set_max_steps},
           {"schedule-step", &v1::TrainingOptions::set_schedule_step_size},
           {"schedule-t-max", &v1::TrainingOptions::set_schedule_t_max},
           {"schedule-patience", &v1::TrainingOptions::set_schedule_patience},
           {"tbptt", &v1::TrainingOptions::set_tbptt_steps},
           {"patience", &v1::TrainingOptions::set_early_stopping_patience},
           {"chrono", &v1::TrainingOptions::set_chrono_max_steps}}) {
    if (!args.Has(field.flag)) continue;
    absl::StatusOr<int64_t> value = args.GetInt(field.flag, 0);
    if (!value.ok()) return value.status();
    (options->*field.set)(*value);
  }
  struct DoubleField {
    const char* flag;
    void (v1::TrainingOptions::*set)(double);
  };
  for (const DoubleField& field : std::initializer_list<DoubleField>{
           {"time-budget", &v1::TrainingOptions::set_time_budget_seconds},
           {"lr", &v1::TrainingOptions::set_learning_rate},
           {"momentum", &v1::TrainingOptions::set_momentum},
           {"weight-decay", &v1::TrainingOptions::set_weight_decay},
           {"schedule-gamma", &v1::TrainingOptions::set_schedule_gamma},
           {"schedule-factor", &v1::TrainingOptions::set_schedule_factor},
           {"clip-norm", &v1::TrainingOptions::set_clip_norm},
           {"clip-value", &v1::TrainingOptions::set_clip_value},
           {"dropout", &v1::TrainingOptions::set_dropout},
           {"forget-bias", &v1::TrainingOptions::set_forget_gate_bias},
           {"validation-split", &v1::TrainingOptions::set_validation_split},
           {"min-delta", &v1::TrainingOptions::set_early_stopping_min_delta}}) {
    if (!args.Has(field.flag)) continue;
    absl::StatusOr<double> value = args.GetDouble(field.flag, 0);
    if (!value.ok()) return value.status();
    (options->*field.set)(*value);
  }
  if (args.Has("seed")) {
    absl::StatusOr<int64_t> seed = args.GetInt("seed", 1);
    if (!seed.ok()) return seed.status();
    options->set_seed(static_cast<uint64_t>(*seed));
  }
  options->set_nesterov(args.Has("nesterov"));
  options->set_early_stopping(args.Has("early-stopping") || args.Has("patience"));
  options->set_normalize_inputs(args.Has("normalize") || args.Has("normalize-inputs"));
  options->set_normalize_targets(args.Has("normalize") || args.Has("normalize-targets"));
  return absl::OkStatus();
}

int RunTrain(const Session& session, const ParsedArgs& args) {
  if (!args.Has("name")) return UsageError("train needs --name: the model name to register");
  v1::TrainRequest request;
  request.set_model_name(args.Get("name"));
  absl::Status filled = FillSpec(args, request.mutable_spec());
  if (filled.ok()) filled = FillOptions(args, request.mutable_options());
  if (filled.ok() && args.Has("from")) {
    absl::StatusOr<v1::ModelRef> from = ParseModelRef(args.Get("from"));
    if (from.ok()) {
      *request.mutable_start_from() = *from;
    } else {
      filled = from.status();
    }
  }
  if (absl::Status labels = AddLabels(args, request.mutable_labels()); !labels.ok()) {
    return UsageError(std::string(labels.message()));
  }
  if (!filled.ok()) return UsageError(std::string(filled.message()));
  std::optional<v1::CsvFormat> csv;
  if (absl::Status data = FillData(args, request.mutable_data(), &csv); !data.ok()) {
    return UsageError(std::string(data.message()));
  }
  if (csv.has_value()) {  // uploaded last, once the rest of the request is well-formed
    v1::DatasetInfo info;
    const std::string path = args.Get("csv");
    const grpc::Status uploaded = UploadCsv(session, path, *csv, path, &info);
    if (!uploaded.ok()) {
      return session.Fail(grpc::Status(
          uploaded.error_code(), absl::StrCat("uploading ", path, ": ", uploaded.error_message())));
    }
    if (!session.json()) {
      std::fprintf(stderr, "uploaded %s: data set %s, %lld sequences\n", path.c_str(),
                   info.id().c_str(), static_cast<long long>(info.sequences()));
    }
    request.mutable_data()->set_dataset_id(info.id());
  }
  v1::TrainResponse response;
  const grpc::Status status = session.training().Train(session.Context().get(), request, &response);
  if (!status.ok()) return session.Fail(status);
  if (session.json()) {
    if (!args.Has("watch")) session.PrintJson(response);
  } else {
    std::printf("job %s submitted: training %s\n", response.job_id().c_str(),
                request.model_name().c_str());
    std::fflush(stdout);
  }
  if (!args.Has("watch")) return 0;
  return WatchJob(session, response.job_id());
}

int RunUpload(const Session& session, const ParsedArgs& args) {
  const std::string path = args.operands()[0];
  absl::StatusOr<v1::CsvFormat> format = CsvFormatFromArgs(args, path);
  if (!format.ok()) return UsageError(std::string(format.status().message()));
  v1::DatasetInfo info;
  const grpc::Status status = UploadCsv(session, path, *format, args.Get("name", path), &info);
  if (!status.ok()) return session.Fail(status);
  if (session.json()) {
    session.PrintJson(info);
  } else {
    std::printf("data set %s: %lld sequences, %lld inputs, %lld targets, fingerprint %s\n",
                info.id().c_str(), static_cast<long long>(info.sequences()),
                static_cast<long long>(info.input_size()),
                static_cast<long long>(info.target_size()), info.fingerprint().c_str());
  }
  return 0;
}

}  // namespace

std::vector<Command> TrainCommands() {
  CommandSpec train{
      "train",
      "",
      "submit a training job (and follow it with --watch)",
      "Data: exactly one of --csv FILE (a series, uploaded and cut into windows), --dataset ID\n"
      "(from `recurrent upload`) or --generator NAME (built in: adding, copying, mackey-glass,\n"
      "sines). Sizes, head and loss default from the data. Unset training options take the\n"
      "server's defaults (Adam, lr 1e-3, batch 32, 10 epochs).",
      {
          {"name", "NAME", "register the trained model under this name (required)"},
          {"csv", "FILE", "train on this CSV series (see --target, --window)"},
          {"dataset", "ID", "train on an uploaded data set"},
          {"generator", "NAME", "train on built-in data: adding, copying, mackey-glass, sines"},
          {"sequences", "N", "generator: sequences (adding, copying; default 2000)"},
          {"length", "T", "generator: sequence length (adding) or delay (copying; default 50)"},
          {"series-length", "N", "generator: series length (mackey-glass, sines; default 3000)"},
          {"tau", "X", "generator: Mackey-Glass delay (default 17)"},
          {"data-seed", "N", "generator: seed of the data (default 1)"},
          {"cell", "KIND", "lstm (default), gru, rnn or rnn-relu"},
          {"hidden", "N", "hidden units per layer (default 32)"},
          {"layers", "N", "stacked layers (default 1)"},
          {"bidirectional", "", "bidirectional layers"},
          {"head", "KIND", "last or per-step (default: from the data)"},
          {"loss", "KIND", "mse or cross-entropy (default: from the data)"},
          {"inputs", "N", "input size (default: from the data)"},
          {"outputs", "N", "output size (default: from the data)"},
          {"epochs", "N", "epochs (default 10)"},
          {"batch-size", "N", "sequences per step (default 32)"},
          {"max-steps", "N", "stop after this many steps"},
          {"time-budget", "SECONDS", "stop after this much training time"},
          {"seed", "N", "seed of initialization, shuffling and dropout (default 1)"},
          {"optimizer", "KIND", "adam (default), adamw, sgd or rmsprop"},
          {"lr", "X", "learning rate (default 1e-3)"},
          {"momentum", "X", "SGD/RMSprop momentum"},
          {"nesterov", "", "Nesterov momentum (SGD)"},
          {"weight-decay", "X", "L2 (decoupled for adamw)"},
          {"schedule", "KIND", "constant (default), step, cosine or plateau"},
          {"schedule-step", "N", "step decay: epochs per decay"},
          {"schedule-gamma", "X", "step decay: factor"},
          {"schedule-t-max", "N", "cosine: epochs of the half cycle"},
          {"schedule-factor", "X", "plateau: factor"},
          {"schedule-patience", "N", "plateau: epochs without improvement"},
          {"clip-norm", "X", "clip the gradient's global norm"},
          {"clip-value", "X", "clip each gradient element"},
          {"dropout", "X", "dropout between layers"},
          {"tbptt", "N", "truncated backpropagation through time, chunks of N steps"},
          {"forget-bias", "X", "LSTM forget-gate bias at initialization"},
          {"chrono", "T", "LSTM chrono initialization for dependencies up to T steps"},
          {"validation-split", "X", "hold out this fraction for validation"},
          {"early-stopping", "", "stop when the validation loss stops improving"},
          {"patience", "N", "early stopping: epochs without improvement (implies it)"},
          {"min-delta", "X", "early stopping: the smallest improvement that counts"},
          {"normalize", "", "normalize inputs and targets (stored with the model)"},
          {"normalize-inputs", "", "normalize inputs only"},
          {"normalize-targets", "", "normalize targets only"},
          {"from", "MODEL", "fine-tune a registered version: name, name:3 or name@alias"},
          {"label", "KEY=VALUE", "a label on the registered version (repeatable)", true},
          {"watch", "", "follow the job until it ends"},
      },
      "  recurrent train --name mg --generator mackey-glass --window 32 --normalize --watch\n"
      "  recurrent train --name adder --generator adding --length 50 --cell gru --hidden 64 \\\n"
      "      --epochs 20 --clip-norm 1 --validation-split 0.1 --early-stopping --watch\n"
      "  recurrent train --name load --csv load.csv --target kw --window 48 --normalize --watch\n"
      "  recurrent train --name mg --from mg@production --generator mackey-glass --epochs 2"};
  for (const OptionSpec& option : CsvOptions()) {
    bool present = false;
    for (const OptionSpec& existing : train.options) present |= existing.name == option.name;
    if (!present) train.options.push_back(option);
  }
  CommandSpec upload{"upload",
                     "FILE",
                     "upload a CSV series as a data set (prints its id for train --dataset)",
                     "The series is cut into forecasting windows on the server: --window steps of "
                     "the --features\ncolumns in, the --target column(s) --horizon steps later "
                     "out.",
                     CsvOptions(),
                     "  recurrent upload load.csv --target kw --window 48\n"
                     "  recurrent train --name load --dataset ds-1a2b3c4d5e6f7a8b --watch",
                     1,
                     1};
  upload.options.push_back({"name", "NAME", "a name for the data set (default: the file name)"});
  return {{train, RunTrain}, {upload, RunUpload}};
}

}  // namespace recurrent::client
