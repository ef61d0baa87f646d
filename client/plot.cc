#include "client/plot.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace recurrent::client {
namespace {

struct Range {
  double min = std::numeric_limits<double>::infinity();
  double max = -std::numeric_limits<double>::infinity();
  void Add(double v) {
    min = std::min(min, v);
    max = std::max(max, v);
  }
  bool empty() const { return !(min <= max); }
  void Widen() {  // a flat series still gets a visible range
    if (max - min < 1e-12) {
      const double pad = std::max(std::abs(min) * 0.05, 1e-6);
      min -= pad;
      max += pad;
    }
  }
};

bool Usable(double y, bool log_y) { return std::isfinite(y) && (!log_y || y > 0); }
double MapY(double y, bool log_y) { return log_y ? std::log10(y) : y; }

void Ranges(const std::vector<PlotSeries>& series, bool log_y, Range* x, Range* y) {
  for (const PlotSeries& s : series) {
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!Usable(s.y[i], log_y)) continue;
      x->Add(s.x[i]);
      y->Add(MapY(s.y[i], log_y));
    }
  }
  x->Widen();
  y->Widen();
}

std::string AxisValue(double mapped, bool log_y) {
  return absl::StrFormat("%.4g", log_y ? std::pow(10.0, mapped) : mapped);
}

const char* const kColours[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"};

}  // namespace

std::string TextPlot(const std::vector<PlotSeries>& series, const PlotOptions& options) {
  Range x, y;
  Ranges(series, options.log_y, &x, &y);
  if (x.empty()) return "(nothing to plot)\n";
  const int w = std::max(options.width, 10), h = std::max(options.height, 4);
  std::vector<std::string> grid(h, std::string(w, ' '));
  auto cell = [&](double vx, double vy, int* col, int* row) {
    *col = std::clamp(static_cast<int>(std::lround((vx - x.min) / (x.max - x.min) * (w - 1))), 0,
                      w - 1);
    *row = std::clamp(static_cast<int>(std::lround((vy - y.min) / (y.max - y.min) * (h - 1))), 0,
                      h - 1);
  };
  for (const PlotSeries& s : series) {
    // Each point, and the columns between consecutive points filled in along the line, so
    // sparse series (a few epochs) still read as curves.
    bool have_previous = false;
    double px = 0, py = 0;
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!Usable(s.y[i], options.log_y)) continue;
      const double vy = MapY(s.y[i], options.log_y);
      int col = 0, row = 0;
      cell(s.x[i], vy, &col, &row);
      if (have_previous) {
        int previous_col = 0, previous_row = 0;
        cell(px, py, &previous_col, &previous_row);
        for (int c = previous_col + 1; c < col; ++c) {
          const double f = static_cast<double>(c - previous_col) / (col - previous_col);
          int ignored = 0, r = 0;
          cell(px + f * (s.x[i] - px), py + f * (vy - py), &ignored, &r);
          char& spot = grid[h - 1 - r][c];
          if (spot == ' ') spot = '.';
        }
      }
      grid[h - 1 - row][col] = s.mark;
      have_previous = true;
      px = s.x[i];
      py = vy;
    }
  }
  const std::string top = AxisValue(y.max, options.log_y);
  const std::string bottom = AxisValue(y.min, options.log_y);
  const size_t label = std::max(top.size(), bottom.size());
  std::string out;
  if (!options.title.empty()) absl::StrAppend(&out, options.title, "\n");
  for (int r = 0; r < h; ++r) {
    std::string axis = r == 0 ? top : r == h - 1 ? bottom : "";
    axis.insert(0, label - axis.size(), ' ');
    absl::StrAppend(&out, axis, " |", grid[r], "\n");
  }
  absl::StrAppend(&out, std::string(label + 1, ' '), "+", std::string(w, '-'), "\n");
  const std::string left = absl::StrFormat("%.4g", x.min), right = absl::StrFormat("%.4g", x.max);
  std::string x_axis = std::string(label + 2, ' ') + left;
  const size_t right_at = label + 2 + w - right.size();
  if (x_axis.size() < right_at) x_axis.resize(right_at, ' ');
  absl::StrAppend(&out, x_axis, right);
  if (!options.x_label.empty()) absl::StrAppend(&out, "  ", options.x_label);
  absl::StrAppend(&out, "\n", std::string(label + 2, ' '));
  for (const PlotSeries& s : series)
    absl::StrAppend(&out, std::string(1, s.mark), " ", s.name, "   ");
  if (options.log_y) absl::StrAppend(&out, "(log scale)");
  absl::StrAppend(&out, "\n");
  return out;
}

std::string SvgPlot(const std::vector<PlotSeries>& series, const PlotOptions& options) {
  constexpr double kWidth = 720, kHeight = 420, kLeft = 70, kRight = 20, kTop = 40, kBottom = 60;
  const double plot_w = kWidth - kLeft - kRight, plot_h = kHeight - kTop - kBottom;
  Range x, y;
  Ranges(series, options.log_y, &x, &y);
  std::string out = absl::StrFormat(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" height=\"%g\" "
      "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" "
      "fill=\"white\"/>\n",
      kWidth, kHeight);
  absl::StrAppend(&out, absl::StrFormat("<text x=\"%g\" y=\"24\" font-size=\"15\">%s</text>\n",
                                        kLeft, options.title));
  absl::StrAppend(&out, absl::StrFormat("<rect x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" "
                                        "fill=\"none\" stroke=\"#444\"/>\n",
                                        kLeft, kTop, plot_w, plot_h));
  if (x.empty()) return out + "</svg>\n";
  auto px = [&](double v) { return kLeft + (v - x.min) / (x.max - x.min) * plot_w; };
  auto py = [&](double v) { return kTop + plot_h - (v - y.min) / (y.max - y.min) * plot_h; };
  for (int tick = 0; tick <= 4; ++tick) {
    const double vy = y.min + (y.max - y.min) * tick / 4.0;
    const double vx = x.min + (x.max - x.min) * tick / 4.0;
    absl::StrAppend(
        &out, absl::StrFormat("<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" stroke=\"#ddd\"/>\n"
                              "<text x=\"%g\" y=\"%g\" text-anchor=\"end\">%s</text>\n"
                              "<text x=\"%g\" y=\"%g\" text-anchor=\"middle\">%s</text>\n",
                              kLeft, py(vy), kLeft + plot_w, py(vy), kLeft - 6, py(vy) + 4,
                              AxisValue(vy, options.log_y), px(vx), kTop + plot_h + 18,
                              absl::StrFormat("%.4g", vx)));
  }
  absl::StrAppend(&out,
                  absl::StrFormat("<text x=\"%g\" y=\"%g\" text-anchor=\"middle\">%s</text>\n",
                                  kLeft + plot_w / 2, kHeight - 22, options.x_label));
  absl::StrAppend(&out, absl::StrFormat("<text x=\"16\" y=\"%g\" transform=\"rotate(-90 16 %g)\" "
                                        "text-anchor=\"middle\">%s%s</text>\n",
                                        kTop + plot_h / 2, kTop + plot_h / 2, options.y_label,
                                        options.log_y ? " (log scale)" : ""));
  for (size_t s = 0; s < series.size(); ++s) {
    const char* colour = kColours[s % 5];
    std::string points;
    for (size_t i = 0; i < series[s].x.size() && i < series[s].y.size(); ++i) {
      if (!Usable(series[s].y[i], options.log_y)) continue;
      absl::StrAppend(&points, absl::StrFormat("%.2f,%.2f ", px(series[s].x[i]),
                                               py(MapY(series[s].y[i], options.log_y))));
    }
    absl::StrAppend(&out, absl::StrFormat("<polyline fill=\"none\" stroke=\"%s\" "
                                          "stroke-width=\"2\" points=\"%s\"/>\n",
                                          colour, points));
    absl::StrAppend(&out,
                    absl::StrFormat("<text x=\"%g\" y=\"%g\" fill=\"%s\">%s</text>\n",
                                    kLeft + 10 + 150.0 * s, kHeight - 6, colour, series[s].name));
  }
  return out + "</svg>\n";
}

}  // namespace recurrent::client
