// Mul: y = a * b, b broadcast to a's shape by numpy rules over the NHWC (or {N,K}) layout: each
// of b's dimensions equals a's or is 1 (b {N,1,1,C}: a squeeze-excite scale; {1,1,1,1}: a
// scalar). A broadcast a (the other order) is swapped: Mul commutes. int8: QLinearMul
// semantics (ops.h bind_mul), the output with its own quantization.
#include <algorithm>

#include "layers.h"

namespace qh::layers {
namespace {

std::string check(const GraphNode &) { return ""; }

std::vector<int64_t> shape(const GraphNode &, const ShapeInputs &in) { return broadcast_shape(in); }

void lower_fp32(Program &p, const GraphNode &n) {
    const auto ab = broadcast_operands(p, n);  // (not a structured binding: lambdas capture them)
    const int a = ab.first, b = ab.second;
    const int y = n.output;
    add_fp32_step(p, n, "mul", [a, b, y](Exec &e) { f32::mul(e.T(a), e.T(b), e.T(y)); });
}

void lower_int8(Program &p, const FusedGroup &gr) {
    const GraphNode &n = p.g.nodes[gr.node];
    const auto ab = broadcast_operands(p, n);  // (not a structured binding: lambdas capture them)
    const int a = ab.first, b = ab.second;
    const int y = n.output;
    const Activation act{0, p.v[y].qmax};
    Step s = node_step(n, "mul");
    s.bind = [a, b, y, act, name = n.name](Exec &e) { return bind_mul(e.T(a), e.T(b), act, e.T(y), name); };
    p.steps.push_back(std::move(s));
}

}  // namespace

const OpDef mul = {OpKind::Mul, "Mul", 2, check, shape, lower_fp32, quantized_inputs_and_output, lower_int8};

}  // namespace qh::layers
