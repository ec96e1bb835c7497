// conv2d on x86_avx512vnni: register-tiled dot products (schedules/common/dot_tiles.h).
#include "common/dot_tiles.h"

namespace {

using namespace qh;
// Defaults: {tile_x, tile_y, tile_oc, vector lanes, parallel}.
const sched::DotTile kDefaults = {7, 2, 2, 16, true};

void conv2d(Conv2dStages &s, const ScheduleContext &ctx) {
    sched::conv2d_dot_tiles(s, ctx, sched::dot_tile_from_knobs(ctx, kDefaults));
}

QH_REGISTER_SCHEDULE(Conv2dStages, "conv2d", "x86_avx512vnni", conv2d, sched::dot_tile_knobs(kDefaults));

}  // namespace
