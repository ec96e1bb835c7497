#include <algorithm>
#include <cmath>
#include <cstring>

#include "layers.h"

namespace qh {
namespace layers {

std::string check_window(const WindowAttrs &a) {
    if (a.kernel_h < 1 || a.kernel_w < 1 || a.stride_h < 1 || a.stride_w < 1) return "kernel and stride must be >= 1";
    if (a.pad_top < 0 || a.pad_left < 0 || a.pad_bottom < 0 || a.pad_right < 0) return "pads must be >= 0";
    if (a.dilation_h < 1 || a.dilation_w < 1) return "dilations must be >= 1";
    if (int64_t(a.kernel_h - 1) * a.dilation_h >= kMaxWindowAttr || int64_t(a.kernel_w - 1) * a.dilation_w >= kMaxWindowAttr)
        return "dilated window over the limit of " + std::to_string(kMaxWindowAttr);
    for (int x : {a.kernel_h, a.kernel_w, a.stride_h, a.stride_w, a.pad_top, a.pad_left, a.pad_bottom, a.pad_right})
        if (x > kMaxWindowAttr)
            return "window attribute " + std::to_string(x) + " is over the limit of " + std::to_string(kMaxWindowAttr);
    return "";
}

std::string check_weights(const GraphNode &n, int rank) {
    const Tensor &w = n.weights;
    if (w.rank() != rank) return "weights must have rank " + std::to_string(rank) + ", have " + w.describe();
    for (int d = 0; d < w.rank(); d++)
        if (w.dim(d) < 1) return "weights " + w.describe() + " have an empty dimension";
    if (w.dtype() != DType::f32 && w.dtype() != DType::u8 && w.dtype() != DType::s8 && w.dtype() != DType::u4 &&
        w.dtype() != DType::s4)
        return std::string("weights dtype ") + dtype_name(w.dtype()) + " not supported (f32, u8, s8, u4, s4)";
    if (w.dtype() != DType::f32 && w.quant.empty()) return "integer weights without scale/zero point";
    if (n.bias.rank() > 0) {
        if (n.bias.rank() != 1 || n.bias.dim(0) != w.dim(0))
            return "bias " + n.bias.describe() + " must have one value per output channel (" + std::to_string(w.dim(0)) + ")";
        if (n.bias.dtype() != DType::f32 && n.bias.dtype() != DType::s32)
            return std::string("bias dtype ") + dtype_name(n.bias.dtype()) + " not supported (f32, s32)";
        if (n.bias.dtype() == DType::s32 && w.dtype() == DType::f32) return "s32 bias needs quantized weights";
    }
    return "";
}

std::vector<int64_t> window_shape(const GraphNode &n, const ShapeInputs &in, int64_t channels) {
    const auto &x = in.shapes[0];
    if (x.size() != 4) throw ShapeError(in.describe(0) + ": expected NHWC (rank 4)");
    const WindowAttrs &a = n.window;
    std::vector<int64_t> y = {x[0], a.out_h(x[1]), a.out_w(x[2]), channels};
    if (y[1] < 1 || y[2] < 1)
        throw ShapeError(in.describe(0) + " is smaller than the window " + std::to_string(a.span_h()) + "x" +
                         std::to_string(a.span_w()) + " (pads " + std::to_string(a.pad_top) + "," +
                         std::to_string(a.pad_left) + "," + std::to_string(a.pad_bottom) + "," +
                         std::to_string(a.pad_right) + ")");
    return y;
}

std::vector<int64_t> same_shape(const GraphNode &, const ShapeInputs &in) { return in.shapes[0]; }

namespace {
// a's shape if b broadcasts to it (after right-aligning ranks), else empty.
std::vector<int64_t> broadcast_to(const std::vector<int64_t> &a, const std::vector<int64_t> &b) {
    if (b.size() > a.size()) return {};
    for (size_t i = 0; i < b.size(); i++) {
        const int64_t x = a[a.size() - b.size() + i], y = b[i];
        if (y != x && y != 1) return {};
    }
    return a;
}
}  // namespace

std::vector<int64_t> broadcast_shape(const ShapeInputs &in) {
    auto y = broadcast_to(in.shapes[0], in.shapes[1]);
    if (y.empty()) y = broadcast_to(in.shapes[1], in.shapes[0]);
    if (y.empty())
        throw ShapeError("shapes do not broadcast: " + in.describe(0) + " and " + in.describe(1) +
                         " (one must take the other's shape, with 1 where it is broadcast)");
    return y;
}

std::vector<int64_t> global_pool_shape(const GraphNode &, const ShapeInputs &in) {
    const auto &x = in.shapes[0];
    if (x.size() != 4) throw ShapeError(in.describe(0) + ": expected NHWC (rank 4)");
    return {x[0], 1, 1, x[3]};
}

std::pair<int, int> broadcast_operands(const Program &p, const GraphNode &n) {
    const int a = n.inputs[0], b = n.inputs[1];
    return p.v[a].shape == p.v[n.output].shape ? std::make_pair(a, b) : std::make_pair(b, a);
}

Step node_step(const GraphNode &n, const char *op, const char *kernel) {
    Step s;
    s.info.name = n.name;
    s.info.layer = n.name;
    s.info.op = op;
    s.info.kernel = kernel;
    s.reads = n.inputs;
    s.writes = {n.output};
    return s;
}

void add_fp32_step(Program &p, const GraphNode &n, const char *op, std::function<void(Exec &)> run) {
    Step s = node_step(n, op, "fp32 reference");
    s.run = std::move(run);
    p.steps.push_back(std::move(s));
}

std::vector<float> weight_scales(const Tensor &w, int qmax) {
    std::vector<float> s;
    const int64_t oc = w.dim(0);
    if (w.dtype() == DType::f32) {
        const int64_t per = w.numel() / oc;
        for (int64_t o = 0; o < oc; o++) {
            float m = 0;
            for (int64_t k = 0; k < per; k++) m = std::max(m, std::fabs(w.data<float>()[o * per + k]));
            const float sc = m / float(qmax);  // (subnormal weights can make it 0: w / 0 is NaN)
            s.push_back(std::isnormal(sc) ? sc : 1.f);
        }
    } else {
        for (int64_t o = 0; o < (w.quant.scale.size() == 1 ? 1 : oc); o++) s.push_back(w.quant.scale_at(int(o)));
    }
    return s;
}

const PackedWeights &pack_node(Program &p, const GraphNode &n, const QuantParams &xq, float out_scale, bool grouped) {
    const Tensor &w = n.weights;
    const int oc = int(w.dim(0)), ic = int(w.dim(1));
    const int kh = w.rank() == 4 ? int(w.dim(2)) : 1, kw = w.rank() == 4 ? int(w.dim(3)) : 1;
    const int64_t per = w.numel() / oc;
    WeightsDesc d;
    d.name = n.name + ".weights";
    d.oc = oc; d.ic = ic; d.kh = kh; d.kw = kw;
    d.grouped = grouped;
    if (w.dtype() != DType::f32 && w.quant.empty()) node_error(p.g, n, "integer weights without quantization parameters");
    if (w.dtype() == DType::f32)  // NaN / infinity would reach a float -> int8 conversion below
        for (int64_t k = 0; k < w.numel(); k++)
            if (!std::isfinite(w.data<float>()[k]))
                node_error(p.g, n, "weights " + w.describe() + " hold a NaN or infinity at element " + std::to_string(k) +
                                       " (cannot be quantized)");
    // Float weights: symmetric per output channel, [-127, 127] or, for a w4a8 / w4a4 layer, [-7, 7].
    const float qmax = float(weight_qmax(n));
    d.bits = qmax == 7.f ? 4 : 8;
    d.scale = weight_scales(w, int(qmax));
    // A float bias must fit int32 in units of x_scale * w_scale[o], with room for the zero-point
    // terms the packer folds in (|z_x * sum W'| <= 255 * 128 * K): where a nearly dead channel's
    // tiny weight scale would overflow it, the channel's weight scale grows until the bias fits
    // (its weights then quantize to about 0; ONNX Runtime's quantizer does the same).
    if (w.dtype() == DType::f32 && n.bias.rank() > 0 && n.bias.dtype() == DType::f32) {
        const double room = double(INT32_MAX) - 255.0 * 128.0 * double(kh) * kw * ((ic + 3) / 4 * 4);
        for (int o = 0; o < oc; o++) {
            const double b = std::fabs(double(n.bias.data<float>()[o])), sx = xq.scale_at(0);
            if (std::isfinite(b) && room > 0 && b / (sx * d.scale[o]) > room) d.scale[o] = float(b / (sx * room) * 1.0001);
        }
    }
    std::vector<int8_t> q;
    if (w.dtype() == DType::f32) {
        q.resize(w.numel());
        for (int o = 0; o < oc; o++)
            for (int64_t k = 0; k < per; k++)
                q[o * per + k] = int8_t(std::clamp(std::nearbyint(w.data<float>()[o * per + k] / d.scale[o]), -qmax, qmax));
        d.dtype = DType::s8;
        d.data = q.data();
    } else {
        d.dtype = w.dtype();
        d.data = w.raw();
        if (!w.quant.zero_point.empty())
            for (int o = 0; o < (w.quant.zero_point.size() == 1 ? 1 : oc); o++) d.zero_point.push_back(w.quant.zp_at(o));
    }
    std::vector<int32_t> bias;
    if (n.bias.rank() > 0) {
        if (n.bias.dtype() == DType::s32) {
            bias.assign(n.bias.data<int32_t>(), n.bias.data<int32_t>() + oc);
        } else {
            bias.resize(oc);
            for (int o = 0; o < oc; o++) {
                double s = double(xq.scale_at(0)) * double(weight_scale(d.scale, o));
                if (!(std::isfinite(s) && s > 0) || !std::isfinite(n.bias.data<float>()[o]))
                    node_error(p.g, n, "bias " + std::to_string(n.bias.data<float>()[o]) + " of output channel " +
                                           std::to_string(o) + " cannot be quantized with scale " + std::to_string(s));
                double b = std::nearbyint(double(n.bias.data<float>()[o]) / s);
                bias[o] = int32_t(std::clamp(b, double(INT32_MIN), double(INT32_MAX)));
            }
        }
        d.bias = bias.data();
    }
    p.packed.push_back(pack_weights(d, xq.scale_at(0), xq.zp_at(0), out_scale));
    return p.packed.back();
}

void lower_view(Program &p, const GraphNode &n, const char *kernel) {
    const int x = n.inputs[0], y = n.output;
    if (!p.opt.keep_all_values && !p.v[y].external) {
        p.v[y].alias = x;
        return;
    }
    Step s = node_step(n, "flatten", kernel);
    s.run = [x, y](Exec &e) { std::memcpy(e.T(y).raw(), e.T(x).raw(), e.T(x).nbytes()); };
    p.steps.push_back(std::move(s));
}

int32_t quantize_u8(float v, const QuantParams &q, int qmax) {
    return int32_t(std::clamp(std::nearbyint(v / q.scale_at(0)) + float(q.zp_at(0)), 0.f, float(qmax)));
}

Activation fused_activation(const Program &p, const FusedGroup &gr, const QuantParams &yq) {
    const int qmax = p.v[gr.output].qmax;  // 15 for a 4-bit output: the clamp keeps it in range
    Activation r{0, qmax};
    if (gr.act < 0) return r;
    const GraphNode &a = p.g.nodes[gr.act];
    if (a.op == OpKind::Relu) return {yq.zp_at(0), qmax};
    return {quantize_u8(a.clip_min, yq, qmax), quantize_u8(a.clip_max, yq, qmax)};
}

std::string activation_suffix(const Program &p, const FusedGroup &gr) {
    if (gr.act < 0) return "";
    return p.g.nodes[gr.act].op == OpKind::Relu ? "+relu" : "+clip";
}

std::array<uint8_t, 256> u8_table(const QuantParams &xq, const QuantParams &yq, float (*f)(float, const GraphNode &),
                                  const GraphNode &n, int qmax) {
    std::array<uint8_t, 256> lut;
    for (int q = 0; q < 256; q++) lut[q] = uint8_t(quantize_u8(f(float(q - xq.zp_at(0)) * xq.scale_at(0), n), yq, qmax));
    return lut;
}

void add_table_step(Program &p, const GraphNode &n, const char *op, const std::array<uint8_t, 256> &lut) {
    const int x = n.inputs[0], y = n.output;
    Step s = node_step(n, op);
    s.bind = [x, y, lut, name = n.name](Exec &e) { return bind_lut(e.T(x), lut.data(), e.T(y), name); };
    p.steps.push_back(std::move(s));
}

void quantized_inputs_and_output(Program &p, FusedGroup &gr) {
    const GraphNode &n = p.g.nodes[gr.node];
    for (int x : n.inputs) need_quant(p, n, x);
    need_quant(p, n, gr.output);
    p.v[gr.output].dtype = DType::u8;
}

void keep_input_quant(Program &p, FusedGroup &gr) {
    const GraphNode &n = p.g.nodes[gr.node];
    const QuantParams &xq = need_quant(p, n, n.inputs[0]);
    ValueInfo &y = p.v[n.output];
    if (y.quant.empty()) {
        y.quant = xq;
        y.qmax = p.v[n.inputs[0]].qmax;
    }
    y.dtype = DType::u8;
}

}  // namespace layers
}  // namespace qh
