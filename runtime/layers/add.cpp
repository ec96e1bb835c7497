// Add: y = a + b, either operand broadcast by numpy rules. int8 (QLinearAdd semantics, fused with
// a following Relu where exact; after a Conv fused into conv2d_add, conv.cpp): the add kernel on
// equal shapes; a broadcast operand is first expanded to the full shape by a host step.
#include <cstring>

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

// dst (the full shape) = src broadcast by numpy rules (ranks right-aligned, size-1 dims repeated),
// bytes of 8-bit elements: an odometer over dst with src's strides 0 along broadcast dims.
void broadcast_bytes(const Tensor &src, Tensor &dst) {
    const int r = dst.rank(), off = r - src.rank();
    std::vector<int64_t> stride(size_t(r), 0), idx(size_t(r), 0);
    int64_t st = 1;
    for (int d = src.rank() - 1; d >= 0; d--) {
        if (src.dim(d) != 1) stride[size_t(d + off)] = st;
        st *= src.dim(d);
    }
    const uint8_t *s = static_cast<const uint8_t *>(src.raw());
    uint8_t *o = static_cast<uint8_t *>(dst.raw());
    int64_t at = 0;
    for (int64_t k = 0, n = dst.numel(); k < n; k++) {
        o[k] = s[at];
        for (int d = r - 1; d >= 0; d--) {
            at += stride[size_t(d)];
            if (++idx[size_t(d)] < dst.dim(d)) break;
            at -= stride[size_t(d)] * idx[size_t(d)];
            idx[size_t(d)] = 0;
        }
    }
}

void lower_int8(Program &p, const FusedGroup &gr) {
    const GraphNode &n = p.g.nodes[gr.node];
    int a = n.inputs[0], b = n.inputs[1];
    const int y = gr.output;
    if (p.v[a].shape != p.v[b].shape) {  // expand the broadcast operand (QLinearAdd is symmetric in a, b)
        const auto ab = broadcast_operands(p, n);
        const int small = ab.second, full = p.add_internal(n.name + ":broadcast", p.v[ab.first].shape, DType::u8,
                                                           p.v[ab.second].quant);
        Step e = node_step(n, "broadcast", "host");
        e.info.name = p.v[small].name;
        e.reads = {small};
        e.writes = {full};
        e.run = [small, full](Exec &ex) { broadcast_bytes(ex.T(small), ex.T(full)); };
        p.steps.push_back(std::move(e));
        a = ab.first;
        b = full;
    }
    const Activation act = fused_activation(p, gr, p.v[y].quant);
    Step s = node_step(n, "add");
    s.info.op += activation_suffix(p, gr);
    s.reads = {a, b};
    s.writes = {y};
    s.bind = [a, b, y, act](Exec &e) { return bind_add(e.T(a), e.T(b), act, e.T(y)); };
    p.steps.push_back(std::move(s));
}

}  // namespace

const OpDef add = {OpKind::Add, "Add", 2, check, shape, lower_fp32, quantized_inputs_and_output, lower_int8};

}  // namespace qh::layers
