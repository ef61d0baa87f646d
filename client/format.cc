#include "client/format.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <ctime>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace recurrent::client {

Table::Table(std::vector<std::string> header, std::vector<bool> right_aligned)
    : right_(std::move(right_aligned)) {
  right_.resize(header.size(), false);
  rows_.push_back(std::move(header));
}

void Table::AddRow(std::vector<std::string> cells) {
  cells.resize(rows_[0].size());
  rows_.push_back(std::move(cells));
}

void Table::Print(std::FILE* out) const {
  std::vector<size_t> widths(rows_[0].size(), 0);
  for (const auto& row : rows_) {
    for (size_t c = 0; c < row.size(); ++c) widths[c] = std::max(widths[c], row[c].size());
  }
  const bool headless =
      std::all_of(rows_[0].begin(), rows_[0].end(), [](const std::string& c) { return c.empty(); });
  for (const auto& row : rows_) {
    if (headless && &row == &rows_[0]) continue;
    std::string line;
    for (size_t c = 0; c < row.size(); ++c) {
      const std::string pad(widths[c] - row[c].size(), ' ');
      const bool last = c + 1 == row.size();
      if (right_[c]) {
        absl::StrAppend(&line, pad, row[c]);
      } else {
        absl::StrAppend(&line, row[c], last ? "" : pad);
      }
      if (!last) line += "  ";
    }
    std::fprintf(out, "%s\n", line.c_str());
  }
}

std::string FormatSeconds(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const int64_t s = static_cast<int64_t>(std::llround(seconds));
  if (s < 60) return absl::StrCat(s, "s");
  if (s < 3600) return absl::StrFormat("%dm%02ds", s / 60, s % 60);
  return absl::StrFormat("%dh%02dm", s / 3600, (s % 3600) / 60);
}

std::string FormatTimestamp(const google::protobuf::Timestamp& time) {
  if (time.seconds() == 0) return "-";
  const std::time_t seconds = static_cast<std::time_t>(time.seconds());
  std::tm local{};
  localtime_r(&seconds, &local);
  char buffer[32];
  std::strftime(buffer, sizeof(buffer), "%Y-%m-%d %H:%M:%S", &local);
  return buffer;
}

std::string FormatLoss(double loss) { return absl::StrFormat("%.4g", loss); }

std::string JobStateName(v1::JobState state) {
  switch (state) {
    case v1::JOB_STATE_QUEUED:
      return "queued";
    case v1::JOB_STATE_RUNNING:
      return "running";
    case v1::JOB_STATE_SUCCEEDED:
      return "succeeded";
    case v1::JOB_STATE_FAILED:
      return "failed";
    case v1::JOB_STATE_CANCELLED:
      return "cancelled";
    default:
      return "unknown";
  }
}

bool IsTerminal(v1::JobState state) {
  return state == v1::JOB_STATE_SUCCEEDED || state == v1::JOB_STATE_FAILED ||
         state == v1::JOB_STATE_CANCELLED;
}

std::string ProgressLine(const v1::Job& job, int bar_width) {
  const v1::JobProgress& p = job.progress();
  std::string line;
  if (bar_width > 0) {
    // Progress over the whole run: finished epochs plus the fraction of the current one.
    double done = 0;
    if (p.max_epochs() > 0) {
      const double in_epoch = p.batches_in_epoch() > 0
                                  ? static_cast<double>(p.batch_in_epoch()) / p.batches_in_epoch()
                                  : 0.0;
      done = std::clamp((static_cast<double>(p.epoch()) + in_epoch) / p.max_epochs(), 0.0, 1.0);
    }
    if (job.state() == v1::JOB_STATE_SUCCEEDED) done = 1.0;
    const int filled = static_cast<int>(done * bar_width);
    absl::StrAppend(&line, "[", std::string(filled, '#'), std::string(bar_width - filled, '.'),
                    "] ", absl::StrFormat("%3d%%", static_cast<int>(done * 100)), " ");
  }
  if (job.state() == v1::JOB_STATE_QUEUED) return line + "queued";
  if (job.state() == v1::JOB_STATE_RUNNING && p.step() == 0) return line + "starting";
  // The API's epoch is 0-based; people count from 1.
  absl::StrAppend(&line, "epoch ", p.epoch() + 1, "/", p.max_epochs(), "  step ", p.step(),
                  "  loss ", FormatLoss(p.train_loss()));
  if (p.has_validation_loss()) absl::StrAppend(&line, "  val ", FormatLoss(p.validation_loss()));
  absl::StrAppend(&line, "  ", absl::StrFormat("%.0f", p.sequences_per_second()), " seq/s");
  if (!IsTerminal(job.state())) {
    absl::StrAppend(&line, "  ETA ", FormatSeconds(p.eta_seconds()));
  } else {
    absl::StrAppend(&line, "  ", FormatSeconds(p.elapsed_seconds()));
  }
  return line;
}

bool IsTty(std::FILE* stream) { return ::isatty(::fileno(stream)) != 0; }

}  // namespace recurrent::client
