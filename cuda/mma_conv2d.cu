// Tensor-core int8 implicit-GEMM conv2d, host side: the tile variant list and the launch of each
// variant (the two must agree: dispatch() maps list indices to kernel instantiations), the A
// loader path of a shape, Kp, workspace, weight packing, the size heuristic and the entry points.
// Contract: mma_conv2d.cuh; device code: mma_kernel.cuh; wgmma tiles: wgmma_conv2d.cu.
#include "mma_conv2d.cuh"
#include "mma_kernel.cuh"
#include "mma_launch.cuh"
#include "wgmma_conv2d.cuh"

#include <algorithm>

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
constexpr int kFirstDirectOnly = 11;

enum class Path { Direct, RowGather4, RowGather, Im2col };
Path path_of(const ConvDesc &d) {
    if (d.ic % 64 == 0 && d.kh * d.kw <= 31) return Path::Direct;  // tap masks: 31 bits
    if (d.ic < 4 && d.kw * 4 <= 32) return Path::RowGather4;
    if (d.kw * d.ic <= 32) return Path::RowGather;
    return Path::Im2col;
}

template <int BM, int BN, int WM, int WN, int ST, int BK, int MODE, int EPI, bool DB = false, int MINB = 1>
cudaError_t launch_t(const Params &p, int splitk, cudaStream_t s) {
    constexpr auto kern = [] {
        if constexpr (MINB > 1) return conv_mma_kernel_minb<BM, BN, WM, WN, ST, BK, MODE, EPI, DB, MINB>;
        else return conv_mma_kernel<BM, BN, WM, WN, ST, BK, MODE, EPI, DB, MINB>;
    }();
    constexpr int pipe = ST * (BM + BN) * BK;
    // staged tile + one 8-byte output row offset per tile row (non-linear output layouts)
    constexpr int stage_c = EPI == EPI_S32_ATOMIC ? 0 : BM * staged_pitch<EPI, BN>() + BM * 8;
    constexpr int smem = pipe > stage_c ? pipe : stage_c;
    return launch_dynamic_smem<kern>(dim3((p.M + BM - 1) / BM, (p.OC + BN - 1) / BN, splitk), WM * WN * 32, smem, s, p);
}

template <int MODE, int EPI>
cudaError_t dispatch(int v, const Params &p, int splitk, cudaStream_t s) {
    switch (v) {
    case 0: return launch_t<128, 128, 2, 2, 4, 64, MODE, EPI>(p, splitk, s);
    case 1: return launch_t<128, 128, 2, 4, 4, 64, MODE, EPI>(p, splitk, s);
    case 2: return launch_t<128, 256, 2, 4, 3, 64, MODE, EPI>(p, splitk, s);
    case 3: return launch_t<128, 64, 2, 2, 4, 64, MODE, EPI>(p, splitk, s);
    case 4: return launch_t<64, 128, 2, 2, 4, 64, MODE, EPI>(p, splitk, s);
    case 5:
    case 6:
    case 7: return launch_t<64, 64, 2, 2, 4, 64, MODE, EPI>(p, splitk, s);
    case 8: return launch_t<128, 128, 2, 2, 3, 128, MODE, EPI>(p, splitk, s);
    case 9: return launch_t<128, 128, 2, 4, 3, 128, MODE, EPI>(p, splitk, s);
    case 10: return launch_t<128, 256, 2, 4, 3, 128, MODE, EPI>(p, splitk, s);
    default: break;
    }
    if constexpr (MODE == MODE_DIRECT) {
        switch (v) {
        case 11: return launch_t<128, 128, 2, 4, 3, 128, MODE, EPI, false, 2>(p, splitk, s);
        case 12: return launch_t<128, 256, 2, 4, 3, 128, MODE, EPI, true, 1>(p, splitk, s);
        case 13: return launch_t<128, 128, 2, 2, 3, 128, MODE, EPI, true, 2>(p, splitk, s);
        case 14: return launch_t<128, 128, 2, 4, 4, 64, MODE, EPI, false, 2>(p, splitk, s);
        default: break;
        }
    }
    return v >= kFirstDirectOnly && v < kNumVariants ? cudaErrorNotSupported : cudaErrorInvalidValue;
}

}  // namespace

cudaError_t qh_cuda_conv2d_run(const ConvDesc &d, int variant, const uint8_t *x, const int8_t *w, void *y,
                               const QhRequant *rq, const QhResidual *res, void *workspace, cudaStream_t s,
                               const int32_t *bias_s32, QhLayout layout) {
    if (variant < 0 || variant >= kNumVariants) return cudaErrorInvalidValue;
    if (d.oc % 8 != 0 || d.n <= 0 || d.oh() <= 0 || d.ow() <= 0) return cudaErrorInvalidValue;
    const QhCudaConvVariant &V = kVariants[variant];
    if (rq && V.splitk > 1) return cudaErrorInvalidValue;
    const Path path = path_of(d);
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
    const int Kp = qh_cuda_conv2d_kpad(d);
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
    if (res)
        return gather ? dispatch<MODE_ROWGATHER, EPI_U8_ADD>(variant, p, 1, s)
                      : dispatch<MODE_DIRECT, EPI_U8_ADD>(variant, p, 1, s);
    if (rq)
        return gather ? dispatch<MODE_ROWGATHER, EPI_U8>(variant, p, 1, s) : dispatch<MODE_DIRECT, EPI_U8>(variant, p, 1, s);
    if (splitk > 1) {
        cudaError_t e = cudaMemsetAsync(y, 0, (size_t)p.M * p.OC * sizeof(int32_t), s);
        if (e != cudaSuccess) return e;
        return gather ? dispatch<MODE_ROWGATHER, EPI_S32_ATOMIC>(variant, p, splitk, s)
                      : dispatch<MODE_DIRECT, EPI_S32_ATOMIC>(variant, p, splitk, s);
    }
    return gather ? dispatch<MODE_ROWGATHER, EPI_S32>(variant, p, 1, s) : dispatch<MODE_DIRECT, EPI_S32>(variant, p, 1, s);
}

int qh_cuda_conv2d_num_variants() { return kNumVariants; }
const QhCudaConvVariant &qh_cuda_conv2d_variant(int i) { return kVariants[i]; }

bool qh_cuda_conv2d_direct(const ConvDesc &d) { return path_of(d) == Path::Direct; }
int qh_cuda_conv2d_kpad(const ConvDesc &d) {
    switch (path_of(d)) {
    case Path::Direct: return d.k();
    case Path::RowGather4:
    case Path::RowGather: return (d.kh * 32 + KALIGN - 1) / KALIGN * KALIGN;
    default: return (d.k() + KALIGN - 1) / KALIGN * KALIGN;
    }
}
size_t qh_cuda_conv2d_workspace_bytes(const ConvDesc &d) {
    switch (path_of(d)) {
    case Path::Im2col: return (size_t)d.m() * qh_cuda_conv2d_kpad(d);
    case Path::RowGather4: return (size_t)d.n * d.h * d.w * 4;
    default: return 0;
    }
}

void qh_cuda_pack_weights(const ConvDesc &d, const int8_t *w, int8_t *out) {
    const int Kp = qh_cuda_conv2d_kpad(d);
    const Path path = path_of(d);
    const bool rowg = path == Path::RowGather || path == Path::RowGather4;
    const int icl = path == Path::RowGather4 ? 4 : d.ic;  // pixel pitch in the gathered rows
    for (int oc = 0; oc < d.oc; ++oc) {
        int8_t *o = out + (size_t)oc * Kp;
        for (int k = 0; k < Kp; ++k) o[k] = 0;
        for (int ky = 0; ky < d.kh; ++ky)
            for (int kx = 0; kx < d.kw; ++kx)
                for (int ic = 0; ic < d.ic; ++ic) {
                    int k = rowg ? ky * 32 + kx * icl + ic : (ky * d.kw + kx) * d.ic + ic;
                    o[k] = w[(((size_t)oc * d.ic + ic) * d.kh + ky) * d.kw + kx];
                }
    }
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
