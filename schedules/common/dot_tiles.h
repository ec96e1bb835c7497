// Register-tiled dot-product schedules shared by every CPU target.
//
// The accumulator tile is (16 * tile_oc output channels) x (tile_x output pixels): for each
// group of 4 input channels, tile_oc weight vectors are loaded once and tile_x 4-byte input
// groups are broadcast, then tile_oc * tile_x dot-product instructions update the tile. The
// 4-wide reduction is an atomic vectorized RVar, which Halide lowers to VectorReduce(Add, 4)
// and the x86 backend to vpdpbusd (AVX-512 VNNI) or vpmaddwd (AVX2/SSE2).
#pragma once
#include "stages.h"

namespace qh::sched {

struct DotTile {
    int tile_x;    // output pixels along x per register tile (unrolled)
    int tile_y;    // output rows per register tile (unrolled; conv2d only)
    int tile_oc;   // 16-channel blocks per register tile (unrolled)
    int vector;    // int32 lanes per vector op for the epilogue / copies
    bool parallel; // parallelize over output rows x batch (x output-channel groups)
    // conv2d: register tiles of output channels per parallel task. Tasks are (output-channel
    // group, output-row tile, image): without the channel groups a batch-1 7x7 layer has only
    // 4 tasks for 16 cores, and each task streams all of the layer's weights.
    int oc_tiles_per_task = 4;
};

void conv2d_dot_tiles(Conv2dStages &s, const ScheduleContext &ctx, const DotTile &t);
void dense_dot_tiles(DenseStages &s, const ScheduleContext &ctx, const DotTile &t);

// Knob specs common to the dot-tile schedules, with per-target defaults.
std::vector<KnobSpec> dot_tile_knobs(const DotTile &defaults);
DotTile dot_tile_from_knobs(const ScheduleContext &ctx, const DotTile &defaults);

}  // namespace qh::sched
