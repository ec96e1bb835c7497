// The launches of the mma.sync tile variants (mma_conv2d.cu's variant list: dispatch() maps list
// indices to kernel instantiations; the two must agree), with the operand kind as a template
// parameter: included by mma_conv2d.cu (u8 x s8), mma_conv2d_w4.cu (u8 x s4, W4A8) and
// mma_conv2d_u4.cu (u4 x s4, W4A4), each instantiating its own kernels.
#pragma once
#include "mma_kernel.cuh"

namespace {

constexpr int kMmaVariants = 15;       // mma.sync entries of the variant list (indices 0..14)
constexpr int kFirstDirectOnly = 11;   // 11..14: direct path only

template <int BM, int BN, int WM, int WN, int ST, int BK, int MODE, int EPI, int OPK, bool DB = false, int MINB = 1>
cudaError_t launch_t(const Params &p, int splitk, cudaStream_t s) {
    constexpr auto kern = [] {
        if constexpr (MINB > 1) return conv_mma_kernel_minb<BM, BN, WM, WN, ST, BK, MODE, EPI, DB, MINB, OPK>;
        else return conv_mma_kernel<BM, BN, WM, WN, ST, BK, MODE, EPI, DB, MINB, OPK>;
    }();
    constexpr int pipe = ST * (BM * BK + BN * b_stage_row<BK, OPK>());
    // staged tile + one 8-byte output row offset per tile row (non-linear output layouts)
    constexpr int stage_c = EPI == EPI_S32_ATOMIC ? 0 : BM * staged_pitch<EPI, BN>() + BM * 8;
    constexpr int smem = pipe > stage_c ? pipe : stage_c;
    return launch_dynamic_smem<kern>(dim3((p.M + BM - 1) / BM, (p.OC + BN - 1) / BN, splitk), WM * WN * 32, smem, s, p);
}

template <int MODE, int EPI, int OPK>
cudaError_t dispatch(int v, const Params &p, int splitk, cudaStream_t s) {
    switch (v) {
    case 0: return launch_t<128, 128, 2, 2, 4, 64, MODE, EPI, OPK>(p, splitk, s);
    case 1: return launch_t<128, 128, 2, 4, 4, 64, MODE, EPI, OPK>(p, splitk, s);
    case 2: return launch_t<128, 256, 2, 4, 3, 64, MODE, EPI, OPK>(p, splitk, s);
    case 3: return launch_t<128, 64, 2, 2, 4, 64, MODE, EPI, OPK>(p, splitk, s);
    case 4: return launch_t<64, 128, 2, 2, 4, 64, MODE, EPI, OPK>(p, splitk, s);
    case 5:
    case 6:
    case 7: return launch_t<64, 64, 2, 2, 4, 64, MODE, EPI, OPK>(p, splitk, s);
    case 8: return launch_t<128, 128, 2, 2, 3, 128, MODE, EPI, OPK>(p, splitk, s);
    case 9: return launch_t<128, 128, 2, 4, 3, 128, MODE, EPI, OPK>(p, splitk, s);
    case 10: return launch_t<128, 256, 2, 4, 3, 128, MODE, EPI, OPK>(p, splitk, s);
    default: break;
    }
    if constexpr (MODE == MODE_DIRECT) {
        switch (v) {
        case 11: return launch_t<128, 128, 2, 4, 3, 128, MODE, EPI, OPK, false, 2>(p, splitk, s);
        case 12: return launch_t<128, 256, 2, 4, 3, 128, MODE, EPI, OPK, true, 1>(p, splitk, s);
        case 13: return launch_t<128, 128, 2, 2, 3, 128, MODE, EPI, OPK, true, 2>(p, splitk, s);
        case 14: return launch_t<128, 128, 2, 4, 4, 64, MODE, EPI, OPK, false, 2>(p, splitk, s);
        default: break;
        }
    }
    return v >= kFirstDirectOnly && v < kMmaVariants ? cudaErrorNotSupported : cudaErrorInvalidValue;
}

// The launch for one operand kind (OPK_I8 or OPK_W4A8): A loader by `gather`, epilogue by `epi`.
template <int OPK>
cudaError_t dispatch_operands(bool gather, int epi, int v, const Params &p, int splitk, cudaStream_t s) {
    switch (epi) {
    case EPI_U8_ADD:
        return gather ? dispatch<MODE_ROWGATHER, EPI_U8_ADD, OPK>(v, p, 1, s)
                      : dispatch<MODE_DIRECT, EPI_U8_ADD, OPK>(v, p, 1, s);
    case EPI_U8:
        return gather ? dispatch<MODE_ROWGATHER, EPI_U8, OPK>(v, p, 1, s) : dispatch<MODE_DIRECT, EPI_U8, OPK>(v, p, 1, s);
    case EPI_S32_ATOMIC:
        return gather ? dispatch<MODE_ROWGATHER, EPI_S32_ATOMIC, OPK>(v, p, splitk, s)
                      : dispatch<MODE_DIRECT, EPI_S32_ATOMIC, OPK>(v, p, splitk, s);
    default:
        return gather ? dispatch<MODE_ROWGATHER, EPI_S32, OPK>(v, p, 1, s) : dispatch<MODE_DIRECT, EPI_S32, OPK>(v, p, 1, s);
    }
}

}  // namespace
