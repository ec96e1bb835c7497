// Shared by the CUDA microkernel benches (mma_conv_bench.cu, int4_conv_bench.cu): the CUDA
// error check, a thread-parallel loop, the plain conv reference (raw s32 accumulators over OIHW
// weights, independent of the packers) and the epilogue references, which repeat
// generators/qh_math.h's float steps (bit-exact checks of the fused epilogues), the device gather
// of checked outputs, and the median.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include "../../cuda/mma_launch.cuh"  // mma_conv2d.cuh and the layouts other than NHWC

#define CK(x)                                                                                        \
    do {                                                                                             \
        cudaError_t e_ = (x);                                                                        \
        if (e_ != cudaSuccess) {                                                                     \
            fprintf(stderr, "CUDA error %s at %s:%d: %s\n", cudaGetErrorString(e_), __FILE__, __LINE__, \
                    #x);                                                                             \
            exit(1);                                                                                 \
        }                                                                                            \
    } while (0)

namespace qh_bench {

// Element offset of (n, y, x, c) of an [N][H][W][C] tensor in a layout (see QhLayout).
inline long long lay_off(QhLayout l, long long N, long long H, long long W, long long C, long long n, long long y,
                         long long x, long long c) {
    switch (l) {
    case QhLayout::HWNC: return ((y * W + x) * N + n) * C + c;
    case QhLayout::NC32HW32: return (((n * (C / 32) + c / 32) * H + y) * W + x) * 32 + c % 32;
    default: return ((n * H + y) * W + x) * C + c;
    }
}
inline const char *lay_name(QhLayout l) {
    return l == QhLayout::HWNC ? "HWNC" : l == QhLayout::NC32HW32 ? "NC32HW32" : "NHWC";
}

template <class F>
void parallel_for(long long n, F f) {
    int nt = std::max(1u, std::thread::hardware_concurrency());
    std::vector<std::thread> th;
    for (int t = 0; t < nt; ++t)
        th.emplace_back([&, t] {
            for (long long i = t; i < n; i += nt) f(i);
        });
    for (auto &x : th) x.join();
}

// Reference: plain loops over OIHW weights transposed (here, independently of the packer) to
// [oc][ky][kx][ic] so the inner loop is contiguous.
struct Ref {
    ConvDesc d;
    const uint8_t *x;
    std::vector<int8_t> wt;
    Ref(const ConvDesc &d_, const uint8_t *x_, const int8_t *w_oihw) : d(d_), x(x_) {
        wt.resize((size_t)d.oc * d.kh * d.kw * d.ic);
        for (int o = 0; o < d.oc; ++o)
            for (int i = 0; i < d.ic; ++i)
                for (int ky = 0; ky < d.kh; ++ky)
                    for (int kx = 0; kx < d.kw; ++kx)
                        wt[(((size_t)o * d.kh + ky) * d.kw + kx) * d.ic + i] =
                            w_oihw[(((size_t)o * d.ic + i) * d.kh + ky) * d.kw + kx];
    }
    int32_t point(long long m, int o) const {  // output pixel m, channel o
        int ohw = d.oh() * d.ow();
        int n = int(m / ohw), r = int(m % ohw), oy = r / d.ow(), ox = r % d.ow();
        int32_t acc = 0;
        for (int ky = 0; ky < d.kh; ++ky)
            for (int kx = 0; kx < d.kw; ++kx) {
                int iy = oy * d.sh - d.pt + ky, ix = ox * d.sw - d.pl + kx;
                const int8_t *wp = &wt[(((size_t)o * d.kh + ky) * d.kw + kx) * d.ic];
                if (iy >= 0 && iy < d.h && ix >= 0 && ix < d.w) {
                    const uint8_t *xp = x + (((size_t)n * d.h + iy) * d.w + ix) * d.ic;
                    int32_t s = 0;
                    for (int i = 0; i < d.ic; ++i) s += int32_t(xp[i]) * int32_t(wp[i]);
                    acc += s;
                } else {
                    int32_t s = 0;
                    for (int i = 0; i < d.ic; ++i) s += int32_t(wp[i]);
                    acc += d.zx * s;  // padding pixels hold zx
                }
            }
        return acc;
    }
    void row(long long m, int32_t *out) const {
        for (int o = 0; o < d.oc; ++o) out[o] = point(m, o);
    }
};

inline int requant_ref(int32_t acc, int32_t bias, float mult, int zy, int lo, int hi) {
    volatile float f = float(acc + bias) * mult;  // one IEEE multiply, no contraction
    float c = std::min(std::max((float)f, -65536.0f), 65536.0f);
    int q = int(std::nearbyint(c)) + zy;  // default rounding mode: half to even
    return std::min(std::max(q, lo), hi);
}

// qh::quantized_add (generators/qh_math.h): two IEEE products, one IEEE sum, no contraction.
inline int qadd_ref(int c, int zc, float mc, int r, int zr, float mr, int zy, int lo, int hi) {
    volatile float fa = float(c - zc) * mc;
    volatile float fb = float(r - zr) * mr;
    volatile float f = fa + fb;
    float cl = std::min(std::max((float)f, -65536.0f), 65536.0f);
    int q = int(std::nearbyint(cl)) + zy;
    return std::min(std::max(q, lo), hi);
}

__global__ void gather_s32(const int32_t *y, const long long *idx, int n, int32_t *out) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = y[idx[i]];
}
__global__ void gather_u8(const uint8_t *y, const long long *idx, int n, uint8_t *out) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = y[idx[i]];
}

inline double median(std::vector<float> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

}  // namespace qh_bench
