// dense (fully connected / MatMulInteger): output(oc, b) = epilogue(sum_k X(k, b) W(oc, k)).
//
// Layout contract:
//   input    u8  (k, b)                 row-major [B][K], k dense
//   weights  s8  (4, 16, KO, OCO)       packed by qh::pack_dense_weights: weights(i, o, kb, ob) =
//            w[oc = 16*ob + o][k = 4*kb + i], zero padded; OCO*16 is a multiple of 64
//   bias/wzp/mult  (16*OCO)             as in conv2d (zero points folded into bias)
//   output   u8/s8/s32 (oc, b)
// Same math, bounds and epilogue as conv2d (generators/conv2d_generator.cpp) with a 1x1 window,
// including weight_bits=4: s4 weights with paired output-channel blocks (weights(i, o, kb, p):
// low nibble block 2p, high nibble block 2p + 1), accumulated as 16 * w and shifted back.
#include "Halide.h"
#include "qh_math.h"
#include "stages.h"

using namespace Halide;

namespace {

class Dense : public Generator<Dense> {
public:
    GeneratorParam<std::string> schedule_tag{"schedule", "generic"};
    GeneratorParam<std::string> knobs{"knobs", ""};
    GeneratorParam<bool> weight_zp{"weight_zp", false};
    GeneratorParam<Type> dst_type{"dst_type", UInt(8)};
    GeneratorParam<int> weight_bits{"weight_bits", 8};  // 4: s4 weights, paired blocks

    Input<Buffer<uint8_t, 2>> input{"input"};
    Input<int32_t> input_zp{"input_zp"};
    Input<Buffer<int8_t, 4>> weights{"weights"};
    Input<Buffer<int32_t, 1>> bias{"bias"};
    Input<Buffer<int32_t, 1>> wzp{"wzp"};
    Input<Buffer<float, 1>> mult{"mult"};
    Input<int32_t> output_zp{"output_zp"};
    Input<int32_t> act_min{"act_min"};
    Input<int32_t> act_max{"act_max"};
    Output<Buffer<void, 2>> output{"output"};

    void configure() { output.set_type(dst_type); }

    void generate() {
        qh::DenseStages s;
        Var c("c"), k("k"), b("b"), oci("oci"), oco("oco");
        s.c = c; s.k = k; s.b = b; s.oci = oci; s.oco = oco;

        Expr K = input.dim(0).extent(), B = input.dim(1).extent();
        Expr KO = weights.dim(2).extent();
        Func bc = BoundaryConditions::constant_exterior(input, cast<uint8_t>(input_zp),
                                                         {{0, K}, {0, B}});
        s.padded = Func("padded");
        s.padded(k, b) = bc(k, b);
        s.r = RDom(0, qh::kICB, 0, KO, "r");
        Expr xv = s.padded(qh::kICB * s.r.y + s.r.x, b);
        const bool w4 = weight_bits == 4;
        if (weight_bits != 8 && !w4) throw std::runtime_error("weight_bits must be 8 or 4");
        if (w4 && weight_zp) throw std::runtime_error("weight_bits=4 weights are symmetric (no weight_zp)");
        Expr wv;
        if (w4) {
            Expr wb = reinterpret<uint8_t>(weights(s.r.x, oci, s.r.y, oco / 2));
            wv = reinterpret<int8_t>(select(oco % 2 == 0, wb << 4, wb & 0xF0));
        } else {
            wv = weights(s.r.x, oci, s.r.y, oco);
        }

        s.acc = Func("acc");
        if (w4) {
            s.acc(oci, oco, b) = 0;
        } else {
            s.acc(oci, oco, b) = bias(oco * qh::kOCB + oci);
        }
        s.acc(oci, oco, b) += cast<int32_t>(widening_mul(xv, wv));
        Expr a = s.acc(c % qh::kOCB, c / qh::kOCB, b);
        if (w4) a = (a >> 4) + bias(c);
        if (weight_zp) {
            s.has_xsum = true;
            s.xsum = Func("xsum");
            s.xsum(b) = 0;
            s.xsum(b) += cast<int32_t>(xv);
            a -= wzp(c) * s.xsum(b);
        }
        Type t = dst_type;
        output(c, b) = t == Int(32) ? a : cast(t, qh::requantize(a, mult(c), output_zp, t,
                                                                 act_min, act_max));
        s.output = output;

        input.dim(0).set_min(0).set_stride(1);
        input.dim(1).set_min(0);
        weights.dim(0).set_bounds(0, qh::kICB).set_stride(1);
        weights.dim(1).set_bounds(0, qh::kOCB).set_stride(qh::kICB);
        weights.dim(2).set_min(0).set_stride(qh::kICB * qh::kOCB);
        weights.dim(3).set_min(0).set_stride(qh::kICB * qh::kOCB * KO);
        output.dim(0).set_min(0).set_stride(1);
        output.dim(1).set_min(0);

        qh::ScheduleContext ctx{get_target(), qh::Knobs(knobs), using_autoscheduler()};
        qh::ScheduleRegistry<qh::DenseStages>::get().apply("dense", schedule_tag, s, ctx);
    }
};

}  // namespace

HALIDE_REGISTER_GENERATOR(Dense, dense)
