// conv2d_grouped on x86_avx512vnni (schedules/common/grouped_conv.h).
#include "common/grouped_conv.h"

namespace {

using namespace qh;
const sched::GroupedTile kDefaults = {16, 64, 4, 4, 4};  // {int32 lanes, tile_c, tile_x, rows, tiles_per_task}

void conv2d_grouped(GroupedConvStages &s, const ScheduleContext &ctx) { sched::grouped_conv_cpu(s, ctx, kDefaults); }

QH_REGISTER_SCHEDULE(GroupedConvStages, "conv2d_grouped", "x86_avx512vnni", conv2d_grouped, sched::grouped_conv_knobs(kDefaults));

}  // namespace
