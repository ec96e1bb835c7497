// GlobalAvgPool: {N,H,W,C} -> {N,1,1,C}, the mean over H x W. int8: requantizes to the output's
// own quantization; the kernel writes {N,C}, a view of the output's storage.
#include "layers.h"

namespace qh::layers {
namespace {

std::string check(const GraphNode &) { return ""; }

void lower_fp32(Program &p, const GraphNode &n) {
    const int x = n.inputs[0], y = n.output;
    add_fp32_step(p, n, "global_avgpool", [x, y](Exec &e) { f32::global_avgpool(e.T(x), e.T(y)); });
}

void quantize(Program &p, FusedGroup &gr) {
    const GraphNode &n = p.g.nodes[gr.node];
    need_quant(p, n, n.inputs[0]);
    const int y = n.output;
    const QuantParams yq = need_quant(p, n, y);
    p.v[y].dtype = DType::u8;
    gr.aux = p.add_internal(p.v[y].name + ":nc", {p.v[y].shape[0], p.v[y].shape[3]}, DType::u8, yq);
    p.v[gr.aux].alias = y;
}

void lower_int8(Program &p, const FusedGroup &gr) {
    const GraphNode &n = p.g.nodes[gr.node];
    const int x = n.inputs[0], view = gr.aux;
    Step s = node_step(n, "global_avgpool");
    const int qmax = p.v[n.output].qmax;
    s.bind = [x, view, qmax](Exec &e) { return bind_global_avgpool(e.T(x), e.T(view), qmax); };
    p.steps.push_back(std::move(s));
}

}  // namespace

const OpDef global_avgpool = {OpKind::GlobalAvgPool, "GlobalAvgPool", 1, check, global_pool_shape, lower_fp32, quantize,
                              lower_int8};

}  // namespace qh::layers
