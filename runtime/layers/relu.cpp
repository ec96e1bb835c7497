// Relu: y = max(x, 0). int8: fused into the producer's clamp where exact (passes.h fuse);
// standalone it is DequantizeLinear -> Relu -> QuantizeLinear as a 256-entry table, so a QDQ
// graph's rounding and saturation at the intermediate are kept.
#include <algorithm>
#include <array>
#include <cmath>

#include "layers.h"

namespace qh::layers {
namespace {

std::string check(const GraphNode &) { return ""; }

void lower_fp32(Program &p, const GraphNode &n) {
    const int x = n.inputs[0], y = n.output;
    add_fp32_step(p, n, "relu", [x, y](Exec &e) { f32::relu(e.T(x), e.T(y)); });
}

// The output keeps the input's quantization unless it has its own.
void quantize(Program &p, FusedGroup &gr) {
    const GraphNode &n = p.g.nodes[gr.node];
    const QuantParams &xq = need_quant(p, n, n.inputs[0]);
    ValueInfo &y = p.v[n.output];
    if (y.quant.empty()) y.quant = xq;
    y.dtype = DType::u8;
}

void lower_int8(Program &p, const FusedGroup &gr) {
    const GraphNode &n = p.g.nodes[gr.node];
    const int x = n.inputs[0], y = n.output;
    const QuantParams &xq = p.v[x].quant, &yq = p.v[y].quant;
    // lut[q] = clamp(round_half_even(max(0, (q - z_x) s_x) / s_y) + z_y, 0, 255), in float32
    std::array<uint8_t, 256> lut;
    for (int q = 0; q < 256; q++) {
        float r = std::max(0.f, float(q - xq.zp_at(0)) * xq.scale_at(0));
        float t = std::nearbyint(r / yq.scale_at(0)) + float(yq.zp_at(0));
        lut[q] = uint8_t(std::clamp(t, 0.f, 255.f));
    }
    Step s = node_step(n, "relu", "host: 256-entry lookup table (dequantize, relu, quantize)");
    s.run = [x, y, lut](Exec &e) {
        const uint8_t *a = e.T(x).data<uint8_t>();
        uint8_t *o = e.T(y).data<uint8_t>();
        for (int64_t k = 0, end = e.T(x).numel(); k < end; k++) o[k] = lut[a[k]];
    };
    p.steps.push_back(std::move(s));
}

}  // namespace

const OpDef relu = {OpKind::Relu, "Relu", 1, check, same_shape, lower_fp32, quantize, lower_int8};

}  // namespace qh::layers
