// Human-readable output: aligned tables, durations, timestamps and the job progress line.
#ifndef RECURRENT_CLIENT_FORMAT_H_
#define RECURRENT_CLIENT_FORMAT_H_

#include <cstdio>
#include <string>
#include <vector>

#include "google/protobuf/timestamp.pb.h"
#include "recurrent/v1/service.pb.h"

namespace recurrent::client {

// Columns padded to their widest cell; numbers are right-aligned when a column says so.
class Table {
 public:
  explicit Table(std::vector<std::string> header, std::vector<bool> right_aligned = {});
  void AddRow(std::vector<std::string> cells);
  void Print(std::FILE* out) const;

 private:
  std::vector<std::vector<std::string>> rows_;
  std::vector<bool> right_;
};

std::string FormatSeconds(double seconds);  // "42s", "3m05s", "1h02m"
std::string FormatTimestamp(
    const google::protobuf::Timestamp& time);  // local "2026-11-27 04:10:39"
std::string FormatLoss(double loss);           // 4 significant digits
std::string JobStateName(v1::JobState state);  // "running", ...
bool IsTerminal(v1::JobState state);

// One line of progress for a job: a bar over the epochs when `bar_width` > 0, then epoch, step,
// losses, throughput and ETA.
std::string ProgressLine(const v1::Job& job, int bar_width);

bool IsTty(std::FILE* stream);

}  // namespace recurrent::client

#endif  // RECURRENT_CLIENT_FORMAT_H_
