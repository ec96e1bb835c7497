// Plain C++ reference implementations: the definition every kernel variant is compared with,
// bit for bit. Written straight from the ONNX operator definitions (QLinearConv, ConvInteger,
// MatMulInteger, QLinearAdd, QuantizeLinear, DequantizeLinear, MaxPool,
// QLinearGlobalAveragePool), on unpacked OIHW weights with their original zero points, with
// int64 accumulation; no code is shared with the kernels or the packing.
#pragma once
#include <cstdint>
#include <vector>

namespace qh::ref {

// round half to even of float32, then saturate into [lo, hi]
int32_t round_sat(float v, int32_t lo, int32_t hi);
// clamp(round(float(acc) * mult) + zp, lo, hi) in float32
int32_t requantize(int64_t acc, float mult, int32_t zp, int32_t lo, int32_t hi);
int32_t quantized_add(int32_t a, int32_t za, float ma, int32_t b, int32_t zb, float mb,
                      int32_t zy, int32_t lo, int32_t hi);

struct ConvProblem {
    int n = 1, h = 1, w = 1, c = 1;  // input NHWC
    int oc = 1, kh = 1, kw = 1;
    int stride_h = 1, stride_w = 1, pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
    int group = 1, dilation_h = 1, dilation_w = 1;  // ONNX Conv group / dilations
    int oh() const { return (h + pad_top + pad_bottom - ((kh - 1) * dilation_h + 1)) / stride_h + 1; }
    int ow() const { return (w + pad_left + pad_right - ((kw - 1) * dilation_w + 1)) / stride_w + 1; }
};

// Exact int accumulators: acc[n][oy][ox][oc] = bias[oc] + sum (x - zx)(w - zw[oc]) over the
// input channels of oc's group (c / group of them) and the dilated window; weights
// O(I/group)HW as int32 values (u8 or s8 originals), zw per output channel.
std::vector<int64_t> conv2d_acc(const ConvProblem &p, const std::vector<uint8_t> &x, int32_t zx,
                                const std::vector<int32_t> &w, const std::vector<int32_t> &zw,
                                const std::vector<int32_t> &bias);

// Output quantization of an accumulator tensor (NHWC, channel innermost, per-channel mult).
std::vector<int32_t> requantize_all(const std::vector<int64_t> &acc, int channels,
                                    const std::vector<float> &mult, int32_t zp, int32_t lo,
                                    int32_t hi);

std::vector<int32_t> maxpool(const std::vector<int32_t> &x, int n, int h, int w, int c, int kh,
                             int kw, int sh, int sw, int pt, int pl, int oh, int ow);
// ONNX AveragePool on quantized values (DQ -> AveragePool -> Q, in exact integers):
// y = clamp(round((float(sum (x - zx)) * (sx / sy)) / float(cnt)) + zy, 0, 255) over the window
// positions inside the image (count_include_pad: image and pads); ceil_mode via oh / ow.
std::vector<int32_t> avgpool(const std::vector<uint8_t> &x, int n, int h, int w, int c, int kh, int kw, int sh,
                             int sw, int pt, int pl, int pb, int pr, bool count_include_pad, int oh, int ow,
                             int32_t zx, float sx, int32_t zy, float sy);
std::vector<int32_t> global_avgpool(const std::vector<uint8_t> &x, int n, int hw, int c,
                                    int32_t zx, float sx, int32_t zy, float sy);
int32_t quantize(float x, float scale, int32_t zp, int32_t lo, int32_t hi);
// ONNX QLinearMul as ONNX Runtime's x86 kernel computes it: the exact integer product, one float32
// multiply by (sa * sb) / sy, one float32 add of zy, round half to even, saturate to [lo, hi].
int32_t qlinear_mul(int32_t a, int32_t za, float sa, int32_t b, int32_t zb, float sb, int32_t zy, float sy,
                    int32_t lo, int32_t hi);
float dequantize(int32_t x, float scale, int32_t zp);
// int4: pack two per byte (element 2i low nibble); values must already be in nibble range
std::vector<uint8_t> int4_pack(const std::vector<int32_t> &v);
std::vector<int32_t> int4_unpack(const std::vector<uint8_t> &bytes, int64_t n, bool is_signed);

}  // namespace qh::ref
