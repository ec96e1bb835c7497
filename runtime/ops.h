// Quantized operators over qh::Tensor. Each op comes in two forms:
//  - bind_<op>(tensors...) validates shapes, dtypes and quantization parameters (errors name
//    the op, the tensor and what was expected), builds the kernel's buffers over the tensors'
//    storage, picks a kernel variant (runtime/kernels.h) and returns a BoundOp whose run() only
//    calls the kernel: no checks, no allocation. Model::prepare binds every step once.
//  - <op>(tensors...) = bind_<op>(...).run(), for one-off calls.
// Activations are NHWC; see runtime/tensor.h.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include "graph.h"
#include "pack.h"
#include "tensor.h"

namespace qh {

// An op bound to its tensors. Which implementation binds a call is decided by the registry
// (runtime/registry.h) and the kernel list under kernel_options() (runtime/options.h). The tensors' storage must stay where it is, with the same shapes,
// for as long as the BoundOp runs (parameters and packed weights are referenced, not copied).
class BoundOp {
public:
    BoundOp() = default;
    // `call` returns a Halide error code (0 = success).
    BoundOp(std::string op, std::string kernel, std::function<int()> call)
        : op_(std::move(op)), kernel_(std::move(kernel)), call_(std::move(call)) {}
    // Runs the kernel; a kernel error throws std::runtime_error naming the op and the kernel.
    void run() const {
        if (int rc = call_()) fail(rc);
    }
    const std::string &op() const { return op_; }
    const std::string &kernel() const { return kernel_; }  // e.g. "conv2d_u8s8u8__x86_avx512vnni"
    explicit operator bool() const { return bool(call_); }
    // Device ops: whether a recording of run() (a CUDA graph, Model's device_graph) replays it
    // correctly. Not when run() takes device memory per call (Halide-managed scratch): a replay
    // would reuse addresses that may belong to someone else by then. Empty: replayable.
    const std::string &not_replayable() const { return not_replayable_; }
    BoundOp &set_not_replayable(std::string why) {
        not_replayable_ = std::move(why);
        return *this;
    }

private:
    [[noreturn]] void fail(int rc) const;
    std::string op_, kernel_;
    std::function<int()> call_;
    std::string not_replayable_;
};

// Clamp of the quantized output, in output integer units (ReLU: min = output zero point).
struct Activation {
    int32_t min = INT32_MIN, max = INT32_MAX;
    static Activation relu(int32_t zero_point) { return {zero_point, INT32_MAX}; }
};

// The window is the IR's WindowAttrs (graph.h: one window type, one output-size rule). kernel_h /
// kernel_w: 0 (the default here) means "the weights' kernel"; otherwise they must equal it.
struct Conv2dParams : WindowAttrs {
    Conv2dParams() { kernel_h = kernel_w = 0; }
    explicit Conv2dParams(const WindowAttrs &w) : WindowAttrs(w) {}
    int group = 1;  // > 1 (or a dilation): bind_conv2d_grouped
    Activation act;
    std::string name = "conv2d";  // layer name for messages
};

// Fused residual add: the conv result is first quantized to u8 with (conv_scale, conv_zp),
// then added to `residual` (its own quant params) into y's quant params (QLinearAdd semantics).
struct ResidualParams {
    float conv_scale = 1.f;
    int32_t conv_zp = 0;
};

// Output shape {N, OH, OW, OC} of conv2d for input shape {N, H, W, C}.
std::vector<int64_t> conv2d_output_shape(const Tensor &x, const PackedWeights &w,
                                         const Conv2dParams &p);

// y: u8/s8 (y.quant per tensor, weights packed with y's scale) or s32 (packed with scale 0).
// x.quant zero point must equal the one the weights were packed with.
BoundOp bind_conv2d(const Tensor &x, const PackedWeights &w, const Conv2dParams &p, Tensor &y);
void conv2d(const Tensor &x, const PackedWeights &w, const Conv2dParams &p, Tensor &y);
// Grouped, depthwise or dilated conv (conv2d_grouped): weights packed with `grouped` (ic = input
// channels per group, x has ic * p.group), y u8 per tensor or s32 (the raw accumulators).
BoundOp bind_conv2d_grouped(const Tensor &x, const PackedWeights &w, const Conv2dParams &p, Tensor &y);
// y, residual: u8 with per-tensor quant; weights packed with rp.conv_scale as output scale.
BoundOp bind_conv2d_add(const Tensor &x, const PackedWeights &w, const Conv2dParams &p,
                        const ResidualParams &rp, const Tensor &residual, Tensor &y);
void conv2d_add(const Tensor &x, const PackedWeights &w, const Conv2dParams &p,
                const ResidualParams &rp, const Tensor &residual, Tensor &y);
// x {N, K} u8 -> y {N, OC} u8/s8/s32.
BoundOp bind_dense(const Tensor &x, const PackedWeights &w, const Activation &act, Tensor &y,
                   const std::string &name = "dense");
void dense(const Tensor &x, const PackedWeights &w, const Activation &act, Tensor &y,
           const std::string &name = "dense");

struct PoolParams : WindowAttrs {  // the IR's window (graph.h)
    PoolParams() = default;
    explicit PoolParams(const WindowAttrs &w) : WindowAttrs(w) {}
    std::string name = "maxpool";
};
std::vector<int64_t> pool_output_shape(const Tensor &x, const PoolParams &p);
BoundOp bind_maxpool(const Tensor &x, const PoolParams &p, Tensor &y);  // u8 or s8
void maxpool(const Tensor &x, const PoolParams &p, Tensor &y);
// ONNX AveragePool on u8 (DequantizeLinear -> AveragePool -> QuantizeLinear; x and y per
// tensor): the mean of (x - z_x) over the counted window positions (count_include_pad: pads
// count), requantized to y, saturated to [0, qmax].
BoundOp bind_avgpool(const Tensor &x, const PoolParams &p, bool count_include_pad, Tensor &y, int qmax = 255);
// y = table[x] over u8 tensors of equal element counts (256 entries).
BoundOp bind_lut(const Tensor &x, const uint8_t *table, Tensor &y, const std::string &name = "lut");
// One input of a concatenation along `axis`: y[..., offset : offset + x.dim(axis), ...] = table[x]
// (table: x's quantization to y's; the identity when they agree). x and y of one rank, equal but
// along `axis`. A 2-D copy: rows of x.dim(axis) * (the dims after axis) elements, y's row stride
// y.dim(axis) * (the same).
BoundOp bind_concat_slice(const Tensor &x, const uint8_t *table, Tensor &y, int axis, int64_t offset,
                          const std::string &name = "concat");
// {N,H,W,C} u8 -> {N,C} u8, saturated to [0, qmax] (15: a 4-bit value stored as u8)
BoundOp bind_global_avgpool(const Tensor &x, Tensor &y, int qmax = 255);
void global_avgpool(const Tensor &x, Tensor &y);
// u8, same shape (no broadcasting).
BoundOp bind_add(const Tensor &a, const Tensor &b, const Activation &act, Tensor &y);
void add(const Tensor &a, const Tensor &b, const Activation &act, Tensor &y);

// ONNX QLinearMul on u8, per tensor: y = clamp(round(float((a - za)(b - zb)) * (sa*sb/sy) + zy), act),
// b broadcast to a's shape (rank 4 NHWC or equal ranks; each of b's dims equal or 1; H and W
// broadcast together).
BoundOp bind_mul(const Tensor &a, const Tensor &b, const Activation &act, Tensor &y, const std::string &name = "mul");

// ONNX QuantizeLinear / DequantizeLinear; per-axis when quant.axis >= 0 (axis of the tensor's
// own shape, e.g. 1 for NCHW channels).
// f32 -> u8/s8 with y.quant, saturated to [type min, qmax] (qmax < 0: the type's maximum; 15: a
// 4-bit value stored as u8, exactly QuantizeLinear to UINT4).
BoundOp bind_quantize(const Tensor &x, Tensor &y, int qmax = -1);
void quantize(const Tensor &x, Tensor &y);
BoundOp bind_dequantize(const Tensor &x, Tensor &y);  // u8/s8/s32 with x.quant -> f32
// A model's edge layout change (Graph::io_layout): x {N,C,H,W} -> y {N,H,W,C} (to_nhwc), or y
// {N,C,H,W} from x {N,H,W,C}; f32 or 8-bit (u8 / s8, moved as bytes). The transpose kernels.
BoundOp bind_change_layout(const Tensor &x, Tensor &y, bool to_nhwc);
void dequantize(const Tensor &x, Tensor &y);
// s32 with x.quant (scales of the accumulator, zero points 0) -> u8/s8/u4/s4 with y.quant:
// y = clamp(round(x * sx/sy) + zy, act).
BoundOp bind_requantize(const Tensor &x, Tensor &y, const Activation &act = {});
void requantize(const Tensor &x, Tensor &y, const Activation &act = {});
BoundOp bind_int4_pack(const Tensor &x, Tensor &y);  // s8 -> s4 or u8 -> u4 (saturating)
void int4_pack(const Tensor &x, Tensor &y);
BoundOp bind_int4_unpack(const Tensor &x, Tensor &y);  // s4 -> s8 or u4 -> u8
void int4_unpack(const Tensor &x, Tensor &y);

// The kernel (family__tag) each op family was last bound to, for logs and reports.
std::string last_kernel(const std::string &family);

}  // namespace qh
