// A deliberately WRONG schedule, for tests of the correctness check only (linked into
// qhalide-explore and test_explore, never into the generator of libqhalide.a).
//
// Halide schedules cannot change results, except through the documented escape hatch
// allow_race_conditions(): vectorizing the 4-wide reduction r.x without atomic() makes the four
// lanes read the same accumulator and store back to it, so only the last lane's product
// survives and 3/4 of the reduction is skipped. Schedule tag: "wrong_for_tests".
#include "stages.h"

using namespace Halide;

namespace {

using namespace qh;

void conv2d_wrong(Conv2dStages &s, const ScheduleContext &ctx) {
    if (ctx.auto_schedule) return;
    s.acc.compute_at(s.output, s.y);
    s.acc.update().allow_race_conditions().vectorize(s.r.x);
}

void dense_wrong(DenseStages &s, const ScheduleContext &ctx) {
    if (ctx.auto_schedule) return;
    s.acc.compute_root();
    s.acc.update().allow_race_conditions().vectorize(s.r.x);
}

QH_REGISTER_SCHEDULE(Conv2dStages, "conv2d", "wrong_for_tests", conv2d_wrong, {});
QH_REGISTER_SCHEDULE(DenseStages, "dense", "wrong_for_tests", dense_wrong, {});

}  // namespace
