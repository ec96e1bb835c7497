// The model IR: what every importer (ONNX float / QDQ / QOperator, the built-in ResNet builders)
// produces and what prepare() (runtime/model.h) turns into an executable plan.
//
// Semantics. A Graph is a list of nodes in topological order over values. Every value has *real*
// (float) semantics; a value may carry quantization parameters (`quant`), which says "this value
// is represented as u8 (or s8, u4, s4) with real = scale * (q - zero_point)". Importers fold
// QuantizeLinear/DequantizeLinear pairs into the `quant` of the value they annotate (QDQ), and
// QLinear* ops into plain ops whose inputs/outputs carry quant (QOperator). A float model simply
// has no quant anywhere until calibrate() adds it. Only where a Q or DQ cannot be folded is it a
// node (OpKind::QuantizeLinear / DequantizeLinear: integers that cross the API, per-axis scales).
//
// Layout contract: activations are NHWC ({N, H, W, C}) or {N, K} after Flatten, whatever the
// source format; importers of NCHW formats transpose shapes, not data (weights stay OIHW).
// Only graph inputs need a shape (batch dimension is replaced by prepare's batch size);
// prepare() infers the rest.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "tensor.h"

namespace qh {

enum class OpKind {
    Conv,           // in: x {N,H,W,C}; weights O(I/group)HW; bias {OC}; attrs window (with dilation), group
    Dense,          // in: x {N,K}; weights {OC, K} (y = x W^T + b), i.e. ONNX Gemm transB=1
    BatchNorm,      // in: x; y = x * bn_scale[c] + bn_shift[c] (eps/mean/var already combined)
    Relu,           // in: x
    Add,            // in: a, b (same shape)
    MaxPool,        // in: x; attrs kernel/stride/pad
    GlobalAvgPool,  // in: x {N,H,W,C} -> {N,1,1,C}
    AvgPool,        // in: x; attrs window (ceil_mode), count_include_pad
    Sigmoid,        // in: x; y = 1 / (1 + exp(-x))
    HardSigmoid,    // in: x; y = max(0, min(1, alpha * x + beta))
    HardSwish,      // in: x; y = x * max(0, min(1, x / 6 + 1 / 2))
    Mul,            // in: a, b; b broadcast to a's shape (numpy rules; b {N,1,1,C}, {1,1,1,C}, a scalar, ...)
    Concat,         // in: x0, x1, ...; along `axis` of the IR layout (NHWC for rank 4)
    GlobalMaxPool,  // in: x {N,H,W,C} -> {N,1,1,C}
    Softmax,        // in: x; along `axis` of the IR layout (softmax_to_end: over axis..rank-1, opset < 13)
    Flatten,        // in: x {N,H,W,C} -> {N,C*H*W} in ONNX's NCHW element order; {N,K} as is
    Clip,           // in: x; y = min(max(x, clip_min), clip_max) (Relu6: 0, 6)
    // ONNX QuantizeLinear / DequantizeLinear where they cannot be folded into a value's quant
    // (a graph of just Q or DQ, per-axis scales, 4-bit or int8 integers crossing the API):
    // the integers are a tensor of type q_type, quantized with q_params (per tensor, or per
    // axis q_params.axis of the IR layout).
    Pad,            // in: x; pad_begin / pad_end per IR axis (negative: crop), pad_mode, pad_value
    QuantizeLinear,    // in: x (real); out: its integers, saturate(round_half_even(x / s) + z)
    DequantizeLinear,  // in: integers of type q_type; out: (q - z) * s in float32
};
const char *op_name(OpKind k);

// Kernel sizes, strides and pads are at most this (checked by importers and Graph::validate), so
// window arithmetic on them never overflows.
constexpr int kMaxWindowAttr = 65535;

// The one output-size rule of a sliding window (Conv, MaxPool, the kernels' shape checks, the
// fp32 im2col): `kernel` taps moved by `stride` over `in` elements padded with pad_begin before
// and pad_end after give floor((in + pad_begin + pad_end - kernel) / stride) + 1 outputs; 0
// when the window does not fit in the padded input (never a negative or truncated-up count).
// ceil_mode (pools): ceil instead of floor, except that the last window must start inside the
// input or its begin padding (ONNX, as PyTorch). `kernel` is the window's span: (k - 1) * d + 1
// for dilation d.
constexpr int64_t window_output_extent(int64_t in, int64_t kernel, int64_t stride, int64_t pad_begin,
                                       int64_t pad_end, bool ceil_mode = false) {
    const int64_t span = in + pad_begin + pad_end - kernel;
    if (span < 0) return 0;
    if (!ceil_mode) return span / stride + 1;
    int64_t out = (span + stride - 1) / stride + 1;
    if ((out - 1) * stride >= in + pad_begin) out--;
    return out;
}

// ONNX auto_pad SAME_UPPER / SAME_LOWER: output extent ceil(in / stride), the total padding
// max((out - 1) * stride + kernel - in, 0) split evenly, the odd pixel at the end (UPPER) or the
// beginning (LOWER). infer_shapes turns it into explicit pads once the input extent is known.
enum class AutoPad { none, same_upper, same_lower };

struct WindowAttrs {  // Conv, MaxPool, AveragePool (stride >= 1)
    int kernel_h = 1, kernel_w = 1, stride_h = 1, stride_w = 1;
    int pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
    AutoPad auto_pad = AutoPad::none;  // not none: the pads are set by resolve_auto_pad
    int dilation_h = 1, dilation_w = 1;  // Conv: taps `dilation` apart
    bool ceil_mode = false;              // pools: window_output_extent's ceil rule
    // The window's extent in input pixels.
    int span_h() const { return (kernel_h - 1) * dilation_h + 1; }
    int span_w() const { return (kernel_w - 1) * dilation_w + 1; }
    void resolve_auto_pad(int64_t in_h, int64_t in_w) {
        auto split = [this](int64_t in, int k, int s, int &begin, int &end) {
            const int64_t out = (in + s - 1) / s, total = std::max<int64_t>((out - 1) * s + k - in, 0);
            const int64_t small = total / 2, big = total - small;
            begin = int(auto_pad == AutoPad::same_upper ? small : big);
            end = int(auto_pad == AutoPad::same_upper ? big : small);
        };
        if (auto_pad == AutoPad::none) return;
        split(in_h, span_h(), stride_h, pad_top, pad_bottom);
        split(in_w, span_w(), stride_w, pad_left, pad_right);
        auto_pad = AutoPad::none;
    }
    int64_t out_h(int64_t in_h) const {
        return window_output_extent(in_h, span_h(), stride_h, pad_top, pad_bottom, ceil_mode);
    }
    int64_t out_w(int64_t in_w) const {
        return window_output_extent(in_w, span_w(), stride_w, pad_left, pad_right, ceil_mode);
    }
};

// Precision of one Conv or Dense layer (HAWQ-V3's per-layer bit configuration): its weights and
// the activation it reads. `automatic`: what the model itself says (int8 for float/int8 weights,
// 4-bit weights for INT4/UINT4 ONNX weights); w4a8: s4 weights, u8 input; w4a4: s4 weights and a
// 4-bit input activation. The input's bits are the value's (GraphValue::qtype): calibrate()
// makes a value 4-bit when every Conv/Dense that reads it asks for w4a4 (assign_bits).
// fp32 (any op): a float island in a quantized model, run on the fp32 path with
// DequantizeLinear of its quantized inputs and QuantizeLinear of its output where quantized
// layers read it (named steps in the profile), as ONNX Runtime's nodes_to_exclude.
enum class LayerPrecision { automatic, int8, w4a8, w4a4, fp32 };
const char *precision_name(LayerPrecision p);

struct GraphValue {
    std::string name;
    std::vector<int64_t> shape;  // graph inputs only: NHWC or {N,K} (IR layout); others are inferred
    DType dtype = DType::f32;    // graph inputs/outputs: the type the caller passes/receives
                                 // (f32, or u8 for a model that takes quantized input; s8/u4/s4
                                 // for inputs of DequantizeLinear and outputs of QuantizeLinear)
    QuantParams quant;           // per tensor; empty = float (no quantization known here)
    DType qtype = DType::u8;     // integer type `quant` refers to (u8, s8, or 4-bit u4 / s4)
};

struct GraphNode {
    OpKind op = OpKind::Relu;
    std::string name;
    std::vector<int> inputs;  // value ids
    int output = -1;          // value id
    WindowAttrs window;       // Conv, MaxPool, AvgPool
    int group = 1;            // Conv: input and output channels split in `group` groups
    bool count_include_pad = false;  // AvgPool: pad positions count in the divisor
    float alpha = 0.2f, beta = 0.5f;  // HardSigmoid
    int axis = -1;                    // Concat, Softmax: the IR axis (ONNX NCHW axis 1 is NHWC's 3)
    bool softmax_to_end = false;      // Softmax (opset < 13): normalize over axes axis..rank-1 together
    // Pad: elements added before / after each IR axis (negative: removed); constant (pad_value,
    // a real value), reflect (mirror without the edge), edge (repeat the edge), wrap (cyclic).
    std::vector<int64_t> pad_begin, pad_end;
    enum class PadMode : uint8_t { constant, reflect, edge, wrap } pad_mode = PadMode::constant;
    float pad_value = 0.f;
    // Conv / Dense constants.
    //  weights: f32, or u8/s8 with quant (per tensor, or per output channel: axis 0, OC values).
    //  bias: empty, f32 {OC}, or s32 {OC} in units of x_scale * w_scale[oc] (ONNX QLinearConv /
    //  QDQ convention; zero point 0).
    Tensor weights, bias;
    std::vector<float> bn_scale, bn_shift;  // BatchNorm, one per channel
    float clip_min = -INFINITY, clip_max = INFINITY;  // Clip (an infinite bound: no bound)
    LayerPrecision precision = LayerPrecision::automatic;  // Conv, Dense
    // Conv / Dense under dynamic quantization (ONNX Runtime's quantize_dynamic: DynamicQuantizeLinear
    // -> ConvInteger / MatMulInteger -> Cast -> Mul -> Add, imported as one node). The float input
    // is quantized per run to u8 from its own range as DynamicQuantizeLinear does (x_scale =
    // (max(x,0) - min(x,0)) / 255, or 1 for an all-zero x; z_x = round_half_even(-min / x_scale));
    // the integer weights (weights.quant: zero points, one or per output channel) accumulate
    // exactly in int32: acc = sum (x_q - z_x)(w - z_w). The float output is
    //   acc_f32: float(acc)                                  (ConvInteger -> Cast)
    //   scaled:  float(acc) * (x_scale * weights.quant.scale[oc]) [+ bias[oc]]  (-> Mul [-> Add])
    // in float32 in that order, as ONNX Runtime computes the chain. Runs on the fp32 path (a float
    // island in an int8 model): the u8 input, the int8 kernel's s32 accumulators, then the float
    // epilogue. Plain convs: none.
    enum class Dynamic : uint8_t { none, acc_f32, scaled } dynamic = Dynamic::none;
    // Conv / Dense from ConvInteger / MatMulInteger on integers with a constant zero point (the
    // input value's quant: scale 1, that zero point): the output is the exact int32 accumulator
    // sum (x - z_x)(w - z_w), an s32 value (int8 path: the conv2d / dense kernels to s32).
    bool int32_output = false;
    // QuantizeLinear / DequantizeLinear: the integer type (u8, s8, u4, s4) and its scale / zero
    // point, one value or one per index of axis q_params.axis (NHWC / {N,K} / rank-1 layout).
    DType q_type = DType::u8;
    QuantParams q_params;
};

struct Graph {
    std::string name = "model";
    // The layout callers use for rank-4 graph inputs and outputs (Model::input / output, and
    // calibration samples). The IR is NHWC whatever this says: an importer that declares NCHW
    // (ONNX) stores rank-4 shapes as NHWC and the Model converts at its edge. Built-in models
    // (models/resnet.h) are NHWC.
    Layout io_layout = Layout::nhwc;
    std::vector<GraphValue> values;
    std::vector<GraphNode> nodes;  // topological order
    std::vector<int> inputs, outputs;

    // Throws if a value added by add_value already has this name (a hash lookup: importers add
    // values one by one, and a linear search would make import quadratic). validate() checks
    // that names are unique whatever way the values were added or renamed.
    int add_value(std::string name, std::vector<int64_t> shape = {}, DType dtype = DType::f32);
    // Adds a node producing a new value named `out_name` (default: the node name); returns it.
    int add_node(GraphNode node, const std::string &out_name = "");
    int find_value(const std::string &name) const;  // -1 if absent
    // A graph input's declared shape in the caller's layout (io_layout): {N,C,H,W} for a rank-4
    // input of an NCHW graph, else its IR shape.
    std::vector<int64_t> io_shape(int value) const;
    // Consumers of each value (node indices), in order.
    std::vector<std::vector<int>> consumers() const;
    // Structural checks (ids in range, topological order, arity, constants present and
    // consistent); throws naming the node and what is wrong.
    void validate() const;

private:
    std::unordered_map<std::string, int> added_;  // names given to add_value
};

}  // namespace qh
