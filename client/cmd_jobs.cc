// recurrent jobs list|show|watch|cancel, and the job watcher `train --watch` shares.
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/commands.h"
#include "client/format.h"
#include "client/plot.h"

namespace recurrent::client {
namespace {

constexpr int kBarWidth = 28;

void PrintOutcome(const v1::Job& job) {
  switch (job.state()) {
    case v1::JOB_STATE_SUCCEEDED:
      std::printf("job %s succeeded (%s): model %s version %lld\n", job.id().c_str(),
                  job.stop_reason().c_str(), job.model_name().c_str(),
                  static_cast<long long>(job.model_version()));
      break;
    case v1::JOB_STATE_FAILED:
      std::printf("job %s failed: %s\n", job.id().c_str(), job.error().c_str());
      break;
    default:
      std::printf("job %s %s\n", job.id().c_str(), JobStateName(job.state()).c_str());
  }
}

std::vector<PlotSeries> LossSeries(const v1::Job& job) {
  PlotSeries train{"train loss", '*', {}, {}}, validation{"validation loss", 'o', {}, {}};
  for (const v1::EpochLoss& epoch : job.loss_history()) {
    // Epochs count from 1 here, as in the progress lines (the API's are 0-based).
    train.x.push_back(static_cast<double>(epoch.epoch() + 1));
    train.y.push_back(epoch.train_loss());
    if (epoch.has_validation_loss()) {
      validation.x.push_back(static_cast<double>(epoch.epoch() + 1));
      validation.y.push_back(epoch.validation_loss());
    }
  }
  std::vector<PlotSeries> series{train};
  if (!validation.x.empty()) series.push_back(validation);
  return series;
}

v1::JobState ParseState(const std::string& word, bool* ok) {
  *ok = true;
  for (v1::JobState state : {v1::JOB_STATE_QUEUED, v1::JOB_STATE_RUNNING, v1::JOB_STATE_SUCCEEDED,
                             v1::JOB_STATE_FAILED, v1::JOB_STATE_CANCELLED}) {
    if (JobStateName(state) == word) return state;
  }
  *ok = word.empty();
  return v1::JOB_STATE_UNSPECIFIED;
}

int RunList(const Session& session, const ParsedArgs& args) {
  v1::ListJobsRequest request;
  bool ok = true;
  request.set_state(ParseState(args.Get("state"), &ok));
  if (!ok) {
    return UsageError(absl::StrCat("--state is \"", args.Get("state"),
                                   "\"; choose queued, running, succeeded, failed or cancelled"));
  }
  request.set_model_name(args.Get("model"));
  absl::StatusOr<int64_t> limit = args.GetInt("limit", 0);
  if (!limit.ok()) return UsageError(std::string(limit.status().message()));
  request.set_limit(static_cast<int32_t>(*limit));
  v1::ListJobsResponse response;
  const grpc::Status status =
      session.training().ListJobs(session.Context().get(), request, &response);
  if (!status.ok()) return session.Fail(status);
  if (session.json()) {
    session.PrintJson(response);
    return 0;
  }
  if (response.jobs().empty()) {
    std::printf("no jobs\n");
    return 0;
  }
  Table table({"JOB", "MODEL", "STATE", "VERSION", "EPOCH", "LOSS", "VAL LOSS", "CREATED"},
              {false, false, false, true, true, true, true, false});
  for (const v1::Job& job : response.jobs()) {
    const v1::JobProgress& p = job.progress();
    table.AddRow({job.id(), job.model_name(), JobStateName(job.state()),
                  job.model_version() > 0 ? absl::StrCat(job.model_version()) : "-",
                  p.step() > 0 ? absl::StrCat(p.epoch() + 1, "/", p.max_epochs()) : "-",
                  p.step() > 0 ? FormatLoss(p.train_loss()) : "-",
                  p.has_validation_loss() ? FormatLoss(p.validation_loss()) : "-",
                  FormatTimestamp(job.created())});
  }
  table.Print(stdout);
  return 0;
}

int RunShow(const Session& session, const ParsedArgs& args) {
  v1::GetJobRequest request;
  request.set_job_id(args.operands()[0]);
  v1::Job job;
  const grpc::Status status = session.training().GetJob(session.Context().get(), request, &job);
  if (!status.ok()) return session.Fail(status);
  if (args.Has("plot-file")) {
    PlotOptions options{absl::StrCat("Job ", job.id(), ": ", job.model_name()), "epoch", "loss",
                        true};
    std::ofstream out(args.Get("plot-file"));
    out << SvgPlot(LossSeries(job), options);
    if (!out) {
      return UsageError(absl::StrCat("cannot write ", args.Get("plot-file")));
    }
    if (!session.json()) std::fprintf(stderr, "wrote %s\n", args.Get("plot-file").c_str());
  }
  if (session.json()) {
    session.PrintJson(job);
    return 0;
  }
  Table table({"", ""});
  table.AddRow({"job", job.id()});
  table.AddRow({"model", job.model_name()});
  table.AddRow({"state", JobStateName(job.state())});
  if (job.model_version() > 0) table.AddRow({"version", absl::StrCat(job.model_version())});
  if (!job.stop_reason().empty()) table.AddRow({"stop reason", job.stop_reason()});
  if (!job.error().empty()) table.AddRow({"error", job.error()});
  table.AddRow({"created", FormatTimestamp(job.created())});
  table.AddRow({"started", FormatTimestamp(job.started())});
  table.AddRow({"finished", FormatTimestamp(job.finished())});
  table.AddRow({"progress", ProgressLine(job, 0)});
  table.Print(stdout);
  if (!job.loss_history().empty()) {
    std::printf("\n");
    Table losses({"EPOCH", "TRAIN LOSS", "VAL LOSS"}, {true, true, true});
    for (const v1::EpochLoss& epoch : job.loss_history()) {
      losses.AddRow({absl::StrCat(epoch.epoch() + 1), FormatLoss(epoch.train_loss()),
                     epoch.has_validation_loss() ? FormatLoss(epoch.validation_loss()) : "-"});
    }
    losses.Print(stdout);
  }
  if (args.Has("plot")) {
    PlotOptions options{"loss per epoch", "epoch", "loss", true};
    std::printf("\n%s", TextPlot(LossSeries(job), options).c_str());
  }
  return 0;
}

int RunWatch(const Session& session, const ParsedArgs& args) {
  return WatchJob(session, args.operands()[0]);
}

int RunCancel(const Session& session, const ParsedArgs& args) {
  v1::CancelJobRequest request;
  request.set_job_id(args.operands()[0]);
  v1::Job job;
  const grpc::Status status = session.training().CancelJob(session.Context().get(), request, &job);
  if (!status.ok()) return session.Fail(status);
  if (session.json()) {
    session.PrintJson(job);
  } else {
    std::printf("job %s: %s\n", job.id().c_str(), JobStateName(job.state()).c_str());
  }
  return 0;
}

}  // namespace

int WatchJob(const Session& session, const std::string& job_id) {
  v1::WatchJobRequest request;
  request.set_job_id(job_id);
  std::unique_ptr<grpc::ClientContext> context = session.Context(/*streaming=*/true);
  auto reader = session.training().WatchJob(context.get(), request);
  const bool live = !session.json() && IsTty(stdout);
  v1::JobEvent event;
  v1::Job last;
  int epochs_reported = 0;
  v1::JobState state_reported = v1::JOB_STATE_UNSPECIFIED;
  while (reader->Read(&event)) {
    last = event.job();
    if (session.json()) {
      session.PrintJson(event);
      continue;
    }
    if (live) {
      std::printf("\r\x1b[K%s", ProgressLine(last, kBarWidth).c_str());
      std::fflush(stdout);
      continue;
    }
    // Plain output: a line per finished epoch and per state change.
    const bool new_epoch = last.loss_history_size() > epochs_reported;
    if (new_epoch || last.state() != state_reported) {
      std::printf("%s  %s\n", JobStateName(last.state()).c_str(), ProgressLine(last, 0).c_str());
      std::fflush(stdout);
      epochs_reported = last.loss_history_size();
      state_reported = last.state();
    }
  }
  const grpc::Status status = reader->Finish();
  if (live) std::printf("\n");
  if (!status.ok()) return session.Fail(status);
  if (!IsTerminal(last.state())) {
    return session.Fail(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                     "the server ended the watch before the job finished"));
  }
  if (!session.json()) PrintOutcome(last);
  return last.state() == v1::JOB_STATE_SUCCEEDED ? 0 : kExitFailed;
}

std::vector<Command> JobCommands() {
  const std::string job_examples = "  recurrent jobs list --state running\n";
  return {
      {{"jobs list",
        "",
        "list training jobs, newest first",
        "",
        {{"state", "STATE", "only queued, running, succeeded, failed or cancelled jobs"},
         {"model", "NAME", "only jobs training this model"},
         {"limit", "N", "at most N jobs"}},
        "  recurrent jobs list\n  recurrent jobs list --state failed --json"},
       RunList},
      {{"jobs show",
        "JOB_ID",
        "a job's state, progress and loss history",
        "",
        {{"plot", "", "draw the loss curves in the terminal"},
         {"plot-file", "FILE", "write the loss curves as an SVG image"}},
        "  recurrent jobs show job-000001 --plot\n"
        "  recurrent jobs show job-000001 --plot-file loss.svg",
        1,
        1},
       RunShow},
      {{"jobs watch",
        "JOB_ID",
        "follow a job until it ends (exit 0 if it succeeded)",
        "A live progress bar on a terminal; a line per epoch otherwise; JSON lines with --json.",
        {},
        "  recurrent jobs watch job-000001",
        1,
        1},
       RunWatch},
      {{"jobs cancel",
        "JOB_ID",
        "cancel a queued or running job",
        "",
        {},
        "  recurrent jobs cancel job-000001",
        1,
        1},
       RunCancel},
  };
}

}  // namespace recurrent::client
