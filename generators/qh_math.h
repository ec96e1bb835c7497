// Shared fixed-point / quantization math for every qhalide generator.
//
// All rounding follows ONNX: float32 arithmetic, round half to even, saturate to the
// destination type, then add the zero point (QuantizeLinear / QLinearConv semantics).
// Every float expression is wrapped in strict_float so Halide may not contract a*b+c into an
// FMA or turn x/s into x*(1/s): the plain C++ reference (tests/reference) computes the same
// IEEE operations in the same order, so integer outputs are bit-exact.
#pragma once
#include "Halide.h"

namespace qh {

using Halide::Expr;
using Halide::Type;

// Clamp an int32 expression to [lo, hi] intersected with the representable range of `t`.
inline Expr clamp_to(Type t, Expr v, Expr lo, Expr hi) {
    Expr tlo = Halide::cast<int32_t>(t.min());
    Expr thi = t.bits() >= 32 ? Expr(INT32_MAX) : Halide::cast<int32_t>(t.max());
    return Halide::clamp(v, Halide::max(lo, tlo), Halide::min(hi, thi));
}

// Round a float to the nearest integer (half to even) and convert to int32, with the float
// adder doing the rounding: for |c| <= 2^22, c + 1.5*2^23 lies in [2^23, 2^24), where floats are
// exactly the integers, so the IEEE addition (default mode: nearest, ties to even) rounds c and
// the sum's bit pattern is 0x4B400000 + round(c). Two vector ops instead of round + convert
// (AVX-512 has no 512-bit vroundps; Halide splits it into two 256-bit halves), and no int32
// conversion that could overflow. Callers saturate to at most 16 bits afterwards, so clamping
// to +-65536 first never changes a result.
inline Expr round_to_i32(Expr f) {
    Expr c = Halide::strict_float(Halide::clamp(f, -65536.0f, 65536.0f));
    Expr biased = Halide::strict_float(c + 12582912.0f);  // 1.5 * 2^23
    return Halide::reinterpret<int32_t>(biased) - 0x4B400000;
}

// acc (int32) -> quantized value in int32: clamp(round(float(acc) * mult) + zp, lo, hi),
// lo/hi already intersected with the range of `t` (covers saturation and fused ReLU).
inline Expr requantize(Expr acc, Expr mult, Expr zp, Type t, Expr lo, Expr hi) {
    Expr scaled = Halide::strict_float(Halide::cast<float>(acc) * mult);
    return clamp_to(t, round_to_i32(scaled) + zp, lo, hi);
}

// Quantized add (ONNX QLinearAdd): y = clamp(round((a-za)*ma + (b-zb)*mb) + zy, lo, hi)
// with ma = sa/sy, mb = sb/sy precomputed in float32. a, b, za, zb are int32.
//
// no_contraction: Halide's PTX backend compiles with LLVM's FPOpFusion::Fast, and the DAG
// combiner then fuses fa + fb into fma(a - za, ma, fb) whatever strict_float says (one rounding
// fewer: not ONNX's result). With no_contraction each product passes through a select on a
// run-time condition that always holds for valid zero points but that neither Halide nor LLVM
// can fold, so no fadd ever sees an fmul operand. The generators set it for GPU targets only.
inline Expr quantized_add(Expr a, Expr za, Expr ma, Expr b, Expr zb, Expr mb,
                          Expr zy, Type t, Expr lo, Expr hi, bool no_contraction = false) {
    Expr fa = Halide::strict_float(Halide::cast<float>(a - za) * ma);
    Expr fb = Halide::strict_float(Halide::cast<float>(b - zb) * mb);
    if (no_contraction) {
        fa = Halide::strict_float(Halide::select(za < (1 << 30), fa, 0.0f));
        fb = Halide::strict_float(Halide::select(zb < (1 << 30), fb, 0.0f));
    }
    return clamp_to(t, round_to_i32(Halide::strict_float(fa + fb)) + zy, lo, hi);
}

// ONNX QuantizeLinear: clamp(round(x / scale) + zp) (a true division, as the standard says).
inline Expr quantize(Expr x, Expr scale, Expr zp, Type t) {
    Expr q = Halide::strict_float(x / scale);
    return clamp_to(t, round_to_i32(q) + zp, Expr(INT32_MIN), Expr(INT32_MAX));
}

// Weight-packing constants shared by conv2d and dense (the layout contract of packed weights):
// s8 weights are stored as [OCO][KH][KW][CIO][OCB=16][ICB=4]: 4 consecutive input channels of
// 16 consecutive output channels form one 64-byte vector, the operand of one vpdpbusd.
constexpr int kICB = 4;    // input channels reduced per dot-product lane (vpdpbusd/sdot/dp4a)
constexpr int kOCB = 16;   // output channels per packed block (one zmm of int32)
constexpr int kOCAlign = 64;  // packed output channels are padded to a multiple of this

}  // namespace qh
