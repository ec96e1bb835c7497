// Mul: y = a * b, b broadcast to a's shape by numpy rules over the NHWC (or {N,K}) layout: each
// of b's dimensions equals a's or is 1 (b {N,1,1,C}: a squeeze-excite scale; {1,1,1,1}: a
// scalar). A broadcast a (the other order) is swapped: Mul commutes. int8: QLinearMul
// semantics (ops.h bind_mul), the output with its own quantization.
#include <algorithm>

#include "layers.h"

namespace qh::layers {
namespace {

std::string check(const GraphNode &) { return ""; }

// a's shape if b broadcasts to it (after right-aligning ranks), else empty.
std::vector<int64_t> broadcast_to(const std::vector<int64_t> &a, const std::vector<int64_t> &b) {
    if (b.size() > a.size()) return {};
    for (size_t i = 0; i < b.size(); i++) {
        const int64_t x = a[a.size() - b.size() + i], y = b[i];
        if (y != x && y != 1) return {};
    }
    return a;
}

std::vector<int64_t> shape(const GraphNode &, const ShapeInputs &in) {
    auto y = broadcast_to(in.shapes[0], in.shapes[1]);
    if (y.empty()) y = broadcast_to(in.shapes[1], in.shapes[0]);
    if (y.empty())
        throw ShapeError("shapes do not broadcast: " + in.describe(0) + " and " + in.describe(1) +
                         " (one must take the other's shape, with 1 where it is broadcast)");
    return y;
}

// (full operand, broadcast operand) of node n for output shape y.
std::pair<int, int> operands(const Program &p, const GraphNode &n) {
    const int a = n.inputs[0], b = n.inputs[1];
    return p.v[a].shape == p.v[n.output].shape ? std::make_pair(a, b) : std::make_pair(b, a);
}

void lower_fp32(Program &p, const GraphNode &n) {
    const auto [a, b] = operands(p, n);
    const int y = n.output;
    add_fp32_step(p, n, "mul", [a, b, y](Exec &e) { f32::mul(e.T(a), e.T(b), e.T(y)); });
}

void quantize(Program &p, FusedGroup &gr) {
    const GraphNode &n = p.g.nodes[gr.node];
    need_quant(p, n, n.inputs[0]);
    need_quant(p, n, n.inputs[1]);
    need_quant(p, n, n.output);
    p.v[n.output].dtype = DType::u8;
}

void lower_int8(Program &p, const FusedGroup &gr) {
    const GraphNode &n = p.g.nodes[gr.node];
    const auto [a, b] = operands(p, n);
    const int y = n.output;
    const Activation act{0, p.v[y].qmax};
    Step s = node_step(n, "mul");
    s.bind = [a, b, y, act, name = n.name](Exec &e) { return bind_mul(e.T(a), e.T(b), act, e.T(y), name); };
    p.steps.push_back(std::move(s));
}

}  // namespace

const OpDef mul = {OpKind::Mul, "Mul", 2, check, shape, lower_fp32, quantize, lower_int8};

}  // namespace qh::layers
