// conv2d: quantized 2-D convolution, groups = 1, any kernel size, stride, padding.
//
// Layout contract (Halide dims are innermost first):
//   input    u8  (c, x, y, n)         NHWC, c dense (stride 1)
//   weights  s8  (4, 16, CIO, KW, KH, OCO)  packed by qh::pack_conv_weights (runtime/pack.h):
//            weights(i, o, cb, kx, ky, ob) = w[oc = 16*ob + o][ic = 4*cb + i][ky][kx], zero for
//            ic >= IC or oc >= OC; OCO*16 is a multiple of 64.
//   bias     s32 (16*OCO)  the *effective* bias, zero points folded in (below)
//   wzp      s32 (16*OCO)  weight zero points (weight_zp variants only; s8 after packing)
//   mult     f32 (16*OCO)  requantization multiplier  s_x * s_w[oc] / s_y
//   output   u8/s8/s32 (oc, x, y, n)  NHWC, oc < OC
//
// Math. With padded input X (value z_x outside the image and for ic >= IC) and packed weights
// W' (s8) with zero point z_w' per output channel, over the window k = (ic, kx, ky), K = 4*CIO*KW*KH:
//   sum_k (X - z_x)(W' - z_w') = sum X W' - z_w' sum X - z_x sum W' + K z_x z_w'
// The runtime folds bias - z_x sum W' + K z_x z_w' into `bias`, so the kernel computes
//   acc = bias + sum X W'            (one vpdpbusd per 4 input channels x 16 output channels)
//       - z_w' * xsum,  xsum = sum X (only in weight_zp variants)
// Bounds (int32 must not overflow): |sum X W'| <= 255*128*K, so K <= 32768 for symmetric
// weights and K <= 16384 with weight zero points; the runtime checks both (runtime/ops.cpp).
//
// Int4 (generator params; one packed format: two values per byte, low nibble first):
//  - src_bits=4: the input is u4 storage, NHWC with an even channel count, channel 2i in the low
//    nibble of byte i of its pixel (input's c extent is IC/2 bytes); unpacked once per tile row
//    into the padded u8 stage, so the reduction below is unchanged.
//  - weight_bits=4: s4 weights in the blocked layout with output-channel blocks paired:
//      weights(i, o, cb, kx, ky, p) byte, low nibble = block ob = 2p, high nibble = block 2p + 1
//    (last dim OCO/2). The kernel never sign-extends: as a byte, (b << 4) is 16 * w_lo and
//    (b & 0xF0) is 16 * w_hi exactly (two's complement), so one 64-byte load gives the s8
//    operands of two vpdpbusd with one shift and two ands, and acc16 = 16 * sum X W' (bias added
//    after acc16 >> 4, exact). Bound: |acc16| <= 16 * 255 * 8 * K < 2^31 for K <= 65536.
//  - dst_bits=4: u4 storage output (c extent OC/2 bytes), values clamped to [0, 15] by the
//    epilogue and packed in pairs.
//  - res_bits (residual only): the residual's storage, u4 (4) or u8 (8); 0 = the dst's.
//
// Epilogue: s32 output = acc. u8/s8 output = clamp(round(acc * mult[oc]) + z_y, act_min, act_max)
// With `residual`: c = clamp(round(acc * mult[oc]) + z_c, 0, 255) is the conv's own u8 result
// (scale s_c), then y = clamp(round((c - z_c) * mc + (r - z_r) * mr) + z_y, act_min, act_max)
// with mc = s_c / s_y, mr = s_r / s_y: exactly Conv -> QuantizeLinear -> QLinearAdd (-> Relu).
#include "Halide.h"
#include "qh_math.h"
#include "stages.h"

using namespace Halide;

namespace {

class Conv2d : public Generator<Conv2d> {
public:
    GeneratorParam<std::string> schedule_tag{"schedule", "generic"};
    GeneratorParam<std::string> knobs{"knobs", ""};
    GeneratorParam<bool> weight_zp{"weight_zp", false};
    GeneratorParam<bool> residual{"residual", false};
    GeneratorParam<Type> dst_type{"dst_type", UInt(8)};
    GeneratorParam<int> src_bits{"src_bits", 8};     // 4: u4 storage input
    GeneratorParam<int> weight_bits{"weight_bits", 8};  // 4: s4 weights, paired blocks
    GeneratorParam<int> dst_bits{"dst_bits", 8};     // 4: u4 storage output (dst_type uint8)
    GeneratorParam<int> res_bits{"res_bits", 0};     // residual storage: 4 or 8 (0: as dst_bits)

    Input<Buffer<uint8_t, 4>> input{"input"};
    Input<int32_t> input_zp{"input_zp"};
    Input<Buffer<int8_t, 6>> weights{"weights"};
    Input<Buffer<int32_t, 1>> bias{"bias"};
    Input<Buffer<int32_t, 1>> wzp{"wzp"};
    Input<Buffer<float, 1>> mult{"mult"};
    Input<int32_t> output_zp{"output_zp"};
    Input<int32_t> act_min{"act_min"};
    Input<int32_t> act_max{"act_max"};
    Input<int32_t> stride_x{"stride_x"};
    Input<int32_t> stride_y{"stride_y"};
    Input<int32_t> pad_x{"pad_x"};
    Input<int32_t> pad_y{"pad_y"};
    Input<Buffer<uint8_t, 4>> res{"res"};  // residual (c, x, y, n), same shape as output
    Input<int32_t> conv_zp{"conv_zp"};     // z_c of the conv's own u8 result
    Input<int32_t> res_zp{"res_zp"};
    Input<float> mult_conv{"mult_conv"};   // s_c / s_y
    Input<float> mult_res{"mult_res"};     // s_r / s_y
    Output<Buffer<void, 4>> output{"output"};

    void configure() { output.set_type(dst_type); }

    void generate() {
        qh::Conv2dStages s;
        Var c("c"), x("x"), y("y"), n("n"), oci("oci"), oco("oco");
        s.c = c; s.x = x; s.y = y; s.n = n; s.oci = oci; s.oco = oco;

        const bool src4 = src_bits == 4, w4 = weight_bits == 4, dst4 = dst_bits == 4;
        if (src_bits != 8 && !src4) throw std::runtime_error("src_bits must be 8 or 4");
        if (weight_bits != 8 && !w4) throw std::runtime_error("weight_bits must be 8 or 4");
        if (dst_bits != 8 && !dst4) throw std::runtime_error("dst_bits must be 8 or 4");
        if (dst4 && Type(dst_type) != UInt(8)) throw std::runtime_error("dst_bits=4 needs dst_type=uint8");
        if (w4 && weight_zp) throw std::runtime_error("weight_bits=4 weights are symmetric (no weight_zp)");

        Expr IC = input.dim(0).extent() * (src4 ? 2 : 1), W = input.dim(1).extent();
        Expr H = input.dim(2).extent();
        Expr CIO = weights.dim(2).extent(), KW = weights.dim(3).extent();
        Expr KH = weights.dim(4).extent();

        Func unpacked("unpacked");  // (c, x, y, n) u8 values of the input
        if (src4) {
            Expr b = input(c / 2, x, y, n);
            unpacked(c, x, y, n) = select(c % 2 == 0, b & 15, b >> 4);
        } else {
            unpacked(c, x, y, n) = input(c, x, y, n);
        }
        Func bc = BoundaryConditions::constant_exterior(
            unpacked, cast<uint8_t>(input_zp), {{0, IC}, {0, W}, {0, H}, {Expr(), Expr()}});
        s.padded = Func("padded");  // a schedulable stage with our own Vars
        s.padded(c, x, y, n) = bc(c, x, y, n);
        s.r = RDom(0, qh::kICB, 0, CIO, 0, KW, 0, KH, "r");
        s.padded_channels = qh::kICB * CIO;
        const RDom &r = s.r;
        Expr ix = x * stride_x + r.z - pad_x, iy = y * stride_y + r.w - pad_y;
        Expr xv = s.padded(qh::kICB * r.y + r.x, ix, iy, n);
        Expr wv;
        if (w4) {  // 16 * w, see the contract above
            Expr wb = reinterpret<uint8_t>(weights(r.x, oci, r.y, r.z, r.w, oco / 2));
            wv = reinterpret<int8_t>(select(oco % 2 == 0, wb << 4, wb & 0xF0));
        } else {
            wv = weights(r.x, oci, r.y, r.z, r.w, oco);
        }

        s.acc = Func("acc");
        if (w4) {
            s.acc(oci, oco, x, y, n) = 0;
        } else {
            s.acc(oci, oco, x, y, n) = bias(oco * qh::kOCB + oci);
        }
        s.acc(oci, oco, x, y, n) += cast<int32_t>(widening_mul(xv, wv));

        Expr a = s.acc(c % qh::kOCB, c / qh::kOCB, x, y, n);
        if (w4) a = (a >> 4) + bias(c);
        if (weight_zp) {
            s.has_xsum = true;
            s.xsum = Func("xsum");
            s.xsum(x, y, n) = 0;
            s.xsum(x, y, n) += cast<int32_t>(xv);
            a -= wzp(c) * s.xsum(x, y, n);
        }

        Type t = dst_type;
        Expr lo = act_min, hi = dst4 ? min(act_max, 15) : Expr(act_max);
        Expr out;
        if (t == Int(32)) {
            out = a;
        } else if (!residual) {
            out = cast(t, qh::requantize(a, mult(c), output_zp, t, lo, hi));
        } else {
            Expr cq = qh::requantize(a, mult(c), conv_zp, UInt(8), 0, 255);
            const bool res4 = res_bits == 0 ? dst4 : res_bits == 4;
            Expr rb = res(res4 ? c / 2 : c, x, y, n);
            if (res4) rb = select(c % 2 == 0, rb & 15, rb >> 4);
            Expr rv = cast<int32_t>(rb);
            out = cast(t, qh::quantized_add(cq, conv_zp, mult_conv, rv, res_zp, mult_res,
                                            output_zp, t, lo, hi,
                                            get_target().has_gpu_feature()));
        }
        if (dst4) {  // byte c of a pixel = channels 2c (low nibble) and 2c + 1
            Func value("value");
            value(c, x, y, n) = out;
            s.out_pack = 2;
            out = value(2 * c, x, y, n) | (value(2 * c + 1, x, y, n) << 4);
        }
        output(c, x, y, n) = out;
        s.output = output;

        // Layout contracts: dense innermost dims, mins at 0, packed weights fully dense.
        input.dim(0).set_min(0).set_stride(1);
        for (int d = 1; d < 4; d++) input.dim(d).set_min(0);
        weights.dim(0).set_bounds(0, qh::kICB).set_stride(1);
        weights.dim(1).set_bounds(0, qh::kOCB).set_stride(qh::kICB);
        weights.dim(2).set_min(0).set_stride(qh::kICB * qh::kOCB);
        weights.dim(3).set_min(0).set_stride(qh::kICB * qh::kOCB * CIO);
        weights.dim(4).set_min(0).set_stride(qh::kICB * qh::kOCB * CIO * KW);
        weights.dim(5).set_min(0).set_stride(qh::kICB * qh::kOCB * CIO * KW * KH);
        output.dim(0).set_min(0).set_stride(1);
        for (int d = 1; d < 4; d++) output.dim(d).set_min(0);
        res.dim(0).set_min(0).set_stride(1);

        qh::ScheduleContext ctx{get_target(), qh::Knobs(knobs), using_autoscheduler()};
        qh::ScheduleRegistry<qh::Conv2dStages>::get().apply("conv2d", schedule_tag, s, ctx);
    }
};

}  // namespace

HALIDE_REGISTER_GENERATOR(Conv2d, conv2d)

// conv2d_grouped: quantized grouped / depthwise / dilated 2-D convolution (ONNX Conv with
// group > 1 or dilations > 1, and QLinearConv likewise). Not blocked: one output channel per
// vector lane, so a depthwise conv (group = C) is C independent small windows, not a dense conv
// over zeros.
//
// Layout contract (Halide dims innermost first):
//   input    u8  (c, x, y, n)         NHWC, c dense, IC = G * CG channels
//   weights  s8  (OCpad, CG, KW, KH)  weights(o, i, kx, ky) = w'[o][i][ky][kx] (ONNX OIHW
//            reordered so output channels are dense), zero for o >= OC; OCpad multiple of 64
//   bias     s32 (OCpad) effective bias: bias - z_x * sum W' + K * z_x * z_w', K = CG*KH*KW
//   wzp      s32 (OCpad) weight zero points z_w' (weight_zp variants only)
//   mult     f32 (OCpad) s_x * s_w[o] / s_y
//   group_out  M = OC / G, output channels per group; output channel o reads input channels
//              (o / M) * CG + i, i < CG (CG = weights' dim 1)
//   output   u8 (c, x, y, n)  NHWC; s32 (dst_type=int32): acc itself, no epilogue
// Math: acc(o) = bias'(o) + sum_{i, kx, ky} X((o/M)*CG + i, x*sx + kx*dx - px, y*sy + ky*dy - py) W'(o, i, kx, ky)
//       - z_w'(o) * sum X (same window; weight_zp only), X = input with z_x outside the image,
// which equals sum (X - z_x)(W - z_w) + bias (the fold is the dense conv's, with no channel
// padding). The product u8 x s8 is exact in int16 (|255 * -128| < 2^15), so the multiply is
// 16-bit and only the accumulation is 32-bit. Bounds: as conv2d (runtime/pack.h).
// Epilogue: y = clamp(round(acc * mult[o]) + z_y, act_min, act_max).
namespace {

class Conv2dGrouped : public Generator<Conv2dGrouped> {
public:
    GeneratorParam<std::string> schedule_tag{"schedule", "generic"};
    GeneratorParam<std::string> knobs{"knobs", ""};
    GeneratorParam<bool> weight_zp{"weight_zp", false};
    GeneratorParam<Type> dst_type{"dst_type", UInt(8)};

    Input<Buffer<uint8_t, 4>> input{"input"};
    Input<int32_t> input_zp{"input_zp"};
    Input<Buffer<int8_t, 4>> weights{"weights"};
    Input<Buffer<int32_t, 1>> bias{"bias"};
    Input<Buffer<int32_t, 1>> wzp{"wzp"};
    Input<Buffer<float, 1>> mult{"mult"};
    Input<int32_t> output_zp{"output_zp"};
    Input<int32_t> act_min{"act_min"};
    Input<int32_t> act_max{"act_max"};
    Input<int32_t> stride_x{"stride_x"};
    Input<int32_t> stride_y{"stride_y"};
    Input<int32_t> pad_x{"pad_x"};
    Input<int32_t> pad_y{"pad_y"};
    Input<int32_t> dilation_x{"dilation_x"};
    Input<int32_t> dilation_y{"dilation_y"};
    Input<int32_t> group_out{"group_out"};
    Output<Buffer<void, 4>> output{"output"};

    void configure() { output.set_type(dst_type); }

    void generate() {
        qh::GroupedConvStages s;
        Var c("c"), x("x"), y("y"), n("n");
        s.c = c; s.x = x; s.y = y; s.n = n;
        Expr IC = input.dim(0).extent(), W = input.dim(1).extent(), H = input.dim(2).extent();
        Expr CG = weights.dim(1).extent(), KW = weights.dim(2).extent(), KH = weights.dim(3).extent();
        Func bc = BoundaryConditions::constant_exterior(
            input, cast<uint8_t>(input_zp), {{0, IC}, {0, W}, {0, H}, {Expr(), Expr()}});
        s.padded = Func("padded");
        s.padded(c, x, y, n) = bc(c, x, y, n);
        s.r = RDom(0, CG, 0, KW, 0, KH, "r");
        s.depthwise = group_out == 1 && CG == 1;
        const RDom &r = s.r;
        Expr ic = (c / group_out) * CG + r.x;
        Expr xv = s.padded(ic, x * stride_x + r.y * dilation_x - pad_x, y * stride_y + r.z * dilation_y - pad_y, n);
        Expr wv = weights(c, r.x, r.y, r.z);
        s.acc = Func("acc");
        s.acc(c, x, y, n) = bias(c);
        s.acc(c, x, y, n) += cast<int32_t>(widening_mul(xv, wv));
        Expr a = s.acc(c, x, y, n);
        if (weight_zp) {
            s.has_xsum = true;
            s.xsum = Func("xsum");
            s.xsum(c, x, y, n) = 0;
            s.xsum(c, x, y, n) += cast<int32_t>(xv);
            a -= wzp(c) * s.xsum(c, x, y, n);
        }
        Type t = dst_type;  // int32: the raw accumulator (dynamic quantization's exact sums)
        output(c, x, y, n) = t == Int(32) ? a : cast(t, qh::requantize(a, mult(c), output_zp, t, act_min, act_max));
        s.output = output;

        input.dim(0).set_min(0).set_stride(1);
        for (int d = 1; d < 4; d++) input.dim(d).set_min(0);
        weights.dim(0).set_min(0).set_stride(1);
        for (int d = 1; d < 4; d++) weights.dim(d).set_min(0);
        output.dim(0).set_min(0).set_stride(1);
        for (int d = 1; d < 4; d++) output.dim(d).set_min(0);

        qh::ScheduleContext ctx{get_target(), qh::Knobs(knobs), using_autoscheduler()};
        qh::ScheduleRegistry<qh::GroupedConvStages>::get().apply("conv2d_grouped", schedule_tag, s, ctx);
    }
};

}  // namespace

HALIDE_REGISTER_GENERATOR(Conv2dGrouped, conv2d_grouped)
