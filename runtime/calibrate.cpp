#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "model.h"
#include "program.h"
#include "resource_limits.h"

namespace qh {

QuantParams quant_from_range(float lo, float hi) {
    if (!std::isfinite(lo) || !std::isfinite(hi))
        throw std::invalid_argument("quantization range [" + std::to_string(lo) + ", " + std::to_string(hi) +
                                    "] is not finite");
    lo = std::min(lo, 0.f);
    hi = std::max(hi, 0.f);
    float scale = (hi - lo) / 255.f;
    if (!(scale > 0) || !std::isfinite(scale)) scale = 1.f;
    const int zp = int(std::clamp(std::nearbyint(-lo / scale), 0.f, 255.f));  // clamped before the conversion
    return QuantParams::per_tensor(scale, zp);
}


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
            if (opt.method == CalibrationOptions::Method::percentile) {
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
    auto only_relu_reads = [&](size_t id) {
        return cons[id].size() == 1 && (g.nodes[cons[id][0]].op == OpKind::Relu || g.nodes[cons[id][0]].op == OpKind::Clip);
    };
    for (size_t id = 0; id < nv; id++) {
        // Graph outputs stay float; a value only a ReLU reads is never materialized (fused).
        if (is_output[id] || only_relu_reads(id) || !(lo[id] <= hi[id])) continue;
        float a = lo[id], b = hi[id];
        if (opt.method == CalibrationOptions::Method::percentile && !reservoir[id].empty()) {
            auto &r = reservoir[id];
            std::sort(r.begin(), r.end());
            auto at = [&](double pct) { return r[std::min(r.size() - 1, size_t(pct / 100.0 * double(r.size() - 1) + 0.5))]; };
            a = lo[id] >= 0 ? 0.f : at(100.0 - opt.percentile);
            b = at(opt.percentile);
        }
        try {
            g.values[id].quant = quant_from_range(a, b);
        } catch (const std::invalid_argument &e) {
            throw std::invalid_argument("calibrate '" + printable(g.name) + "': value '" + printable(g.values[id].name) +
                                        "': " + e.what() + " (NaN or infinity in the float model's activations)");
        }
        g.values[id].qtype = DType::u8;
    }
    for (const auto &[name, q] : opt.overrides) {
        int id = g.find_value(name);
        if (id < 0) throw std::runtime_error("calibrate '" + g.name + "': override for unknown value '" + name + "'");
        g.values[id].quant = q;
    }
}

}  // namespace qh
