// Pooling over NHWC tensors (Halide dims (c, x, y, n), c dense).
//
// maxpool: output(c, x, y, n) = max over the window of input, padding never wins (ONNX MaxPool:
//   pads are -inf), so it works on u8 and s8 alike with quantization parameters unchanged.
// global_avgpool (ONNX QLinearGlobalAveragePool): sum = sum_{x,y} input (int32, exact),
//   output(c, n) = clamp(round(float(sum - HW * z_x) * mult) + z_y),  mult = s_x / (s_y * HW).
//   Bound: 255 * H * W < 2^31.
// avgpool (ONNX AveragePool on a quantized tensor, DQ -> AveragePool -> Q): over the window's
//   positions inside the counted region [count_x0, count_x1) x [count_y0, count_y1) (the image,
//   or with count_include_pad the image plus its pads), acc = sum (x - z_x) (exact int32; pad
//   positions read z_x and add 0), cnt = the number of such positions, and
//   y = clamp(round((float(acc) * mult) / float(cnt)) + z_y, 0, qmax),  mult = s_x / s_y.
#include "Halide.h"
#include "qh_math.h"
#include "stages.h"

using namespace Halide;

namespace {

class MaxPool : public Generator<MaxPool> {
public:
    GeneratorParam<std::string> schedule_tag{"schedule", "generic"};
    GeneratorParam<std::string> knobs{"knobs", ""};
    GeneratorParam<Type> data_type{"data_type", UInt(8)};

    Input<Buffer<void, 4>> input{"input"};
    Input<int32_t> kernel_x{"kernel_x"};
    Input<int32_t> kernel_y{"kernel_y"};
    Input<int32_t> stride_x{"stride_x"};
    Input<int32_t> stride_y{"stride_y"};
    Input<int32_t> pad_x{"pad_x"};
    Input<int32_t> pad_y{"pad_y"};
    Output<Buffer<void, 4>> output{"output"};

    void configure() {
        input.set_type(data_type);
        output.set_type(data_type);
    }

    void generate() {
        qh::PoolStages s;
        Var c("c"), x("x"), y("y"), n("n");
        s.c = c; s.x = x; s.y = y; s.n = n;
        Type t = data_type;
        Expr W = input.dim(1).extent(), H = input.dim(2).extent();
        Func bc = BoundaryConditions::constant_exterior(input, t.min(),
                                                         {{Expr(), Expr()}, {0, W}, {0, H},
                                                          {Expr(), Expr()}});
        s.padded = Func("padded");
        s.padded(c, x, y, n) = bc(c, x, y, n);
        s.r = RDom(0, kernel_x, 0, kernel_y, "r");
        output(c, x, y, n) = maximum(s.padded(c, x * stride_x + s.r.x - pad_x,
                                              y * stride_y + s.r.y - pad_y, n));
        s.output = output;
        s.kernel_x = kernel_x; s.kernel_y = kernel_y; s.stride_x = stride_x; s.stride_y = stride_y;
        input.dim(0).set_min(0).set_stride(1);
        output.dim(0).set_min(0).set_stride(1);
        qh::ScheduleContext ctx{get_target(), qh::Knobs(knobs), using_autoscheduler()};
        qh::ScheduleRegistry<qh::PoolStages>::get().apply("maxpool", schedule_tag, s, ctx);
    }
};

class GlobalAvgPool : public Generator<GlobalAvgPool> {
public:
    GeneratorParam<std::string> schedule_tag{"schedule", "generic"};
    GeneratorParam<std::string> knobs{"knobs", ""};
    GeneratorParam<Type> dst_type{"dst_type", UInt(8)};

    Input<Buffer<uint8_t, 4>> input{"input"};
    Input<int32_t> input_zp{"input_zp"};
    Input<float> mult{"mult"};
    Input<int32_t> output_zp{"output_zp"};
    Input<int32_t> qmax{"qmax"};  // the output's largest value: 255, or 15 for a 4-bit value stored as u8
    Output<Buffer<void, 2>> output{"output"};  // (c, n)

    void configure() { output.set_type(dst_type); }

    void generate() {
        qh::PoolStages s;
        Var c("c"), n("n");
        s.c = c; s.n = n;
        Expr W = input.dim(1).extent(), H = input.dim(2).extent();
        s.r = RDom(0, W, 0, H, "r");
        s.sum = Func("sum");
        s.sum(c, n) = 0;
        s.sum(c, n) += cast<int32_t>(input(c, s.r.x, s.r.y, n));
        Type t = dst_type;
        Expr acc = s.sum(c, n) - W * H * input_zp;
        output(c, n) = cast(t, qh::requantize(acc, mult, output_zp, t, INT32_MIN, qmax));
        s.output = output;
        input.dim(0).set_min(0).set_stride(1);
        output.dim(0).set_min(0).set_stride(1);
        qh::ScheduleContext ctx{get_target(), qh::Knobs(knobs), using_autoscheduler()};
        qh::ScheduleRegistry<qh::PoolStages>::get().apply("global_avgpool", schedule_tag, s, ctx);
    }
};

class AvgPool : public Generator<AvgPool> {
public:
    GeneratorParam<std::string> schedule_tag{"schedule", "generic"};
    GeneratorParam<std::string> knobs{"knobs", ""};

    Input<Buffer<uint8_t, 4>> input{"input"};
    Input<int32_t> kernel_x{"kernel_x"};
    Input<int32_t> kernel_y{"kernel_y"};
    Input<int32_t> stride_x{"stride_x"};
    Input<int32_t> stride_y{"stride_y"};
    Input<int32_t> pad_x{"pad_x"};
    Input<int32_t> pad_y{"pad_y"};
    Input<int32_t> count_x0{"count_x0"};
    Input<int32_t> count_x1{"count_x1"};
    Input<int32_t> count_y0{"count_y0"};
    Input<int32_t> count_y1{"count_y1"};
    Input<int32_t> input_zp{"input_zp"};
    Input<float> mult{"mult"};
    Input<int32_t> output_zp{"output_zp"};
    Input<int32_t> qmax{"qmax"};
    Output<Buffer<uint8_t, 4>> output{"output"};

    void generate() {
        qh::PoolStages s;
        Var c("c"), x("x"), y("y"), n("n");
        s.c = c; s.x = x; s.y = y; s.n = n;
        Expr W = input.dim(1).extent(), H = input.dim(2).extent();
        Func bc = BoundaryConditions::constant_exterior(input, cast<uint8_t>(input_zp),
                                                         {{Expr(), Expr()}, {0, W}, {0, H}, {Expr(), Expr()}});
        s.padded = Func("padded");
        s.padded(c, x, y, n) = bc(c, x, y, n);
        s.r = RDom(0, kernel_x, 0, kernel_y, "r");
        Expr x0 = x * stride_x - pad_x, y0 = y * stride_y - pad_y;
        // An inline reduction (as maxpool's maximum): computed at the innermost loop of its use,
        // a register per GPU thread. (A Func of its own computed at a GPU thread, with y and n
        // fused into one block dimension, was given a global scratch too small for its inferred
        // region: out-of-bounds writes, found by compute-sanitizer.)
        Expr acc = sum(cast<int32_t>(s.padded(c, x0 + s.r.x, y0 + s.r.y, n)) - input_zp, "window_sum");
        Expr cx = min(x0 + kernel_x, count_x1) - max(x0, count_x0);
        Expr cy = min(y0 + kernel_y, count_y1) - max(y0, count_y0);
        Expr cnt = max(cx, 1) * max(cy, 1);
        Expr scaled = strict_float((cast<float>(acc) * mult) / cast<float>(cnt));
        output(c, x, y, n) = cast<uint8_t>(qh::clamp_to(UInt(8), qh::round_to_i32(scaled) + output_zp, 0, qmax));
        s.output = output;
        s.kernel_x = kernel_x; s.kernel_y = kernel_y; s.stride_x = stride_x; s.stride_y = stride_y;
        input.dim(0).set_min(0).set_stride(1);
        output.dim(0).set_min(0).set_stride(1);
        qh::ScheduleContext ctx{get_target(), qh::Knobs(knobs), using_autoscheduler()};
        qh::ScheduleRegistry<qh::PoolStages>::get().apply("avgpool", schedule_tag, s, ctx);
    }
};

}  // namespace

HALIDE_REGISTER_GENERATOR(MaxPool, maxpool)
HALIDE_REGISTER_GENERATOR(AvgPool, avgpool)
HALIDE_REGISTER_GENERATOR(GlobalAvgPool, global_avgpool)
