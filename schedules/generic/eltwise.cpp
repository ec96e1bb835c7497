// Elementwise ops and pooling, generic schedule (also used by every target that has no file
// of its own for these ops): vectorize the dense innermost dimension, parallelize outer ones.
#include "stages.h"

using namespace Halide;

namespace {

using namespace qh;

const std::vector<KnobSpec> kEltwiseKnobs = {
    {"vector", 16, 1, 64, "lanes of the innermost vectorized loop"},
};

void eltwise(EltwiseStages &s, const ScheduleContext &ctx) {
    if (ctx.auto_schedule) return;
    const int v = ctx.knobs.get(kEltwiseKnobs[0]);
    Var inner = s.vars[0];
    Var io("io"), ii("ii");
    s.output.split(inner, io, ii, v * 64, TailStrategy::GuardWithIf)
        .vectorize(ii, v, TailStrategy::GuardWithIf);
    if (s.vars.size() == 3) {
        Var f("f");
        s.output.fuse(s.vars[1], s.vars[2], f).parallel(f);
    } else {
        s.output.parallel(io);
    }
}

void maxpool(PoolStages &s, const ScheduleContext &ctx) {
    if (ctx.auto_schedule) return;
    Var yn("yn");
    s.output.vectorize(s.c, 16, TailStrategy::GuardWithIf).fuse(s.y, s.n, yn).parallel(yn);
}

void global_avgpool(PoolStages &s, const ScheduleContext &ctx) {
    if (ctx.auto_schedule) return;
    s.output.vectorize(s.c, 16, TailStrategy::GuardWithIf).parallel(s.n);
    s.sum.compute_at(s.output, s.c).vectorize(s.c);
    s.sum.update().reorder(s.c, s.r.x, s.r.y).vectorize(s.c);
}

QH_REGISTER_SCHEDULE(EltwiseStages, "quantize", "generic", eltwise, kEltwiseKnobs);
QH_REGISTER_SCHEDULE(EltwiseStages, "dequantize", "generic", eltwise, kEltwiseKnobs);
QH_REGISTER_SCHEDULE(EltwiseStages, "requantize", "generic", eltwise, kEltwiseKnobs);
QH_REGISTER_SCHEDULE(EltwiseStages, "int4_pack", "generic", eltwise, kEltwiseKnobs);
QH_REGISTER_SCHEDULE(EltwiseStages, "int4_unpack", "generic", eltwise, kEltwiseKnobs);
QH_REGISTER_SCHEDULE(EltwiseStages, "add", "generic", eltwise, kEltwiseKnobs);
QH_REGISTER_SCHEDULE(PoolStages, "maxpool", "generic", maxpool, {});
QH_REGISTER_SCHEDULE(PoolStages, "global_avgpool", "generic", global_avgpool, {});

}  // namespace
