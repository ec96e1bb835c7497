#include "grouped_conv.h"

using namespace Halide;

namespace qh::sched {

std::vector<KnobSpec> grouped_conv_knobs(const GroupedTile &d) {
    return {
        {"tile_c", d.tile_c, 4, 64, "output channels per register tile (divides 64, multiple of the vector)"},
        {"tile_x", d.tile_x, 1, 16, "output pixels per register tile"},
        {"rows", d.rows, 1, 16, "output rows per parallel task (the padded input rows are copied once per task)"},
        {"tiles_per_task", d.tiles_per_task, 1, 64, "channel tiles per parallel task (tasks = channel groups x row groups)"},
    };
}

void grouped_conv_cpu(GroupedConvStages &s, const ScheduleContext &ctx, const GroupedTile &d) {
    if (ctx.auto_schedule) return;
    const auto specs = grouped_conv_knobs(d);
    const int tc = ctx.knobs.get(specs[0]), tx = ctx.knobs.get(specs[1]), rows = ctx.knobs.get(specs[2]);
    const int tpt = ctx.knobs.get(specs[3]);
    const int v = std::min(d.vector, tc);
    if (64 % tc || tc % v)
        throw std::runtime_error("knob 'tile_c'=" + std::to_string(tc) + ": must divide 64 and be a multiple of " +
                                 std::to_string(v));
    Func out = s.output;
    Var co("co"), cg("cg"), ci("ci"), cv("cv"), cl("cl"), xo("xo"), xi("xi"), yo("yo"), yi("yi"), yn("yn"), task("task");
    // Tasks: (channel group of tiles_per_task tiles) x (rows output rows of one image). A deep, small
    // layer (7x7x1152) then still has tasks for every core: rows alone gave it 2.
    out.split(s.c, co, ci, tc, TailStrategy::GuardWithIf)
        .split(co, cg, co, tpt, TailStrategy::GuardWithIf)
        .split(s.x, xo, xi, tx, TailStrategy::GuardWithIf)
        .split(s.y, yo, yi, rows, TailStrategy::GuardWithIf)
        .split(ci, cv, cl, v)
        .reorder(cl, cv, xi, xo, co, yi, yo, s.n, cg)
        .vectorize(cl)
        .unroll(cv)
        .unroll(xi)
        .fuse(yo, s.n, yn)
        .fuse(yn, cg, task)
        .parallel(task);
    // Fixed tile extents, also at the channel and x tails (weights, bias and multipliers are
    // padded to 64 channels; padded channels read the zero point): the tile lives in registers.
    s.acc.compute_at(out, xo)
        .bound_extent(s.c, tc)
        .bound_extent(s.x, tx)
        .reorder(s.c, s.x, s.y, s.n)
        .vectorize(s.c, v)
        .unroll(s.c)
        .unroll(s.x);
    s.acc.update()
        .reorder(s.c, s.x, s.r.x, s.r.y, s.r.z, s.y, s.n)
        .vectorize(s.c, v)
        .unroll(s.c)
        .unroll(s.x);
    if (s.has_xsum) {
        s.xsum.compute_at(out, xo).bound_extent(s.c, tc).bound_extent(s.x, tx).vectorize(s.c, v).unroll(s.c).unroll(s.x);
        s.xsum.update().reorder(s.c, s.x, s.r.x, s.r.y, s.r.z, s.y, s.n).vectorize(s.c, v).unroll(s.c).unroll(s.x);
    }
    s.padded.compute_at(out, task).vectorize(s.c, v, TailStrategy::GuardWithIf);
    // After the schedule (a specialization copies it as it is when made): in a depthwise conv
    // the input channel index is c itself, so the loads above are dense vectors.
    out.specialize(s.depthwise);
}

}  // namespace qh::sched
