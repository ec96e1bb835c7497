// Flatten: {N,1,1,C} -> {N,C}, or {N,K} as is. Only 1x1 spatial inputs: there NHWC and NCHW
// flatten orders agree. A view of its input (no step) unless the output needs its own memory.
#include "layers.h"

namespace qh::layers {
namespace {

std::string check(const GraphNode &) { return ""; }

std::vector<int64_t> shape(const GraphNode &, const ShapeInputs &in) {
    const auto &x = in.shapes[0];
    if (x.size() == 4 && (x[1] != 1 || x[2] != 1))
        throw ShapeError(in.describe(0) + " has spatial size " + std::to_string(x[1]) + "x" + std::to_string(x[2]) +
                         ": only 1x1 spatial inputs can be flattened (NHWC and NCHW orders differ otherwise)");
    if (x.size() != 4 && x.size() != 2) throw ShapeError(in.describe(0) + ": expected rank 4 (NHWC) or 2");
    return {x[0], x.back()};
}

void lower_fp32(Program &p, const GraphNode &n) { lower_view(p, n, "fp32 reference"); }

void quantize(Program &p, FusedGroup &gr) {
    const GraphNode &n = p.g.nodes[gr.node];
    p.v[n.output].dtype = p.v[n.inputs[0]].dtype;
    p.v[n.output].quant = p.v[n.inputs[0]].quant;
}

void lower_int8(Program &p, const FusedGroup &gr) { lower_view(p, p.g.nodes[gr.node], "host: copy"); }

}  // namespace

const OpDef flatten = {OpKind::Flatten, "Flatten", 1, check, shape, lower_fp32, quantize, lower_int8};

}  // namespace qh::layers
