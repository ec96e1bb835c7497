// Elementwise quantization ops. Tensors are viewed as 3-D (inner, channel, outer) with `inner`
// dense: per-tensor parameters use channel extent 1, per-axis ones (ONNX `axis`) put the axis in
// the middle (NCHW axis 1: inner = H*W, channel = C, outer = N). Flat ops use 1-D views.
//
// int4 storage contract (qh::DType::u4 / s4): two values per byte in flat element order,
// element 2i in the low nibble of byte i, element 2i+1 in the high nibble; an odd count leaves
// the last high nibble zero. s4 nibbles are two's complement (-8..7), u4 nibbles 0..15.
#include "Halide.h"
#include "qh_math.h"
#include "stages.h"

using namespace Halide;

namespace {

// Shared base: schedule selection for every elementwise generator.
template <typename T>
class EltwiseBase : public Generator<T> {
public:
    GeneratorParam<std::string> schedule_tag{"schedule", "generic"};
    GeneratorParam<std::string> knobs{"knobs", ""};

protected:
    void apply_schedule(const char *op, Func out, std::vector<Var> vars,
                        std::vector<Func> intermediates = {}) {
        qh::EltwiseStages s{out, std::move(vars), std::move(intermediates)};
        qh::ScheduleContext ctx{this->get_target(), qh::Knobs(knobs),
                                this->using_autoscheduler()};
        qh::ScheduleRegistry<qh::EltwiseStages>::get().apply(op, schedule_tag, s, ctx);
    }
};

// ONNX QuantizeLinear: y = min(saturate(round(x / scale[c]) + zp[c]), qmax): qmax is the type's
// maximum, or 15 for a 4-bit value stored as u8 (saturating to [0, 255] and then to 15 is
// saturating to [0, 15]: the same result as QuantizeLinear to UINT4).
class Quantize : public EltwiseBase<Quantize> {
public:
    GeneratorParam<Type> dst_type{"dst_type", UInt(8)};
    Input<Buffer<float, 3>> input{"input"};
    Input<Buffer<float, 1>> scale{"scale"};
    Input<Buffer<int32_t, 1>> zp{"zp"};
    Input<int32_t> qmax{"qmax"};
    Output<Buffer<void, 3>> output{"output"};
    void configure() { output.set_type(dst_type); }
    void generate() {
        Var i("i"), c("c"), o("o");
        output(i, c, o) = cast(dst_type, min(qh::quantize(input(i, c, o), scale(c), zp(c), dst_type), qmax));
        input.dim(0).set_stride(1);
        output.dim(0).set_stride(1);
        apply_schedule("quantize", output, {i, c, o});
    }
};

// ONNX DequantizeLinear: y = float(x - zp[c]) * scale[c].
class Dequantize : public EltwiseBase<Dequantize> {
public:
    GeneratorParam<Type> src_type{"src_type", UInt(8)};
    Input<Buffer<void, 3>> input{"input"};
    Input<Buffer<float, 1>> scale{"scale"};
    Input<Buffer<int32_t, 1>> zp{"zp"};
    Output<Buffer<float, 3>> output{"output"};
    void configure() { input.set_type(src_type); }
    void generate() {
        Var i("i"), c("c"), o("o");
        Expr v = cast<int32_t>(input(i, c, o)) - zp(c);
        output(i, c, o) = strict_float(cast<float>(v) * scale(c));
        input.dim(0).set_stride(1);
        output.dim(0).set_stride(1);
        apply_schedule("dequantize", output, {i, c, o});
    }
};

// s32 -> u8/s8: y = clamp(round(x * mult[c]) + zp[c], act_min, act_max).
// s32 -> u4/s4 (dst_type uint4/int4 spelled as bits=4 via `int4`): same values clamped to the
// nibble range, then packed two per byte in flat order (output is 1-D bytes).
class Requantize : public EltwiseBase<Requantize> {
public:
    GeneratorParam<Type> dst_type{"dst_type", UInt(8)};
    GeneratorParam<bool> int4{"int4", false};
    Input<Buffer<int32_t, 3>> input{"input"};
    Input<Buffer<float, 1>> mult{"mult"};
    Input<Buffer<int32_t, 1>> zp{"zp"};
    Input<int32_t> act_min{"act_min"};
    Input<int32_t> act_max{"act_max"};
    Output<Buffer<void>> output{"output"};
    void configure() { output.set_type(dst_type); output.set_dimensions(int4 ? 1 : 3); }
    void generate() {
        Var i("i"), c("c"), o("o"), b("b");
        Type t = dst_type;
        Expr lo = act_min, hi = act_max;
        if (int4) {  // nibble range
            lo = max(lo, t.is_int() ? -8 : 0);
            hi = min(hi, t.is_int() ? 7 : 15);
        }
        Func q("q");
        q(i, c, o) = qh::requantize(input(i, c, o), mult(c), zp(c), t, lo, hi);
        input.dim(0).set_stride(1);
        if (!int4) {
            output(i, c, o) = cast(t, q(i, c, o));
            output.dim(0).set_stride(1);
            apply_schedule("requantize", output, {i, c, o});
            return;
        }
        Expr inner = input.dim(0).extent(), C = input.dim(1).extent();
        Expr N = inner * C * input.dim(2).extent();
        // q at flat element e (zero past the end).
        auto flat = [&](Expr e) {
            Expr ec = min(e, N - 1);
            Expr v = q(ec % inner, (ec / inner) % C, ec / (inner * C));
            return select(e < N, v, 0);
        };
        Expr lo_n = flat(2 * b) & 15, hi_n = flat(2 * b + 1) & 15;
        output(b) = cast(t, cast<uint8_t>(lo_n | (hi_n << 4)));
        output.dim(0).set_stride(1);
        apply_schedule("requantize", output, {b}, {q});
    }
};

// Pack 8-bit values into nibbles (saturating to the 4-bit range) and unpack them again.
class Int4Pack : public EltwiseBase<Int4Pack> {
public:
    GeneratorParam<Type> src_type{"src_type", Int(8)};
    Input<Buffer<void, 1>> input{"input"};
    Output<Buffer<uint8_t, 1>> output{"output"};
    void configure() { input.set_type(src_type); }
    void generate() {
        Var b("b");
        Type t = src_type;
        Expr N = input.dim(0).extent();
        auto nib = [&](Expr e) {
            Expr v = cast<int32_t>(input(min(e, N - 1)));
            v = t.is_int() ? clamp(v, -8, 7) : min(v, 15);
            return select(e < N, v & 15, 0);
        };
        output(b) = cast<uint8_t>(nib(2 * b) | (nib(2 * b + 1) << 4));
        input.dim(0).set_stride(1);
        apply_schedule("int4_pack", output, {b});
    }
};

class Int4Unpack : public EltwiseBase<Int4Unpack> {
public:
    GeneratorParam<Type> dst_type{"dst_type", Int(8)};
    Input<Buffer<uint8_t, 1>> input{"input"};
    Output<Buffer<void, 1>> output{"output"};
    void configure() { output.set_type(dst_type); }
    void generate() {
        Var e("e");
        Expr byte = input(e / 2);
        Expr nib = select(e % 2 == 0, byte & 15, byte >> 4);  // u8 in 0..15
        Expr v = Type(dst_type).is_int() ? (cast<int8_t>(cast<uint8_t>(nib << 4)) >> 4)
                                   : cast<int8_t>(nib);
        output(e) = cast(dst_type, v);
        output.dim(0).set_stride(1);
        apply_schedule("int4_unpack", output, {e});
    }
};

// ONNX QLinearAdd on equally shaped tensors (flat):
// y = clamp(round((a - za) * ma + (b - zb) * mb) + zy, act_min, act_max), ma = sa/sy, mb = sb/sy.
class QAdd : public EltwiseBase<QAdd> {
public:
    GeneratorParam<Type> dst_type{"dst_type", UInt(8)};
    Input<Buffer<uint8_t, 1>> a{"a"};
    Input<int32_t> a_zp{"a_zp"};
    Input<float> a_mult{"a_mult"};
    Input<Buffer<uint8_t, 1>> b{"b"};
    Input<int32_t> b_zp{"b_zp"};
    Input<float> b_mult{"b_mult"};
    Input<int32_t> output_zp{"output_zp"};
    Input<int32_t> act_min{"act_min"};
    Input<int32_t> act_max{"act_max"};
    Output<Buffer<void, 1>> output{"output"};
    void configure() { output.set_type(dst_type); }
    void generate() {
        Var i("i");
        output(i) = cast(dst_type, qh::quantized_add(cast<int32_t>(a(i)), a_zp, a_mult,
                                                     cast<int32_t>(b(i)), b_zp, b_mult,
                                                     output_zp, dst_type, act_min, act_max,
                                                     get_target().has_gpu_feature()));
        apply_schedule("add", output, {i});
    }
};

// Table lookup: y(i, p) = table[x(i, p)]. Any unary op on a u8-quantized tensor is exact as the
// 256-entry table DequantizeLinear -> op -> QuantizeLinear (runtime/layers/common.cpp u8_table);
// so is requantizing a tensor to other quantization parameters (Concat's inputs). 2-D views
// (inner dense, outer with any stride): a whole tensor as (numel, 1), or one Concat input
// {pixels, C_i} written into its channel slice of the output (outer stride C).
class Lut : public EltwiseBase<Lut> {
public:
    Input<Buffer<uint8_t, 2>> input{"input"};
    Input<Buffer<uint8_t, 1>> table{"table"};
    Output<Buffer<uint8_t, 2>> output{"output"};
    void generate() {
        Var i("i"), p("p");
        output(i, p) = table(cast<int32_t>(input(i, p)));
        input.dim(0).set_stride(1);
        output.dim(0).set_stride(1);
        table.dim(0).set_bounds(0, 256);
        apply_schedule("lut", output, {i, p});
    }
};

// ONNX QLinearMul (and DQ -> Mul -> Q) with numpy broadcasting of b over (c, p, n) views (c the
// dense channels, p = H*W pixels, n images; b's strides are 0 along broadcast dimensions):
// y = clamp(round(float((a - za) * (b - zb)) * m + float(zy)), act_min, act_max),  m = sa*sb/sy.
// The product is exact in int32; one float multiply, one float add of the zero point, then
// round half to even: the arithmetic of ONNX Runtime's MLAS kernel (qlmul.cpp, x86), so the
// results are bit-identical with it. no_contraction as in quantized_add.
class QMul : public EltwiseBase<QMul> {
public:
    Input<Buffer<uint8_t, 3>> a{"a"};
    Input<int32_t> a_zp{"a_zp"};
    Input<Buffer<uint8_t, 3>> b{"b"};
    Input<int32_t> b_zp{"b_zp"};
    Input<float> mult{"mult"};
    Input<int32_t> output_zp{"output_zp"};
    Input<int32_t> act_min{"act_min"};
    Input<int32_t> act_max{"act_max"};
    Output<Buffer<uint8_t, 3>> output{"output"};
    void generate() {
        Var c("c"), p("p"), n("n");
        Expr prod = (cast<int32_t>(a(c, p, n)) - a_zp) * (cast<int32_t>(b(c, p, n)) - b_zp);
        Expr scaled = strict_float(cast<float>(prod) * mult);
        if (get_target().has_gpu_feature()) scaled = strict_float(select(a_zp < (1 << 30), scaled, 0.0f));
        Expr v = strict_float(scaled + cast<float>(output_zp));
        output(c, p, n) = cast<uint8_t>(qh::clamp_to(UInt(8), qh::round_to_i32(v), act_min, act_max));
        a.dim(0).set_stride(1);
        b.dim(0).set_stride(Expr());  // 0 where b is broadcast along the channels
        output.dim(0).set_stride(1);
        apply_schedule("mul", output, {c, p, n});
    }
};

// A batch of matrix transposes, y(a, b, o) = x(b, a, o): a model's edge layout change (Graph::
// io_layout). NCHW viewed as (p, c, n), p = h*W + w dense, is NHWC's (c, p, n) transposed, and
// back. The elements are moved, not converted: f32 or 8-bit (u8 / s8 bytes).
class Transpose : public EltwiseBase<Transpose> {
public:
    GeneratorParam<Type> elem_type{"elem_type", Float(32)};
    Input<Buffer<void, 3>> input{"input"};
    Output<Buffer<void, 3>> output{"output"};
    void configure() {
        input.set_type(elem_type);
        output.set_type(elem_type);
    }
    void generate() {
        Var a("a"), b("b"), o("o");
        output(a, b, o) = input(b, a, o);
        input.dim(0).set_stride(1);
        output.dim(0).set_stride(1);
        apply_schedule("transpose", output, {a, b, o});
    }
};

}  // namespace

HALIDE_REGISTER_GENERATOR(Quantize, quantize)
HALIDE_REGISTER_GENERATOR(QMul, mul)
HALIDE_REGISTER_GENERATOR(Lut, lut)
HALIDE_REGISTER_GENERATOR(Dequantize, dequantize)
HALIDE_REGISTER_GENERATOR(Requantize, requantize)
HALIDE_REGISTER_GENERATOR(Int4Pack, int4_pack)
HALIDE_REGISTER_GENERATOR(Int4Unpack, int4_unpack)
HALIDE_REGISTER_GENERATOR(QAdd, add)
HALIDE_REGISTER_GENERATOR(Transpose, transpose)
