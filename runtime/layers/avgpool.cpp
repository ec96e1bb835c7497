// AveragePool over n.window (ceil_mode, count_include_pad), channels kept. int8: the exact
// integer window sum requantized to the output's own quantization (ops.h bind_avgpool).
#include "layers.h"

namespace qh::layers {
namespace {

std::string check(const GraphNode &n) {
    if (n.window.dilation_h != 1 || n.window.dilation_w != 1) return "dilations not supported (only 1)";
    if (n.window.pad_top >= n.window.kernel_h || n.window.pad_bottom >= n.window.kernel_h ||
        n.window.pad_left >= n.window.kernel_w || n.window.pad_right >= n.window.kernel_w)
        return "pads must be smaller than the kernel";
    return check_window(n.window);
}

std::vector<int64_t> shape(const GraphNode &n, const ShapeInputs &in) {
    return window_shape(n, in, in.shapes[0].size() == 4 ? in.shapes[0][3] : 0);
}

void lower_fp32(Program &p, const GraphNode &n) {
    const int x = n.inputs[0], y = n.output;
    add_fp32_step(p, n, "avgpool", [x, y, a = n.window, inc = n.count_include_pad](Exec &e) {
        f32::avgpool(e.T(x), a, inc, e.T(y));
    });
}

void lower_int8(Program &p, const FusedGroup &gr) {
    const GraphNode &n = p.g.nodes[gr.node];
    const int x = n.inputs[0], y = n.output, qmax = p.v[y].qmax;
    PoolParams pp(n.window);
    pp.name = n.name;
    Step s = node_step(n, "avgpool");
    s.bind = [x, y, pp, inc = n.count_include_pad, qmax](Exec &e) {
        return bind_avgpool(e.T(x), pp, inc, e.T(y), qmax);
    };
    p.steps.push_back(std::move(s));
}

}  // namespace

const OpDef avgpool = {OpKind::AvgPool, "AveragePool", 1, check, shape, lower_fp32, quantized_inputs_and_output,
                       lower_int8};

}  // namespace qh::layers
