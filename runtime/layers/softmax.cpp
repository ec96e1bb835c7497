// Softmax along n.axis (or, opset < 13, over axes n.axis..rank-1 together): y = exp(x - max) /
// sum exp(x - max), in float32 with a double sum. Float only: in a quantized model the importer
// makes it a float island (LayerPrecision::fp32: DequantizeLinear / QuantizeLinear at its edges).
#include <algorithm>
#include <cmath>

#include "layers.h"

namespace qh::layers {
namespace {

std::string check(const GraphNode &n) { return n.axis < 0 ? "axis not resolved" : ""; }

std::vector<int64_t> shape(const GraphNode &n, const ShapeInputs &in) {
    if (size_t(n.axis) >= in.shapes[0].size()) throw ShapeError(in.describe(0) + " has no axis " + std::to_string(n.axis));
    return in.shapes[0];
}

void lower_fp32(Program &p, const GraphNode &n) {
    const int x = n.inputs[0], y = n.output, axis = n.axis;
    const bool to_end = n.softmax_to_end;
    add_fp32_step(p, n, "softmax", [x, y, axis, to_end](Exec &e) {
        const Tensor &in = e.T(x);
        // (outer, extent, inner): softmax over `extent` elements `inner` apart.
        int64_t outer = 1, extent = 1, inner = 1;
        for (int k = 0; k < axis; k++) outer *= in.dim(k);
        for (int k = axis; k < in.rank(); k++) (k == axis || to_end ? extent : inner) *= in.dim(k);
        const float *a = in.data<float>();
        float *o = e.T(y).data<float>();
        for (int64_t q = 0; q < outer; q++)
            for (int64_t i = 0; i < inner; i++) {
                const int64_t base = q * extent * inner + i;
                float m = -INFINITY;
                for (int64_t k = 0; k < extent; k++) m = std::max(m, a[base + k * inner]);
                double sum = 0;
                for (int64_t k = 0; k < extent; k++) sum += std::exp(double(a[base + k * inner] - m));
                for (int64_t k = 0; k < extent; k++)
                    o[base + k * inner] = float(std::exp(double(a[base + k * inner] - m)) / sum);
            }
    });
}

void quantize(Program &p, FusedGroup &gr) {
    node_error(p.g, p.g.nodes[gr.node], "Softmax runs on the fp32 path only (a float island in a quantized model)");
}
void lower_int8(Program &, const FusedGroup &) {}

}  // namespace

const OpDef softmax = {OpKind::Softmax, "Softmax", 1, check, shape, lower_fp32, quantize, lower_int8};

}  // namespace qh::layers
