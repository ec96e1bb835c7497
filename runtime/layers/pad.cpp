// Pad (ONNX Pad, any rank, in the IR layout): y has x.dim(d) + pad_begin[d] + pad_end[d] elements
// along axis d; y[i] = x[src(i)] where src maps each coordinate back into x by pad_mode
// (constant: pad_value outside; reflect: mirrored without repeating the edge; edge: clamped;
// wrap: modulo), negative pads crop. One host step on both paths: f32, or u8 with the output
// quantized as the input (pad_value quantized once, as QuantizeLinear would). A constant zero
// pad in front of a Conv is folded into its pads instead (passes.h fold_pad).
#include <cstring>

#include "layers.h"

namespace qh::layers {
namespace {

const char *mode_name(GraphNode::PadMode m) {
    switch (m) {
    case GraphNode::PadMode::reflect: return "reflect";
    case GraphNode::PadMode::edge: return "edge";
    case GraphNode::PadMode::wrap: return "wrap";
    default: return "constant";
    }
}

std::string check(const GraphNode &n) {
    if (n.pad_begin.size() != n.pad_end.size()) return "pad_begin and pad_end must have one value per axis each";
    for (size_t d = 0; d < n.pad_begin.size(); d++)
        if (std::abs(n.pad_begin[d]) > kMaxWindowAttr || std::abs(n.pad_end[d]) > kMaxWindowAttr)
            return "pads of axis " + std::to_string(d) + " out of range (at most " + std::to_string(kMaxWindowAttr) + ")";
    return "";
}

std::vector<int64_t> shape(const GraphNode &n, const ShapeInputs &in) {
    const auto &x = in.shapes[0];
    if (x.size() != n.pad_begin.size())
        throw ShapeError(in.describe(0) + " has rank " + std::to_string(x.size()) + ", the pads " +
                         std::to_string(n.pad_begin.size()));
    std::vector<int64_t> y = x;
    for (size_t d = 0; d < x.size(); d++) {
        y[d] = x[d] + n.pad_begin[d] + n.pad_end[d];
        if (y[d] < 1) throw ShapeError(in.describe(0) + ": the pads leave axis " + std::to_string(d) + " empty");
        const bool pads = n.pad_begin[d] > 0 || n.pad_end[d] > 0;
        if (pads && n.pad_mode == GraphNode::PadMode::reflect &&
            (x[d] < 2 || n.pad_begin[d] >= x[d] || n.pad_end[d] >= x[d]))
            throw ShapeError(in.describe(0) + ": reflect pads of axis " + std::to_string(d) +
                             " must be smaller than its extent (and the extent at least 2)");
        if (pads && n.pad_mode == GraphNode::PadMode::wrap && (n.pad_begin[d] > x[d] || n.pad_end[d] > x[d]))
            throw ShapeError(in.describe(0) + ": wrap pads of axis " + std::to_string(d) + " must not exceed its extent");
    }
    return y;
}

// The source coordinate along one axis of extent e for output coordinate o, or -1 (the constant).
int64_t source(int64_t o, int64_t b, int64_t e, GraphNode::PadMode m) {
    int64_t i = o - b;
    if (i >= 0 && i < e) return i;
    switch (m) {
    case GraphNode::PadMode::reflect: return i < 0 ? -i : 2 * (e - 1) - i;
    case GraphNode::PadMode::edge: return i < 0 ? 0 : e - 1;
    case GraphNode::PadMode::wrap: return ((i % e) + e) % e;
    default: return -1;
    }
}

// Element-by-element over y (an odometer over its coordinates), whole rows where the innermost
// axis is not padded. `fill` is the constant's bytes.
void pad(const Tensor &x, const GraphNode::PadMode mode, const std::vector<int64_t> &b, const uint8_t *fill,
         Tensor &y) {
    const int r = x.rank();
    const size_t es = dtype_storage_bytes(x.dtype(), 1);
    std::vector<int64_t> xs(static_cast<size_t>(r)), stride(static_cast<size_t>(r), 1), idx(static_cast<size_t>(r), 0);
    for (int d = 0; d < r; d++) xs[size_t(d)] = x.dim(d);
    for (int d = r - 2; d >= 0; d--) stride[size_t(d)] = stride[size_t(d + 1)] * xs[size_t(d + 1)];
    const bool rows = b[size_t(r - 1)] == 0 && y.dim(r - 1) == xs[size_t(r - 1)];
    const int64_t inner = rows ? y.dim(r - 1) : 1, outer = y.numel() / inner;
    const uint8_t *src = static_cast<const uint8_t *>(x.raw());
    uint8_t *dst = static_cast<uint8_t *>(y.raw());
    const int last = rows ? r - 2 : r - 1;  // the innermost axis the odometer walks
    for (int64_t k = 0; k < outer; k++, dst += inner * es) {
        int64_t off = 0;
        bool outside = false;
        for (int d = 0; d <= last && !outside; d++) {
            const int64_t s = source(idx[size_t(d)], b[size_t(d)], xs[size_t(d)], mode);
            outside = s < 0;
            off += s * stride[size_t(d)];
        }
        if (outside)
            for (int64_t i = 0; i < inner; i++) std::memcpy(dst + i * es, fill, es);
        else
            std::memcpy(dst, src + off * int64_t(es), size_t(inner) * es);
        for (int d = last; d >= 0; d--) {
            if (++idx[size_t(d)] < y.dim(d)) break;
            idx[size_t(d)] = 0;
        }
    }
}

void add_pad_step(Program &p, const GraphNode &n, std::vector<uint8_t> fill, const char *kernel) {
    const int x = n.inputs[0], y = n.output;
    Step s = node_step(n, "pad", kernel);
    s.info.op = std::string("pad (") + mode_name(n.pad_mode) + ")";
    s.run = [x, y, mode = n.pad_mode, b = n.pad_begin, fill](Exec &e) { pad(e.T(x), mode, b, fill.data(), e.T(y)); };
    p.steps.push_back(std::move(s));
}

void lower_fp32(Program &p, const GraphNode &n) {
    std::vector<uint8_t> fill(4);
    std::memcpy(fill.data(), &n.pad_value, 4);
    add_pad_step(p, n, fill, "host");
}

void quantize(Program &p, FusedGroup &gr) {
    const GraphNode &n = p.g.nodes[gr.node];
    const QuantParams &xq = need_quant(p, n, n.inputs[0]);
    ValueInfo &y = p.v[n.output];
    if (!y.quant.empty() && (y.quant.scale_at(0) != xq.scale_at(0) || y.quant.zp_at(0) != xq.zp_at(0)))
        node_error(p.g, n, "the padded output is quantized differently from the input (scale " +
                               std::to_string(y.quant.scale_at(0)) + " vs " + std::to_string(xq.scale_at(0)) +
                               "); a quantized Pad keeps its input's quantization");
    y.quant = xq;
    y.qmax = p.v[n.inputs[0]].qmax;
    y.dtype = DType::u8;
}

void lower_int8(Program &p, const FusedGroup &gr) {
    const GraphNode &n = p.g.nodes[gr.node];
    const ValueInfo &y = p.v[n.output];
    add_pad_step(p, n, {uint8_t(quantize_u8(n.pad_value, y.quant, y.qmax))}, "host");
}

}  // namespace

const OpDef pad = {OpKind::Pad, "Pad", 1, check, shape, lower_fp32, quantize, lower_int8};

}  // namespace qh::layers
