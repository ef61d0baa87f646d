// End to end: the real `recurrent` CLI against the real recurrentd, for every subcommand, its
// error paths (server down, unknown model, bad CSV line, bad flags) and its --json output parsed
// back into the API's messages.
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/util/json_util.h"
#include "grpc/health/v1/health.pb.h"
#include "gtest/gtest.h"
#include "tests/e2e/server_process.h"

namespace recurrent::e2e {
namespace {

struct Result {
  int code = -1;
  std::string out;
  std::string err;
};

std::string Quote(const std::string& arg) {
  std::string quoted = "'";
  for (char c : arg) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

template <typename Message>
Message ParseJson(const std::string& json) {
  Message message;
  const auto status = google::protobuf::util::JsonStringToMessage(json, &message);
  EXPECT_TRUE(status.ok()) << status.ToString() << " in: " << json;
  return message;
}

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (std::filesystem::temp_directory_path() /
            absl::StrCat("recurrent-cli-",
                         ::testing::UnitTest::GetInstance()->current_test_info()->name()))
               .string();
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    server_.reset();
    std::filesystem::remove_all(dir_);
  }

  void StartServer() {
    port_ = FreePort();
    server_ = std::make_unique<Server>(dir_ + "/data", port_, FreePort());
    ASSERT_TRUE(server_->Ready());
  }

  // Runs `recurrent --server ... args` with `input` on stdin (stdout is a file, not a terminal).
  Result Run(const std::vector<std::string>& args, const std::string& input = "") {
    const std::string in = dir_ + "/stdin", out = dir_ + "/stdout", err = dir_ + "/stderr";
    std::ofstream(in) << input;
    std::string command = Quote(RECURRENT_CLI_PATH);
    if (port_ > 0) command += " --server 127.0.0.1:" + std::to_string(port_);
    for (const std::string& arg : args) command += " " + Quote(arg);
    command += " <" + in + " >" + out + " 2>" + err;
    const int status = std::system(command.c_str());
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, Slurp(out), Slurp(err)};
  }

  // Trains a small adding-problem model through the CLI and returns its job id.
  std::string TrainAdder(const std::string& name) {
    const Result trained =
        Run({"train", "--name", name, "--generator", "adding", "--sequences", "256", "--length",
             "8", "--hidden", "8", "--epochs", "3", "--validation-split", "0.25", "--json"});
    EXPECT_EQ(trained.code, 0) << trained.err;
    const auto response = ParseJson<v1::TrainResponse>(trained.out);
    const Result watched = Run({"jobs", "watch", response.job_id()});
    EXPECT_EQ(watched.code, 0) << watched.out << watched.err;
    return response.job_id();
  }

  std::string dir_;
  int port_ = 0;
  std::unique_ptr<Server> server_;
};

TEST_F(CliTest, AServerThatIsDownIsExitCode3WithAHint) {
  port_ = FreePort();  // nothing listens there
  const Result result = Run({"models", "list", "--timeout", "5"});
  EXPECT_EQ(result.code, 3);
  EXPECT_NE(result.err.find("UNAVAILABLE"), std::string::npos) << result.err;
  EXPECT_NE(result.err.find("is recurrentd running"), std::string::npos) << result.err;
  EXPECT_EQ(Run({"health", "--timeout", "5"}).code, 3);
}

TEST_F(CliTest, EveryCommandHasHelpWithExamplesAndBadUsageIsExitCode2) {
  const Result overview = Run({"--help"});
  EXPECT_EQ(overview.code, 0);
  for (const std::string command :
       {"train", "upload", "jobs list", "jobs show", "jobs watch", "jobs cancel", "models list",
        "models show", "models alias", "models delete", "models import", "models export", "predict",
        "stream", "health", "data mackey-glass"}) {
    EXPECT_NE(overview.out.find(command), std::string::npos) << command;
    std::vector<std::string> args = absl::StrSplit(command, ' ');
    args.push_back("--help");
    const Result help = Run(args);
    EXPECT_EQ(help.code, 0) << command;
    EXPECT_NE(help.out.find("Usage: recurrent " + command), std::string::npos) << help.out;
    EXPECT_NE(help.out.find("Examples:"), std::string::npos) << command;
  }
  const Result unknown_option = Run({"train", "--epocs", "3"});
  EXPECT_EQ(unknown_option.code, 2);
  EXPECT_NE(unknown_option.err.find("unknown option --epocs"), std::string::npos);
  EXPECT_EQ(Run({"frobnicate"}).code, 2);
  EXPECT_EQ(Run({"jobs", "show"}).code, 2);  // a missing operand
  const Result bad_number = Run({"jobs", "list", "--limit", "many"});
  EXPECT_EQ(bad_number.code, 2);
  EXPECT_NE(bad_number.err.find("--limit takes a whole number"), std::string::npos);
  const Result bad_choice = Run({"train", "--name", "x", "--generator", "adding", "--cell", "tcn"});
  EXPECT_EQ(bad_choice.code, 2);
  EXPECT_NE(bad_choice.err.find("choose one of"), std::string::npos) << bad_choice.err;
}

TEST_F(CliTest, TrainWatchListShowPlotAndCancelJobs) {
  StartServer();
  const Result health = Run({"health"});
  EXPECT_EQ(health.code, 0);
  EXPECT_NE(health.out.find("SERVING"), std::string::npos);
  EXPECT_EQ(
      ParseJson<grpc::health::v1::HealthCheckResponse>(Run({"health", "--json"}).out).status(),
      grpc::health::v1::HealthCheckResponse::SERVING);

  // Not a terminal: plain progress lines, one per epoch, then the outcome.
  const Result watched =
      Run({"train", "--name", "adder", "--generator", "adding", "--sequences", "256", "--length",
           "8", "--hidden", "8", "--epochs", "3", "--validation-split", "0.25", "--watch"});
  ASSERT_EQ(watched.code, 0) << watched.out << watched.err;
  EXPECT_NE(watched.out.find("epoch 3/3"), std::string::npos) << watched.out;
  EXPECT_NE(watched.out.find("succeeded (completed): model adder version 1"), std::string::npos)
      << watched.out;
  EXPECT_EQ(watched.out.find('\r'), std::string::npos);  // no live bar into a file

  const auto jobs = ParseJson<v1::ListJobsResponse>(Run({"jobs", "list", "--json"}).out);
  ASSERT_EQ(jobs.jobs_size(), 1);
  const std::string job_id = jobs.jobs(0).id();
  EXPECT_EQ(jobs.jobs(0).state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(jobs.jobs(0).loss_history_size(), 3);
  const Result table = Run({"jobs", "list"});
  EXPECT_NE(table.out.find("JOB"), std::string::npos);
  EXPECT_NE(table.out.find(job_id), std::string::npos);

  const std::string svg = dir_ + "/loss.svg";
  const Result shown = Run({"jobs", "show", job_id, "--plot", "--plot-file", svg});
  ASSERT_EQ(shown.code, 0) << shown.err;
  EXPECT_NE(shown.out.find("loss per epoch"), std::string::npos);
  EXPECT_NE(shown.out.find("validation loss"), std::string::npos);
  const std::string image = Slurp(svg);
  EXPECT_EQ(image.rfind("<svg", 0), 0u);
  EXPECT_NE(image.find("<polyline"), std::string::npos);
  EXPECT_EQ(ParseJson<v1::Job>(Run({"jobs", "show", job_id, "--json"}).out).id(), job_id);

  // --watch with --json: one JobEvent per line, the last one terminal.
  const Result json_watch = Run({"train", "--name", "adder", "--generator", "adding", "--sequences",
                                 "64", "--length", "6", "--epochs", "2", "--watch", "--json"});
  ASSERT_EQ(json_watch.code, 0) << json_watch.err;
  std::vector<std::string> lines = absl::StrSplit(json_watch.out, '\n', absl::SkipEmpty());
  ASSERT_GE(lines.size(), 1u);
  EXPECT_EQ(ParseJson<v1::JobEvent>(lines.back()).job().state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(ParseJson<v1::JobEvent>(lines.back()).job().model_version(), 2);

  // A long job, cancelled: watching it ends with exit code 1 and the state says so.
  const Result long_job = Run({"train", "--name", "slow", "--generator", "adding", "--sequences",
                               "2000", "--length", "50", "--epochs", "10000", "--json"});
  ASSERT_EQ(long_job.code, 0) << long_job.err;
  const std::string slow_id = ParseJson<v1::TrainResponse>(long_job.out).job_id();
  EXPECT_EQ(Run({"jobs", "cancel", slow_id}).code, 0);
  const Result cancelled = Run({"jobs", "watch", slow_id});
  EXPECT_EQ(cancelled.code, 1);
  EXPECT_NE(cancelled.out.find("cancelled"), std::string::npos) << cancelled.out;
  const Result missing = Run({"jobs", "show", "job-nope"});
  EXPECT_EQ(missing.code, 1);
  EXPECT_NE(missing.err.find("NOT_FOUND"), std::string::npos);
}

TEST_F(CliTest, ModelsListShowAliasExportImportAndDelete) {
  StartServer();
  const std::string job_id = TrainAdder("adder");
  const auto listed = ParseJson<v1::ListModelsResponse>(Run({"models", "list", "--json"}).out);
  ASSERT_EQ(listed.models_size(), 1);
  EXPECT_EQ(listed.models(0).name(), "adder");

  EXPECT_EQ(Run({"models", "alias", "adder", "production", "latest"}).code, 0);
  const Result shown = Run({"models", "show", "adder"});
  EXPECT_NE(shown.out.find("production->1"), std::string::npos) << shown.out;
  EXPECT_NE(shown.out.find(job_id), std::string::npos);  // lineage: the job
  EXPECT_NE(shown.out.find("trained with"), std::string::npos);
  const auto info = ParseJson<v1::ModelInfo>(Run({"models", "show", "adder", "--json"}).out);
  ASSERT_EQ(info.versions_size(), 1);
  EXPECT_EQ(info.aliases().at("production"), 1);
  EXPECT_EQ(info.versions(0).training().job_id(), job_id);

  const std::string artifact = dir_ + "/adder.rcnt";
  EXPECT_EQ(Run({"models", "export", "adder@production", artifact}).code, 0);
  EXPECT_GT(std::filesystem::file_size(artifact), 100u);
  const Result imported = Run({"models", "import", "copy", artifact, "--label", "from=export"});
  ASSERT_EQ(imported.code, 0) << imported.err;
  const auto copy = ParseJson<v1::ModelInfo>(Run({"models", "show", "copy", "--json"}).out);
  ASSERT_EQ(copy.versions_size(), 1);
  EXPECT_EQ(copy.versions(0).labels().at("from"), "export");

  // The alias protects version 1; the copy's version can go.
  const Result refused = Run({"models", "delete", "adder", "1"});
  EXPECT_EQ(refused.code, 1);
  EXPECT_NE(refused.err.find("FAILED_PRECONDITION"), std::string::npos) << refused.err;
  EXPECT_EQ(Run({"models", "delete", "copy", "1"}).code, 0);
  EXPECT_EQ(Run({"models", "show", "nope"}).code, 1);
  EXPECT_EQ(Run({"models", "alias", "adder", "production", "seven"}).code, 2);
}

TEST_F(CliTest, PredictAndStreamFromFilesAndStdin) {
  StartServer();
  TrainAdder("adder");
  // Two sequences separated by a blank line, with a header; the adding problem's rows are
  // (value, marker).
  const std::string csv = dir_ + "/inputs.csv";
  std::ofstream(csv) << "value,marker\n0.1,0\n0.5,1\n0.3,0\n0.2,1\n\n0.9,1\n0.4,0\n0.6,1\n";
  const Result predicted = Run({"predict", "--model", "adder", csv});
  ASSERT_EQ(predicted.code, 0) << predicted.err;
  std::vector<std::string> rows = absl::StrSplit(predicted.out, '\n', absl::SkipEmpty());
  ASSERT_EQ(rows.size(), 2u) << predicted.out;  // last-step model: one row per sequence
  const auto response =
      ParseJson<v1::PredictResponse>(Run({"predict", "--model", "adder", csv, "--json"}).out);
  ASSERT_EQ(response.outputs_size(), 2);
  for (int s = 0; s < 2; ++s) {
    const std::vector<std::string> fields = absl::StrSplit(rows[s], ',');
    ASSERT_EQ(fields.size(), 2u);
    EXPECT_EQ(fields[0], std::to_string(s));
    float value = 0;
    ASSERT_TRUE(absl::SimpleAtof(fields[1], &value));
    EXPECT_NEAR(value, response.outputs(s).values(0), 1e-6);
  }

  // The first sequence streamed from stdin: the output after its last step is Predict's.
  const Result streamed =
      Run({"stream", "--model", "adder@production", "--verbose"}, "0.1,0\n0.5,1\n0.3,0\n0.2,1\n");
  EXPECT_EQ(streamed.code, 1) << "no alias `production` yet: " << streamed.err;
  EXPECT_NE(streamed.err.find("NOT_FOUND"), std::string::npos) << streamed.err;
  ASSERT_EQ(Run({"models", "alias", "adder", "production", "1"}).code, 0);
  const Result stream =
      Run({"stream", "--model", "adder@production", "--verbose"}, "0.1,0\n0.5,1\n0.3,0\n0.2,1\n");
  ASSERT_EQ(stream.code, 0) << stream.err;
  std::vector<std::string> steps = absl::StrSplit(stream.out, '\n', absl::SkipEmpty());
  ASSERT_EQ(steps.size(), 4u) << stream.out;
  const std::vector<std::string> last = absl::StrSplit(steps[3], ',');
  EXPECT_EQ(last[0], "3");
  float streamed_value = 0;
  ASSERT_TRUE(absl::SimpleAtof(last[1], &streamed_value));
  EXPECT_NEAR(streamed_value, response.outputs(0).values(0), 1e-5);
  EXPECT_NE(stream.err.find("step 3:"), std::string::npos);  // --verbose latency lines
  EXPECT_NE(stream.err.find("latency p50"), std::string::npos);

  // Errors: an unknown model, a bad CSV line (named), the wrong number of inputs.
  const Result unknown = Run({"predict", "--model", "nope", csv});
  EXPECT_EQ(unknown.code, 1);
  EXPECT_NE(unknown.err.find("NOT_FOUND"), std::string::npos);
  const Result bad_line = Run({"predict", "--model", "adder"}, "0.1,0\n0.5,x\n");
  EXPECT_EQ(bad_line.code, 2);
  EXPECT_NE(bad_line.err.find("stdin line 2: \"x\" is not a number"), std::string::npos)
      << bad_line.err;
  const Result wrong_width = Run({"stream", "--model", "adder"}, "0.1,0,7\n");
  EXPECT_EQ(wrong_width.code, 2);
  EXPECT_NE(wrong_width.err.find("the model takes 2"), std::string::npos) << wrong_width.err;
}

TEST_F(CliTest, UploadACsvSeriesTrainOnItAndScoreAStream) {
  StartServer();
  // A held-out continuation of the built-in series, from the CLI's own data command.
  const Result series = Run({"data", "mackey-glass", "--length", "700"});
  ASSERT_EQ(series.code, 0);
  const std::string csv = dir_ + "/series.csv";
  std::ofstream(csv) << series.out;
  const Result uploaded = Run({"upload", csv, "--target", "x", "--window", "16", "--json"});
  ASSERT_EQ(uploaded.code, 0) << uploaded.err;
  const auto dataset = ParseJson<v1::DatasetInfo>(uploaded.out);
  EXPECT_EQ(dataset.sequences(), 700 - 16 - 1 + 1);
  const Result trained = Run({"train", "--name", "mg", "--dataset", dataset.id(), "--epochs", "2",
                              "--normalize", "--watch"});
  ASSERT_EQ(trained.code, 0) << trained.out << trained.err;
  // --csv does the upload itself.
  const Result direct = Run({"train", "--name", "mg", "--csv", csv, "--target", "x", "--window",
                             "16", "--per-step", "--epochs", "2", "--watch"});
  ASSERT_EQ(direct.code, 0) << direct.out << direct.err;
  const Result scored =
      Run({"stream", "--model", "mg:2", csv, "--target", "x", "--skip", "20", "--plot"});
  ASSERT_EQ(scored.code, 0) << scored.err;
  EXPECT_NE(scored.err.find("RMSE"), std::string::npos) << scored.err;
  EXPECT_NE(scored.err.find("forecast (*) against"), std::string::npos);
  const Result bad_csv = Run({"upload", csv, "--target", "y"});
  EXPECT_EQ(bad_csv.code, 1);
  EXPECT_NE(bad_csv.err.find("y"), std::string::npos) << bad_csv.err;
}

TEST_F(CliTest, ServingAndTrainingReplicasShareTheRegistry) {
  // Two replicas on one data directory, as Kubernetes runs them on a shared volume.
  const int trainer_port = FreePort(), serving_port = FreePort();
  Server trainer(dir_ + "/data", trainer_port, FreePort(), {"--role=training"});
  Server serving(dir_ + "/data", serving_port, FreePort(), {"--role=serving"});
  ASSERT_TRUE(trainer.Ready());
  ASSERT_TRUE(serving.Ready());
  port_ = serving_port;
  const Result refused_train = Run({"train", "--name", "adder", "--generator", "adding"});
  EXPECT_EQ(refused_train.code, 1);
  EXPECT_NE(refused_train.err.find("FAILED_PRECONDITION"), std::string::npos);
  EXPECT_NE(refused_train.err.find("--role=serving"), std::string::npos) << refused_train.err;

  port_ = trainer_port;
  TrainAdder("adder");
  const Result refused_predict = Run({"predict", "--model", "adder"}, "0.1,0\n0.5,1\n");
  EXPECT_EQ(refused_predict.code, 1);
  EXPECT_NE(refused_predict.err.find("--role=training"), std::string::npos) << refused_predict.err;

  // The serving replica finds the version the trainer wrote (its registry rescans the shared
  // directory) and serves it.
  port_ = serving_port;
  Result predicted;
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  do {
    predicted = Run({"predict", "--model", "adder"}, "0.1,0\n0.5,1\n");
    if (predicted.code == 0) break;
    absl::SleepFor(absl::Milliseconds(200));
  } while (absl::Now() < deadline);
  EXPECT_EQ(predicted.code, 0) << predicted.err;
  EXPECT_EQ(std::vector<std::string>(absl::StrSplit(predicted.out, '\n', absl::SkipEmpty())).size(),
            1u);
  EXPECT_EQ(trainer.Stop(), 0);
  EXPECT_EQ(serving.Stop(), 0);
}

}  // namespace
}  // namespace recurrent::e2e
