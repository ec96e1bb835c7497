#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <tuple>

#include "model.h"
#include "program.h"
#include "resource_limits.h"

namespace qh {

QuantParams quant_from_range(float lo, float hi, int qmax) {
    if (!std::isfinite(lo) || !std::isfinite(hi))
        throw std::invalid_argument("quantization range [" + std::to_string(lo) + ", " + std::to_string(hi) +
                                    "] is not finite");
    lo = std::min(lo, 0.f);
    hi = std::max(hi, 0.f);
    float scale = (hi - lo) / float(qmax);
    if (!(scale > 0) || !std::isfinite(scale)) scale = 1.f;
    const int zp = int(std::clamp(std::nearbyint(-lo / scale), 0.f, float(qmax)));  // clamped before the conversion
    return QuantParams::per_tensor(scale, zp);
}

std::vector<bool> four_bit_values(const Graph &g) {
    const size_t nv = g.values.size();
    const auto cons = g.consumers();
    const std::vector<bool> is_output = output_flags(g);
    std::vector<int> producer(nv, -1);
    for (size_t i = 0; i < g.nodes.size(); i++) producer[g.nodes[i].output] = int(i);
    auto transparent = [](OpKind k) {
        return k == OpKind::MaxPool || k == OpKind::Flatten || k == OpKind::Relu || k == OpKind::Clip;
    };
    // want: some reader asks for 4 bits and none for 8 (reverse topological order).
    std::vector<bool> want(nv, false);
    std::vector<int> state(nv, 0);  // 0 no request, 1 four, 2 eight (wins)
    for (size_t i = g.nodes.size(); i-- > 0;) {
        const GraphNode &n = g.nodes[i];
        const int out = n.output;
        if (!is_output[out]) want[out] = state[out] == 1;
        int req = 0;  // (an fp32 island reads dequantized values: no request)
        if (n.precision == LayerPrecision::fp32) req = 0;
        else if (n.op == OpKind::Conv || n.op == OpKind::Dense) req = n.precision == LayerPrecision::w4a4 ? 1 : 2;
        else if (transparent(n.op)) req = want[out] ? 1 : state[out] == 2 ? 2 : 0;
        if (req == 0 || n.inputs.empty()) continue;
        int &st = state[n.inputs[0]];
        st = std::max(st, req);
    }
    for (int in : g.inputs) want[in] = false;
    // can: the producer writes the 4-bit range (Conv, Dense, Add clamp; transparent ops follow their input).
    std::vector<bool> four(nv, false);
    for (const GraphNode &n : g.nodes) {
        const int out = n.output;
        bool can = n.op == OpKind::Conv || n.op == OpKind::Dense || n.op == OpKind::Add ||
                   n.op == OpKind::GlobalAvgPool || n.op == OpKind::AvgPool ||
                   n.precision == LayerPrecision::fp32;  // (its quantize step)
        if (transparent(n.op) && n.precision != LayerPrecision::fp32) can = four[n.inputs[0]];
        four[out] = want[out] && can;
    }
    return four;
}

namespace {
// The clipping range of a 4-bit (or any) value from its samples that minimises the mean squared
// quantization error over a grid of fractions of the observed range (4 bits needs clipping:
// a few outliers would otherwise spend most of the 16 levels).
std::pair<float, float> mse_range(const std::vector<float> &r, float lo, float hi, int qmax) {
    lo = std::min(lo, 0.f);
    hi = std::max(hi, 0.f);
    if (r.empty() || !(hi > lo)) return {lo, hi};
    double best = INFINITY;
    std::pair<float, float> arg{lo, hi};
    for (int k = 100; k >= 5; k--) {
        const float a = lo * float(k) / 100.f, b = hi * float(k) / 100.f;
        const QuantParams q = quant_from_range(a, b, qmax);
        const float s = q.scale[0];
        const int z = q.zero_point[0];
        double err = 0;
        for (float x : r) {
            const float qv = std::clamp(std::nearbyint(x / s) + float(z), 0.f, float(qmax));
            const double d = double(x) - double((qv - float(z)) * s);
            err += d * d;
        }
        if (err < best) {
            best = err;
            arg = {a, b};
        }
    }
    return arg;
}
}  // namespace


void calibrate(Graph &g, const std::vector<Tensor> &samples, const CalibrationOptions &opt) {
    if (samples.empty()) throw std::runtime_error("calibrate '" + g.name + "': no calibration samples");
    if (g.inputs.size() != 1) throw std::runtime_error("calibrate '" + g.name + "': only single-input models");
    g = fold_batchnorm(g);
    const GraphValue &in = g.values[g.inputs[0]];
    PrepareOptions po;
    po.batch = int(samples[0].dim(0));
    po.threads = opt.threads;
    po.precision = Precision::fp32;
    po.keep_all_values = true;
    auto m = Model::prepare(g, po);
    const size_t nv = g.values.size();
    const std::vector<bool> four = four_bit_values(g);
    std::vector<float> lo(nv, INFINITY), hi(nv, -INFINITY);
    std::vector<std::vector<float>> reservoir(nv);
    const size_t kReservoir = 1 << 16;
    for (size_t si = 0; si < samples.size(); si++) {
        const Tensor &s = samples[si];
        if (s.dtype() != DType::f32 || s.shape() != m->input(0).shape())
            throw std::runtime_error("calibrate '" + g.name + "': sample " + std::to_string(si) + " is " + s.describe() +
                                     ", expected " + m->input(0).describe() + " like input '" + in.name + "'");
        std::memcpy(m->input(0).raw(), s.raw(), s.nbytes());
        m->execute();
        for (size_t id = 0; id < nv; id++) {
            const Tensor *t = m->value(int(id));
            if (!t || t->dtype() != DType::f32) continue;
            const float *p = t->data<float>();
            const int64_t n = t->numel();
            for (int64_t k = 0; k < n; k++) {
                lo[id] = std::min(lo[id], p[k]);
                hi[id] = std::max(hi[id], p[k]);
            }
            if (opt.method != CalibrationOptions::Method::minmax ||
                (four[id] && opt.method4 != CalibrationOptions::Method::minmax)) {
                // Deterministic strided subsample, at most kReservoir / #samples values per run.
                int64_t want = int64_t(kReservoir / samples.size()) + 1;
                int64_t stride = std::max<int64_t>(1, n / want);
                for (int64_t k = (int64_t(si) * 7919) % stride; k < n; k += stride) reservoir[id].push_back(p[k]);
            }
        }
        if (opt.progress) opt.progress(int(si) + 1, int(samples.size()));
    }
    auto cons = g.consumers();
    const std::vector<bool> is_output = output_flags(g);
    // A value only a Relu or Clip reads is fused into its producer's clamp (passes.h fuse).
    // (Not around a float island: an fp32 node's values are quantized where int8 layers meet them.)
    std::vector<int> producer(nv, -1);
    for (size_t i = 0; i < g.nodes.size(); i++) producer[g.nodes[i].output] = int(i);
    auto only_relu_reads = [&](size_t id) {
        if (cons[id].size() != 1) return false;
        const GraphNode &c = g.nodes[cons[id][0]];
        const bool island = c.precision == LayerPrecision::fp32 ||
                            (producer[id] >= 0 && g.nodes[producer[id]].precision == LayerPrecision::fp32);
        return !island && (c.op == OpKind::Relu || c.op == OpKind::Clip);
    };
    for (size_t id = 0; id < nv; id++) {
        // Graph outputs stay float; a value only a ReLU reads is never materialized (fused).
        if (is_output[id] || only_relu_reads(id) || !(lo[id] <= hi[id])) continue;
        float a = lo[id], b = hi[id];
        const int qmax = four[id] ? 15 : 255;
        const auto method = four[id] ? opt.method4 : opt.method;
        if (method == CalibrationOptions::Method::percentile && !reservoir[id].empty()) {
            auto &r = reservoir[id];
            std::sort(r.begin(), r.end());
            auto at = [&](double pct) { return r[std::min(r.size() - 1, size_t(pct / 100.0 * double(r.size() - 1) + 0.5))]; };
            a = lo[id] >= 0 ? 0.f : at(100.0 - opt.percentile);
            b = at(opt.percentile);
        } else if (method == CalibrationOptions::Method::mse) {
            std::tie(a, b) = mse_range(reservoir[id], a, b, qmax);
        }
        try {
            g.values[id].quant = quant_from_range(a, b, qmax);
        } catch (const std::invalid_argument &e) {
            throw std::invalid_argument("calibrate '" + printable(g.name) + "': value '" + printable(g.values[id].name) +
                                        "': " + e.what() + " (NaN or infinity in the float model's activations)");
        }
        g.values[id].qtype = four[id] ? DType::u4 : DType::u8;
    }
    // MaxPool keeps its input's quantization (max commutes with it); so does Flatten.
    for (const GraphNode &n : g.nodes)
        if ((n.op == OpKind::MaxPool || n.op == OpKind::Flatten) && !g.values[n.inputs[0]].quant.empty() &&
            !is_output[n.output]) {
            g.values[n.output].quant = g.values[n.inputs[0]].quant;
            g.values[n.output].qtype = g.values[n.inputs[0]].qtype;
        }
    for (const auto &[name, q] : opt.overrides) {
        int id = g.find_value(name);
        if (id < 0) throw std::runtime_error("calibrate '" + g.name + "': override for unknown value '" + name + "'");
        g.values[id].quant = q;
    }
}

}  // namespace qh
