#include "pack.h"

#include <cmath>
#include <mutex>

#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace qh {

namespace {
[[noreturn]] void fail(const WeightsDesc &w, const std::string &msg) {
    throw std::invalid_argument("weights '" + w.name + "': " + msg);
}
}  // namespace

int32_t weight_element(DType t, const void *data, int64_t i) {
    const uint8_t *b = static_cast<const uint8_t *>(data);
    switch (t) {
    case DType::u8: return b[i];
    case DType::s8: return int8_t(b[i]);
    default: {  // u4 / s4
        const int32_t nib = (b[i / 2] >> (4 * (i % 2))) & 15;
        return t == DType::s4 && nib >= 8 ? nib - 16 : nib;
    }
    }
}

PackedWeights pack_weights(const WeightsDesc &w, float x_scale, int32_t x_zp, float out_scale) {
    if (w.dtype != DType::u8 && w.dtype != DType::s8 && w.dtype != DType::u4 && w.dtype != DType::s4)
        fail(w, std::string("dtype ") + dtype_name(w.dtype) + " unsupported (expected u8, s8, u4 or s4)");
    if (w.bits != 8 && w.bits != 4) fail(w, "bits must be 8 or 4, got " + std::to_string(w.bits));
    if (!w.data) fail(w, "no data");
    if (w.oc <= 0 || w.ic <= 0 || w.kh <= 0 || w.kw <= 0)
        fail(w, "shape must be positive, got O=" + std::to_string(w.oc) + " I=" +
                    std::to_string(w.ic) + " H=" + std::to_string(w.kh) + " W=" +
                    std::to_string(w.kw));
    if (!(w.zero_point.empty() || w.zero_point.size() == 1 || (int)w.zero_point.size() == w.oc))
        fail(w, "zero point must have 1 or " + std::to_string(w.oc) + " values, got " +
                    std::to_string(w.zero_point.size()));
    if (out_scale != 0.f && !(w.scale.size() == 1 || (int)w.scale.size() == w.oc))
        fail(w, "scale must have 1 or " + std::to_string(w.oc) + " values, got " +
                    std::to_string(w.scale.size()));
    if (x_zp < 0 || x_zp > 255) fail(w, "input zero point " + std::to_string(x_zp) + " not in u8");
    // Scales become float multipliers (x_scale * w_scale / out_scale) that the kernels convert to
    // integers after rounding: a non-finite or non-positive one has no meaning there.
    if (out_scale != 0.f) {
        if (!(std::isfinite(out_scale) && out_scale > 0.f) || !(std::isfinite(x_scale) && x_scale > 0.f))
            fail(w, "input scale " + std::to_string(x_scale) + " and output scale " + std::to_string(out_scale) +
                        " must be finite and positive");
        for (float s : w.scale)
            if (!(std::isfinite(s) && s > 0.f)) fail(w, "weight scale " + std::to_string(s) + " must be finite and positive");
    }

    PackedWeights p;
    p.name = w.name;
    p.oc = w.oc; p.ic = w.ic; p.kh = w.kh; p.kw = w.kw;
    p.oc_pad = (w.oc + 63) / 64 * 64;
    p.grouped = w.grouped;
    p.ic_pad = w.grouped ? w.ic : (w.ic + 3) / 4 * 4;
    p.input_zp = x_zp;
    const int64_t K = p.reduction();
    const int64_t per_oc = int64_t(w.ic) * w.kh * w.kw;
    auto raw = [&](int64_t i) { return weight_element(w.dtype, w.data, i); };
    auto zp = [&](int o) -> int32_t {
        return w.zero_point.empty() ? 0 : w.zero_point[w.zero_point.size() == 1 ? 0 : o];
    };
    const bool is_unsigned = w.dtype == DType::u8 || w.dtype == DType::u4;
    const bool is4 = w.dtype == DType::u4 || w.dtype == DType::s4;
    int32_t lo_t = is_unsigned ? 0 : is4 ? -8 : -128, hi_t = is_unsigned ? (is4 ? 15 : 255) : (is4 ? 7 : 127);
    for (int o = 0; o < w.oc; o++)
        if (zp(o) < lo_t || zp(o) > hi_t)
            fail(w, "zero point " + std::to_string(zp(o)) + " outside " + dtype_name(w.dtype));

    // Symmetric if every w - z_w fits in s8.
    bool fits = true;
    for (int o = 0; o < w.oc && fits; o++)
        for (int64_t i = 0; i < per_oc && fits; i++) {
            int32_t v = raw(o * per_oc + i) - zp(o);
            fits = v >= -128 && v <= 127;
        }
    p.has_zero_point = !fits;
    // s4 when asked for (or the weights are 4-bit) and every w - z_w is a nibble.
    bool nibbles = fits && !w.grouped && (w.bits == 4 || is4);
    for (int o = 0; o < w.oc && nibbles; o++)
        for (int64_t i = 0; i < per_oc && nibbles; i++) {
            int32_t v = raw(o * per_oc + i) - zp(o);
            nibbles = v >= -8 && v <= 7;
        }
    p.weight_bits = nibbles ? 4 : 8;
    int64_t limit = nibbles ? kMaxReductionInt4 : fits ? kMaxReductionSymmetric : kMaxReductionWeightZp;
    if (K > limit)
        fail(w, "reduction KH*KW*ICpad = " + std::to_string(K) + " exceeds the int32 accumulator "
                "bound " + std::to_string(limit));

    p.unpacked.resize(size_t(w.oc) * per_oc);
    p.wzp.assign(p.oc_pad, 0);
    for (int o = 0; o < w.oc; o++) {
        int32_t shift = fits ? zp(o) : (w.dtype == DType::u8 ? 128 : 0);  // u4 always fits s8
        if (!fits) p.wzp[o] = zp(o) - shift;
        for (int64_t i = 0; i < per_oc; i++) p.unpacked[o * per_oc + i] = int8_t(raw(o * per_oc + i) - shift);
    }

    p.bias.assign(p.oc_pad, 0);
    p.mult.assign(p.oc_pad, 1.0f);
    for (int o = 0; o < w.oc; o++) {
        int64_t sum_w = 0;
        for (int64_t i = 0; i < per_oc; i++) sum_w += p.unpacked[o * per_oc + i];
        int64_t b = (w.bias ? w.bias[o] : 0) - int64_t(x_zp) * sum_w + K * x_zp * p.wzp[o];
        if (b < INT32_MIN || b > INT32_MAX)
            fail(w, "effective bias of output channel " + std::to_string(o) + " overflows int32");
        p.bias[o] = int32_t(b);
        if (out_scale != 0.f) {
            float sw = w.scale[w.scale.size() == 1 ? 0 : o];
            p.mult[o] = (x_scale * sw) / out_scale;  // float32, as ONNX Runtime computes it
            if (!std::isfinite(p.mult[o]))
                fail(w, "requantization multiplier of output channel " + std::to_string(o) + " overflows float");
        }
    }
    return p;
}

const int8_t *PackedWeights::blocked() const {
    std::call_once(blocked_->once, [this] {
        const size_t bytes = packed_bytes();
        int8_t *d = (int8_t *)std::aligned_alloc(64, (bytes + 63) / 64 * 64);
        if (!d) throw std::length_error("weights '" + name + "': out of memory for the " + std::to_string(bytes) +
                                        "-byte blocked layout");
        std::memset(d, 0, bytes);
        if (grouped) {
            for (int o = 0; o < oc; o++)
                for (int c = 0; c < ic; c++)
                    for (int ky = 0; ky < kh; ky++)
                        for (int kx = 0; kx < kw; kx++)
                            d[((int64_t(ky) * kw + kx) * ic + c) * oc_pad + o] =
                                unpacked[((int64_t(o) * ic + c) * kh + ky) * kw + kx];
            blocked_->data = std::shared_ptr<int8_t>(d, std::free);
            return;
        }
        const int CB = ic_pad / 4;
        const bool w4 = weight_bits == 4;
        for (int o = 0; o < oc; o++)
            for (int c = 0; c < ic; c++)
                for (int ky = 0; ky < kh; ky++)
                    for (int kx = 0; kx < kw; kx++) {
                        const int64_t src = ((int64_t(o) * ic + c) * kh + ky) * kw + kx;
                        const int ob = w4 ? o / 32 : o / 16;
                        const int64_t dst =
                            ((((int64_t(ob) * kh + ky) * kw + kx) * CB + c / 4) * 16 + o % 16) * 4 + c % 4;
                        if (!w4) {
                            d[dst] = unpacked[src];
                        } else {  // block o / 16 even: low nibble, odd: high nibble
                            const int shift = (o / 16) % 2 ? 4 : 0;
                            d[dst] = int8_t(uint8_t(d[dst]) | uint8_t((unpacked[src] & 15) << shift));
                        }
                    }
        blocked_->data = std::shared_ptr<int8_t>(d, std::free);
    });
    return blocked_->data.get();
}

}  // namespace qh
