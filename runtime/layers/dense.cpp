// Dense: x {N,K} W^T + b, W {OC,K} -> {N,OC}. int8: dense to u8 when the output is quantized
// (fused with a following Relu), else dense to s32 and an exact per-channel dequantization
// (logits are not squeezed through 8 bits).
#include "layers.h"

namespace qh::layers {
namespace {

std::string check(const GraphNode &n) { return check_weights(n, 2); }

std::vector<int64_t> shape(const GraphNode &n, const ShapeInputs &in) {
    const auto &x = in.shapes[0];
    if (x.size() != 2 || x[1] != n.weights.dim(1))
        throw ShapeError(in.describe(0) + ": expected [N," + std::to_string(n.weights.dim(1)) + "]");
    return {x[0], n.weights.dim(0)};
}

double dense_ops(const GraphNode &n, const std::vector<int64_t> &y) { return 2.0 * double(n.weights.numel()) * double(y[0]); }

void lower_fp32(Program &p, const GraphNode &n) {
    if (n.dynamic != GraphNode::Dynamic::none) return lower_dynamic(p, n);
    if (n.int32_output) node_error(p.g, n, "MatMulInteger's int32 output runs on the int8 path (precision int8)");
    const int x = n.inputs[0], y = n.output;
    p.fweights.push_back(f32::prepare_conv_weights(n.weights, n.bias));
    const f32::ConvWeights *w = &p.fweights.back();
    add_fp32_step(p, n, "dense", [x, y, w](Exec &e) { f32::dense(e.T(x), *w, e.T(y)); });
    p.steps.back().info.ops = dense_ops(n, p.v[y].shape);
}

void quantize(Program &p, FusedGroup &gr) {
    const GraphNode &n = p.g.nodes[gr.node];
    const QuantParams &xq = need_quant(p, n, n.inputs[0]);
    const int y = gr.output;
    if (n.int32_output) {  // MatMulInteger: the exact accumulator, written by the kernel itself
        if (gr.act >= 0) node_error(p.g, n, "a Relu or Clip after MatMulInteger's int32 output is not supported");
        p.v[y].dtype = DType::s32;
        p.v[y].quant = {};
        return;
    }
    if (!p.v[y].quant.empty()) {
        p.v[y].dtype = DType::u8;
        return;
    }
    if (gr.act >= 0) node_error(p.g, n, "a Relu or Clip after a float-output Dense is not supported");
    // Float output: s32 accumulators with real = s_x * s_w[oc] * acc (computed in float32 as
    // ONNX does), dequantized per channel.
    QuantParams aq;
    aq.axis = 1;
    aq.zero_point = {0};
    const std::vector<float> ws = weight_scales(n.weights, weight_qmax(n));
    for (int64_t o = 0; o < n.weights.dim(0); o++) aq.scale.push_back(xq.scale_at(0) * weight_scale(ws, o));
    gr.aux = p.add_internal(n.name + ":s32", p.v[y].shape, DType::s32, aq);
    p.v[y].dtype = DType::f32;
}

void lower_int8(Program &p, const FusedGroup &gr) {
    const GraphNode &n = p.g.nodes[gr.node];
    const int x = n.inputs[0], y = gr.output;
    const QuantParams &xq = p.v[x].quant;
    const std::string name = n.name;
    Step s = node_step(n, "dense");
    s.info.op += activation_suffix(p, gr);
    s.info.ops = dense_ops(n, p.v[y].shape);
    s.writes = {y};
    if (n.int32_output) {
        const PackedWeights *w = &pack_node(p, n, xq, 0.f);
        s.bind = [x, y, w, name](Exec &e) { return bind_dense(e.T(x), *w, {}, e.T(y), name); };
        p.steps.push_back(std::move(s));
        return;
    }
    if (gr.aux < 0) {  // u8 output
        const PackedWeights *w = &pack_node(p, n, xq, p.v[y].quant.scale_at(0));
        const Activation act = fused_activation(p, gr, p.v[y].quant);
        s.bind = [x, y, w, act, name](Exec &e) { return bind_dense(e.T(x), *w, act, e.T(y), name); };
        p.steps.push_back(std::move(s));
        return;
    }
    const int acc = gr.aux;
    const PackedWeights *w = &pack_node(p, n, xq, 0.f);
    s.writes = {acc};
    s.bind = [x, acc, w, name](Exec &e) { return bind_dense(e.T(x), *w, {}, e.T(acc), name); };
    p.steps.push_back(std::move(s));
    Step d;
    d.info.name = d.info.layer = n.name;
    d.info.op = "dequantize";
    d.reads = {acc};
    d.writes = {y};
    d.bind = [acc, y](Exec &e) { return bind_dequantize(e.T(acc), e.T(y)); };
    p.steps.push_back(std::move(d));
}

}  // namespace

const OpDef dense = {OpKind::Dense, "Dense", 1, check, shape, lower_fp32, quantize, lower_int8};

}  // namespace qh::layers
