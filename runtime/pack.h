// Weight packing for conv2d and dense: done once, shared by every CPU kernel variant.
//
// Packed layout (generators/conv2d_generator.cpp states the kernel side of the contract):
//   data[ob][ky][kx][cb][o][i] = w'[oc = 16*ob + o][ic = 4*cb + i][ky][kx]   (s8, 64-byte rows)
// with OC padded to a multiple of 64 and IC to a multiple of 4 by zeros.
//
// Weights arrive as ONNX does: OIHW, u8 or s8, zero point per tensor or per output channel.
//  - If every w - z_w fits in s8, w' = w - z_w and the weights are symmetric (z_w' = 0).
//  - Otherwise (e.g. u8 weights with z_w = 255) w' = w - 128 (u8) or w (s8), z_w' = z_w - 128
//    or z_w, and the weight-zero-point kernel family (`z8`) is used.
// The effective bias folds every zero-point term (see the conv2d generator for the algebra):
//   bias'[oc] = bias[oc] - z_x * sum W'[oc] + K * z_x * z_w'[oc],  K = KH*KW*ICpad.
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "tensor.h"

namespace qh {

// The largest reduction length K = KH*KW*ICpad each kernel accepts (int32 accumulator bound,
// |sum| <= 2 * 255 * 128 * K for symmetric weights, 255 * 255 * K + 255 * 128 * K with z8).
constexpr int64_t kMaxReductionSymmetric = 32768;
constexpr int64_t kMaxReductionWeightZp = 16384;
// s4 weights: the kernels accumulate 16 * w (generators/conv2d_generator.cpp), |acc16| <= 16 * 255
// * 8 * K.
constexpr int64_t kMaxReductionInt4 = 65536;

// Element i (flat) of integer weights of type t (u8, s8, or u4 / s4 packed two per byte, element
// 2i in the low nibble) as an int32.
int32_t weight_element(DType t, const void *data, int64_t i);

struct WeightsDesc {
    std::string name = "weights";  // for error messages (layer / tensor name)
    DType dtype = DType::s8;       // u8, s8, or u4 / s4 (packed two per byte, flat order)
    const void *data = nullptr;    // OIHW (dense: O x I with kh = kw = 1)
    // 4: pack as s4 (the kernels' weight_bits=4 layout) when every w - z_w fits in [-8, 7];
    // 8: s8. u4/s4 weights ask for 4 whatever this says.
    int bits = 8;
    // conv2d_grouped's layout (grouped / depthwise / dilated convs): ic is the input channels
    // of one group, not padded; 8-bit only. See PackedWeights::blocked().
    bool grouped = false;
    int oc = 0, ic = 0, kh = 1, kw = 1;
    std::vector<int32_t> zero_point;  // empty, 1 or oc values
    std::vector<float> scale;         // 1 or oc values (unused for s32 outputs)
    const int32_t *bias = nullptr;    // oc values or null
};

struct PackedWeights {
    std::string name;
    int oc = 0, ic = 0, kh = 1, kw = 1;
    int oc_pad = 0, ic_pad = 0;
    bool has_zero_point = false;  // use the z8 kernel family
    int weight_bits = 8;          // 4: symmetric s4 weights (the *s4* kernel families)
    bool grouped = false;         // conv2d_grouped's layout (ic_pad = ic)
    int input_zp = 0;             // z_x folded into bias
    std::vector<int32_t> bias;     // effective bias, oc_pad
    std::vector<int32_t> wzp;      // z_w', oc_pad
    std::vector<float> mult;       // s_x * s_w[oc] / s_out, oc_pad (1.0 if no output scale)
    // w' in OIHW (oc x ic x kh x kw, unpadded): the neutral form. `data` is the kernel list's
    // blocked layout (every CPU variant and cuda_dp4a); other implementations (registry.h) pack
    // their own layout from this in their bind.
    std::vector<int8_t> unpacked;
    int64_t reduction() const { return int64_t(kh) * kw * ic_pad; }
    size_t packed_bytes() const { return size_t(oc_pad) * kh * kw * ic_pad * weight_bits / 8; }
    // The kernel list's blocked layout [OCO][KH][KW][CIO][16][4] (packed_bytes(), 64-byte
    // aligned, zero padding): made from `unpacked` by the first bind that needs it (every CPU
    // variant, cuda_dp4a), once, thread-safe, then shared by every copy of these weights. An
    // implementation with its own layout (cuda_mma) never makes it. With weight_bits = 4 it is
    // [OCO/2][KH][KW][CIO][16][4] bytes, block 2p in the low nibble and 2p + 1 in the high one.
    // With `grouped` it is conv2d_grouped's [KH][KW][IC][OCpad]: output channels dense.
    const int8_t *blocked() const;

private:
    struct Blocked {
        std::once_flag once;
        std::shared_ptr<int8_t> data;
    };
    std::shared_ptr<Blocked> blocked_ = std::make_shared<Blocked>();
};

// Packs weights for inputs quantized with (x_scale, x_zp) and results requantized to
// out_scale (pass 0 for s32 outputs). Throws with the tensor name on any inconsistency,
// including reductions longer than the accumulator bound.
PackedWeights pack_weights(const WeightsDesc &w, float x_scale, int32_t x_zp, float out_scale);

}  // namespace qh
