#include "dot_tiles.h"

using namespace Halide;

namespace qh::sched {

std::vector<KnobSpec> dot_tile_knobs(const DotTile &d) {
    return {
        {"tile_x", d.tile_x, 1, 16, "output pixels along x per register tile"},
        {"tile_y", d.tile_y, 1, 4, "output rows per register tile (conv2d)"},
        {"tile_oc", d.tile_oc, 1, 4, "16-channel output blocks per register tile (64 / tile_oc "
                                     "must be whole: 1, 2 or 4)"},
        {"parallel", d.parallel ? 1 : 0, 0, 1, "parallelize over output rows and batch"},
        {"oc_tiles_per_task", d.oc_tiles_per_task, 1, 64,
         "conv2d: register tiles of output channels per parallel task"},
    };
}

DotTile dot_tile_from_knobs(const ScheduleContext &ctx, const DotTile &d) {
    auto specs = dot_tile_knobs(d);
    DotTile t = d;
    t.tile_x = ctx.knobs.get(specs[0]);
    t.tile_y = ctx.knobs.get(specs[1]);
    t.tile_oc = ctx.knobs.get(specs[2]);
    t.parallel = ctx.knobs.get(specs[3]) != 0;
    t.oc_tiles_per_task = ctx.knobs.get(specs[4]);
    if (t.tile_oc == 3) throw std::runtime_error("knob 'tile_oc'=3: must divide 4 (1, 2 or 4)");
    return t;
}

void conv2d_dot_tiles(Conv2dStages &s, const ScheduleContext &ctx, const DotTile &t) {
    Func out = s.output;
    Var xo("xo"), xi("xi"), yo("yo"), yi("yi"), co("co"), ci("ci"), cg("cg"), yn("yn"),
        task("task");
    // Output channels per tile, in elements of `out`'s c (bytes of pairs for u4 storage).
    const int OB = 16 * t.tile_oc / s.out_pack;
    if (ctx.auto_schedule) return;

    // Loop nest, outermost first: task = (cg: group of oc_tiles_per_task register tiles of
    // output channels) x (yo: tile_y output rows) x (n: image), then xo, co, and the unrolled
    // register tile yi, xi, ci.
    out.split(s.x, xo, xi, t.tile_x, TailStrategy::GuardWithIf)
        .split(s.y, yo, yi, t.tile_y, TailStrategy::GuardWithIf)
        .split(s.c, co, ci, OB, TailStrategy::GuardWithIf)
        .split(co, cg, co, t.oc_tiles_per_task, TailStrategy::GuardWithIf)
        .reorder(ci, xi, yi, co, xo, yo, s.n, cg)
        .fuse(yo, s.n, yn)
        .fuse(yn, cg, task)
        .vectorize(ci, 16 / s.out_pack)
        .unroll(ci)
        .unroll(xi)
        .unroll(yi);
    if (t.parallel) out.parallel(task);

    // One register tile of accumulators per (co, xo, y, n).
    // Fixed tile extents (even at image/channel tails) so the accumulators live in registers.
    s.acc.compute_at(out, co)
        .bound(s.oci, 0, 16)
        .bound_extent(s.oco, t.tile_oc)
        .bound_extent(s.x, t.tile_x)
        .bound_extent(s.y, t.tile_y)
        .reorder(s.oci, s.oco, s.x, s.y, s.n)
        .vectorize(s.oci)
        .unroll(s.oco)
        .unroll(s.x)
        .unroll(s.y);
    s.acc.update()
        .reorder(s.r.x, s.oci, s.oco, s.x, s.y, s.r.y, s.r.z, s.r.w, s.n)
        .atomic()
        .vectorize(s.r.x)
        .vectorize(s.oci)
        .unroll(s.oco)
        .unroll(s.x)
        .unroll(s.y);

    if (s.has_xsum) {
        s.xsum.compute_at(out, xo);
        s.xsum.update().reorder(s.r.x, s.r.y, s.r.z, s.r.w, s.x, s.y, s.n);
    }
    // The zero-point-padded input rows one task's output rows need, copied once per task.
    // Vector width follows the channel count so narrow inputs (conv1: 4) are not over-computed.
    s.padded.compute_at(out, task);
    s.padded.specialize(s.padded_channels >= 64).vectorize(s.c, 64, TailStrategy::GuardWithIf);
    s.padded.specialize(s.padded_channels >= 16).vectorize(s.c, 16, TailStrategy::GuardWithIf);
    s.padded.vectorize(s.c, 4, TailStrategy::GuardWithIf);
}

void dense_dot_tiles(DenseStages &s, const ScheduleContext &ctx, const DotTile &t) {
    Func out = s.output;
    Var bo("bo"), bi("bi"), co("co"), ci("ci");
    const int OB = 16 * t.tile_oc;
    if (ctx.auto_schedule) return;

    out.split(s.b, bo, bi, t.tile_x, TailStrategy::GuardWithIf)
        .split(s.c, co, ci, OB, TailStrategy::GuardWithIf)
        .reorder(ci, bi, co, bo)
        .vectorize(ci, 16);
    if (t.parallel) out.parallel(co);

    s.acc.compute_at(out, co)
        .bound(s.oci, 0, 16)
        .bound_extent(s.oco, t.tile_oc)
        .bound_extent(s.b, t.tile_x)
        .reorder(s.oci, s.oco, s.b)
        .vectorize(s.oci)
        .unroll(s.oco)
        .unroll(s.b);
    s.acc.update()
        .reorder(s.r.x, s.oci, s.oco, s.b, s.r.y)
        .atomic()
        .vectorize(s.r.x)
        .vectorize(s.oci)
        .unroll(s.oco)
        .unroll(s.b);
    if (s.has_xsum) s.xsum.compute_at(out, bo);
    s.padded.compute_root().vectorize(s.k, t.vector * 4, TailStrategy::RoundUp);
}

}  // namespace qh::sched
