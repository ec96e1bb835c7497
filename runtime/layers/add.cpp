// Add: y = a + b, b broadcast by numpy rules on the fp32 path; int8 (QLinearAdd semantics,
// fused with a following Relu where exact; after a Conv fused into conv2d_add, conv.cpp) takes
// equal shapes only.
#include "layers.h"

namespace qh::layers {
namespace {

std::string check(const GraphNode &) { return ""; }

std::vector<int64_t> shape(const GraphNode &, const ShapeInputs &in) { return broadcast_shape(in); }

void lower_fp32(Program &p, const GraphNode &n) {
    const auto ab = broadcast_operands(p, n);  // (not a structured binding: lambdas capture them)
    const int a = ab.first, b = ab.second;
    const int y = n.output;
    if (p.v[a].shape == p.v[b].shape)
        add_fp32_step(p, n, "add", [a, b, y](Exec &e) { f32::add(e.T(a), e.T(b), e.T(y)); });
    else
        add_fp32_step(p, n, "add", [a, b, y](Exec &e) { f32::add_broadcast(e.T(a), e.T(b), e.T(y)); });
}

void quantize(Program &p, FusedGroup &gr) {
    const GraphNode &n = p.g.nodes[gr.node];
    if (p.v[n.inputs[0]].shape != p.v[n.inputs[1]].shape)
        node_error(p.g, n, "a quantized Add with broadcasting (" + shape_str(p.v[n.inputs[0]].shape) + " + " +
                               shape_str(p.v[n.inputs[1]].shape) + ") is not supported (equal shapes only; "
                               "the fp32 path broadcasts)");
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
