// Conv: x {N,H,W,C} * weights O(I/group)HW + bias -> {N,OH,OW,OC}. int8: conv2d, fused with a
// following Relu (clamp at the output zero point) and/or a residual Add (conv2d_add: the conv
// result is quantized with the Conv output's own quant, then added with QLinearAdd semantics).
// Grouped, depthwise and dilated convs run on conv2d_grouped; they and convs with asymmetric
// weights run a fused Add as a step of its own after the conv (the same arithmetic).
#include "layers.h"

namespace qh::layers {
namespace {

std::string check(const GraphNode &n) {
    std::string e = check_weights(n, 4);
    if (e.empty() && (n.weights.dim(2) != n.window.kernel_h || n.weights.dim(3) != n.window.kernel_w))
        e = "weights " + n.weights.describe() + " disagree with kernel " + std::to_string(n.window.kernel_h) + "x" +
            std::to_string(n.window.kernel_w);
    if (e.empty() && (n.group < 1 || n.weights.dim(0) % n.group != 0))
        e = "group=" + std::to_string(n.group) + " must be >= 1 and divide the " + std::to_string(n.weights.dim(0)) +
            " output channels";
    return e.empty() ? check_window(n.window) : e;
}

// Runs on conv2d_grouped (and its fp32 form on per-group sgemm).
bool grouped(const GraphNode &n) { return n.group > 1 || n.window.dilation_h > 1 || n.window.dilation_w > 1; }

std::vector<int64_t> shape(const GraphNode &n, const ShapeInputs &in) {
    const auto &x = in.shapes[0];
    if (x.size() == 4 && x[3] != n.weights.dim(1) * n.group)
        throw ShapeError(in.describe(0) + " has " + std::to_string(x[3]) + " channels, weights " + n.weights.describe() +
                         (n.group > 1 ? " with group=" + std::to_string(n.group) : std::string()) + " expect " +
                         std::to_string(n.weights.dim(1) * n.group));
    return window_shape(n, in, n.weights.dim(0));
}

// 2 operations per multiply-accumulate.
double conv_ops(const GraphNode &n, const std::vector<int64_t> &y) {
    return 2.0 * double(n.weights.numel()) * double(y[0] * y[1] * y[2]);
}

void lower_fp32(Program &p, const GraphNode &n) {
    if (n.dynamic != GraphNode::Dynamic::none) return lower_dynamic(p, n);
    if (n.int32_output) node_error(p.g, n, "ConvInteger's int32 output runs on the int8 path (precision int8)");
    const int x = n.inputs[0], y = n.output;
    if (n.weights.dtype() != DType::f32)
        node_error(p.g, n, std::string("the fp32 path needs float weights, these are ") + dtype_name(n.weights.dtype()) +
                               " (a float island must not be a Conv with quantized weights)");
    p.fweights.push_back(f32::prepare_conv_weights(n.weights, n.bias, n.group));
    const f32::ConvWeights *w = &p.fweights.back();
    const WindowAttrs a = n.window;
    p.scratch_floats = std::max(p.scratch_floats, f32::conv2d_scratch_floats(p.v[x].shape, *w, a));
    add_fp32_step(p, n, "conv2d", [x, y, w, a](Exec &e) { f32::conv2d(e.T(x), *w, a, e.scratch.data(), e.T(y)); });
    p.steps.back().info.ops = conv_ops(n, p.v[y].shape);
}

void quantize(Program &p, FusedGroup &gr) {
    const GraphNode &n = p.g.nodes[gr.node];
    need_quant(p, n, n.inputs[0]);
    if (n.int32_output) {  // ConvInteger: the exact accumulator (fuse() gives it no Add or activation)
        p.v[gr.output].dtype = DType::s32;
        p.v[gr.output].quant = {};
        return;
    }
    need_quant(p, n, gr.output);
    p.v[gr.output].dtype = DType::u8;
    if (gr.add >= 0) {
        need_quant(p, n, n.output);
        p.v[n.output].dtype = DType::u8;
        need_quant(p, p.g.nodes[gr.add], gr.residual);
    }
}

void lower_int8(Program &p, const FusedGroup &gr) {
    const GraphNode &n = p.g.nodes[gr.node];
    const int x = n.inputs[0], res = gr.residual;
    const QuantParams &xq = p.v[x].quant;
    // With a fused Add the conv's own result has the Conv output's quantization (conv2d_add's
    // internal value); packed for it either way.
    const QuantParams &cq = p.v[gr.add >= 0 ? n.output : gr.output].quant;
    const PackedWeights *w = &pack_node(p, n, xq, n.int32_output ? 0.f : cq.scale_at(0), grouped(n));
    // conv2d_add needs the dense kernel with symmetric weights and operands of one shape;
    // otherwise the conv writes its own result and the Add is its own step (which broadcasts).
    const bool fused_add = gr.add >= 0 && !w->grouped && !w->has_zero_point &&
                           p.v[res].shape == p.v[gr.output].shape && p.v[n.output].shape == p.v[gr.output].shape;
    const int y = gr.add >= 0 && !fused_add ? n.output : gr.output;
    const QuantParams &yq = p.v[y].quant;
    Step s = node_step(n, fused_add ? "conv2d_add" : w->grouped ? "conv2d_grouped" : "conv2d");
    s.info.name = p.g.nodes[gr.act >= 0 && y == gr.output ? gr.act : fused_add ? gr.add : gr.node].name;
    if (y == gr.output) s.info.op += activation_suffix(p, gr);
    s.info.ops = conv_ops(n, p.v[y].shape);
    s.writes = {y};
    Conv2dParams cp(n.window);
    cp.name = n.name;
    cp.group = n.group;
    cp.act = n.int32_output ? Activation{} : y == gr.output ? fused_activation(p, gr, yq) : Activation{0, p.v[y].qmax};
    if (w->grouped) {
        s.bind = [x, y, w, cp](Exec &e) { return bind_conv2d_grouped(e.T(x), *w, cp, e.T(y)); };
    } else if (!fused_add) {
        s.bind = [x, y, w, cp](Exec &e) { return bind_conv2d(e.T(x), *w, cp, e.T(y)); };
    } else {
        const ResidualParams rp{cq.scale_at(0), cq.zp_at(0)};
        s.reads = {x, res};
        s.bind = [x, y, res, w, cp, rp](Exec &e) { return bind_conv2d_add(e.T(x), *w, cp, rp, e.T(res), e.T(y)); };
    }
    p.steps.push_back(std::move(s));
    if (gr.add >= 0 && !fused_add) {  // the Add (and its activation) after the conv's result
        FusedGroup ag;
        ag.node = gr.add;
        ag.act = gr.act;
        ag.output = gr.output;
        op_def(OpKind::Add).lower_int8(p, ag);
    }
}

}  // namespace

const OpDef conv = {OpKind::Conv, "Conv", 1, check, shape, lower_fp32, quantize, lower_int8};

}  // namespace qh::layers
