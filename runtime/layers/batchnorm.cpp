// BatchNorm: y = x * scale[c] + shift[c] (eps, mean and variance combined by the importer).
// fold_batchnorm folds it into a preceding float Conv; int8 runs what is left as per-channel
// tables.
#include <algorithm>

#include "layers.h"

namespace qh::layers {
namespace {

std::string check(const GraphNode &n) {
    return n.bn_scale.empty() || n.bn_scale.size() != n.bn_shift.size() ? "scale and shift must be given, one per channel"
                                                                         : "";
}

std::vector<int64_t> shape(const GraphNode &n, const ShapeInputs &in) {
    const auto &x = in.shapes[0];
    if (x.empty() || x.back() != int64_t(n.bn_scale.size()))
        throw ShapeError(in.describe(0) + " vs " + std::to_string(n.bn_scale.size()) + " channels");
    return x;
}

void lower_fp32(Program &p, const GraphNode &n) {
    const int x = n.inputs[0], y = n.output;
    add_fp32_step(p, n, "batchnorm",
                  [x, y, sc = n.bn_scale, sh = n.bn_shift](Exec &e) { f32::batchnorm(e.T(x), sc, sh, e.T(y)); });
}

// int8 (a BatchNormalization left between DequantizeLinear and QuantizeLinear, as ONNX Runtime's
// quantizer leaves an unfolded one): one exact 256-entry table per channel,
// table[c][q] = QuantizeLinear(DequantizeLinear(q, xq) * scale[c] + shift[c], yq), applied by a
// host step (the CPU only: it has no GPU kernel).
void lower_int8(Program &p, const FusedGroup &gr) {
    const GraphNode &n = p.g.nodes[gr.node];
    const int x = n.inputs[0], y = gr.output;
    const QuantParams &xq = p.v[x].quant, &yq = p.v[y].quant;
    const int64_t channels = int64_t(n.bn_scale.size());
    auto tables = std::make_shared<std::vector<uint8_t>>(size_t(channels) * 256);
    // A fused Relu / Clip (QOperator: DequantizeLinear -> BatchNormalization -> Relu ->
    // QuantizeLinear) is applied in float before the quantization.
    const GraphNode *act = gr.act >= 0 ? &p.g.nodes[gr.act] : nullptr;
    for (int64_t c = 0; c < channels; c++)
        for (int q = 0; q < 256; q++) {
            const float r = float(q - xq.zp_at(0)) * xq.scale_at(0);
            float v = r * n.bn_scale[c] + n.bn_shift[c];
            if (act && act->op == OpKind::Relu) v = std::max(v, 0.f);
            if (act && act->op == OpKind::Clip) v = std::min(std::max(v, act->clip_min), act->clip_max);
            (*tables)[size_t(c * 256 + q)] = uint8_t(quantize_u8(v, yq, p.v[y].qmax));
        }
    Step s = node_step(n, "batchnorm", "per-channel tables (host)");
    s.info.op += activation_suffix(p, gr);
    s.info.name = act ? act->name : n.name;
    s.writes = {y};
    s.run = [x, y, tables, channels](Exec &e) {
        const uint8_t *src = e.T(x).data<uint8_t>();
        uint8_t *dst = e.T(y).data<uint8_t>();
        const int64_t count = e.T(x).numel();
        for (int64_t i = 0; i < count; i += channels)
            for (int64_t c = 0; c < channels; c++) dst[i + c] = (*tables)[size_t(c * 256) + src[i + c]];
    };
    p.steps.push_back(std::move(s));
}

}  // namespace

const OpDef batchnorm = {OpKind::BatchNorm, "BatchNorm", 1, check, shape, lower_fp32, quantized_inputs_and_output,
                         lower_int8};

}  // namespace qh::layers
