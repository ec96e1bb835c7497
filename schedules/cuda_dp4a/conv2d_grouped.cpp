// conv2d_grouped on cuda_dp4a: one thread per (channel, tile_x output pixels) with its
// accumulators in registers; a block is 32 channels x threads_x pixel tiles x threads_y rows.
// Consecutive threads take consecutive channels, so a warp's input, weight and output accesses
// are coalesced (NHWC, weights with output channels dense). The window loops run in the thread.
#include "stages.h"

using namespace Halide;

namespace {

using namespace qh;

const std::vector<KnobSpec> kKnobs = {
    {"threads_c", 32, 32, 256, "channels per thread block (one thread each)"},
    {"threads_x", 4, 1, 16, "threads per block along output x"},
    {"threads_y", 2, 1, 16, "threads per block along output rows"},
    {"tile_x", 2, 1, 8, "output pixels along x per thread"},
};

void conv2d_grouped(GroupedConvStages &s, const ScheduleContext &ctx) {
    if (ctx.auto_schedule) return;
    const int tcn = ctx.knobs.get(kKnobs[0]), tdx = ctx.knobs.get(kKnobs[1]);
    const int tdy = ctx.knobs.get(kKnobs[2]), tx = ctx.knobs.get(kKnobs[3]);
    Func out = s.output;
    Var co("co"), ci("ci"), xo("xo"), xi("xi"), xoo("xoo"), xoi("xoi"), yo("yo"), yi("yi"), yn("yn");
    out.split(s.c, co, ci, tcn, TailStrategy::GuardWithIf)
        .split(s.x, xo, xi, tx, TailStrategy::GuardWithIf)
        .split(xo, xoo, xoi, tdx, TailStrategy::GuardWithIf)
        .split(s.y, yo, yi, tdy, TailStrategy::GuardWithIf)
        .reorder(xi, ci, xoi, yi, co, xoo, yo, s.n)
        .fuse(yo, s.n, yn)
        .gpu_blocks(co, xoo, yn)
        .gpu_threads(ci, xoi, yi)
        .unroll(xi);
    s.acc.compute_at(out, ci).bound_extent(s.x, tx).unroll(s.x);
    s.acc.update().reorder(s.x, s.r.x, s.r.y, s.r.z, s.c, s.y, s.n).unroll(s.x);
    if (s.has_xsum) {
        s.xsum.compute_at(out, ci).bound_extent(s.x, tx).unroll(s.x);
        s.xsum.update().reorder(s.x, s.r.x, s.r.y, s.r.z, s.c, s.y, s.n).unroll(s.x);
    }
    out.specialize(s.depthwise);
}

QH_REGISTER_SCHEDULE(GroupedConvStages, "conv2d_grouped", "cuda_dp4a", conv2d_grouped, kKnobs);

}  // namespace
