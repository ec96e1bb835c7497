// Concat along n.axis of the IR layout (ONNX's axis; for rank 4 mapped from NCHW to NHWC by the
// importer). int8: each input is requantized to the output's quantization by its exact 256-entry
// table (QLinearConcat; the identity when they agree) and written into its slice of the output by
// the lut kernel (ops.h bind_concat_slice).
#include <algorithm>
#include <memory>

#include "layers.h"

namespace qh::layers {
namespace {

std::string check(const GraphNode &n) { return n.axis < 0 ? "axis " + std::to_string(n.axis) + " not resolved" : ""; }

std::vector<int64_t> shape(const GraphNode &n, const ShapeInputs &in) {
    std::vector<int64_t> y = in.shapes[0];
    const size_t a = size_t(n.axis);
    if (a >= y.size()) throw ShapeError(in.describe(0) + " has no axis " + std::to_string(n.axis));
    for (size_t i = 1; i < in.shapes.size(); i++) {
        const auto &x = in.shapes[i];
        bool ok = x.size() == y.size();
        for (size_t d = 0; ok && d < y.size(); d++) ok = d == a || x[d] == y[d];
        if (!ok) throw ShapeError(in.describe(int(i)) + " does not match " + in.describe(0) + " but along axis " +
                                  std::to_string(n.axis));
        y[a] += x[a];
    }
    return y;
}

void lower_fp32(Program &p, const GraphNode &n) {
    const std::vector<int> xs = n.inputs;
    const int y = n.output, axis = n.axis;
    add_fp32_step(p, n, "concat", [xs, y, axis](Exec &e) {
        Tensor &out = e.T(y);
        int64_t inner = 1, outer = 1;
        for (int k = axis + 1; k < out.rank(); k++) inner *= out.dim(k);
        for (int k = 0; k < axis; k++) outer *= out.dim(k);
        const int64_t ry = out.dim(axis) * inner;
        int64_t off = 0;
        for (int x : xs) {
            const Tensor &in = e.T(x);
            const int64_t rx = in.dim(axis) * inner;
            for (int64_t q = 0; q < outer; q++)
                std::copy_n(in.data<float>() + q * rx, rx, out.data<float>() + q * ry + off);
            off += rx;
        }
    });
}

float identity(float v, const GraphNode &) { return v; }

void lower_int8(Program &p, const FusedGroup &gr) {
    const GraphNode &n = p.g.nodes[gr.node];
    const int y = n.output;
    std::vector<std::pair<int, std::array<uint8_t, 256>>> parts;
    for (int x : n.inputs)
        parts.push_back({x, u8_table(p.v[x].quant, p.v[y].quant, identity, n, p.v[y].qmax)});
    Step s = node_step(n, "concat");
    s.bind = [parts, y, axis = n.axis, name = n.name](Exec &e) {
        auto ops = std::make_shared<std::vector<BoundOp>>();
        int64_t off = 0;
        Tensor &out = e.T(y);
        for (const auto &[x, table] : parts) {
            const Tensor &in = e.T(x);
            ops->push_back(bind_concat_slice(in, table.data(), out, axis, off, name));
            off += in.dim(axis);
        }
        const std::string kernel = ops->front().kernel();
        return BoundOp("concat", kernel, [ops] {
            for (const BoundOp &b : *ops) b.run();
            return 0;
        });
    };
    p.steps.push_back(std::move(s));
}

}  // namespace

const OpDef concat = {OpKind::Concat, "Concat", -1, check, shape, lower_fp32, quantized_inputs_and_output,
                      lower_int8};

}  // namespace qh::layers
