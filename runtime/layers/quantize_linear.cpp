// QuantizeLinear / DequantizeLinear as ops of their own: where the importer cannot fold them into
// a value's quant (a graph of just Q or DQ, as ONNX's conformance tests are; per-axis scales;
// int8 / 4-bit integers crossing the API). The integers are a tensor of n.q_type (u8, s8, or u4
// / s4 packed two per byte, element 2i in the low nibble), quantized with n.q_params per tensor
// or along one axis of the IR layout. Host code on both paths, in float32 as ONNX computes it:
//   QuantizeLinear:   q = saturate(round_half_even(x / s) + z)   (true division)
//   DequantizeLinear: y = (float(q) - float(z)) * s
// A DequantizeLinear reads a graph input of type q_type (the caller gives the integers) or a
// QuantizeLinear's output; a QuantizeLinear's output is a graph output or read by such a
// DequantizeLinear (Graph::validate and the importer check this).
#include <algorithm>
#include <cmath>

#include "layers.h"
#include "resource_limits.h"

namespace qh::layers {
namespace {

bool integer_type(DType t) { return t == DType::u8 || t == DType::s8 || t == DType::u4 || t == DType::s4; }

void type_range(DType t, int32_t &lo, int32_t &hi) {
    switch (t) {
    case DType::s8: lo = -128; hi = 127; break;
    case DType::u4: lo = 0; hi = 15; break;
    case DType::s4: lo = -8; hi = 7; break;
    default: lo = 0; hi = 255; break;
    }
}

std::string check(const GraphNode &n) {
    const QuantParams &q = n.q_params;
    if (!integer_type(n.q_type))
        return std::string("integer type ") + dtype_name(n.q_type) + " not supported (u8, s8, u4, s4)";
    if (q.scale.empty()) return "no scale";
    for (float s : q.scale)
        if (!(std::isfinite(s) && s > 0.f)) return "scale " + std::to_string(s) + " is not finite and positive";
    if (!q.zero_point.empty() && q.zero_point.size() != q.scale.size())
        return std::to_string(q.zero_point.size()) + " zero points for " + std::to_string(q.scale.size()) + " scales";
    int32_t lo, hi;
    type_range(n.q_type, lo, hi);
    for (int32_t z : q.zero_point)
        if (z < lo || z > hi)
            return "zero point " + std::to_string(z) + " out of the " + dtype_name(n.q_type) + " range " +
                   std::to_string(lo) + ".." + std::to_string(hi);
    if (q.scale.size() > 1 && (q.axis < 0 || q.axis > 3))
        return std::to_string(q.scale.size()) + " scales need an axis 0..3, have " + std::to_string(q.axis);
    return "";
}

std::vector<int64_t> shape(const GraphNode &n, const ShapeInputs &in) {
    const auto &x = in.shapes[0];
    const QuantParams &q = n.q_params;
    if (q.scale.size() > 1 && (q.axis < 0 || size_t(q.axis) >= x.size() || x[size_t(q.axis)] != int64_t(q.scale.size())))
        throw ShapeError(in.describe(0) + " does not have " + std::to_string(q.scale.size()) +
                         " elements along axis " + std::to_string(q.axis) + " (one per scale)");
    return x;
}

// The index along q.axis of each element is (k / inner) % extent, in flat order.
struct AxisWalk {
    int64_t inner = 1, extent = 1;
    AxisWalk(const std::vector<int64_t> &shape, const QuantParams &q) {
        if (q.scale.size() <= 1) return;
        extent = shape[size_t(q.axis)];
        for (size_t d = size_t(q.axis) + 1; d < shape.size(); d++) inner *= shape[d];
    }
    int64_t at(int64_t k) const { return extent == 1 ? 0 : (k / inner) % extent; }
};

int32_t get_int(const Tensor &t, int64_t k) {
    const uint8_t *b = static_cast<const uint8_t *>(t.raw());
    switch (t.dtype()) {
    case DType::s8: return int8_t(b[k]);
    case DType::u4: return (b[k / 2] >> (4 * (k & 1))) & 15;
    case DType::s4: return int32_t(int8_t(uint8_t(b[k / 2] >> (4 * (k & 1))) << 4) >> 4);
    default: return b[k];
    }
}

// Quantized element k of x (f32, or u8 with the int8 path's quantization xq), as a real value.
float real_at(const Tensor &x, const QuantParams &xq, int64_t k) {
    if (x.dtype() == DType::f32) return x.data<float>()[k];
    return float(x.data<uint8_t>()[k] - xq.zp_at(0)) * xq.scale_at(0);
}

// y = QuantizeLinear(x); writes every byte of y (the unused high nibble of an odd 4-bit count: 0).
// The node's type and parameters, copied into its step.
struct QSpec {
    DType type;
    QuantParams q;
};

void quantize_run(const Tensor &x, const QuantParams &xq, const QSpec &n, Tensor &y) {
    const QuantParams &q = n.q;
    int32_t lo, hi;
    type_range(n.type, lo, hi);
    const AxisWalk w(x.shape(), q);
    const int64_t count = x.numel();
    uint8_t *o = static_cast<uint8_t *>(y.raw());
    if (dtype_bits(n.type) == 4) std::fill(o, o + (count + 1) / 2, uint8_t(0));
    for (int64_t k = 0; k < count; k++) {
        const size_t c = size_t(w.at(k));
        float v = real_at(x, xq, k) / q.scale_at(c);
        // NaN has no integer: it becomes the zero point; the bound keeps the int conversion defined
        // (every in-range result is far inside it) and infinities saturate.
        v = std::isnan(v) ? 0.f : std::clamp(v, -65536.f, 65536.f);
        int32_t r = std::clamp(int32_t(std::nearbyint(v)) + q.zp_at(c), lo, hi);
        if (dtype_bits(n.type) == 4) o[k / 2] |= uint8_t((r & 15) << (4 * (k & 1)));
        else o[k] = uint8_t(r);
    }
}

void dequantize_run(const Tensor &x, const QSpec &n, Tensor &y) {
    const QuantParams &q = n.q;
    const AxisWalk w(x.shape(), q);
    float *o = y.data<float>();
    for (int64_t k = 0, count = x.numel(); k < count; k++) {
        const size_t c = size_t(w.at(k));
        o[k] = (float(get_int(x, k)) - float(q.zp_at(c))) * q.scale_at(c);
    }
}

// The integer tensor a DequantizeLinear reads: a graph input (its type is the caller's) or a
// QuantizeLinear's output (typed by that node's lowering, which comes first).
void type_dq_input(Program &p, const GraphNode &n) {
    const int x = n.inputs[0];
    if (std::find(p.g.inputs.begin(), p.g.inputs.end(), x) != p.g.inputs.end()) p.v[x].dtype = p.g.values[x].dtype;
    if (p.v[x].dtype != n.q_type)
        node_error(p.g, n, "input '" + printable(p.v[x].name) + "' is " + dtype_name(p.v[x].dtype) + ", expected " +
                               dtype_name(n.q_type) + " integers (a graph input or a QuantizeLinear output)");
}

void quantize_lower_fp32(Program &p, const GraphNode &n) {
    const int x = n.inputs[0], y = n.output;
    p.v[y].dtype = n.q_type;
    add_fp32_step(p, n, "quantize", [x, y, q = QSpec{n.q_type, n.q_params}](Exec &e) {
        quantize_run(e.T(x), {}, q, e.T(y));
    });
}

void dequantize_lower_fp32(Program &p, const GraphNode &n) {
    const int x = n.inputs[0], y = n.output;
    type_dq_input(p, n);
    add_fp32_step(p, n, "dequantize", [x, y, q = QSpec{n.q_type, n.q_params}](Exec &e) {
        dequantize_run(e.T(x), q, e.T(y));
    });
}

// int8 path: the output is the integers (no quant of its own), the input whatever its producer
// made of it (f32, or u8 with its quantization).
void quantize_assign(Program &p, FusedGroup &gr) {
    const GraphNode &n = p.g.nodes[gr.node];
    p.v[n.output].dtype = n.q_type;
    p.v[n.output].quant = {};
}

void quantize_lower_int8(Program &p, const FusedGroup &gr) {
    const GraphNode &n = p.g.nodes[gr.node];
    const int x = n.inputs[0], y = n.output;
    if (p.v[x].dtype != DType::f32 && p.v[x].dtype != DType::u8)
        node_error(p.g, n, "input '" + printable(p.v[x].name) + "' is " + dtype_name(p.v[x].dtype) + " (f32 or u8 expected)");
    const QuantParams xq = p.v[x].dtype == DType::u8 ? need_quant(p, n, x) : QuantParams{};
    Step s = node_step(n, "quantize", "host: QuantizeLinear");
    s.run = [x, y, xq, q = QSpec{n.q_type, n.q_params}](Exec &e) { quantize_run(e.T(x), xq, q, e.T(y)); };
    p.steps.push_back(std::move(s));
}

void dequantize_assign(Program &p, FusedGroup &gr) {
    const GraphNode &n = p.g.nodes[gr.node];
    p.v[n.output].dtype = DType::f32;
    p.v[n.output].quant = {};
}

void dequantize_lower_int8(Program &p, const FusedGroup &gr) {
    const GraphNode &n = p.g.nodes[gr.node];
    const int x = n.inputs[0], y = n.output;
    type_dq_input(p, n);
    Step s = node_step(n, "dequantize", "host: DequantizeLinear");
    s.run = [x, y, q = QSpec{n.q_type, n.q_params}](Exec &e) { dequantize_run(e.T(x), q, e.T(y)); };
    p.steps.push_back(std::move(s));
}

}  // namespace

const OpDef quantize_linear = {OpKind::QuantizeLinear, "QuantizeLinear", 1, check, shape,
                               quantize_lower_fp32, quantize_assign, quantize_lower_int8};
const OpDef dequantize_linear = {OpKind::DequantizeLinear, "DequantizeLinear", 1, check, shape,
                                 dequantize_lower_fp32, dequantize_assign, dequantize_lower_int8};

}  // namespace qh::layers
