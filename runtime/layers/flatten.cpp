// Flatten: {N,H,W,C} -> {N,C*H*W} in ONNX's (NCHW) order, element c*H*W + h*W + w; {N,K} as is.
// With a 1x1 spatial input the two orders agree and the output is a view of its input (no step)
// unless it needs its own memory; otherwise a host step transposes each image (NHWC -> NCHW).
#include "layers.h"

namespace qh::layers {
namespace {

std::string check(const GraphNode &) { return ""; }

std::vector<int64_t> shape(const GraphNode &, const ShapeInputs &in) {
    const auto &x = in.shapes[0];
    if (x.size() != 4 && x.size() != 2) throw ShapeError(in.describe(0) + ": expected rank 4 (NHWC) or 2");
    return {x[0], x.size() == 4 ? x[1] * x[2] * x[3] : x[1]};
}

bool spatial(const Program &p, const GraphNode &n) {
    const auto &x = p.v[n.inputs[0]].shape;
    return x.size() == 4 && x[1] * x[2] > 1;
}

// NHWC -> NCHW into y's memory (y {N, C*H*W} seen as {N,C,H,W}): ONNX's flatten order.
void add_transpose_step(Program &p, const GraphNode &n, const char *kernel) {
    const int x = n.inputs[0], y = n.output;
    Step s = node_step(n, "flatten (NCHW order)", kernel);
    s.run = [x, y](Exec &e) {
        const Tensor &xt = e.T(x);
        Tensor yt = Tensor::wrap(xt.dtype(), nchw_shape(xt.shape()), e.T(y).raw());
        nhwc_to_nchw(xt, yt);
    };
    p.steps.push_back(std::move(s));
}

void lower_fp32(Program &p, const GraphNode &n) {
    if (spatial(p, n)) return add_transpose_step(p, n, "host: transpose");
    lower_view(p, n, "fp32 reference");
}

void quantize(Program &p, FusedGroup &gr) {
    const GraphNode &n = p.g.nodes[gr.node];
    p.v[n.output].dtype = p.v[n.inputs[0]].dtype;
    p.v[n.output].quant = p.v[n.inputs[0]].quant;
}

void lower_int8(Program &p, const FusedGroup &gr) {
    const GraphNode &n = p.g.nodes[gr.node];
    if (spatial(p, n)) return add_transpose_step(p, n, "host: transpose");
    lower_view(p, n, "host: copy");
}

}  // namespace

const OpDef flatten = {OpKind::Flatten, "Flatten", 1, check, shape, lower_fp32, quantize, lower_int8};

}  // namespace qh::layers
