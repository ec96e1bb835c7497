#include "reference_ops.h"

#include <algorithm>
#include <cfenv>
#include <cmath>

namespace qh::ref {

int32_t round_sat(float v, int32_t lo, int32_t hi) {
    // std::nearbyint rounds half to even in the default FE_TONEAREST mode.
    double r = std::nearbyint(v);
    r = std::min<double>(std::max<double>(r, lo), hi);
    return int32_t(r);
}

static int32_t clampi(int64_t v, int32_t lo, int32_t hi) {
    return int32_t(std::min<int64_t>(std::max<int64_t>(v, lo), hi));
}

int32_t requantize(int64_t acc, float mult, int32_t zp, int32_t lo, int32_t hi) {
    float scaled = float(acc) * mult;
    int64_t q = int64_t(std::nearbyint(double(scaled)));
    q = std::min<int64_t>(std::max<int64_t>(q, -65536), 65536);
    return clampi(q + zp, lo, hi);
}

int32_t quantized_add(int32_t a, int32_t za, float ma, int32_t b, int32_t zb, float mb,
                      int32_t zy, int32_t lo, int32_t hi) {
    float fa = float(a - za) * ma;
    float fb = float(b - zb) * mb;
    float s = fa + fb;
    int64_t q = int64_t(std::nearbyint(double(s)));
    q = std::min<int64_t>(std::max<int64_t>(q, -65536), 65536);
    return clampi(q + zy, lo, hi);
}

std::vector<int64_t> conv2d_acc(const ConvProblem &p, const std::vector<uint8_t> &x, int32_t zx,
                                const std::vector<int32_t> &w, const std::vector<int32_t> &zw,
                                const std::vector<int32_t> &bias) {
    const int OH = p.oh(), OW = p.ow();
    std::vector<int64_t> out(size_t(p.n) * OH * OW * p.oc);
    for (int n = 0; n < p.n; n++)
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++)
                for (int o = 0; o < p.oc; o++) {
                    int64_t acc = bias.empty() ? 0 : bias[o];
                    int32_t z = zw.size() == 1 ? zw[0] : zw[o];
                    const int cg = p.c / p.group, g = o / (p.oc / p.group);
                    for (int ky = 0; ky < p.kh; ky++) {
                        int iy = oy * p.stride_h + ky * p.dilation_h - p.pad_top;
                        if (iy < 0 || iy >= p.h) continue;  // padding: x - zx = 0
                        for (int kx = 0; kx < p.kw; kx++) {
                            int ix = ox * p.stride_w + kx * p.dilation_w - p.pad_left;
                            if (ix < 0 || ix >= p.w) continue;
                            const uint8_t *xp = &x[((size_t(n) * p.h + iy) * p.w + ix) * p.c + size_t(g) * cg];
                            for (int c = 0; c < cg; c++) {
                                int32_t wv = w[((size_t(o) * cg + c) * p.kh + ky) * p.kw + kx];
                                acc += int64_t(int32_t(xp[c]) - zx) * (wv - z);
                            }
                        }
                    }
                    out[((size_t(n) * OH + oy) * OW + ox) * p.oc + o] = acc;
                }
    return out;
}

std::vector<int32_t> requantize_all(const std::vector<int64_t> &acc, int channels,
                                    const std::vector<float> &mult, int32_t zp, int32_t lo,
                                    int32_t hi) {
    std::vector<int32_t> out(acc.size());
    for (size_t i = 0; i < acc.size(); i++) {
        float m = mult.size() == 1 ? mult[0] : mult[i % channels];
        out[i] = requantize(acc[i], m, zp, lo, hi);
    }
    return out;
}

std::vector<int32_t> maxpool(const std::vector<int32_t> &x, int n, int h, int w, int c, int kh,
                             int kw, int sh, int sw, int pt, int pl, int oh, int ow) {
    std::vector<int32_t> out(size_t(n) * oh * ow * c);
    for (int b = 0; b < n; b++)
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++)
                for (int ch = 0; ch < c; ch++) {
                    int32_t m = INT32_MIN;
                    for (int ky = 0; ky < kh; ky++)
                        for (int kx = 0; kx < kw; kx++) {
                            int iy = oy * sh + ky - pt, ix = ox * sw + kx - pl;
                            if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                            m = std::max(m, x[((size_t(b) * h + iy) * w + ix) * c + ch]);
                        }
                    out[((size_t(b) * oh + oy) * ow + ox) * c + ch] = m;
                }
    return out;
}

std::vector<int32_t> avgpool(const std::vector<uint8_t> &x, int n, int h, int w, int c, int kh, int kw, int sh,
                             int sw, int pt, int pl, int pb, int pr, bool count_include_pad, int oh, int ow,
                             int32_t zx, float sx, int32_t zy, float sy) {
    std::vector<int32_t> y(size_t(n) * oh * ow * c);
    for (int b = 0; b < n; b++)
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++)
                for (int ch = 0; ch < c; ch++) {
                    int64_t sum = 0;
                    int cnt = 0;
                    for (int ky = 0; ky < kh; ky++)
                        for (int kx = 0; kx < kw; kx++) {
                            const int iy = oy * sh + ky - pt, ix = ox * sw + kx - pl;
                            const bool in = iy >= 0 && iy < h && ix >= 0 && ix < w;
                            const bool counted = count_include_pad ? iy >= -pt && iy < h + pb && ix >= -pl && ix < w + pr : in;
                            cnt += counted;
                            if (in) sum += int32_t(x[((size_t(b) * h + iy) * w + ix) * c + ch]) - zx;
                        }
                    const float mult = sx / sy;
                    const float v = (float(sum) * mult) / float(std::max(cnt, 1));
                    y[((size_t(b) * oh + oy) * ow + ox) * c + ch] = std::clamp(round_sat(v, -65536, 65536) + zy, 0, 255);
                }
    return y;
}

int32_t qlinear_mul(int32_t a, int32_t za, float sa, int32_t b, int32_t zb, float sb, int32_t zy, float sy,
                    int32_t lo, int32_t hi) {
    const float m = (sa * sb) / sy;
    volatile float prod = float((a - za) * (b - zb)) * m;  // two roundings, never an fma
    const float v = prod + float(zy);
    return round_sat(v, lo, hi);
}

std::vector<int32_t> global_avgpool(const std::vector<uint8_t> &x, int n, int hw, int c,
                                    int32_t zx, float sx, int32_t zy, float sy) {
    std::vector<int32_t> out(size_t(n) * c);
    float mult = sx / (sy * float(hw));
    for (int b = 0; b < n; b++)
        for (int ch = 0; ch < c; ch++) {
            int64_t s = 0;
            for (int i = 0; i < hw; i++) s += int32_t(x[(size_t(b) * hw + i) * c + ch]) - zx;
            out[size_t(b) * c + ch] = requantize(s, mult, zy, 0, 255);
        }
    return out;
}

int32_t quantize(float x, float scale, int32_t zp, int32_t lo, int32_t hi) {
    float q = x / scale;
    int64_t r = int64_t(std::nearbyint(double(std::min(std::max(q, -65536.f), 65536.f))));
    return clampi(r + zp, lo, hi);
}

float dequantize(int32_t x, float scale, int32_t zp) { return float(x - zp) * scale; }

std::vector<uint8_t> int4_pack(const std::vector<int32_t> &v) {
    std::vector<uint8_t> out((v.size() + 1) / 2, 0);
    for (size_t i = 0; i < v.size(); i++)
        out[i / 2] |= uint8_t((v[i] & 15) << (i % 2 ? 4 : 0));
    return out;
}

std::vector<int32_t> int4_unpack(const std::vector<uint8_t> &bytes, int64_t n, bool is_signed) {
    std::vector<int32_t> out(n);
    for (int64_t i = 0; i < n; i++) {
        int32_t nib = (bytes[i / 2] >> (i % 2 ? 4 : 0)) & 15;
        out[i] = is_signed && nib >= 8 ? nib - 16 : nib;
    }
    return out;
}

}  // namespace qh::ref
