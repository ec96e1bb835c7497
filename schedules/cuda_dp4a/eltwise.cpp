// Elementwise ops and pooling on cuda_dp4a: one output element per thread.
#include "stages.h"

using namespace Halide;

namespace {

using namespace qh;

const std::vector<KnobSpec> kEltwiseKnobs = {
    {"threads", 256, 32, 1024, "threads per block"},
};

// Flat index over all output dims, blocks of `threads` consecutive elements (the innermost
// dimension is dense, so a warp's loads and stores are consecutive).
void eltwise(EltwiseStages &s, const ScheduleContext &ctx) {
    if (ctx.auto_schedule) return;
    const int t = ctx.knobs.get(kEltwiseKnobs[0]);
    Var flat = s.vars[0], f("f"), bo("bo"), bi("bi");
    for (size_t i = 1; i < s.vars.size(); i++) {
        s.output.fuse(flat, s.vars[i], f);
        flat = f;
        f = Var("f" + std::to_string(i));
    }
    s.output.split(flat, bo, bi, t, TailStrategy::GuardWithIf).gpu_blocks(bo).gpu_threads(bi);
}

// Max and average pools: threads over (32 channels x 8 output pixels), blocks over channel
// groups, x tiles and rows; the window is reduced in the thread (inline reductions: registers).
// The 3x3/2 window gets its own specialization: the window loops then have constant trip counts
// and unroll, so a thread's 9 loads are independent and in flight together (with runtime extents
// they ran one after another, latency-bound).
void window_pool(PoolStages &s, const ScheduleContext &ctx) {
    if (ctx.auto_schedule) return;
    Var co("co"), ci("ci"), xo("xo"), xi("xi"), yn("yn");
    s.output.split(s.c, co, ci, 32, TailStrategy::GuardWithIf)
        .split(s.x, xo, xi, 8, TailStrategy::GuardWithIf)
        .fuse(s.y, s.n, yn)
        .reorder(ci, xi, co, xo, yn)
        .gpu_blocks(co, xo, yn)
        .gpu_threads(ci, xi);
    // After the schedule: a specialization copies the schedule as it is when it is made.
    s.output.specialize(s.kernel_x == 3 && s.kernel_y == 3 && s.stride_x == 2 && s.stride_y == 2);
}

// One thread per (channel, image): a serial sum over the H*W window (consecutive threads read
// consecutive channels of a pixel: coalesced).
void global_avgpool(PoolStages &s, const ScheduleContext &ctx) {
    if (ctx.auto_schedule) return;
    Var co("co"), ci("ci");
    s.output.split(s.c, co, ci, 64, TailStrategy::GuardWithIf)
        .reorder(ci, co, s.n)
        .gpu_blocks(co, s.n)
        .gpu_threads(ci);
    s.sum.compute_at(s.output, ci);
}

// transpose, y(a, b, o) = x(b, a, o). Short output rows (NCHW -> NHWC of an image, a = 3
// channels): a thread per b with its a elements in a loop, so a warp reads each input plane
// coalesced and writes one contiguous span; otherwise the flat mapping (dense writes).
void transpose(EltwiseStages &s, const ScheduleContext &ctx) {
    if (ctx.auto_schedule) return;
    const int th = ctx.knobs.get(kEltwiseKnobs[0]);
    Var a = s.vars[0], b = s.vars[1], o = s.vars[2], bo("bo"), bi("bi");
    Expr a_extent = s.output.output_buffer().dim(0).extent();
    s.output.specialize(a_extent <= 16)
        .reorder(a, b, o)
        .split(b, bo, bi, th, TailStrategy::GuardWithIf)
        .reorder(a, bi, bo, o)
        .gpu_blocks(bo, o)
        .gpu_threads(bi);
    eltwise(s, ctx);
}

QH_REGISTER_SCHEDULE(EltwiseStages, "quantize", "cuda_dp4a", eltwise, kEltwiseKnobs);
QH_REGISTER_SCHEDULE(EltwiseStages, "transpose", "cuda_dp4a", transpose, kEltwiseKnobs);
QH_REGISTER_SCHEDULE(EltwiseStages, "dequantize", "cuda_dp4a", eltwise, kEltwiseKnobs);
QH_REGISTER_SCHEDULE(EltwiseStages, "requantize", "cuda_dp4a", eltwise, kEltwiseKnobs);
QH_REGISTER_SCHEDULE(EltwiseStages, "int4_pack", "cuda_dp4a", eltwise, kEltwiseKnobs);
QH_REGISTER_SCHEDULE(EltwiseStages, "int4_unpack", "cuda_dp4a", eltwise, kEltwiseKnobs);
QH_REGISTER_SCHEDULE(EltwiseStages, "add", "cuda_dp4a", eltwise, kEltwiseKnobs);
QH_REGISTER_SCHEDULE(EltwiseStages, "lut", "cuda_dp4a", eltwise, kEltwiseKnobs);
QH_REGISTER_SCHEDULE(EltwiseStages, "mul", "cuda_dp4a", eltwise, kEltwiseKnobs);
QH_REGISTER_SCHEDULE(PoolStages, "maxpool", "cuda_dp4a", window_pool, {});
QH_REGISTER_SCHEDULE(PoolStages, "avgpool", "cuda_dp4a", window_pool, {});
QH_REGISTER_SCHEDULE(PoolStages, "global_avgpool", "cuda_dp4a", global_avgpool, {});

}  // namespace

