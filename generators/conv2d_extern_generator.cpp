// conv2d_extern: quantized 2-D convolution (groups = 1) whose accumulator comes from the
// tensor-core microkernel (cuda/mma_conv2d.cuh) through Func::define_extern, with the
// packing and the epilogue as Halide stages on the GPU. The cuda_mma formulations "extern" (direct)
// and "extern_im2col" of cuda/mma_ops.cpp; dense runs on it as a 1x1 conv over 1x1 images.
//
// Layout contract (Halide dims are innermost first):
//   input    u8  (c, x, y, n)  NHWC, dense, mins 0: IC channels, W x H pixels, N images
//   weights  s8  (k, oc)       OC rows of Kp bytes, dense (the microkernel's K-contiguous packing):
//            direct (im2col=false): qh_cuda_pack_weights of the layer's ConvDesc, whatever its
//                  A-loader path; Kp = qh_cuda_conv2d_kpad(desc);
//            im2col: weights(k, oc) = w[oc][ic][ky][kx] at k = (ky*KW + kx)*IC + ic, zero for
//                  k >= K = KH*KW*IC, with Kp a multiple of 128 (every tile's K stage divides it,
//                  and it is the microkernel's own im2col granularity, KALIGN in mma_conv2d.cu).
//   bias     s32 (>= OC)  the *effective* bias, zero points folded in, as for conv2d
//   mult     f32 (>= OC)  requantization multiplier s_x * s_w[oc] / s_y
//   output   u8  (oc, x, y, n) NHWC, oc dense, OC % 8 == 0; res (conv2d_add) the same shape
//   tile_variant: index into qh_cuda_conv2d_variant() (the runtime tunes it per layer)
//
// Stages:
//   ktab(k)          (im2col only) = (ic, kx, ky) of k as above, for k in [0, Kp)
//   col(k, x, y, n)  (im2col only, on the GPU) = X(ic, x*sx + kx - px, y*sy + ky - py, n) for k < K
//                    with (ic, kx, ky) = ktab(k), z_x outside the image and for k >= K: the
//                    dense u8 matrix [M = N*OH*OW][Kp].
//   acc(c, x, y, n)  s32 = sum_k X W, by the extern "C" qh_cuda_mma_conv2d_s32 (DeviceAPI::CUDA,
//                    cuda/mma_extern.cpp): direct: the microkernel on the input with
//                    padding value z_x; im2col: the microkernel as a 1x1 conv over col (IC = Kp,
//                    no padding). It computes whole layers only (its bounds query asks for all of
//                    its inputs; other output regions are an error).
//   output           the epilogue of conv2d_generator.cpp, the same qh_math.h calls on the same
//                    int32 acc + bias: clamp(round(acc * mult[oc]) + z_y, act_min, act_max) (ReLU
//                    by act_min), or with `residual` the Conv -> QuantizeLinear -> QLinearAdd
//                    chain of qh::quantized_add (no_contraction on the GPU: the PTX backend would
//                    otherwise fuse the two products' sum into an fma).
// Math: with X padded by z_x, sum_k X W equals the CPU kernels' sum (symmetric weights, W' = W),
// and int32 addition is exact, so the u8 results are bit-identical to conv2d_u8s8u8 /
// conv2d_add_u8s8u8 on the CPU. Bounds: K*255*128 must fit int32 (Kp <= 65536, checked by the
// runtime and the extern).
#include "Halide.h"
#include "qh_math.h"
#include "stages.h"

using namespace Halide;

namespace {

class Conv2dExtern : public Generator<Conv2dExtern> {
public:
    GeneratorParam<std::string> schedule_tag{"schedule", "generic"};
    GeneratorParam<std::string> knobs{"knobs", ""};
    GeneratorParam<bool> residual{"residual", false};
    GeneratorParam<bool> im2col{"im2col", false};

    Input<Buffer<uint8_t, 4>> input{"input"};
    Input<int32_t> input_zp{"input_zp"};
    Input<Buffer<int8_t, 2>> weights{"weights"};
    Input<Buffer<int32_t, 1>> bias{"bias"};
    Input<Buffer<float, 1>> mult{"mult"};
    Input<int32_t> output_zp{"output_zp"};
    Input<int32_t> act_min{"act_min"};
    Input<int32_t> act_max{"act_max"};
    Input<int32_t> kernel_w{"kernel_w"};
    Input<int32_t> kernel_h{"kernel_h"};
    Input<int32_t> stride_x{"stride_x"};
    Input<int32_t> stride_y{"stride_y"};
    Input<int32_t> pad_x{"pad_x"};
    Input<int32_t> pad_y{"pad_y"};
    Input<int32_t> tile_variant{"tile_variant"};
    Input<Buffer<uint8_t, 4>> res{"res"};  // residual (c, x, y, n), same shape as output
    Input<int32_t> conv_zp{"conv_zp"};     // z_c of the conv's own u8 result
    Input<int32_t> res_zp{"res_zp"};
    Input<float> mult_conv{"mult_conv"};   // s_c / s_y
    Input<float> mult_res{"mult_res"};     // s_r / s_y
    Output<Buffer<uint8_t, 4>> output{"output"};

    void generate() {
        qh::Conv2dExternStages s;
        Var c("c"), x("x"), y("y"), n("n"), k("k");
        s.c = c; s.x = x; s.y = y; s.n = n; s.k = k;

        Expr IC = input.dim(0).extent(), W = input.dim(1).extent(), H = input.dim(2).extent();
        Expr Kp = weights.dim(0).extent(), OC = weights.dim(1).extent();
        Expr OW = output.dim(1).extent(), OH = output.dim(2).extent();
        Expr zx = input_zp;

        // The extern's arguments: (x, w, variant, zx, IC, W, H, Kp, OC, KW, KH, sx, sy, px, py).
        // The geometry travels as scalars so that its bounds query can name every input region.
        std::vector<ExternFuncArgument> args;
        if (im2col) {
            s.has_col = true;
            Func bc = BoundaryConditions::constant_exterior(
                input, cast<uint8_t>(zx), {{0, IC}, {0, W}, {0, H}, {Expr(), Expr()}});
            // Where element k of an im2col row comes from, once per k (a table of Kp entries):
            // col's per-byte work then has no integer division by run-time values.
            s.ktab = Func("ktab");
            s.ktab(k) = Tuple(k % IC, (k / IC) % kernel_w, (k / IC) / kernel_w);
            Expr ic = s.ktab(k)[0], kx = s.ktab(k)[1], ky = s.ktab(k)[2];
            s.col = Func("col");
            s.col(k, x, y, n) = select(k < IC * kernel_w * kernel_h,
                                       bc(ic, x * stride_x + kx - pad_x, y * stride_y + ky - pad_y, n),
                                       cast<uint8_t>(zx));
            args = {s.col, weights, tile_variant, zx, Kp, OW, OH, Kp, OC,
                    Expr(1), Expr(1), Expr(1), Expr(1), Expr(0), Expr(0)};
        } else {
            args = {input, weights, tile_variant, zx, IC, W, H, Kp, OC,
                    kernel_w, kernel_h, stride_x, stride_y, pad_x, pad_y};
        }
        s.acc = Func("acc");
        s.acc.define_extern("qh_cuda_mma_conv2d_s32", args, Int(32), {c, x, y, n}, NameMangling::C,
                            DeviceAPI::CUDA);

        Expr a = s.acc(c, x, y, n) + bias(c);
        Expr out;
        if (!residual) {
            out = cast<uint8_t>(qh::requantize(a, mult(c), output_zp, UInt(8), act_min, act_max));
        } else {
            Expr cq = qh::requantize(a, mult(c), conv_zp, UInt(8), 0, 255);
            Expr rv = cast<int32_t>(res(c, x, y, n));
            out = cast<uint8_t>(qh::quantized_add(cq, conv_zp, mult_conv, rv, res_zp, mult_res,
                                                  output_zp, UInt(8), act_min, act_max,
                                                  get_target().has_gpu_feature()));
        }
        output(c, x, y, n) = out;
        s.output = output;

        // Layout contracts: dense NHWC activations, mins at 0, weights [OC][Kp] dense.
        input.dim(0).set_min(0).set_stride(1);
        for (int d = 1; d < 4; d++) input.dim(d).set_min(0);
        weights.dim(0).set_min(0).set_stride(1);
        weights.dim(1).set_min(0).set_stride(Kp);
        // OC % 8 == 0 (the microkernel's requirement too): the epilogue's 8-channel vectors
        // have no tail.
        output.dim(0).set_min(0).set_stride(1).set_extent(output.dim(0).extent() / 8 * 8);
        for (int d = 1; d < 4; d++) output.dim(d).set_min(0);
        res.dim(0).set_min(0).set_stride(1);

        qh::ScheduleContext ctx{get_target(), qh::Knobs(knobs), using_autoscheduler()};
        qh::ScheduleRegistry<qh::Conv2dExternStages>::get().apply("conv2d_extern", schedule_tag, s,
                                                                  ctx);
    }
};

}  // namespace

HALIDE_REGISTER_GENERATOR(Conv2dExtern, conv2d_extern)
