// conv2d_extern, generic: the extern stage (a CUDA one, so the target still needs CUDA) and the
// im2col stage computed whole, the epilogue on the host (Halide copies acc back). A fallback for
// targets without a schedule of their own; the library builds conv2d_extern for cuda_mma only.
#include "stages.h"

namespace {

using namespace qh;

void conv2d_extern(Conv2dExternStages &s, const ScheduleContext &ctx) {
    if (ctx.auto_schedule) return;
    s.acc.compute_root();
    if (s.has_col) {
        s.col.compute_root();
        s.ktab.compute_root();
    }
}

QH_REGISTER_SCHEDULE(Conv2dExternStages, "conv2d_extern", "generic", conv2d_extern, {});

}  // namespace
