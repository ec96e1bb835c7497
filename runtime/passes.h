// prepare()'s graph passes, each a function of its own (tests/test_passes.cpp runs them one by
// one). Model::prepare is, in order:
//
//   Graph g = fold_pad(fold_batchnorm(src));         // model.h: Conv -> BatchNorm = one Conv;
//                                                    // constant zero Pad -> Conv = the Conv's pads
//   auto shapes = infer_shapes(g, batch);            // model.h: every value's shape, checked
//   Program p = make_program(g, shapes, opt);        // values as the plan sees them
//   int8: p.groups = fuse(p.g);                      // which nodes become one step
//         assign_quantization(p);                    // u8 everywhere, input/output (de)quantize
//   lower(p);                                        // steps, per op definition (op_def.h)
//   add_layout_steps(p);                             // NCHW inputs / outputs: transpose steps
//   plan_memory(p);                                  // arena offsets
//
// then the contexts are allocated and bound (model.cpp).
#pragma once
#include <vector>

#include "program.h"

namespace qh {

// A Pad with constant 0 on H and W only (not a graph output, quantized as its input) whose one
// reader is a Conv becomes that Conv's padding (the conv pads with the same zero: 0.0, or the
// zero point of the shared quantization).
Graph fold_pad(const Graph &g);

// The Program's values for the folded graph `g` with its inferred shapes: one per graph value
// (f32, quant kept for int8 and dropped for fp32), graph inputs and outputs external.
Program make_program(const Graph &g, const std::vector<std::vector<int64_t>> &shapes, const PrepareOptions &opt);

// int8 fusion plan, one group per step in node order:
//   Conv [-> Add(x, v) with v computed before the Conv] [-> Relu|Clip]  -> conv2d(_add)(+relu|+clip)
//   Dense [-> Relu|Clip], Add [-> Relu|Clip]                           -> dense(+...), add(+...)
// An intermediate is fused away only if the Conv/Add alone reads it and it is no graph output.
// A Relu or Clip is fused only when that is exact: its input has no quantization of its own or the
// same (as u8) as its output; otherwise it stays a group of its own (the lookup-table Relu,
// which rounds and saturates at the intermediate as the QDQ graph says).
std::vector<FusedGroup> fuse(const Graph &g);

// int8: s8 values become u8 (u8_quant; per tensor, intermediates only); graph inputs given as
// f32 get a quantize from an f32 external tensor, quantized graph outputs the caller wants as
// f32 a dequantize into one; every group's output gets its dtype and quant (op_def quantize).
// Errors name the node whose input or output has no quantization.
// 4-bit values (qtype u4/s4: the range [0, 15] after the s4 shift) are then stored packed (u4)
// where every kernel touching them has a u4 family, else as u8 (choose_u4_storage).
void assign_quantization(Program &p);
void choose_u4_storage(Program &p);
// Whether a Conv/Dense node's weights pack as s4 (pack.h): float weights of a w4a8/w4a4 layer,
// or integer weights asked to be 4-bit whose w - z_w all fit in [-8, 7].
bool packs_4bit(const GraphNode &n);

// Steps: fp32: op_def(n.op).lower_fp32 per node; int8: the input quantize steps, lower_int8 per
// group, the output dequantize steps.
void lower(Program &p);

// A graph that declares NCHW (Graph::io_layout): each rank-4 f32 / 8-bit input becomes an external
// NCHW tensor and a first step (the transpose kernel) writes the NHWC value from it; each such
// output an external NCHW tensor written by a last step. What the kernels do not cover (4-bit)
// stays NHWC here and is converted by the context on the host (Program::in_nchw / out_nchw).
void add_layout_steps(Program &p);

// Every non-external root value gets an arena slot alive from the step that first writes it to
// the step that last reads it; sets offsets and arena_size (see the definition).
void plan_memory(Program &p);

}  // namespace qh
