// Quantized operators over qh::Tensor. Each call validates shapes, dtypes and quantization
// parameters (errors name the op, the tensor and what was expected), picks a kernel variant
// (runtime/kernels.h) and runs it. Activations are NHWC; see runtime/tensor.h.
#pragma once
#include <cstdint>
#include <string>

#include "pack.h"
#include "tensor.h"

namespace qh {

// Clamp of the quantized output, in output integer units (ReLU: min = output zero point).
struct Activation {
    int32_t min = INT32_MIN, max = INT32_MAX;
    static Activation relu(int32_t zero_point) { return {zero_point, INT32_MAX}; }
};

struct Conv2dParams {
    int stride_h = 1, stride_w = 1;
    int pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
    int dilation_h = 1, dilation_w = 1, group = 1;  // only 1 is supported
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
void conv2d(const Tensor &x, const PackedWeights &w, const Conv2dParams &p, Tensor &y);
// y, residual: u8 with per-tensor quant; weights packed with rp.conv_scale as output scale.
void conv2d_add(const Tensor &x, const PackedWeights &w, const Conv2dParams &p,
                const ResidualParams &rp, const Tensor &residual, Tensor &y);
// x {N, K} u8 -> y {N, OC} u8/s8/s32.
void dense(const Tensor &x, const PackedWeights &w, const Activation &act, Tensor &y,
           const std::string &name = "dense");

struct PoolParams {
    int kernel_h = 1, kernel_w = 1, stride_h = 1, stride_w = 1;
    int pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
    std::string name = "maxpool";
};
std::vector<int64_t> pool_output_shape(const Tensor &x, const PoolParams &p);
void maxpool(const Tensor &x, const PoolParams &p, Tensor &y);  // u8 or s8
void global_avgpool(const Tensor &x, Tensor &y);               // {N,H,W,C} u8 -> {N,C} u8
void add(const Tensor &a, const Tensor &b, const Activation &act, Tensor &y);  // u8, same shape

// ONNX QuantizeLinear / DequantizeLinear; per-axis when quant.axis >= 0 (axis of the tensor's
// own shape, e.g. 1 for NCHW channels).
void quantize(const Tensor &x, Tensor &y);    // f32 -> u8/s8 with y.quant
void dequantize(const Tensor &x, Tensor &y);  // u8/s8/s32 with x.quant -> f32
// s32 with x.quant (scales of the accumulator, zero points 0) -> u8/s8/u4/s4 with y.quant:
// y = clamp(round(x * sx/sy) + zy, act).
void requantize(const Tensor &x, Tensor &y, const Activation &act = {});
void int4_pack(const Tensor &x, Tensor &y);    // s8 -> s4 or u8 -> u4 (saturating)
void int4_unpack(const Tensor &x, Tensor &y);  // s4 -> s8 or u4 -> u8

// The kernel (family__tag) each op family used last, for logs and reports.
std::string last_kernel(const std::string &family);

}  // namespace qh
