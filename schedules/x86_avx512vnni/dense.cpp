// dense on x86_avx512vnni: register-tiled dot products (schedules/common/dot_tiles.h).
#include "common/dot_tiles.h"

namespace {

using namespace qh;
// Defaults: {tile_x (batch rows), tile_y (unused), tile_oc, vector lanes, parallel}.
const sched::DotTile kDefaults = {1, 1, 4, 16, true};

void dense(DenseStages &s, const ScheduleContext &ctx) {
    sched::dense_dot_tiles(s, ctx, sched::dot_tile_from_knobs(ctx, kDefaults));
}

QH_REGISTER_SCHEDULE(DenseStages, "dense", "x86_avx512vnni", dense, sched::dot_tile_knobs(kDefaults));

}  // namespace
