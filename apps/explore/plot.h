// Small hand-written SVG plots: time per trial of a tuning run, and a roofline.
#pragma once
#include <string>
#include <vector>

#include "tune.h"

namespace qh::explore {

void plot_trials_svg(const std::string &path, const TuneResult &r, const std::string &title);

struct RooflinePoint {
    std::string label;
    double intensity;  // ops per compulsory byte
    double gops;
};
// Log-log roofline with the compute peak and the measured memory bandwidth as roofs.
void plot_roofline_svg(const std::string &path, const std::vector<RooflinePoint> &pts,
                       double peak_gops, double bw_gbps, const std::string &title);

// Read bandwidth of one core over a buffer larger than the caches, GB/s (median of 5).
double measure_read_bandwidth_gbps();

}  // namespace qh::explore
