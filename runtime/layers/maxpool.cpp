// MaxPool over n.window, channels kept. int8: max commutes with dequantization, so the output
// keeps the input's quantization (a different one is refused).
#include "layers.h"

namespace qh::layers {
namespace {

std::string check(const GraphNode &n) { return check_window(n.window); }

std::vector<int64_t> shape(const GraphNode &n, const ShapeInputs &in) {
    return window_shape(n, in, in.shapes[0].size() == 4 ? in.shapes[0][3] : 0);
}

void lower_fp32(Program &p, const GraphNode &n) {
    const int x = n.inputs[0], y = n.output;
    add_fp32_step(p, n, "maxpool", [x, y, a = n.window](Exec &e) { f32::maxpool(e.T(x), a, e.T(y)); });
}

void quantize(Program &p, FusedGroup &gr) {
    const GraphNode &n = p.g.nodes[gr.node];
    const QuantParams &xq = need_quant(p, n, n.inputs[0]);
    ValueInfo &y = p.v[n.output];
    if (!y.quant.empty() && !same_quant(y.quant, xq))
        node_error(p.g, n, std::string(op_name(n.op)) + " must keep its input's quantization (output scale/zero point differ)");
    y.quant = xq;
    y.qmax = p.v[n.inputs[0]].qmax;  // a 4-bit input stays 4-bit
    y.dtype = DType::u8;
}

void lower_int8(Program &p, const FusedGroup &gr) {
    const GraphNode &n = p.g.nodes[gr.node];
    const int x = n.inputs[0], y = n.output;
    PoolParams pp(n.window);
    pp.name = n.name;
    Step s = node_step(n, "maxpool");
    s.bind = [x, y, pp](Exec &e) { return bind_maxpool(e.T(x), pp, e.T(y)); };
    p.steps.push_back(std::move(s));
}

// GlobalMaxPool: MaxPool with the whole image as its window.
WindowAttrs global_window(const std::vector<int64_t> &x) {
    WindowAttrs a;
    a.kernel_h = int(x[1]);
    a.kernel_w = int(x[2]);
    return a;
}

std::string global_check(const GraphNode &) { return ""; }

void global_fp32(Program &p, const GraphNode &n) {
    const int x = n.inputs[0], y = n.output;
    add_fp32_step(p, n, "global_maxpool", [x, y, a = global_window(p.v[x].shape)](Exec &e) { f32::maxpool(e.T(x), a, e.T(y)); });
}

void global_int8(Program &p, const FusedGroup &gr) {
    const GraphNode &n = p.g.nodes[gr.node];
    const int x = n.inputs[0], y = n.output;
    PoolParams pp(global_window(p.v[x].shape));
    pp.name = n.name;
    Step s = node_step(n, "global_maxpool");
    s.bind = [x, y, pp](Exec &e) { return bind_maxpool(e.T(x), pp, e.T(y)); };
    p.steps.push_back(std::move(s));
}

}  // namespace

const OpDef maxpool = {OpKind::MaxPool, "MaxPool", 1, check, shape, lower_fp32, quantize, lower_int8};
const OpDef global_maxpool = {OpKind::GlobalMaxPool, "GlobalMaxPool", 1, global_check, global_pool_shape, global_fp32,
                              quantize, global_int8};

}  // namespace qh::layers
