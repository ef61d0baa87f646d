// Line charts of a few series (loss curves, forecasts against the truth): in the terminal as
// text, or as an SVG file.
#ifndef RECURRENT_CLIENT_PLOT_H_
#define RECURRENT_CLIENT_PLOT_H_

#include <string>
#include <vector>

namespace recurrent::client {

struct PlotSeries {
  std::string name;
  char mark = '*';  // the text plot's character; the SVG uses a colour per series
  std::vector<double> x;
  std::vector<double> y;  // non-finite points are skipped
};

struct PlotOptions {
  std::string title;
  std::string x_label;
  std::string y_label;
  bool log_y = false;  // losses span decades
  int width = 64;      // text plot: columns of the drawing area
  int height = 16;     // text plot: rows
};

std::string TextPlot(const std::vector<PlotSeries>& series, const PlotOptions& options);
std::string SvgPlot(const std::vector<PlotSeries>& series, const PlotOptions& options);

}  // namespace recurrent::client

#endif  // RECURRENT_CLIENT_PLOT_H_
