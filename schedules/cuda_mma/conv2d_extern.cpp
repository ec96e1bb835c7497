// conv2d_extern on cuda_mma: the Halide stages around the tensor-core microkernel.
//
// acc is the define_extern stage (it runs whole layers on the CUDA device: compute_root). Its s32
// buffer lives on the device only (Halide sees it written by a CUDA extern and read by a CUDA
// kernel, so it makes no host allocation); the runtime turns on halide_reuse_device_allocations so
// that the per-run halide_device_malloc / _free of acc and col come from the CUDA runtime's cache
// instead of cuMemAlloc / cuMemFree (cuda/mma_ops.cpp).
//
// col (im2col only): one block per output pixel (x, y, n: grid dims, so no division recovers
// them), 128 threads along k, each looping over the Kp / 128 chunks (Kp is a multiple of 128):
// coalesced 128-byte stores; the tap table ktab (a few KB, one small kernel) replaces the
// per-byte divisions by IC and KW.
// output (the epilogue): 8 consecutive output channels per thread, vectorized (OC % 8 == 0 is a
// layout contract: 32-byte accumulator loads, 8-byte stores), threads_c x 8 channels by threads_p
// pixels per block. Pixels (x, y, n) are fused into one index so the grid's x dimension carries
// them (N*OH*OW can pass 65535 at large batch); recovering (x, y, n) costs divisions once per
// 8 outputs. Coalesced along channels: acc, bias, multipliers, residual, output.
#include "stages.h"

using namespace Halide;

namespace {

using namespace qh;

const std::vector<KnobSpec> kKnobs = {
    {"threads_c", 8, 1, 64, "epilogue: threads along output channels (8 channels each) per block"},
    {"threads_p", 32, 1, 256, "epilogue: threads along output pixels per block"},
};

void conv2d_extern(Conv2dExternStages &s, const ScheduleContext &ctx) {
    if (ctx.auto_schedule) return;
    const int tc = ctx.knobs.get(kKnobs[0]), tp = ctx.knobs.get(kKnobs[1]);

    Var c8("c8"), cv("cv"), co("co"), ci("ci"), xy("xy"), p("p"), po("po"), pi("pi");
    s.output.split(s.c, c8, cv, 8, TailStrategy::GuardWithIf)
        .split(c8, co, ci, tc, TailStrategy::GuardWithIf)
        .fuse(s.x, s.y, xy)
        .fuse(xy, s.n, p)
        .split(p, po, pi, tp, TailStrategy::GuardWithIf)
        .reorder(cv, ci, pi, po, co)
        .vectorize(cv)
        .gpu_blocks(po, co)
        .gpu_threads(ci, pi);

    s.acc.compute_root();

    if (s.has_col) {
        Var ko("ko"), ki("ki"), t("t"), to("to"), tt("tt");
        s.col.compute_root()
            .split(s.k, ko, ki, 128, TailStrategy::GuardWithIf)
            .reorder(ki, ko, s.x, s.y, s.n)
            .gpu_blocks(s.x, s.y, s.n)
            .gpu_threads(ki);
        s.ktab.compute_root().split(s.k, to, tt, 128, TailStrategy::GuardWithIf).gpu_blocks(to).gpu_threads(tt);
    }
}

QH_REGISTER_SCHEDULE(Conv2dExternStages, "conv2d_extern", "cuda_mma", conv2d_extern, kKnobs);

}  // namespace
