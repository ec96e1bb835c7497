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
    // Tasks of 1024 vectors: Halide's pool hands out one iteration at a time under a lock, so
    // small tasks serialize on it (64-vector tasks made the batch-16 input quantize 2 ms at 16
    // threads, 1 ms more than one thread).
    const int chunk = v * 1024;
    Var t_fused("t_fused");
    if (s.vars.size() == 1) {
        s.output.split(inner, io, ii, chunk, TailStrategy::GuardWithIf)
            .vectorize(ii, v, TailStrategy::GuardWithIf)
            .parallel(io);
        return;
    }
    if (s.vars.size() == 2) {  // (inner, outer), outer of any stride
        Var p = s.vars[1], po("po"), pi("pi");
        Expr inner_extent = s.output.output_buffer().dim(0).extent();
        // Long rows: chunks of a row are the tasks; short rows: 64 rows a task.
        s.output.specialize(inner_extent >= chunk)
            .split(inner, io, ii, chunk, TailStrategy::GuardWithIf)
            .vectorize(ii, v, TailStrategy::GuardWithIf)
            .fuse(io, p, t_fused)
            .parallel(t_fused);
        s.output.split(p, po, pi, 64, TailStrategy::GuardWithIf)
            .vectorize(inner, v, TailStrategy::GuardWithIf)
            .parallel(po);
        return;
    }
    // 3-D (inner, channel, outer). Channel-last per-axis views ({N, C} logits, NHWC with the
    // axis last) have inner extent 1: vectorize the channels there, else tasks of one element.
    Var c = s.vars[1], o = s.vars[2], f("f"), t("t");
    Expr inner_extent = s.output.output_buffer().dim(0).extent();
    s.output.specialize(inner_extent < v)
        .reorder(c, inner, o)
        .vectorize(c, v, TailStrategy::GuardWithIf)
        .parallel(o);
    // Otherwise chunks of the dense inner dimension, every chunk of every (channel, outer) one
    // task: per-tensor views ({numel, 1, 1}) still run on every core.
    s.output.split(inner, io, ii, chunk, TailStrategy::GuardWithIf)
        .vectorize(ii, v, TailStrategy::GuardWithIf)
        .fuse(io, c, f)
        .fuse(f, o, t)
        .parallel(t);
}

// Max and average pools (their windows are inline reductions).
void window_pool(PoolStages &s, const ScheduleContext &ctx) {
    if (ctx.auto_schedule) return;
    Var yn("yn"), yno("yno"), yni("yni");
    // Tasks of 4 output rows (one row of a 56x56x64 maxpool is ~2 us of work).
    s.output.vectorize(s.c, 16, TailStrategy::GuardWithIf)
        .fuse(s.y, s.n, yn)
        .split(yn, yno, yni, 4, TailStrategy::GuardWithIf)
        .parallel(yno);
}

void global_avgpool(PoolStages &s, const ScheduleContext &ctx) {
    if (ctx.auto_schedule) return;
    s.output.vectorize(s.c, 16, TailStrategy::GuardWithIf).parallel(s.n);
    s.sum.compute_at(s.output, s.c).vectorize(s.c);
    s.sum.update().reorder(s.c, s.r.x, s.r.y).vectorize(s.c);
}

// transpose, y(a, b, o) = x(b, a, o) (a model's NCHW edge). Short output rows (an image's NCHW
// -> NHWC: a = 3 channels) run b innermost and vectorized, so every input plane is read densely,
// in tasks of 4096 b of one o (the generic 3-D form would make one task per image); long rows
// (NHWC -> NCHW) are the generic chunks of the dense output dimension.
void transpose(EltwiseStages &s, const ScheduleContext &ctx) {
    if (ctx.auto_schedule) return;
    const int v = ctx.knobs.get(kEltwiseKnobs[0]);
    Var a = s.vars[0], b = s.vars[1], o = s.vars[2], bo("bo"), bi("bi"), io("io"), ii("ii"), f("f"), t("t");
    Expr a_extent = s.output.output_buffer().dim(0).extent();
    s.output.specialize(a_extent < v)
        .split(b, bo, bi, 4096, TailStrategy::GuardWithIf)
        .reorder(bi, a, bo, o)
        .vectorize(bi, v, TailStrategy::GuardWithIf)
        .fuse(bo, o, t)
        .parallel(t);
    s.output.split(a, io, ii, v * 1024, TailStrategy::GuardWithIf)
        .vectorize(ii, v, TailStrategy::GuardWithIf)
        .fuse(io, b, f)
        .fuse(f, o, t)
        .parallel(t);
}

QH_REGISTER_SCHEDULE(EltwiseStages, "quantize", "generic", eltwise, kEltwiseKnobs);
QH_REGISTER_SCHEDULE(EltwiseStages, "transpose", "generic", transpose, kEltwiseKnobs);
QH_REGISTER_SCHEDULE(EltwiseStages, "dequantize", "generic", eltwise, kEltwiseKnobs);
QH_REGISTER_SCHEDULE(EltwiseStages, "requantize", "generic", eltwise, kEltwiseKnobs);
QH_REGISTER_SCHEDULE(EltwiseStages, "int4_pack", "generic", eltwise, kEltwiseKnobs);
QH_REGISTER_SCHEDULE(EltwiseStages, "int4_unpack", "generic", eltwise, kEltwiseKnobs);
QH_REGISTER_SCHEDULE(EltwiseStages, "add", "generic", eltwise, kEltwiseKnobs);
QH_REGISTER_SCHEDULE(EltwiseStages, "lut", "generic", eltwise, kEltwiseKnobs);
QH_REGISTER_SCHEDULE(EltwiseStages, "mul", "generic", eltwise, kEltwiseKnobs);
QH_REGISTER_SCHEDULE(PoolStages, "maxpool", "generic", window_pool, {});
QH_REGISTER_SCHEDULE(PoolStages, "avgpool", "generic", window_pool, {});
QH_REGISTER_SCHEDULE(PoolStages, "global_avgpool", "generic", global_avgpool, {});

}  // namespace

