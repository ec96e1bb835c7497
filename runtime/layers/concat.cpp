// Concat along the channels (ONNX axis 1 of NCHW: NHWC's last dimension). int8: each input is
// requantized to the output's quantization by its exact 256-entry table (QLinearConcat; the
// identity when they agree) and written into its channel slice of the output by the lut kernel.
#include <algorithm>
#include <memory>

#include "layers.h"

namespace qh::layers {
namespace {

std::string check(const GraphNode &) { return ""; }

std::vector<int64_t> shape(const GraphNode &, const ShapeInputs &in) {
    std::vector<int64_t> y = in.shapes[0];
    if (y.size() != 4) throw ShapeError(in.describe(0) + ": expected NHWC (rank 4)");
    for (size_t i = 1; i < in.shapes.size(); i++) {
        const auto &x = in.shapes[i];
        bool ok = x.size() == y.size();
        for (size_t d = 0; ok && d + 1 < y.size(); d++) ok = x[d] == y[d];
        if (!ok) throw ShapeError(in.describe(int(i)) + " does not match " + in.describe(0) + " but in the channels");
        y.back() += x.back();
    }
    return y;
}

void lower_fp32(Program &p, const GraphNode &n) {
    const std::vector<int> xs = n.inputs;
    const int y = n.output;
    add_fp32_step(p, n, "concat", [xs, y](Exec &e) {
        Tensor &out = e.T(y);
        const int64_t C = out.shape().back(), pixels = out.numel() / C;
        int64_t off = 0;
        for (int x : xs) {
            const Tensor &in = e.T(x);
            const int64_t c = in.shape().back();
            for (int64_t q = 0; q < pixels; q++)
                std::copy_n(in.data<float>() + q * c, c, out.data<float>() + q * C + off);
            off += c;
        }
    });
}

void quantize(Program &p, FusedGroup &gr) {
    const GraphNode &n = p.g.nodes[gr.node];
    for (int x : n.inputs) need_quant(p, n, x);
    need_quant(p, n, n.output);
    p.v[n.output].dtype = DType::u8;
}

float identity(float v, const GraphNode &) { return v; }

void lower_int8(Program &p, const FusedGroup &gr) {
    const GraphNode &n = p.g.nodes[gr.node];
    const int y = n.output;
    std::vector<std::pair<int, std::array<uint8_t, 256>>> parts;
    for (int x : n.inputs)
        parts.push_back({x, u8_table(p.v[x].quant, p.v[y].quant, identity, n, p.v[y].qmax)});
    Step s = node_step(n, "concat");
    s.bind = [parts, y, name = n.name](Exec &e) {
        auto ops = std::make_shared<std::vector<BoundOp>>();
        int64_t off = 0;
        Tensor &out = e.T(y);
        for (const auto &[x, table] : parts) {
            const Tensor &in = e.T(x);
            ops->push_back(bind_concat_slice(in, table.data(), out, off, name));
            off += in.shape().back();
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

const OpDef concat = {OpKind::Concat, "Concat", -1, check, shape, lower_fp32, quantize, lower_int8};

}  // namespace qh::layers
