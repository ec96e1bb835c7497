#include "mixed_precision.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>
#include <stdexcept>

namespace qh {

double relative_error(const std::vector<float> &a, const std::vector<float> &ref) {
    double num = 0, den = 0;
    for (size_t i = 0; i < a.size() && i < ref.size(); i++) {
        const double d = double(a[i]) - double(ref[i]);
        num += d * d;
        den += double(ref[i]) * double(ref[i]);
    }
    return den > 0 ? num / den : num;
}

namespace {

std::vector<float> run_all(Model &m, const std::vector<Tensor> &samples) {
    std::vector<float> out;
    for (const Tensor &s : samples) {
        std::memcpy(m.input(0).raw(), s.raw(), s.nbytes());
        m.execute();
        const Tensor &y = m.output(0);
        out.insert(out.end(), y.data<float>(), y.data<float>() + y.numel());
    }
    return out;
}

// Median step time per layer (the Conv / Dense a step starts with).
void layer_times(Model &m, int iters, const std::vector<Tensor> &samples, std::map<std::string, double> &ms) {
    std::memcpy(m.input(0).raw(), samples[0].raw(), samples[0].nbytes());
    m.execute();
    std::map<std::string, std::vector<double>> t;
    m.set_profiling(true);
    for (int i = 0; i < iters; i++) {
        const std::vector<LayerInfo> before = m.layers();
        m.execute();
        const std::vector<LayerInfo> &after = m.layers();
        for (size_t k = 0; k < after.size(); k++)
            t[after[k].layer].push_back(after[k].total_ms - (k < before.size() ? before[k].total_ms : 0));
    }
    m.set_profiling(false);
    for (auto &[name, v] : t) {
        std::sort(v.begin(), v.end());
        ms[name] += v[v.size() / 2];
    }
}

}  // namespace

Graph mixed_graph(const MixedAnalysis &a, const std::vector<std::string> &low_layers) {
    Graph g = a.g8;
    const std::set<std::string> low(low_layers.begin(), low_layers.end());
    for (int i : quantizable_layers(g)) g.nodes[i].precision = low.count(g.nodes[i].name) ? a.low : LayerPrecision::int8;
    const std::vector<bool> four = four_bit_values(g);
    for (size_t v = 0; v < g.values.size(); v++) {
        if (g.values[v].quant.empty()) continue;
        if (four[v]) {
            g.values[v].quant = a.g4.values[v].quant;
            g.values[v].qtype = a.g4.values[v].qtype;
        }
    }
    for (const GraphNode &n : g.nodes)  // MaxPool / Flatten keep their input's quantization
        if ((n.op == OpKind::MaxPool || n.op == OpKind::Flatten) && !g.values[n.output].quant.empty()) {
            g.values[n.output].quant = g.values[n.inputs[0]].quant;
            g.values[n.output].qtype = g.values[n.inputs[0]].qtype;
        }
    return g;
}

MixedAnalysis analyze_mixed_precision(const Graph &float_model, const std::vector<Tensor> &samples,
                                      const MixedOptions &opt) {
    if (samples.empty()) throw std::invalid_argument("mixed precision: no calibration samples");
    if (opt.low != LayerPrecision::w4a4 && opt.low != LayerPrecision::w4a8)
        throw std::invalid_argument("mixed precision: the low precision must be w4a4 or w4a8");
    MixedAnalysis a;
    a.low = opt.low;
    a.float_graph = fold_batchnorm(float_model);
    a.g8 = a.float_graph;
    for (int i : quantizable_layers(a.g8)) a.g8.nodes[i].precision = LayerPrecision::int8;
    a.g4 = a.float_graph;
    set_uniform_precision(a.g4, opt.low, false);
    auto progress = [&](const std::string &what, int d, int t) {
        if (opt.progress) opt.progress(what, d, t);
    };
    calibrate(a.g8, samples, opt.calibration);
    calibrate(a.g4, samples, opt.calibration);

    PrepareOptions po;
    po.batch = int(samples[0].dim(0));
    po.threads = opt.threads;
    PrepareOptions pf = po;
    pf.precision = Precision::fp32;
    const std::vector<float> ref = run_all(*Model::prepare(a.float_graph, pf), samples);

    const std::vector<int> layers = quantizable_layers(a.g8);
    std::vector<std::string> all;
    for (int i : layers) all.push_back(a.g8.nodes[i].name);
    {
        auto m = Model::prepare(mixed_graph(a, all), po);
        a.error_all_low = relative_error(run_all(*m, samples), ref);
    }
    // Costs: time from the all-int8 and all-low models at the requested batch, bytes per layer.
    std::map<std::string, double> ms8, ms4;
    {
        PrepareOptions pt = po;
        pt.batch = opt.batch;
        pt.device = opt.device;
        std::vector<Tensor> timing = {Tensor(DType::f32, [&] {
            auto s = samples[0].shape();
            s[0] = opt.batch;
            return s;
        }())};
        for (int64_t k = 0; k < timing[0].numel(); k++)
            timing[0].data<float>()[k] = samples[0].data<float>()[k % samples[0].numel()];
        progress("timing int8 layers", 0, 2);
        auto m8 = Model::prepare(mixed_graph(a, {}), pt);
        layer_times(*m8, opt.timing_iters, timing, ms8);
        progress("timing 4-bit layers", 1, 2);
        auto m4 = Model::prepare(mixed_graph(a, all), pt);
        layer_times(*m4, opt.timing_iters, timing, ms4);
        progress("timing 4-bit layers", 2, 2);
    }
    for (size_t k = 0; k < layers.size(); k++) {
        const GraphNode &n = a.g8.nodes[layers[k]];
        LayerCost c;
        c.name = n.name;
        c.ms8 = ms8[n.name];
        c.ms4 = ms4[n.name];
        const double w = double(n.weights.numel());
        c.bytes8 = w;
        c.bytes4 = w / 2;
        progress("layer sensitivity", int(k), int(layers.size()));
        auto m = Model::prepare(mixed_graph(a, {n.name}), po);
        c.error = relative_error(run_all(*m, samples), ref);
        a.layers.push_back(c);
    }
    progress("layer sensitivity", int(layers.size()), int(layers.size()));
    return a;
}

std::vector<FrontierPoint> pareto_frontier(const std::vector<LayerCost> &layers, MixedObjective obj) {
    const size_t n = layers.size();
    auto cost8 = [&](const LayerCost &c) { return obj == MixedObjective::latency ? c.ms8 : c.bytes8; };
    auto cost4 = [&](const LayerCost &c) { return obj == MixedObjective::latency ? c.ms4 : c.bytes4; };
    // Integer units: 1/2000 of the all-int8 cost (so the DP table is at most a few hundred
    // thousand entries; exact in those units, as an ILP on the same rounded costs would be).
    double total8 = 0, worst = 0;
    for (const auto &c : layers) {
        total8 += cost8(c);
        worst += std::max(cost8(c), cost4(c));
    }
    if (!(total8 > 0)) throw std::runtime_error("mixed precision: the layers have no measured cost");
    const double unit = total8 / 2000.0;
    auto units = [&](double v) { return int(std::lround(v / unit)); };
    const int C = units(worst) + 1;
    // best[k][c]: least error over the first k layers with cost exactly c units (INF: none).
    const double INF = INFINITY;
    std::vector<std::vector<double>> best(n + 1, std::vector<double>(size_t(C) + 1, INF));
    std::vector<std::vector<char>> took(n + 1, std::vector<char>(size_t(C) + 1, 0));
    best[0][0] = 0;
    for (size_t k = 0; k < n; k++) {
        const int c8 = units(cost8(layers[k])), c4 = units(cost4(layers[k]));
        for (int c = 0; c <= C; c++) {
            if (best[k][c] == INF) continue;
            if (c + c8 <= C && best[k][c] < best[k + 1][c + c8]) {
                best[k + 1][c + c8] = best[k][c];
                took[k + 1][c + c8] = 0;
            }
            const double e = best[k][c] + layers[k].error;
            if (c + c4 <= C && e < best[k + 1][c + c4]) {
                best[k + 1][c + c4] = e;
                took[k + 1][c + c4] = 1;
            }
        }
    }
    std::vector<FrontierPoint> f;
    double last = INF;
    for (int c = 0; c <= C; c++) {
        if (!(best[n][c] < last)) continue;  // Pareto: strictly less error than every cheaper point
        last = best[n][c];
        FrontierPoint p;
        p.error = best[n][c];
        int cc = c;
        for (size_t k = n; k > 0; k--) {
            const LayerCost &l = layers[k - 1];
            if (took[k][cc]) {
                p.low_layers.push_back(l.name);
                p.cost += cost4(l);
                cc -= units(cost4(l));
            } else {
                p.cost += cost8(l);
                cc -= units(cost8(l));
            }
        }
        std::reverse(p.low_layers.begin(), p.low_layers.end());
        f.push_back(std::move(p));
    }
    // Costs in the DP were rounded to units; on the exact costs keep only Pareto points.
    std::stable_sort(f.begin(), f.end(), [](const FrontierPoint &a, const FrontierPoint &b) { return a.cost < b.cost; });
    std::vector<FrontierPoint> pareto;
    for (auto &p : f)
        if (pareto.empty() || p.error < pareto.back().error) pareto.push_back(std::move(p));
    return pareto;
}

FrontierPoint choose_mixed(const std::vector<LayerCost> &layers, MixedObjective obj, double budget) {
    double total8 = 0;
    for (const auto &c : layers) total8 += obj == MixedObjective::latency ? c.ms8 : c.bytes8;
    const auto f = pareto_frontier(layers, obj);
    const FrontierPoint *pick = nullptr;
    for (const auto &p : f)
        if (p.cost <= budget * total8 * (1 + 1e-9)) pick = &p;  // cheapest first: the last that fits has least error
    if (!pick) {
        char buf[160];
        std::snprintf(buf, sizeof buf, "mixed precision: no configuration meets the budget %.3f x int8 (the cheapest is %.3f x)",
                      budget, f.empty() ? 0.0 : f.front().cost / total8);
        throw std::runtime_error(buf);
    }
    return *pick;
}

namespace {
std::string jstr(const std::string &s) {
    std::string r = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\') r += '\\';
        if (static_cast<unsigned char>(c) < 0x20) continue;
        r += c;
    }
    return r + "\"";
}
std::string num(double v) {
    char b[64];
    std::snprintf(b, sizeof b, "%.6g", v);
    return b;
}
}  // namespace

std::string frontier_json(const MixedAnalysis &a, MixedObjective obj, const std::vector<FrontierPoint> &f) {
    std::string s = "{\n  \"model\": " + jstr(a.float_graph.name) + ",\n  \"low_precision\": " +
                    jstr(precision_name(a.low)) + ",\n  \"objective\": " +
                    jstr(obj == MixedObjective::latency ? "latency_ms" : "weight_bytes") +
                    ",\n  \"error\": \"relative squared logit error vs fp32 (sum of per-layer sensitivities for frontier "
                    "points)\",\n  \"error_all_low_measured\": " + num(a.error_all_low) + ",\n  \"layers\": [\n";
    for (size_t k = 0; k < a.layers.size(); k++) {
        const LayerCost &c = a.layers[k];
        s += "    {\"name\": " + jstr(c.name) + ", \"sensitivity\": " + num(c.error) + ", \"ms_int8\": " + num(c.ms8) +
             ", \"ms_low\": " + num(c.ms4) + ", \"bytes_int8\": " + num(c.bytes8) + ", \"bytes_low\": " + num(c.bytes4) +
             "}" + (k + 1 < a.layers.size() ? "," : "") + "\n";
    }
    s += "  ],\n  \"frontier\": [\n";
    for (size_t k = 0; k < f.size(); k++) {
        s += "    {\"cost\": " + num(f[k].cost) + ", \"error\": " + num(f[k].error) + ", \"low_layers\": [";
        for (size_t i = 0; i < f[k].low_layers.size(); i++) s += (i ? ", " : "") + jstr(f[k].low_layers[i]);
        s += "]}" + std::string(k + 1 < f.size() ? "," : "") + "\n";
    }
    return s + "  ]\n}\n";
}

std::string frontier_svg(const MixedAnalysis &a, MixedObjective obj, const std::vector<FrontierPoint> &f) {
    const double W = 640, H = 420, L = 70, R = 20, T = 40, B = 60;
    double cmin = INFINITY, cmax = -INFINITY, emax = 0;
    for (const auto &p : f) {
        cmin = std::min(cmin, p.cost);
        cmax = std::max(cmax, p.cost);
        emax = std::max(emax, p.error);
    }
    if (!(cmax > cmin)) cmax = cmin + 1;
    if (!(emax > 0)) emax = 1;
    auto X = [&](double c) { return L + (c - cmin) / (cmax - cmin) * (W - L - R); };
    auto Y = [&](double e) { return H - B - e / emax * (H - T - B); };
    const std::string unit = obj == MixedObjective::latency ? "ms" : "MiB";
    const double scale = obj == MixedObjective::latency ? 1.0 : 1.0 / 1048576.0;
    std::string s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + num(W) + "\" height=\"" + num(H) +
                    "\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
    s += "<text x=\"" + num(L) + "\" y=\"24\" font-size=\"14\">" + a.float_graph.name + ": mixed int8 / " +
         precision_name(a.low) + " frontier (" + (obj == MixedObjective::latency ? "latency" : "weight size") +
         " vs predicted error)</text>\n";
    s += "<line x1=\"" + num(L) + "\" y1=\"" + num(H - B) + "\" x2=\"" + num(W - R) + "\" y2=\"" + num(H - B) +
         "\" stroke=\"black\"/>\n<line x1=\"" + num(L) + "\" y1=\"" + num(T) + "\" x2=\"" + num(L) + "\" y2=\"" +
         num(H - B) + "\" stroke=\"black\"/>\n";
    for (int k = 0; k <= 4; k++) {
        const double c = cmin + (cmax - cmin) * k / 4, e = emax * k / 4;
        s += "<text x=\"" + num(X(c)) + "\" y=\"" + num(H - B + 18) + "\" text-anchor=\"middle\">" + num(c * scale) +
             "</text>\n<text x=\"" + num(L - 6) + "\" y=\"" + num(Y(e) + 4) + "\" text-anchor=\"end\">" + num(e) +
             "</text>\n";
    }
    s += "<text x=\"" + num((L + W - R) / 2) + "\" y=\"" + num(H - 18) + "\" text-anchor=\"middle\">" +
         (obj == MixedObjective::latency ? "predicted latency (" : "weight bytes (") + unit + ")</text>\n";
    s += "<text transform=\"translate(16," + num((T + H - B) / 2) +
         ") rotate(-90)\" text-anchor=\"middle\">predicted relative error</text>\n<polyline fill=\"none\" "
         "stroke=\"steelblue\" points=\"";
    for (const auto &p : f) s += num(X(p.cost)) + "," + num(Y(p.error)) + " ";
    s += "\"/>\n";
    for (const auto &p : f)
        s += "<circle cx=\"" + num(X(p.cost)) + "\" cy=\"" + num(Y(p.error)) + "\" r=\"3\" fill=\"steelblue\"/>\n";
    return s + "</svg>\n";
}

}  // namespace qh
