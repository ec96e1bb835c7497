// Automatic mixed 4/8-bit precision, as HAWQ-V3 does it, with our own measurements:
//
//  1. sensitivity: for every Conv/Dense layer, the model's output error with only that layer at
//     the low precision (w4a4 or w4a8) and every other at int8, on calibration data
//     (relative squared error of the logits against the fp32 model);
//  2. cost: every layer's time at int8 and at the low precision, measured with our kernels on
//     this machine (profiled steps of the all-int8 and all-low models), and its weight bytes;
//  3. choice: the set of low-precision layers with the least summed sensitivity under a latency
//     or weight-size budget, solved exactly (0/1 knapsack by dynamic programming over the cost
//     in small integer units, like HAWQ-V3's ILP), and the whole Pareto frontier of
//     (cost, error) for the report (JSON and an SVG plot).
//
// The additive error model is HAWQ's; frontier points can be checked by running them (the
// report does for the chosen one). Calibration runs twice (all int8, all low precision); a
// configuration then takes each value's 8- or 4-bit ranges from those (a value's float range
// does not depend on other layers' precision), so each of the N sensitivity runs is a prepare
// and an int8 execute, not a calibration.
#pragma once
#include <string>
#include <vector>

#include "model.h"
#include "precision.h"

namespace qh {

struct MixedOptions {
    LayerPrecision low = LayerPrecision::w4a4;  // the precision layers are lowered to
    int batch = 1, threads = 0;
    int timing_iters = 5;  // profiled runs per model for the per-layer times (median)
    Device device = Device::cpu;  // where the per-layer times are measured (errors: on the CPU)
    CalibrationOptions calibration;
    std::function<void(const std::string &what, int done, int total)> progress;
};

struct LayerCost {
    std::string name;      // the Conv / Dense node
    double error = 0;      // relative squared logit error with this layer alone at `low`
    double ms8 = 0, ms4 = 0;          // step time at int8 / at `low` (0 when not measurable)
    double bytes8 = 0, bytes4 = 0;    // packed weight bytes at int8 / at `low`
};

struct MixedAnalysis {
    Graph float_graph;               // BatchNorm folded, uncalibrated
    Graph g8, g4;                    // calibrated all-int8 and all-low (every layer, edges too)
    std::vector<LayerCost> layers;   // one per quantizable layer, in order
    double error_all_low = 0;        // measured: every layer at `low`
    LayerPrecision low = LayerPrecision::w4a4;
};

// Steps 1 and 2 on `samples` (calibration inputs, also the evaluation inputs).
MixedAnalysis analyze_mixed_precision(const Graph &float_model, const std::vector<Tensor> &samples,
                                      const MixedOptions &opt);

// The calibrated graph for a configuration: `low_layers` at analysis.low, the rest int8, with
// every value's quantization taken from g8 / g4 by its bits under that configuration.
Graph mixed_graph(const MixedAnalysis &a, const std::vector<std::string> &low_layers);

enum class MixedObjective { latency, size };
struct FrontierPoint {
    std::vector<std::string> low_layers;
    double cost = 0;   // predicted ms or bytes (sum of the layers' costs)
    double error = 0;  // predicted (summed sensitivities)
};
// Every Pareto-optimal (cost, error) point, cheapest first, by exact dynamic programming.
std::vector<FrontierPoint> pareto_frontier(const std::vector<LayerCost> &layers, MixedObjective obj);
// The least-error point whose cost is at most `budget` x the all-int8 cost (throws if none).
FrontierPoint choose_mixed(const std::vector<LayerCost> &layers, MixedObjective obj, double budget);

// Reports: the frontier with the per-layer table as JSON, and an SVG scatter of it.
std::string frontier_json(const MixedAnalysis &a, MixedObjective obj, const std::vector<FrontierPoint> &f);
std::string frontier_svg(const MixedAnalysis &a, MixedObjective obj, const std::vector<FrontierPoint> &f);

// Relative squared error sum (a - b)^2 / sum b^2 of two logit vectors.
double relative_error(const std::vector<float> &a, const std::vector<float> &ref);

}  // namespace qh
