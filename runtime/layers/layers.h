// Internal to the op definitions (runtime/layers/*.cpp): the definitions the registry lists and
// the pieces several of them share.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "op_def.h"
#include "program.h"

namespace qh::layers {

extern const OpDef conv, dense, batchnorm, relu, add, maxpool, avgpool, global_avgpool, flatten, clip,
    quantize_linear, dequantize_linear, sigmoid, hard_sigmoid, hard_swish, mul, concat, global_maxpool, softmax, pad;

// Conv and MaxPool attributes: kernel and stride >= 1, pads >= 0, each at most kMaxWindowAttr.
std::string check_window(const WindowAttrs &a);
// Conv (rank 4) and Dense (rank 2) constants: weights f32, or u8/s8 with quant, no empty
// dimension; bias empty, or one f32/s32 per output channel (s32 only with integer weights).
std::string check_weights(const GraphNode &n, int rank);
// {N, OH, OW, channels} of n.window over the rank-4 input 0; ShapeError if it does not fit.
std::vector<int64_t> window_shape(const GraphNode &n, const ShapeInputs &in, int64_t channels);
// Binary elementwise ops (Mul, Add): the shape one input broadcasts to (numpy rules, ranks
// right-aligned; either operand may be the broadcast one); ShapeError otherwise.
std::vector<int64_t> broadcast_shape(const ShapeInputs &in);
// (full operand, broadcast operand) of such a node n.
std::pair<int, int> broadcast_operands(const Program &p, const GraphNode &n);
// GlobalAveragePool / GlobalMaxPool: {N,H,W,C} -> {N,1,1,C}.
std::vector<int64_t> global_pool_shape(const GraphNode &n, const ShapeInputs &in);
// The shape of input 0, for ops that keep it.
std::vector<int64_t> same_shape(const GraphNode &n, const ShapeInputs &in);

// A step for node n (name, reads = inputs, writes = output) with an op label.
Step node_step(const GraphNode &n, const char *op, const char *kernel = "");
// The fp32 path's step for n: kernel "fp32 reference", run = `run`.
void add_fp32_step(Program &p, const GraphNode &n, const char *op, std::function<void(Exec &)> run);

// Weight scales as the packer uses them: float weights quantized symmetric per output channel
// (s[o] = max|w[o]| / 127, 1 for an all-zero channel); integer weights: their scale(s), one or
// one per output channel.
// Per-output-channel scales of float weights (max |w| / qmax, symmetric), or the quant's scales.
std::vector<float> weight_scales(const Tensor &w, int qmax = 127);
// The symmetric range float weights of node n are quantized to: 7 for w4a8 / w4a4 layers, else 127.
inline int weight_qmax(const GraphNode &n) {
    return n.precision == LayerPrecision::w4a8 || n.precision == LayerPrecision::w4a4 ? 7 : 127;
}
inline float weight_scale(const std::vector<float> &s, int64_t o) { return s.size() == 1 ? s[0] : s[o]; }
// Conv/Dense weights packed for the kernels (pack.h): integer weights as given, float weights
// quantized with weight_scales (4-bit, [-7, 7], for w4a8 / w4a4 layers); float bias quantized to int32 in units of x_scale * w_scale[oc]
// (round half even, saturated). out_scale 0: s32 output. grouped: conv2d_grouped's layout.
const PackedWeights &pack_node(Program &p, const GraphNode &n, const QuantParams &xq, float out_scale,
                               bool grouped = false);

// The clamp, in output integer units, of the Relu or Clip fused at the end of an int8 group
// (gr.act), for output quantization yq; no clamp without one. Exact because y's quantization is
// the activation's (fuse() checks): clamp(q, Q(lo), Q(hi)) with Q = QuantizeLinear to u8.
Activation fused_activation(const Program &p, const FusedGroup &gr, const QuantParams &yq);
// "+relu", "+clip" or "" for the step's op label.
std::string activation_suffix(const Program &p, const FusedGroup &gr);
// QuantizeLinear of a real value to [0, qmax] with q's (per-tensor) scale and zero point, in
// float32 (round half to even, saturate; infinities saturate).
int32_t quantize_u8(float v, const QuantParams &q, int qmax = 255);
// 256-entry table of a u8 -> u8 elementwise op on a quantized tensor: lut[q] =
// QuantizeLinear(f(DequantizeLinear(q, xq)), yq), in float32 as ONNX computes it; exact for any f.
std::array<uint8_t, 256> u8_table(const QuantParams &xq, const QuantParams &yq, float (*f)(float, const GraphNode &),
                                  const GraphNode &n, int qmax = 255);
// Quantization assignment of a u8 elementwise op (Relu, Clip): the output keeps the input's
// quantization unless it has its own.
void keep_input_quant(Program &p, FusedGroup &gr);
// Quantization assignment of an op whose int8 form reads every input quantized and writes its
// group's output as u8 with the output's own quantization (Add, Mul, Concat, AveragePool, the
// table ops, BatchNorm): each must have quantization parameters.
void quantized_inputs_and_output(Program &p, FusedGroup &gr);
// A step applying such a table (the lut kernel, on the CPU or the GPU).
void add_table_step(Program &p, const GraphNode &n, const char *op, const std::array<uint8_t, 256> &lut);

// A Conv / Dense with GraphNode::dynamic (layers/dynamic.cpp): dynamic quantization of the input,
// the int8 kernel to s32, the exact accumulator's float epilogue. Either path (a float island).
void lower_dynamic(Program &p, const GraphNode &n);

// Flatten, and the int8/fp32 copy of any view that must be materialized: y aliases x unless y is
// external or every value keeps its memory; then a host copy step.
void lower_view(Program &p, const GraphNode &n, const char *kernel);

}  // namespace qh::layers
