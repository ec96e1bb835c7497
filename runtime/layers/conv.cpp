// Conv: x {N,H,W,C} * weights OIHW + bias -> {N,OH,OW,OC}. int8: conv2d, fused with a following
// Relu (clamp at the output zero point) and/or a residual Add (conv2d_add: the conv result is
// quantized with the Conv output's own quant, then added with QLinearAdd semantics).
#include "layers.h"

namespace qh::layers {
namespace {

std::string check(const GraphNode &n) {
    std::string e = check_weights(n, 4);
    if (e.empty() && (n.weights.dim(2) != n.window.kernel_h || n.weights.dim(3) != n.window.kernel_w))
        e = "weights " + n.weights.describe() + " disagree with kernel " + std::to_string(n.window.kernel_h) + "x" +
            std::to_string(n.window.kernel_w);
    return e.empty() ? check_window(n.window) : e;
}

std::vector<int64_t> shape(const GraphNode &n, const ShapeInputs &in) {
    const auto &x = in.shapes[0];
    if (x.size() == 4 && x[3] != n.weights.dim(1))
        throw ShapeError(in.describe(0) + " has " + std::to_string(x[3]) + " channels, weights " + n.weights.describe() +
                         " expect " + std::to_string(n.weights.dim(1)));
    return window_shape(n, in, n.weights.dim(0));
}

// 2 operations per multiply-accumulate.
double conv_ops(const GraphNode &n, const std::vector<int64_t> &y) {
    return 2.0 * double(n.weights.numel()) * double(y[0] * y[1] * y[2]);
}

void lower_fp32(Program &p, const GraphNode &n) {
    const int x = n.inputs[0], y = n.output;
    p.fweights.push_back(f32::prepare_conv_weights(n.weights, n.bias));
    const f32::ConvWeights *w = &p.fweights.back();
    const WindowAttrs a = n.window;
    p.scratch_floats = std::max(p.scratch_floats, f32::conv2d_scratch_floats(p.v[x].shape, *w, a));
    add_fp32_step(p, n, "conv2d", [x, y, w, a](Exec &e) { f32::conv2d(e.T(x), *w, a, e.scratch.data(), e.T(y)); });
    p.steps.back().info.ops = conv_ops(n, p.v[y].shape);
}

void quantize(Program &p, FusedGroup &gr) {
    const GraphNode &n = p.g.nodes[gr.node];
    need_quant(p, n, n.inputs[0]);
    need_quant(p, n, gr.output);
    p.v[gr.output].dtype = DType::u8;
    if (gr.add >= 0) {
        need_quant(p, n, n.output);
        need_quant(p, p.g.nodes[gr.add], gr.residual);
    }
}

void lower_int8(Program &p, const FusedGroup &gr) {
    const GraphNode &n = p.g.nodes[gr.node];
    const int x = n.inputs[0], y = gr.output, res = gr.residual;
    const QuantParams &xq = p.v[x].quant, &yq = p.v[y].quant;
    Step s = node_step(n, gr.add >= 0 ? "conv2d_add" : "conv2d");
    s.info.name = p.g.nodes[gr.act >= 0 ? gr.act : gr.add >= 0 ? gr.add : gr.node].name;
    s.info.op += activation_suffix(p, gr);
    s.info.ops = conv_ops(n, p.v[y].shape);
    s.writes = {y};
    Conv2dParams cp(n.window);
    cp.name = n.name;
    cp.act = fused_activation(p, gr, yq);
    if (gr.add < 0) {
        const PackedWeights *w = &pack_node(p, n, xq, yq.scale_at(0));
        s.bind = [x, y, w, cp](Exec &e) { return bind_conv2d(e.T(x), *w, cp, e.T(y)); };
    } else {
        const QuantParams &cq = p.v[n.output].quant;
        const PackedWeights *w = &pack_node(p, n, xq, cq.scale_at(0));
        if (w->has_zero_point) node_error(p.g, n, "a residual add after a conv with asymmetric weights is not supported");
        const ResidualParams rp{cq.scale_at(0), cq.zp_at(0)};
        s.reads = {x, res};
        s.bind = [x, y, res, w, cp, rp](Exec &e) { return bind_conv2d_add(e.T(x), *w, cp, rp, e.T(res), e.T(y)); };
    }
    p.steps.push_back(std::move(s));
}

}  // namespace

const OpDef conv = {OpKind::Conv, "Conv", 1, check, shape, lower_fp32, quantize, lower_int8};

}  // namespace qh::layers
