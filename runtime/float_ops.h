// The fp32 reference path: plain float operators over NHWC tensors, used by `--precision fp32`
// and by calibration. Convolutions and dense layers go through BLAS sgemm (OpenBLAS), the rest
// are simple loops. Same layout contracts as the quantized ops (runtime/ops.h).
#pragma once
#include <vector>

#include "graph.h"
#include "tensor.h"

namespace qh::f32 {

// Conv weights rearranged once for sgemm: {OC, KH*KW*IC} in (ky, kx, ic) order, ic the input
// channels of one group (output channels o * group / OC's group).
struct ConvWeights {
    int oc = 0, ic = 0, kh = 1, kw = 1, group = 1;
    std::vector<float> w;     // OC x (KH*KW*IC)
    std::vector<float> bias;  // OC (zeros if none)
};
// From OIHW float weights (and an optional f32 bias); I = input channels per group.
ConvWeights prepare_conv_weights(const Tensor &oihw, const Tensor &bias, int group = 1);

// Scratch space conv2d needs for im2col (floats), for input shape x and this window.
size_t conv2d_scratch_floats(const std::vector<int64_t> &x_shape, const ConvWeights &w, const WindowAttrs &a);
// y {N,OH,OW,OC} = conv(x {N,H,W,C}) + bias (grouped and dilated as w and a say); `scratch`
// holds conv2d_scratch_floats() floats.
void conv2d(const Tensor &x, const ConvWeights &w, const WindowAttrs &a, float *scratch, Tensor &y);
// y {N,OC} = x {N,K} W^T + b, W {OC, K} row-major (ConvWeights with kh = kw = 1).
void dense(const Tensor &x, const ConvWeights &w, Tensor &y);
void relu(const Tensor &x, Tensor &y);
void add(const Tensor &a, const Tensor &b, Tensor &y);
// y = a * b, b broadcast to a's shape (numpy rules, ranks right-aligned).
void mul(const Tensor &a, const Tensor &b, Tensor &y);
void add_broadcast(const Tensor &a, const Tensor &b, Tensor &y);  // y = a + b, b broadcast as mul
void batchnorm(const Tensor &x, const std::vector<float> &scale, const std::vector<float> &shift, Tensor &y);
void maxpool(const Tensor &x, const WindowAttrs &a, Tensor &y);
// ONNX AveragePool: the mean over the window's positions inside the image (with
// count_include_pad: inside the image and its pads), in double, rounded to float once.
void avgpool(const Tensor &x, const WindowAttrs &a, bool count_include_pad, Tensor &y);
void global_avgpool(const Tensor &x, Tensor &y);  // {N,H,W,C} -> {N,1,1,C}

}  // namespace qh::f32
