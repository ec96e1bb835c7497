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

float relu_f(float v, const GraphNode &) { return std::max(0.f, v); }

void lower_int8(Program &p, const FusedGroup &gr) {
    const GraphNode &n = p.g.nodes[gr.node];
    add_table_step(p, n, "relu", u8_table(p.v[n.inputs[0]].quant, p.v[n.output].quant, relu_f, n, p.v[n.output].qmax));
}

}  // namespace

const OpDef relu = {OpKind::Relu, "Relu", 1, check, same_shape, lower_fp32, keep_input_quant, lower_int8};

}  // namespace qh::layers
