// conv2d_extern on cuda_mma: the Halide stages around the tensor-core microkernel.
//
// acc is the define_extern stage (it runs whole layers on the CUDA device: compute_root). Its s32
// buffer lives on the device only (Halide sees it written by a CUDA extern and read by a CUDA
// kernel, so it makes no host allocation); the runtime turns on halide_reuse_device_allocations so
// that the per-run halide_device_malloc / _free of acc and col come from the CUDA runtime's cache
// instead of cuMemAlloc / cuMemFree (runtime/cuda/mma_ops.cpp).
//
// col (im2col only): one byte per thread, threads along k (128 consecutive bytes of a row of the
// matrix: coalesced stores; Kp is a multiple of 128, so no tail) x col_threads_p pixels; blocks
// over pixel groups (grid x: no 65535 limit) and k groups.
// output (the epilogue): one output channel per thread, threads_c consecutive channels x
// threads_p pixels per block: the s32 accumulator, bias, multipliers and residual are read
// coalesced along channels. Pixels (x, y, n) are fused into one index so the grid's x dimension
// carries them (N*OH*OW can pass 65535 at large batch).
#include "stages.h"

using namespace Halide;

namespace {

using namespace qh;

const std::vector<KnobSpec> kKnobs = {
    {"threads_c", 64, 8, 256, "epilogue: output channels per thread block"},
    {"threads_p", 4, 1, 64, "epilogue: output pixels per thread block"},
    {"col_threads_p", 2, 1, 8, "im2col: pixels per thread block (x 128 bytes of k)"},
};

void conv2d_extern(Conv2dExternStages &s, const ScheduleContext &ctx) {
    if (ctx.auto_schedule) return;
    const int tc = ctx.knobs.get(kKnobs[0]), tp = ctx.knobs.get(kKnobs[1]);
    const int ctp = ctx.knobs.get(kKnobs[2]);

    Var co("co"), ci("ci"), xy("xy"), p("p"), po("po"), pi("pi");
    s.output.split(s.c, co, ci, tc, TailStrategy::GuardWithIf)
        .fuse(s.x, s.y, xy)
        .fuse(xy, s.n, p)
        .split(p, po, pi, tp, TailStrategy::GuardWithIf)
        .reorder(ci, pi, po, co)
        .gpu_blocks(po, co)
        .gpu_threads(ci, pi);

    s.acc.compute_root();

    if (s.has_col) {
        Var ko("ko"), ki("ki"), cxy("cxy"), cp("cp"), cpo("cpo"), cpi("cpi");
        s.col.compute_root()
            .split(s.k, ko, ki, 128, TailStrategy::GuardWithIf)
            .fuse(s.x, s.y, cxy)
            .fuse(cxy, s.n, cp)
            .split(cp, cpo, cpi, ctp, TailStrategy::GuardWithIf)
            .reorder(ki, cpi, cpo, ko)
            .gpu_blocks(cpo, ko)
            .gpu_threads(ki, cpi);
    }
}

QH_REGISTER_SCHEDULE(Conv2dExternStages, "conv2d_extern", "cuda_mma", conv2d_extern, kKnobs);

}  // namespace
