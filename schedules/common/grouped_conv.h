// CPU schedule of conv2d_grouped (generators/conv2d_generator.cpp), shared by every CPU target.
//
// Tasks are `tiles_per_task` channel tiles x `rows` output rows of one image. Per task the
// zero-point-padded input rows they need are copied once (the task's channels: for a 3x3 stride-1
// conv, rows + 2 input rows per `rows` output rows); then for each tile of `tile_c` channels x `tile_x` output pixels the
// accumulators stay in registers while the window loops run: per tap, tile_c / vector weight
// vectors and tile_x * tile_c / vector input vectors (u8 x s8 -> int16 products, widened into
// int32 accumulators). Depthwise convs (one input channel per group) are a specialization in
// which the input channel is the output channel, so every load is a dense vector.
#pragma once
#include "stages.h"

namespace qh::sched {

struct GroupedTile {
    int vector;  // int32 lanes per vector
    int tile_c;  // channels per register tile (a multiple of vector, dividing 64)
    int tile_x;  // output pixels per register tile
    int rows;    // output rows per parallel task
    int tiles_per_task;  // channel tiles per parallel task
};
std::vector<KnobSpec> grouped_conv_knobs(const GroupedTile &defaults);
void grouped_conv_cpu(GroupedConvStages &s, const ScheduleContext &ctx, const GroupedTile &defaults);

}  // namespace qh::sched
