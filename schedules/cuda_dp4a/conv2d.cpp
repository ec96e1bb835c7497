// conv2d on cuda_dp4a (Halide CUDA target, sm_61+).
//
// One thread computes a register tile of 16 output channels (one packed 16x4 weight block) x
// tile_x output pixels of one row; a thread block is threads_oc/16 x threads_x x threads_y such
// threads (64 channels x 8 pixels x 4 rows by default). Per group of 4 input channels a thread
// loads one 64-byte packed weight row (threads of the same channel block load the same row: a
// broadcast) and tile_x 4-byte input groups, then issues 16 * tile_x dp4a. The 4-wide
// reduction r.x is an atomic vectorized RVar: Halide lowers it to VectorReduce(Add, 4) of
// i32(widening_mul(u8, s8)), which CodeGen_PTX_Dev emits as dp4a (checked by the ctest
// GpuCodegen.ConvAndDenseUseDp4a).
//
// Why 16 channels per thread: the output reads acc(c % 16, c / 16, ...), and Halide's bounds
// inference gives c % 16 the whole range [0, 16) even for one c, so a thread that owned a single
// channel would still compute all 16 (measured: 16x the work). Owning the block makes that
// region exactly the thread's work.
//
// Inputs are read from global memory (through L1) with the zero-point padding as selects; no
// shared-memory staging yet. Weights are the CPU packing (runtime/pack.h), OC padded to 64:
// threads_oc divides 64, so a block never reads past the packed channels (stores are guarded).
#include "qh_math.h"
#include "stages.h"

using namespace Halide;

namespace {

using namespace qh;

const std::vector<KnobSpec> kKnobs = {
    {"threads_oc", 64, 16, 64, "output channels per thread block, 16 per thread (16, 32 or 64)"},
    {"threads_x", 4, 1, 32, "threads per block along output x"},
    {"threads_y", 4, 1, 16, "threads per block along output rows"},
    {"tile_x", 2, 1, 8, "output pixels along x per thread (register accumulators, unrolled)"},
};

void conv2d(Conv2dStages &s, const ScheduleContext &ctx) {
    if (ctx.auto_schedule) return;
    const int toc = ctx.knobs.get(kKnobs[0]), tdx = ctx.knobs.get(kKnobs[1]);
    const int tdy = ctx.knobs.get(kKnobs[2]), tx = ctx.knobs.get(kKnobs[3]);
    if (64 % toc) throw std::runtime_error("knob 'threads_oc' must divide 64 (16, 32 or 64)");

    Func out = s.output;
    Var cb("cb"), ci("ci"), cbo("cbo"), cbi("cbi"), xo("xo"), xi("xi"), xoo("xoo"), xoi("xoi"),
        yo("yo"), yi("yi"), yn("yn");
    out.split(s.c, cb, ci, kOCB / s.out_pack, TailStrategy::GuardWithIf)  // one 16-channel block
        .split(cb, cbo, cbi, toc / kOCB, TailStrategy::GuardWithIf)
        .split(s.x, xo, xi, tx, TailStrategy::GuardWithIf)
        .split(xo, xoo, xoi, tdx, TailStrategy::GuardWithIf)
        .split(s.y, yo, yi, tdy, TailStrategy::GuardWithIf)
        .reorder(ci, xi, cbi, xoi, yi, cbo, xoo, yo, s.n)
        .fuse(yo, s.n, yn)
        .gpu_blocks(cbo, xoo, yn)
        .gpu_threads(cbi, xoi, yi)
        .unroll(ci)
        .unroll(xi);

    // Per thread: 16 x tile_x accumulators (fixed extents, also at channel and x tails, so they
    // stay in registers: a size Halide cannot prove constant becomes a global-memory buffer;
    // extra pixels read zero-point padding and are never stored).
    s.acc.compute_at(out, cbi)
        .bound(s.oci, 0, kOCB)
        .bound_extent(s.oco, 1)
        .bound_extent(s.x, tx)
        .reorder(s.oci, s.x, s.oco, s.y, s.n)
        .unroll(s.oci)
        .unroll(s.x);
    s.acc.update()
        .reorder(s.r.x, s.oci, s.x, s.r.y, s.r.z, s.r.w, s.oco, s.y, s.n)
        .atomic()
        .vectorize(s.r.x)
        .unroll(s.oci)
        .unroll(s.x);
    if (s.has_xsum) {
        s.xsum.compute_at(out, cbi).bound_extent(s.x, tx).unroll(s.x);
        s.xsum.update().reorder(s.r.x, s.x, s.r.y, s.r.z, s.r.w, s.y, s.n).unroll(s.x);
    }
}

QH_REGISTER_SCHEDULE(Conv2dStages, "conv2d", "cuda_dp4a", conv2d, kKnobs);

}  // namespace
