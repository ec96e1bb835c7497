// Add: y = a + b, same shapes (no broadcasting). int8: QLinearAdd semantics, fused with a
// following Relu where exact; after a Conv it is fused into conv2d_add (conv.cpp).
#include "layers.h"

namespace qh::layers {
namespace {

std::string check(const GraphNode &) { return ""; }

std::vector<int64_t> shape(const GraphNode &, const ShapeInputs &in) {
    if (in.shapes[0] != in.shapes[1])
        throw ShapeError("shapes differ: " + in.describe(0) + " and " + in.describe(1) + " (broadcasting is not supported)");
    return in.shapes[0];
}

void lower_fp32(Program &p, const GraphNode &n) {
    const int a = n.inputs[0], b = n.inputs[1], y = n.output;
    add_fp32_step(p, n, "add", [a, b, y](Exec &e) { f32::add(e.T(a), e.T(b), e.T(y)); });
}

void quantize(Program &p, FusedGroup &gr) {
    const GraphNode &n = p.g.nodes[gr.node];
    need_quant(p, n, n.inputs[0]);
    need_quant(p, n, n.inputs[1]);
    need_quant(p, n, gr.output);
    p.v[gr.output].dtype = DType::u8;
}

void lower_int8(Program &p, const FusedGroup &gr) {
    const GraphNode &n = p.g.nodes[gr.node];
    const int a = n.inputs[0], b = n.inputs[1], y = gr.output;
    const Activation act = fused_activation(p, gr, p.v[y].quant);
    Step s = node_step(n, "add");
    s.info.op += activation_suffix(p, gr);
    s.writes = {y};
    s.bind = [a, b, y, act](Exec &e) { return bind_add(e.T(a), e.T(b), act, e.T(y)); };
    p.steps.push_back(std::move(s));
}

}  // namespace

const OpDef add = {OpKind::Add, "Add", 2, check, shape, lower_fp32, quantize, lower_int8};

}  // namespace qh::layers
