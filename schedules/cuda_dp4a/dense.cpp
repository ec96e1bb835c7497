// dense on cuda_dp4a: one thread computes 16 output channels (one packed 16x4 weight block) x
// tile_b batch rows, thread blocks of threads_oc / 16 x threads_b threads. Per group of 4
// inputs a thread loads one 64-byte packed weight row and tile_b input words and issues
// 16 * tile_b dp4a (atomic vectorized 4-wide RVar, as in conv2d.cpp, which also says why a
// thread owns a whole 16-channel block).
#include "qh_math.h"
#include "stages.h"

using namespace Halide;

namespace {

using namespace qh;

const std::vector<KnobSpec> kKnobs = {
    {"threads_oc", 64, 16, 64, "output channels per thread block, 16 per thread (16, 32 or 64)"},
    {"threads_b", 4, 1, 32, "threads per block along the batch"},
    {"tile_b", 1, 1, 8, "batch rows per thread (register accumulators, unrolled)"},
};

void dense(DenseStages &s, const ScheduleContext &ctx) {
    if (ctx.auto_schedule) return;
    const int toc = ctx.knobs.get(kKnobs[0]), tdb = ctx.knobs.get(kKnobs[1]);
    const int tb = ctx.knobs.get(kKnobs[2]);
    if (64 % toc) throw std::runtime_error("knob 'threads_oc' must divide 64 (16, 32 or 64)");
    Func out = s.output;
    Var cb("cb"), ci("ci"), cbo("cbo"), cbi("cbi"), bo("bo"), bi("bi"), boo("boo"), boi("boi");
    out.split(s.c, cb, ci, kOCB, TailStrategy::GuardWithIf)
        .split(cb, cbo, cbi, toc / kOCB, TailStrategy::GuardWithIf)
        .split(s.b, bo, bi, tb, TailStrategy::GuardWithIf)
        .split(bo, boo, boi, tdb, TailStrategy::GuardWithIf)
        .reorder(ci, bi, cbi, boi, cbo, boo)
        .gpu_blocks(cbo, boo)
        .gpu_threads(cbi, boi)
        .unroll(ci)
        .unroll(bi);
    s.acc.compute_at(out, cbi)
        .bound(s.oci, 0, kOCB)
        .bound_extent(s.oco, 1)
        .bound_extent(s.b, tb)
        .reorder(s.oci, s.b, s.oco)
        .unroll(s.oci)
        .unroll(s.b);
    s.acc.update()
        .reorder(s.r.x, s.oci, s.b, s.r.y, s.oco)
        .atomic()
        .vectorize(s.r.x)
        .unroll(s.oci)
        .unroll(s.b);
    if (s.has_xsum) s.xsum.compute_at(out, cbi).bound_extent(s.b, tb).unroll(s.b);
}

QH_REGISTER_SCHEDULE(DenseStages, "dense", "cuda_dp4a", dense, kKnobs);

}  // namespace
