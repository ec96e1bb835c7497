// Tensor-core int8 implicit-GEMM conv2d, host side: the tile variant list and the launch of each
// variant (the two must agree: dispatch() maps list indices to kernel instantiations), the A
// loader path of a shape, Kp, workspace, weight packing, the size heuristic and the entry points.
// Contract: mma_conv2d.cuh; device code: mma_kernel.cuh; wgmma tiles: wgmma_conv2d.cu.
#include "mma_conv2d.cuh"
#include "mma_dispatch.cuh"
#include "mma_launch.cuh"
#include "wgmma_conv2d.cuh"

#include <algorithm>
#include <vector>

namespace {

constexpr int KALIGN = 128;  // Kp granularity on the gather/im2col paths (any BK divides it)

const QhCudaConvVariant kVariants[] = {
    // name, bm, bn, warps_m, warps_n, stages, splitk, bk
    {"t128x128_w2x2_s4", 128, 128, 2, 2, 4, 1, 64},
    {"t128x128_w2x4_s4", 128, 128, 2, 4, 4, 1, 64},
    {"t128x256_w2x4_s3", 128, 256, 2, 4, 3, 1, 64},
    {"t128x64_w2x2_s4", 128, 64, 2, 2, 4, 1, 64},
    {"t64x128_w2x2_s4", 64, 128, 2, 2, 4, 1, 64},
    {"t64x64_w2x2_s4", 64, 64, 2, 2, 4, 1, 64},
    {"t64x64_w2x2_s4_k4", 64, 64, 2, 2, 4, 4, 64},
    {"t64x64_w2x2_s4_k8", 64, 64, 2, 2, 4, 8, 64},
    {"t128x128_w2x2_b128_s3", 128, 128, 2, 2, 3, 1, 128},
    {"t128x128_w2x4_b128_s3", 128, 128, 2, 4, 3, 1, 128},
    {"t128x256_w2x4_b128_s3", 128, 256, 2, 4, 3, 1, 128},
    // Direct path only (cudaErrorNotSupported elsewhere). _db: register double-buffered
    // fragments; _m2: __launch_bounds__ min 2 blocks per SM (<= 128 registers at 256 threads).
    {"t128x128_w2x4_b128_s3_m2", 128, 128, 2, 4, 3, 1, 128},
    {"t128x256_w2x4_b128_s3_db", 128, 256, 2, 4, 3, 1, 128},
    {"t128x128_w2x2_b128_s3_db", 128, 128, 2, 2, 3, 1, 128},
    {"t128x128_w2x4_s4_m2", 128, 128, 2, 4, 4, 1, 64},
    // wgmma (Hopper, wgmma_conv2d.cuh): CTA 128 x bn, two warpgroups, 128-byte K stages
    {"wg128x128_s4", 128, 128, 0, 0, 4, 1, 128, 1},
    {"wg128x256_s4", 128, 256, 0, 0, 4, 1, 128, 1},
    {"wg128x128_s6", 128, 128, 0, 0, 6, 1, 128, 1},
    {"wg128x128_s3", 128, 128, 0, 0, 3, 1, 128, 1},     // 2 CTAs per SM
    {"wg128x64_s4", 128, 64, 0, 0, 4, 1, 128, 1},       // 2 CTAs per SM
    {"wg128x128_b64_s6", 128, 128, 0, 0, 6, 1, 64, 1},  // IC % 64: 64-byte swizzle, 2 CTAs per SM
    {"wg128x64_b64_s4", 128, 64, 0, 0, 4, 1, 64, 1},    // 2 CTAs per SM
};
constexpr int kNumVariants = sizeof(kVariants) / sizeof(kVariants[0]);
static_assert(kNumVariants > kMmaVariants, "mma_dispatch.cuh's count of mma.sync entries");

// The problem the GEMM kernel sees: the layer itself, or with u4 activations (abits = 4) its byte
// view (IC / 2 bytes a pixel, one byte = two consecutive k, the padding byte zx | zx << 4).
ConvDesc byte_view(const ConvDesc &d) {
    if (d.abits != 4) return d;
    ConvDesc b = d;
    b.ic = d.ic / 2;
    b.zx = (d.zx & 15) * 17;
    return b;
}

enum class Path { Direct, RowGather4, RowGather, Im2col };
// Of a byte-view problem (byte_view()); u4 activations have the direct and im2col paths only.
Path path_of_b(const ConvDesc &d) {
    if (d.ic % 64 == 0 && d.kh * d.kw <= 31) return Path::Direct;  // tap masks: 31 bits
    if (d.abits == 4) return Path::Im2col;
    if (d.ic < 4 && d.kw * 4 <= 32) return Path::RowGather4;
    if (d.kw * d.ic <= 32) return Path::RowGather;
    return Path::Im2col;
}
Path path_of(const ConvDesc &d) { return path_of_b(byte_view(d)); }
// Kp in bytes of the activation view (= weight elements for 8-bit activations).
int kpad_b(const ConvDesc &b) {
    switch (path_of_b(b)) {
    case Path::Direct: return b.k();
    case Path::RowGather4:
    case Path::RowGather: return (b.kh * 32 + KALIGN - 1) / KALIGN * KALIGN;
    default: return (b.k() + KALIGN - 1) / KALIGN * KALIGN;
    }
}

}  // namespace

cudaError_t qh_cuda_conv2d_run(const ConvDesc &d0, int variant, const uint8_t *x, const int8_t *w, void *y,
                               const QhRequant *rq, const QhResidual *res, void *workspace, cudaStream_t s,
                               const int32_t *bias_s32, QhLayout layout) {
    if (variant < 0 || variant >= kNumVariants) return cudaErrorInvalidValue;
    if (d0.oc % 8 != 0 || d0.n <= 0 || d0.oh() <= 0 || d0.ow() <= 0) return cudaErrorInvalidValue;
    if ((d0.wbits != 8 && d0.wbits != 4) || (d0.abits != 8 && d0.abits != 4)) return cudaErrorInvalidValue;
    const bool a4 = d0.abits == 4;
    if (a4 && (d0.wbits != 4 || d0.ic % 2 != 0 || d0.zx < 0 || d0.zx > 15)) return cudaErrorInvalidValue;
    if (a4 && rq && (rq->lo < 0 || rq->hi > 15 || rq->lo > rq->hi)) return cudaErrorInvalidValue;  // u4 output
    const ConvDesc d = byte_view(d0);
    const QhCudaConvVariant &V = kVariants[variant];
    if (rq && V.splitk > 1) return cudaErrorInvalidValue;
    // W4A4 runs the other layouts on its byte view with s32 output only (the layout evaluation of
    // bench/cuda/int4_conv_bench.cu --layouts; NC32HW32 of bytes = 64 u4 channels a block).
    if (a4 && (V.engine != 0 || (layout != QhLayout::NHWC && (rq || res)))) return cudaErrorNotSupported;
    const Path path = path_of_b(d);
    if (path == Path::Direct && d.ic % V.bk != 0) return cudaErrorNotSupported;
    const bool gather = path == Path::RowGather || path == Path::RowGather4;
    if (gather && variant >= kFirstDirectOnly) return cudaErrorNotSupported;
    if (layout != QhLayout::NHWC && path != Path::Direct) return cudaErrorNotSupported;
    if (layout == QhLayout::NC32HW32 && d.oc % 32 != 0) return cudaErrorNotSupported;
    if (V.engine == 1) {
        if (path != Path::Direct || layout != QhLayout::NHWC || !qh_cuda_wgmma_supported(d, V.bk) ||
            !qh_cuda_wgmma_device_ok())
            return cudaErrorNotSupported;
        return qh_cuda_wgmma_conv2d(d, V.bn, V.stages, V.bk, x, w, y, bias_s32, rq, res, s);
    }
    const int Kp = kpad_b(d);
    if ((long long)Kp > 65536 || d.m() >= (1LL << 31)) return cudaErrorInvalidValue;
    Params p{};
    p.w = w;
    p.y = y;
    p.OC = d.oc;
    p.OH = d.oh();
    p.OW = d.ow();
    p.M = int(d.m());
    p.Kp = Kp;
    p.zx4 = int(0x01010101u * unsigned(d.zx & 255));
    if (rq) {
        p.bias = rq->bias;
        p.mult = rq->mult;
        p.zy = rq->zy;
        p.lo = rq->lo;
        p.hi = rq->hi;
    }
    if (bias_s32) p.bias = bias_s32;
    if (res) {
        if (!rq || !res->residual) return cudaErrorInvalidValue;
        p.res = res->residual;
        p.zc = res->conv_zp;
        p.zr = res->res_zp;
        p.mc = res->conv_mult;
        p.mr = res->res_mult;
    }
    p.x = x;
    p.H = d.h; p.W = d.w; p.IC = d.ic; p.KW = d.kw; p.KH = d.kh;
    p.sh = d.sh; p.sw = d.sw; p.pt = d.pt; p.pl = d.pl;
    if (path == Path::RowGather4) {
        if (!workspace) return cudaErrorInvalidValue;
        long long pixels = (long long)d.n * d.h * d.w;
        int blocks = int(std::min<long long>((pixels + 255) / 256, 1 << 16));
        pad4_kernel<<<blocks, 256, 0, s>>>(x, static_cast<uint32_t *>(workspace), pixels, d.ic, d.zx);
        cudaError_t e = cudaGetLastError();
        if (e != cudaSuccess) return e;
        p.x = static_cast<const uint8_t *>(workspace);
        p.IC = 4;
    }
    if (path == Path::Im2col) {
        if (!workspace) return cudaErrorInvalidValue;
        uint8_t *col = static_cast<uint8_t *>(workspace);
        long long total4 = d.m() * (Kp / 4);
        int blocks = int(std::min<long long>((total4 + 255) / 256, 1 << 16));
        im2col_kernel<<<blocks, 256, 0, s>>>(x, col, d.h, d.w, d.ic, d.kh, d.kw, d.sh, d.sw, d.pt, d.pl,
                                              d.oh(), d.ow(), d.m(), Kp, d.zx);
        cudaError_t e = cudaGetLastError();
        if (e != cudaSuccess) return e;
        // 1x1 conv over col viewed as NHWC with H = OH, W = OW, IC = Kp.
        p.x = col;
        p.H = d.oh(); p.W = d.ow(); p.IC = Kp; p.KW = 1; p.KH = 1;
        p.sh = 1; p.sw = 1; p.pt = 0; p.pl = 0;
    }
    // Strides of the layout (the im2col matrix and the NHWC4 stem copy are NHWC).
    {
        const long long N = d.n, H = p.H, W = p.W, IC = p.IC, OH = p.OH, OW = p.OW, OC = p.OC;
        long long xsY, xsX, xsC = 32, ysY, ysX, ysC = 32;
        p.N = d.n;
        p.row_nhw = 1;
        p.y_linear = 1;
        switch (layout) {
        case QhLayout::NHWC:
            p.xsN = H * W * IC; xsY = W * IC; xsX = IC;
            p.ysN = OH * OW * OC; ysY = OW * OC; ysX = OC;
            break;
        case QhLayout::HWNC:  // rows (oy, ox, n): y's row m is at m*OC again
            p.xsN = IC; xsX = N * IC; xsY = W * N * IC;
            p.ysN = OC; ysX = N * OC; ysY = OW * N * OC;
            p.row_nhw = 0;
            break;
        case QhLayout::NC32HW32:
            p.xsN = IC * H * W; xsC = H * W * 32; xsY = W * 32; xsX = 32;
            p.ysN = OC * OH * OW; ysC = OH * OW * 32; ysY = OW * 32; ysX = 32;
            p.y_linear = 0;
            break;
        default: return cudaErrorInvalidValue;
        }
        // the per-stage tap offset and the strides are 32-bit in the kernel
        const long long tap_max = (d.kh - 1) * xsY + (d.kw - 1) * xsX + (IC / 32) * xsC;
        const long long lim = (1LL << 31) - 64;
        if (tap_max > lim || xsY > lim || ysY > lim || xsC > lim || ysC > lim) return cudaErrorNotSupported;
        p.xsY = int(xsY); p.xsX = int(xsX); p.xsC = int(xsC);
        p.ysY = int(ysY); p.ysX = int(ysX); p.ysC = int(ysC);
    }
    int kt = Kp / V.bk;
    int splitk = std::min(V.splitk, kt);
    p.kt_per_split = (kt + splitk - 1) / splitk;
    splitk = (kt + p.kt_per_split - 1) / p.kt_per_split;
    const int epi = res ? (a4 ? EPI_U4_ADD : EPI_U8_ADD) : rq ? (a4 ? EPI_U4 : EPI_U8) : splitk > 1 ? EPI_S32_ATOMIC : EPI_S32;
    if (epi == EPI_S32_ATOMIC) {
        cudaError_t e = cudaMemsetAsync(y, 0, (size_t)p.M * p.OC * sizeof(int32_t), s);
        if (e != cudaSuccess) return e;
    } else {
        splitk = 1;
    }
    if (a4) return qh_mma::dispatch_w4a4(epi, variant, p, splitk, s);                      // mma_conv2d_u4.cu
    if (d.wbits == 4) return qh_mma::dispatch_w4a8(gather, epi, variant, p, splitk, s);  // mma_conv2d_w4.cu
    return dispatch_operands<OPK_I8>(gather, epi, variant, p, splitk, s);
}

namespace {
// One thread a group of 32 k: 16 bytes of W4A8 fragment order in, 32 s8 bytes in k order out
// (byte j: low nibble -> k j, high nibble -> k 16 + j; sign-extended by arithmetic shifts).
__global__ void widen_w4a8_kernel(const uint4 *__restrict__ w4, uint4 *__restrict__ w8, long long groups) {
    const long long g = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (g >= groups) return;
    const uint4 in = w4[g];
    const uint8_t *b = reinterpret_cast<const uint8_t *>(&in);
    uint4 lo, hi;
    int8_t *l = reinterpret_cast<int8_t *>(&lo), *h = reinterpret_cast<int8_t *>(&hi);
#pragma unroll
    for (int j = 0; j < 16; ++j) {
        l[j] = int8_t(uint8_t(b[j] << 4)) >> 4;
        h[j] = int8_t(b[j]) >> 4;
    }
    w8[2 * g] = lo;
    w8[2 * g + 1] = hi;
}
}  // namespace

cudaError_t qh_cuda_widen_w4a8(const ConvDesc &d, const uint8_t *w4, int8_t *w8, cudaStream_t s) {
    if (d.wbits != 4 || d.abits != 8) return cudaErrorInvalidValue;
    const long long groups = (long long)d.oc * qh_cuda_conv2d_kpad(d) / 32;  // Kp % 32 == 0 on every path
    const int threads = 256;
    widen_w4a8_kernel<<<unsigned((groups + threads - 1) / threads), threads, 0, s>>>(
        reinterpret_cast<const uint4 *>(w4), reinterpret_cast<uint4 *>(w8), groups);
    return cudaGetLastError();
}

int qh_cuda_conv2d_num_variants() { return kNumVariants; }
const QhCudaConvVariant &qh_cuda_conv2d_variant(int i) { return kVariants[i]; }

bool qh_cuda_conv2d_direct(const ConvDesc &d) { return path_of(d) == Path::Direct; }
int qh_cuda_conv2d_kpad(const ConvDesc &d) {
    return d.abits == 4 ? 2 * kpad_b(byte_view(d)) : kpad_b(d);
}
size_t qh_cuda_packed_weight_bytes(const ConvDesc &d) {
    return (size_t)d.oc * qh_cuda_conv2d_kpad(d) * (d.wbits == 4 ? 1 : 2) / 2;
}
size_t qh_cuda_conv2d_workspace_bytes(const ConvDesc &d) {
    const ConvDesc b = byte_view(d);
    switch (path_of_b(b)) {
    case Path::Im2col: return (size_t)b.m() * kpad_b(b);
    case Path::RowGather4: return (size_t)d.n * d.h * d.w * 4;
    default: return 0;
    }
}

bool qh_cuda_pack_weights(const ConvDesc &d, const int8_t *w, int8_t *out) {
    const int Kp = qh_cuda_conv2d_kpad(d);
    const Path path = path_of(d);
    const bool rowg = path == Path::RowGather || path == Path::RowGather4;
    const int icl = path == Path::RowGather4 ? 4 : d.ic;  // pixel pitch in the gathered rows
    std::vector<int8_t> row(Kp);
    bool ok = true;
    for (int oc = 0; oc < d.oc; ++oc) {
        int8_t *o = d.wbits == 4 ? row.data() : out + (size_t)oc * Kp;
        for (int k = 0; k < Kp; ++k) o[k] = 0;
        for (int ky = 0; ky < d.kh; ++ky)
            for (int kx = 0; kx < d.kw; ++kx)
                for (int ic = 0; ic < d.ic; ++ic) {
                    int k = rowg ? ky * 32 + kx * icl + ic : (ky * d.kw + kx) * d.ic + ic;
                    o[k] = w[(((size_t)oc * d.ic + ic) * d.kh + ky) * d.kw + kx];
                }
        if (d.wbits != 4) continue;
        uint8_t *o4 = reinterpret_cast<uint8_t *>(out) + (size_t)oc * (Kp / 2);
        for (int k = 0; k < Kp; ++k) ok &= row[k] >= -8 && row[k] <= 7;
        auto nib = [&](int k) { return unsigned(row[k]) & 15u; };
        if (d.abits == 4) {  // plain nibble order: byte i = k 2i (low), 2i + 1 (high)
            for (int i = 0; i < Kp / 2; ++i) o4[i] = uint8_t(nib(2 * i) | nib(2 * i + 1) << 4);
        } else {  // W4A8 fragment order (mma_conv2d.cuh): per 32 k, byte 4t+j = k 4t+j | k 16+4t+j
            for (int g = 0; g < Kp / 32; ++g)
                for (int b = 0; b < 16; ++b) o4[g * 16 + b] = uint8_t(nib(32 * g + b) | nib(32 * g + 16 + b) << 4);
        }
    }
    return ok;
}

int qh_cuda_conv2d_pick_variant(const ConvDesc &d, int num_sms) {
    // Fill the machine: the largest tile that still gives >= two waves of CTAs, else smaller
    // tiles, else split-K for long reductions (measured on an H100, bench/cuda/NOTES.md).
    long long M = d.m();
    auto ctas = [&](int bm, int bn) { return ((M + bm - 1) / bm) * ((d.oc + bn - 1) / bn); };
    if (ctas(128, 128) >= 2LL * num_sms) {
        if (path_of(d) != Path::Direct) return 1;
        // compute-bound 3x3 with wide OC: 128x256 tiles, double-buffered fragments (v5)
        if (d.ic % 128 == 0) return d.oc >= 256 && d.kh * d.kw > 1 ? 12 : 11;
        return 14;
    }
    if (ctas(128, 64) >= num_sms) return 3;
    int kt = qh_cuda_conv2d_kpad(d) / 64;
    if (kt >= 64 && ctas(64, 64) * 4 <= 2LL * num_sms) return 7;
    if (kt >= 32 && ctas(64, 64) * 2 <= 2LL * num_sms) return 6;
    return 5;
}

cudaError_t qh_cuda_conv2d_u8s8s32_v(const ConvDesc &d, int variant, const uint8_t *x, const int8_t *w,
                                     int32_t *y, void *workspace, cudaStream_t s) {
    return qh_cuda_conv2d_run(d, variant, x, w, y, nullptr, nullptr, workspace, s);
}

cudaError_t qh_cuda_conv2d_u4s4s32_v(const ConvDesc &d, int variant, const uint8_t *x, const uint8_t *w,
                                     int32_t *y, void *workspace, cudaStream_t s) {
    ConvDesc d4 = d;
    d4.abits = d4.wbits = 4;
    return qh_cuda_conv2d_run(d4, variant, x, reinterpret_cast<const int8_t *>(w), y, nullptr, nullptr, workspace, s);
}

cudaError_t qh_cuda_conv2d_u4s4u4_v(const ConvDesc &d, int variant, const uint8_t *x, const uint8_t *w,
                                    const QhRequant &rq, uint8_t *y, void *workspace, cudaStream_t s) {
    ConvDesc d4 = d;
    d4.abits = d4.wbits = 4;
    return qh_cuda_conv2d_run(d4, variant, x, reinterpret_cast<const int8_t *>(w), y, &rq, nullptr, workspace, s);
}

cudaError_t qh_cuda_conv2d_add_u4s4u4_v(const ConvDesc &d, int variant, const uint8_t *x, const uint8_t *w,
                                        const QhRequant &rq, const QhResidual &res, uint8_t *y, void *workspace,
                                        cudaStream_t s) {
    ConvDesc d4 = d;
    d4.abits = d4.wbits = 4;
    return qh_cuda_conv2d_run(d4, variant, x, reinterpret_cast<const int8_t *>(w), y, &rq, &res, workspace, s);
}

cudaError_t qh_cuda_conv2d_u8s8u8_v(const ConvDesc &d, int variant, const uint8_t *x, const int8_t *w,
                                    const QhRequant &rq, uint8_t *y, void *workspace, cudaStream_t s) {
    return qh_cuda_conv2d_run(d, variant, x, w, y, &rq, nullptr, workspace, s);
}

cudaError_t qh_cuda_conv2d_u8s8s32_bias_v(const ConvDesc &d, int variant, const uint8_t *x, const int8_t *w,
                                          const int32_t *bias, int32_t *y, void *workspace, cudaStream_t s) {
    return qh_cuda_conv2d_run(d, variant, x, w, y, nullptr, nullptr, workspace, s, bias);
}

cudaError_t qh_cuda_conv2d_add_u8s8u8_v(const ConvDesc &d, int variant, const uint8_t *x, const int8_t *w,
                                        const QhRequant &rq, const QhResidual &res, uint8_t *y,
                                        void *workspace, cudaStream_t s) {
    return qh_cuda_conv2d_run(d, variant, x, w, y, &rq, &res, workspace, s);
}
