// Clip: y = min(max(x, clip_min), clip_max) (ONNX Clip; Relu6 is Clip(0, 6)). int8: fused into
// the producer's clamp where exact (passes.h fuse; layers/common.cpp fused_activation), else a
// 256-entry DequantizeLinear -> Clip -> QuantizeLinear table like the standalone Relu.
#include <algorithm>
#include <cmath>

#include "layers.h"

namespace qh::layers {
namespace {

std::string check(const GraphNode &n) {
    if (std::isnan(n.clip_min) || std::isnan(n.clip_max) || n.clip_min > n.clip_max)
        return "bounds [" + std::to_string(n.clip_min) + ", " + std::to_string(n.clip_max) +
               "] must be numbers with min <= max";
    return "";
}

void lower_fp32(Program &p, const GraphNode &n) {
    const int x = n.inputs[0], y = n.output;
    const float lo = n.clip_min, hi = n.clip_max;
    add_fp32_step(p, n, "clip", [x, y, lo, hi](Exec &e) {
        const float *a = e.T(x).data<float>();
        float *o = e.T(y).data<float>();
        for (int64_t k = 0, end = e.T(x).numel(); k < end; k++) o[k] = std::min(std::max(a[k], lo), hi);
    });
}

float clip_f(float v, const GraphNode &n) { return std::min(std::max(v, n.clip_min), n.clip_max); }

void lower_int8(Program &p, const FusedGroup &gr) {
    const GraphNode &n = p.g.nodes[gr.node];
    add_table_step(p, n, "clip", u8_table(p.v[n.inputs[0]].quant, p.v[n.output].quant, clip_f, n, p.v[n.output].qmax));
}

}  // namespace

const OpDef clip = {OpKind::Clip, "Clip", 1, check, same_shape, lower_fp32, keep_input_quant, lower_int8};

}  // namespace qh::layers
