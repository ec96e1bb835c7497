// Device code of the mma.sync tensor-core conv (contract: mma_conv2d.cuh): the kernel parameters,
// the PTX wrappers, shared-memory swizzle and tap masks of the A/B loaders, the main loop with its
// epilogue, and the two A-operand preparation kernels (NHWC4 pad for the stem, im2col).
// Included by mma_conv2d.cu only, which instantiates and launches every kernel (internal
// linkage: the definitions live in that one translation unit).
#pragma once
#include <cstddef>
#include <cstdint>

#include "conv_device.cuh"

namespace qh_mma {

// How the A (activation) tile is gathered.
enum { MODE_DIRECT = 0, MODE_ROWGATHER = 1 };
// Operand kinds (mma_conv2d.cuh, "4-bit weights"): u8 x s8; u8 x s4 (weights 4-bit in memory,
// widened to 16 * w as s8 fragments); u4 x s4 on the byte view (mma.sync m16n8k64 .u4.s4).
enum { OPK_I8 = 0, OPK_W4A8 = 1, OPK_W4A4 = 2 };

struct Params {
    const uint8_t *x;
    const int8_t *w;
    void *y;
    const int32_t *bias;
    const float *mult;
    int H, W, IC, OC, KW, sh, sw, pt, pl;
    int OH, OW;
    int M;     // N*OH*OW
    int Kp;    // packed K (multiple of BK)
    int KH;
    int kt_per_split;  // k-blocks per blockIdx.z
    int zx4;   // zx replicated into 4 bytes
    int zy, lo, hi;
    // EPI_U8_ADD: the conv result is first quantized with (mult, zc) to u8, then added to the
    // residual r (same NHWC shape as y) with QLinearAdd semantics.
    const uint8_t *res;
    int zc, zr;
    float mc, mr;
    // Layouts (direct path; see QhLayout in mma_launch.cuh). Element strides of x (u8) and y (and the
    // residual): x[n, iy, ix, c] at n*xsN + iy*xsY + ix*xsX + (c/32)*xsC + c%32, likewise y with
    // ys*. GEMM rows: m = (n*OH + oy)*OW + ox when row_nhw, else m = (oy*OW + ox)*N + n.
    // y_linear: y's row m starts at m*OC (NHWC with row_nhw, HWNC without).
    int N;
    long long xsN, ysN;
    int xsY, xsX, xsC, ysY, ysX, ysC;
    int row_nhw, y_linear;
};

// The launches of the other translation units (the same kernel template with another operand
// kind): mma_conv2d_w4.cu (OPK_W4A8, sm_90) and mma_conv2d_u4.cu (OPK_W4A4, sm_75/80/90).
cudaError_t dispatch_w4a8(bool gather, int epi, int variant, const Params &p, int splitk, cudaStream_t s);
cudaError_t dispatch_w4a4(int epi, int variant, const Params &p, int splitk, cudaStream_t s);

}  // namespace qh_mma

namespace {

using namespace qh_conv;
using namespace qh_mma;

// If active: ok ? cp.async 16 bytes src -> dst : st.shared zx4 x4 at dst; nothing otherwise.
// Predicated, no branch, so the compiler may interleave it with the MMAs. (A zx line in global
// memory instead would be one address that every CTA reads for padding taps: an L2 hot spot,
// 3-10x slower in v5, bench/cuda/NOTES.md.)
__device__ __forceinline__ void cp_async16_or_fill(unsigned dst, const void *src, bool ok, int zx4, bool active) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
    // sm_75 (no cp.async): a synchronous 16-byte load and store
    if (active) {
        uint4 v = make_uint4(zx4, zx4, zx4, zx4);
        if (ok) v = __ldg(reinterpret_cast<const uint4 *>(src));
        asm volatile("st.shared.v4.b32 [%0], {%1, %2, %3, %4};\n" ::"r"(dst), "r"(v.x), "r"(v.y), "r"(v.z), "r"(v.w));
    }
    return;
#endif
    asm volatile(
        "{\n.reg .pred a, o, c, f;\nsetp.ne.b32 a, %3, 0;\nsetp.ne.b32 o, %2, 0;\nand.pred c, a, o;\n"
        "not.pred o, o;\nand.pred f, a, o;\n@c cp.async.cg.shared.global [%0], [%1], 16;\n"
        "@f st.shared.v4.b32 [%0], {%4, %4, %4, %4};\n}\n" ::"r"(dst),
        "l"(src), "r"((int)ok), "r"((int)active), "r"(zx4));
}
__device__ __forceinline__ void cp_async16_if(unsigned dst, const void *src, bool ok) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
    if (ok) {
        uint4 v = __ldg(reinterpret_cast<const uint4 *>(src));
        asm volatile("st.shared.v4.b32 [%0], {%1, %2, %3, %4};\n" ::"r"(dst), "r"(v.x), "r"(v.y), "r"(v.z), "r"(v.w));
    }
    return;
#endif
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %2, 0;\n@p cp.async.cg.shared.global [%0], [%1], 16;\n}\n" ::"r"(dst),
                 "l"(src), "r"((int)ok));
}
__device__ __forceinline__ void ldmatrix_x4(unsigned addr, unsigned &r0, unsigned &r1, unsigned &r2,
                                            unsigned &r3) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
                 : "r"(addr));
}
__device__ __forceinline__ void mma_u8s8(int (&c)[4], const unsigned (&a)[4], unsigned b0, unsigned b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k32.row.col.s32.u8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// u4 x s4, m16n8k64 (the byte view of m16n8k32's fragments: a0 row g, k 8t..8t+7; a1 row g+8;
// a2/a3 k + 32; b0 col g, k 8t..8t+7, b1 k + 32). sm_75 has only m8n8k32: four of them.
__device__ __forceinline__ void mma_u4s4(int (&c)[4], const unsigned (&a)[4], unsigned b0, unsigned b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
    asm volatile(
        "mma.sync.aligned.m8n8k32.row.col.s32.u4.s4.s32 {%0,%1}, {%2}, {%3}, {%0,%1};\n"
        "mma.sync.aligned.m8n8k32.row.col.s32.u4.s4.s32 {%0,%1}, {%4}, {%5}, {%0,%1};\n"
        : "+r"(c[0]), "+r"(c[1])
        : "r"(a[0]), "r"(b0), "r"(a[2]), "r"(b1));
    asm volatile(
        "mma.sync.aligned.m8n8k32.row.col.s32.u4.s4.s32 {%0,%1}, {%2}, {%3}, {%0,%1};\n"
        "mma.sync.aligned.m8n8k32.row.col.s32.u4.s4.s32 {%0,%1}, {%4}, {%5}, {%0,%1};\n"
        : "+r"(c[2]), "+r"(c[3])
        : "r"(a[1]), "r"(b0), "r"(a[3]), "r"(b1));
#else
    asm volatile(
        "mma.sync.aligned.m16n8k64.row.col.s32.u4.s4.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#endif
}
template <int OPK>
__device__ __forceinline__ void mma_op(int (&c)[4], const unsigned (&a)[4], unsigned b0, unsigned b1) {
    if constexpr (OPK == OPK_W4A4) mma_u4s4(c, a, b0, b1);
    else mma_u8s8(c, a, b0, b1);
}

// The B (weight) tile in shared memory: rows of BK bytes (swz<BK>), or with 4-bit weights under
// u8 activations (W4A8) rows of BK/2 bytes: 64 bytes (swz<64>) or 32 bytes, 2 chunks, chunk c of
// row r at r*32 + ((c ^ ((r >> 2) & 1)) << 4), so the 8 consecutive rows an ldmatrix phase reads
// (one logical chunk) hit 8 distinct 16-byte bank groups.
template <int BK>
__device__ __forceinline__ unsigned swz(int r, int c);
template <int BKB>
__device__ __forceinline__ unsigned swz_b(int r, int c) {
    if constexpr (BKB == 32)
        return r * 32 + ((c ^ ((r >> 2) & 1)) << 4);
    else
        return swz<BKB>(r, c);
}

// Shared tile rows are 64 bytes = 4 chunks of 16 bytes. Chunk c of row r lives at chunk
// c ^ ((r >> 1) & 3): the 8 rows one ldmatrix phase reads (same logical chunk) then hit 8
// distinct 16-byte bank groups (r & 1 picks the half of the 128-byte line).
// With 128-byte rows (BK = 128) chunk c of row r lives at c ^ (r & 7), the same idea.
template <int BK>
__device__ __forceinline__ unsigned swz(int r, int c) {
    if constexpr (BK == 64)
        return r * 64 + ((c ^ ((r >> 1) & 3)) << 4);
    else
        return r * 128 + ((c ^ (r & 7)) << 4);
}

// Tap mask of one output pixel whose top-left tap is (iy0, ix0): bit ky*KW + kx is set when
// (iy0 + ky, ix0 + kx) is inside the H x W image. Valid taps form a rectangle, ky in
// [max(0, -iy0), min(KH, H - iy0)) x kx in [max(0, -ix0), min(KW, W - ix0)); KH*KW <= 31, so bit
// 31 stays clear (the tap index of positions past the end of K).
__host__ __device__ __forceinline__ unsigned tap_mask(int iy0, int ix0, int H, int W, int KH, int KW) {
    const int ylo = iy0 < 0 ? -iy0 : 0, yhi = H - iy0 < KH ? H - iy0 : KH;
    const int xlo = ix0 < 0 ? -ix0 : 0, xhi = W - ix0 < KW ? W - ix0 : KW;
    if (ylo >= yhi || xlo >= xhi) return 0u;
    const unsigned row = ((1u << (xhi - xlo)) - 1u) << xlo;
    unsigned m = 0u;
    for (int ky = ylo; ky < yhi; ++ky) m |= row << (ky * KW);
    return m;
}


// Fragment addressing, shared by both main loops. ldmatrix lane addressing (fragment layouts of
// m16n8k32): A x4: lanes 0-7 rows 0-7 k0-15 (a0), 8-15 rows 8-15 k0-15 (a1), 16-23 rows 0-7
// k16-31 (a2), 24-31 rows 8-15 k16-31 (a3). B x4 ([n][k] rows): n0-7 k0-15 / n0-7 k16-31 /
// n8-15 k0-15 / n8-15 k16-31 = b0,b1 of tile j and b0,b1 of tile j+1.
// W4A8 (4-bit B rows, one 16-byte chunk = 32 k = one k-step): ldmatrix.x4 reads 4 n8 tiles of
// k-step kk (lane l addresses row b_row4 + (l >> 3) * 8 of n tile j.. j+3: b_row4 = warp column +
// (l & 7) + (l >> 3) * 8); each register r is widened to b0 = (r << 4) & 0xF0F0F0F0 (k 4t..4t+3
// from the low nibbles) and b1 = r & 0xF0F0F0F0 (k 16 + 4t.. from the high nibbles): 16 * w.
template <int MI, int NI, int BK, int OPK = OPK_I8>
__device__ __forceinline__ void load_frags(unsigned (&af)[MI][4], unsigned (&bf)[NI][2], unsigned cA, unsigned cB,
                                           int a_row, int a_chk, int b_row, int b_chk, int kk) {
#pragma unroll
    for (int i = 0; i < MI; ++i)
        ldmatrix_x4(cA + swz<BK>(a_row + i * 16, a_chk + 2 * kk), af[i][0], af[i][1], af[i][2], af[i][3]);
    if constexpr (OPK == OPK_W4A8) {
        static_assert(NI % 4 == 0, "W4A8: four n8 tiles per ldmatrix.x4");
#pragma unroll
        for (int j = 0; j < NI; j += 4) {
            unsigned r[4];
            ldmatrix_x4(cB + swz_b<BK / 2>(b_row + j * 8, kk), r[0], r[1], r[2], r[3]);
#pragma unroll
            for (int q = 0; q < 4; ++q) {
                bf[j + q][0] = (r[q] << 4) & 0xF0F0F0F0u;
                bf[j + q][1] = r[q] & 0xF0F0F0F0u;
            }
        }
    } else {
#pragma unroll
        for (int j = 0; j < NI; j += 2)
            ldmatrix_x4(cB + swz<BK>(b_row + j * 8, b_chk + 2 * kk), bf[j][0], bf[j][1], bf[j + 1][0], bf[j + 1][1]);
    }
}

// DB: register double buffering of the A/B fragments: the fragments of k-step kk+1 are loaded
// while the MMAs of kk issue, across the stage boundary too (the barrier that makes stage kt+1
// visible moves before the last k-step's MMAs of stage kt). MINB: __launch_bounds__ min blocks.
// MINB = 1 means no minimum: plain __launch_bounds__(threads), as in v3 (an explicit minimum of 1
// lets ptxas spend up to 255 registers, which halved the occupancy of the small variants in v4/v5).
template <int BM, int BN, int WARPS_M, int WARPS_N, int STAGES, int BK, int MODE, int EPI, bool DB, int MINB, int OPK>
__device__ __forceinline__ void conv_mma_body(const Params &p);

template <int BM, int BN, int WARPS_M, int WARPS_N, int STAGES, int BK, int MODE, int EPI, bool DB, int MINB, int OPK>
__global__ void __launch_bounds__(WARPS_M *WARPS_N * 32, MINB) conv_mma_kernel_minb(const Params p) {
    conv_mma_body<BM, BN, WARPS_M, WARPS_N, STAGES, BK, MODE, EPI, DB, MINB, OPK>(p);
}
template <int BM, int BN, int WARPS_M, int WARPS_N, int STAGES, int BK, int MODE, int EPI, bool DB, int MINB, int OPK>
__global__ void __launch_bounds__(WARPS_M *WARPS_N * 32) conv_mma_kernel(const Params p) {
    conv_mma_body<BM, BN, WARPS_M, WARPS_N, STAGES, BK, MODE, EPI, DB, MINB, OPK>(p);
}

// Bytes of one B (weight) row of a K stage: BK, or BK / 2 with 4-bit weights under u8 activations.
template <int BK, int OPK>
__host__ __device__ constexpr int b_stage_row() { return OPK == OPK_W4A8 ? BK / 2 : BK; }

template <int BM, int BN, int WARPS_M, int WARPS_N, int STAGES, int BK, int MODE, int EPI, bool DB, int MINB, int OPK>
__device__ __forceinline__ void conv_mma_body(const Params &p) {
    constexpr int THREADS = WARPS_M * WARPS_N * 32;
    constexpr int WTM = BM / WARPS_M, WTN = BN / WARPS_N;
    constexpr int MI = WTM / 16, NI = WTN / 8;
    static_assert(NI % 2 == 0, "B fragments load two n8 tiles per ldmatrix.x4");
    constexpr int CH = BK / 16;  // 16-byte chunks per tile row
    constexpr int KKS = BK / 32;  // mma k-steps per stage
    constexpr int BKB = b_stage_row<BK, OPK>();  // bytes of a B row per stage
    constexpr int CHB = BKB / 16;                 // its 16-byte chunks
    constexpr int A_ITERS = BM * CH / THREADS, B_ITERS = BN * CHB / THREADS;
    static_assert(A_ITERS * THREADS == BM * CH && B_ITERS * THREADS == BN * CHB, "tile/threads");
    constexpr int ROWS_PER_ITER = THREADS / CH, B_ROWS_PER_ITER = THREADS / CHB;
    constexpr int STAGE_A = BM * BK, STAGE_B = BN * BKB;

    extern __shared__ __align__(128) uint8_t smem[];
    const unsigned sA = smem_u32(smem), sB = sA + STAGES * STAGE_A;

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int warp_m = warp / WARPS_N, warp_n = warp % WARPS_N;
    const int m0 = blockIdx.x * BM, n0 = blockIdx.y * BN;
    const int kt_begin = blockIdx.z * p.kt_per_split;
    const int kt_total = p.Kp / BK;
    const int kt_end = min(kt_total, kt_begin + p.kt_per_split);
    const int KT = kt_end - kt_begin;

    // Per-thread A rows (GEMM row m = one output pixel, decomposed by p.row_nhw):
    // direct: a_ptr = x + pixel offset of the top-left tap (iy0, ix0) + this thread's chunk
    // offset within a 32-channel block pair; the per-stage tap offset (uniform) is added at load.
    // a_mask bit t (t = ky*KW + kx < KH*KW <= 31) is set when tap t of the row is inside the
    // image; bit 31 is never set (the tap index of positions past the end of K).
    // row gather: a_ptr = x + image offset (NHWC), a_iy0/a_ix0 the top-left tap.
    const int chunk = tid % CH;
    const uint8_t *a_ptr[A_ITERS];
    int a_iy0[A_ITERS], a_ix0[A_ITERS];
    unsigned a_mask[A_ITERS];
    const int ohw = p.OH * p.OW;
#pragma unroll
    for (int i = 0; i < A_ITERS; ++i) {
        int m = m0 + tid / CH + i * ROWS_PER_ITER;
        a_ptr[i] = p.x;
        a_iy0[i] = -(1 << 28);  // always outside: filled with zx, never stored
        a_ix0[i] = 0;
        a_mask[i] = 0;
        if (m < p.M) {
            int nimg, r;
            if (p.row_nhw) { nimg = m / ohw; r = m - nimg * ohw; }
            else { r = m / p.N; nimg = m - r * p.N; }
            int oy = r / p.OW, ox = r - oy * p.OW;
            a_iy0[i] = oy * p.sh - p.pt;
            a_ix0[i] = ox * p.sw - p.pl;
            long long off = (long long)nimg * p.xsN;
            if constexpr (MODE == MODE_DIRECT) {
                off += (long long)a_iy0[i] * p.xsY + (long long)a_ix0[i] * p.xsX + (chunk >> 1) * p.xsC + (chunk & 1) * 16;
                a_mask[i] = tap_mask(a_iy0[i], a_ix0[i], p.H, p.W, p.KH, p.KW);
            }
            a_ptr[i] = p.x + off;
        }
    }
    // B rows past OC are not loaded: their shared-memory rows hold stale bytes whose products
    // land in columns >= OC, which are never stored. (Clamping them to row OC-1 instead makes
    // every CTA read one row: an L2 hot spot, v5.) 32-bit offsets from p.w (OC * Kp < 2^31),
    // computed at each load (registers are scarce).
    const int b_row0 = n0 + tid / CHB, b_chunk = tid % CHB;
    const int b_pitch = OPK == OPK_W4A8 ? p.Kp / 2 : p.Kp;  // bytes of a packed weight row

    // Load-side position in K: k-block kt -> (ky, kx, ic0) (direct mode); ld_off = the tap's
    // offset ky*xsY + kx*xsX + (ic0/32)*xsC (ic0 is a multiple of BK >= 64), ld_tap = ky*KW + kx
    // (31 once past the end of K).
    int ld_kt = kt_begin;
    int ld_ic0 = 0, ld_ky = 0, ld_kx = 0, ld_off = 0, ld_tap = 0;  // ld_kt is global (split-K)
    if constexpr (MODE == MODE_DIRECT) {
        int kk = kt_begin * BK;
        int tap = kk / p.IC;
        ld_ic0 = kk - tap * p.IC;
        ld_ky = tap / p.KW;
        ld_kx = tap - ld_ky * p.KW;
        ld_off = ld_ky * p.xsY + ld_kx * p.xsX + (ld_ic0 >> 5) * p.xsC;
        ld_tap = min(tap, 31);
    }

    // One 16-byte chunk of the A (row i) or B (row j) tile of the current load position into
    // stage `stage`, if `active` (the position is inside this CTA's K range); branch-free, so
    // the compiler may interleave these with the MMAs.
    auto load_a = [&](int stage, int i, bool active) {
        const int row = tid / CH + i * ROWS_PER_ITER;
        const bool ok = (a_mask[i] >> ld_tap) & 1u;
        cp_async16_or_fill(sA + stage * STAGE_A + swz<BK>(row, chunk), a_ptr[i] + ld_off, ok, p.zx4, active);
    };
    auto load_b = [&](int stage, int j, bool active) {
        const int row = tid / CHB + j * B_ROWS_PER_ITER;
        const int oc = b_row0 + j * B_ROWS_PER_ITER;
        cp_async16_if(sB + stage * STAGE_B + swz_b<BKB>(row, b_chunk),
                      p.w + (oc * b_pitch + b_chunk * 16 + ld_kt * BKB), active && oc < p.OC);
    };
    auto advance = [&]() {
        ++ld_kt;
        if constexpr (MODE == MODE_DIRECT) {
            next_k_stage(ld_ic0, ld_kx, ld_ky, BK, p.IC, p.KW);
            ld_off = ld_ky * p.xsY + ld_kx * p.xsX + (ld_ic0 >> 5) * p.xsC;
            ld_tap = min(ld_ky * p.KW + ld_kx, 31);
        }
    };

    auto load_stage = [&](int stage, bool active) {
        const unsigned dA = sA + stage * STAGE_A;
        if constexpr (MODE == MODE_DIRECT) {
#pragma unroll
            for (int i = 0; i < A_ITERS; ++i) load_a(stage, i, active);
        } else {
            // Row gather (small IC, e.g. the 7x7 stem): k = ky*32 + j, j = kx*IC + ic < KW*IC,
            // i.e. for each ky the KW*IC bytes x[n, iy, ix0 .. ix0+KW-1, :] are contiguous.
            const int kglob = ld_kt * BK + chunk * 16;
            const int ky = kglob >> 5, j0 = kglob & 31;
            const int seg = p.KW * p.IC;
            const int kx0 = j0 / p.IC, ic0 = j0 - kx0 * p.IC;
#pragma unroll
            for (int i = 0; i < A_ITERS; ++i) {
                int row = tid / CH + i * ROWS_PER_ITER;
                int iy = a_iy0[i] + ky;
                unsigned dst = dA + swz<BK>(row, chunk);
                if (p.IC == 4 && ky < p.KH && (unsigned)iy < (unsigned)p.H) {
                    // NHWC4 input (pad4_kernel): 4 whole pixels per 16-byte chunk, 4-byte cp.async
                    // each (asynchronous, like the direct path); zx for pixels outside the image.
                    const uint8_t *src = a_ptr[i] + (ptrdiff_t)iy * p.W * 4;
#pragma unroll
                    for (int q = 0; q < 4; ++q) {
                        int kx = (j0 >> 2) + q;
                        int ix = a_ix0[i] + kx;
                        if (kx < p.KW && (unsigned)ix < (unsigned)p.W)
                            asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(dst + 4 * q),
                                         "l"(src + (ptrdiff_t)ix * 4));
                        else
                            asm volatile("st.shared.b32 [%0], %1;\n" ::"r"(dst + 4 * q), "r"(p.zx4));
                    }
                } else if (ky < p.KH && (unsigned)iy < (unsigned)p.H) {
                    const uint8_t *src = a_ptr[i] + (ptrdiff_t)iy * p.W * p.IC;
                    unsigned v[4] = {0, 0, 0, 0};
                    int kx = kx0, ic = ic0;
#pragma unroll
                    for (int b = 0; b < 16; ++b) {
                        int jj = j0 + b;
                        int ix = a_ix0[i] + kx;
                        unsigned val = (unsigned)p.zx4 & 255u;
                        if (jj < seg && (unsigned)ix < (unsigned)p.W) val = __ldg(src + (ptrdiff_t)ix * p.IC + ic);
                        v[b >> 2] |= val << (8 * (b & 3));
                        if (++ic == p.IC) { ic = 0; ++kx; }
                    }
                    asm volatile("st.shared.v4.b32 [%0], {%1, %2, %3, %4};\n" ::"r"(dst), "r"(v[0]), "r"(v[1]),
                                 "r"(v[2]), "r"(v[3]));
                } else {
                    st_shared_v4(dst, p.zx4);
                }
            }
        }
#pragma unroll
        for (int j = 0; j < B_ITERS; ++j) load_b(stage, j, active);
        advance();
    };

    int acc[MI][NI][4];
#pragma unroll
    for (int i = 0; i < MI; ++i)
#pragma unroll
        for (int j = 0; j < NI; ++j)
#pragma unroll
            for (int q = 0; q < 4; ++q) acc[i][j][q] = 0;

#pragma unroll
    for (int s = 0; s < STAGES - 1; ++s) {
        if (MODE == MODE_DIRECT) load_stage(s, s < KT);
        else if (s < KT) load_stage(s, true);
        cp_async_commit();
    }

    const int a_row = warp_m * WTM + (lane & 15);
    const int a_chk = lane >> 4;                         // + 2*kk
    const int b_row = OPK == OPK_W4A8 ? warp_n * WTN + (lane & 7) + ((lane >> 3) << 3)
                                      : warp_n * WTN + (lane & 7) + ((lane >> 4) << 3);
    const int b_chk = (lane >> 3) & 1;                   // + 2*kk

    if constexpr (!DB) {
        for (int kt = 0; kt < KT; ++kt) {
            cp_async_wait<STAGES - 2>();
            __syncthreads();
            {
                int nk = kt + STAGES - 1;
                if (MODE == MODE_DIRECT) load_stage(nk % STAGES, nk < KT);
                else if (nk < KT) load_stage(nk % STAGES, true);
                cp_async_commit();
            }
            const int stage = kt % STAGES;
            const unsigned cA = sA + stage * STAGE_A, cB = sB + stage * STAGE_B;
#pragma unroll
            for (int kk = 0; kk < KKS; ++kk) {
                unsigned af[MI][4], bf[NI][2];
                load_frags<MI, NI, BK, OPK>(af, bf, cA, cB, a_row, a_chk, b_row, b_chk, kk);
#pragma unroll
                for (int i = 0; i < MI; ++i)
#pragma unroll
                    for (int j = 0; j < NI; ++j) mma_op<OPK>(acc[i][j], af[i], bf[j][0], bf[j][1]);
            }
        }
    } else {
        // Barrier accounting: the prologue committed groups 0..S-2 (stages 0..S-2). Iteration kt
        // loads stage kt+S-1 into buffer wr = (kt-1) % S during k-steps 0..KKS-2 (its chunks
        // spread over them, interleaved with the MMAs) and commits it as group S-1+kt at
        // kk = KKS-1. Buffer (kt-1) % S was last read (its fragments) at kk = KKS-2 of iteration
        // kt-1, before that iteration's barrier. The barrier at kk = KKS-1 of iteration kt
        // follows a wait for at most S-2 pending groups, so groups 0..kt+1 (stage kt+1) have
        // landed and are visible to every warp after it.
        static_assert(KKS % 2 == 0, "fragment buffers alternate by kk parity");
        static_assert(MODE == MODE_DIRECT, "the double-buffered loop uses the direct loader");
        constexpr int LOADS = A_ITERS + B_ITERS, PER_STEP = (LOADS + KKS - 2) / (KKS - 1);
        unsigned af[2][MI][4], bf[2][NI][2];
        cp_async_wait<STAGES - 2>();
        __syncthreads();
        int rd = 0, wr = STAGES - 1;  // stage buffers being read / written
        unsigned cA = sA, cB = sB;
        if (KT > 0) load_frags<MI, NI, BK, OPK>(af[0], bf[0], cA, cB, a_row, a_chk, b_row, b_chk, 0);
        for (int kt = 0; kt < KT; ++kt) {
#pragma unroll
            for (int kk = 0; kk < KKS; ++kk) {
                if (kk == KKS - 1) {
                    cp_async_commit();
                    cp_async_wait<STAGES - 2>();
                    __syncthreads();
                    rd = rd + 1 == STAGES ? 0 : rd + 1;
                    wr = wr + 1 == STAGES ? 0 : wr + 1;
                    cA = sA + rd * STAGE_A;
                    cB = sB + rd * STAGE_B;
                    if (kt + 1 < KT)
                        load_frags<MI, NI, BK, OPK>(af[(kk + 1) & 1], bf[(kk + 1) & 1], cA, cB, a_row, a_chk, b_row, b_chk, 0);
                } else {
                    load_frags<MI, NI, BK, OPK>(af[(kk + 1) & 1], bf[(kk + 1) & 1], cA, cB, a_row, a_chk, b_row, b_chk, kk + 1);
                    const bool active = kt + STAGES - 1 < KT;
#pragma unroll
                    for (int q = 0; q < LOADS; ++q)
                        if (q / PER_STEP == kk) {
                            if (q < A_ITERS) load_a(wr, q, active);
                            else load_b(wr, q - A_ITERS, active);
                        }
                    if (kk == KKS - 2) advance();
                }
#pragma unroll
                for (int i = 0; i < MI; ++i)
#pragma unroll
                    for (int j = 0; j < NI; ++j) mma_op<OPK>(acc[i][j], af[kk & 1][i], bf[kk & 1][j][0], bf[kk & 1][j][1]);
            }
        }
    }
    cp_async_wait<0>();
    if constexpr (OPK == OPK_W4A8) {  // the tensor cores summed x * 16w: exact, |acc| < 2^31
#pragma unroll
        for (int i = 0; i < MI; ++i)
#pragma unroll
            for (int j = 0; j < NI; ++j)
#pragma unroll
                for (int q = 0; q < 4; ++q) acc[i][j][q] >>= 4;
    }

    // Epilogue. Fragment: c0,c1 at (row g, cols 2t, 2t+1), c2,c3 at row g+8.
    // Output element (m, oc) lives at yoff(m) + (oc/32)*ysC + oc%32, yoff(m) = m*OC when
    // p.y_linear, else n*ysN + oy*ysY + ox*ysX (rows decomposed as for A).
    const int g = lane >> 2, t4 = lane & 3;
    auto row_off = [&](int m) -> long long {
        if (p.y_linear) return (long long)m * p.OC;
        int nimg, r;
        if (p.row_nhw) { nimg = m / ohw; r = m - nimg * ohw; }
        else { r = m / p.N; nimg = m - r * p.N; }
        int oy = r / p.OW, ox = r - oy * p.OW;
        return (long long)nimg * p.ysN + (long long)oy * p.ysY + (long long)ox * p.ysX;
    };
    auto col_off = [&](int oc) -> int { return (oc >> 5) * p.ysC + (oc & 31); };
    if constexpr (EPI == EPI_S32_ATOMIC) {
#pragma unroll
        for (int i = 0; i < MI; ++i)
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                int m = m0 + warp_m * WTM + i * 16 + g + h * 8;
                if (m >= p.M) continue;
                const long long ro = row_off(m);
#pragma unroll
                for (int j = 0; j < NI; ++j) {
                    int oc = n0 + warp_n * WTN + j * 8 + 2 * t4;
                    if (oc >= p.OC) continue;
                    int32_t *y = static_cast<int32_t *>(p.y) + ro + col_off(oc);
                    // s32 with bias: the first K split adds it (once per output)
                    const int b0 = p.bias && blockIdx.z == 0 ? p.bias[oc] : 0;
                    const int b1 = p.bias && blockIdx.z == 0 ? p.bias[oc + 1] : 0;
                    atomicAdd(y, acc[i][j][2 * h] + b0);
                    atomicAdd(y + 1, acc[i][j][2 * h + 1] + b1);
                }
            }
        return;
    } else {
        // Stage the tile in shared memory (the pipeline buffers are free now), then write whole
        // rows with 16-byte coalesced stores.
        __syncthreads();
        uint8_t *ct = smem;
        // Non-linear output layouts: row offsets once per row, after the staged tile.
        long long *rofs = reinterpret_cast<long long *>(smem + BM * staged_pitch<EPI, BN>());
        if (!p.y_linear)
            for (int r = tid; r < BM; r += THREADS) rofs[r] = m0 + r < p.M ? row_off(m0 + r) : 0;
#pragma unroll
        for (int j = 0; j < NI; ++j) {
            const int col = warp_n * WTN + j * 8 + 2 * t4;
            const ChannelPair c = channel_pair<EPI>(p, min(n0 + col, p.OC - 2));
#pragma unroll
            for (int i = 0; i < MI; ++i)
#pragma unroll
                for (int h = 0; h < 2; ++h)
                    stage_pair<EPI, BN>(p, ct, warp_m * WTM + i * 16 + g + h * 8, col, c, acc[i][j][2 * h],
                                        acc[i][j][2 * h + 1]);
        }
        __syncthreads();
        store_staged_tile<EPI, BM, BN, THREADS>(p, ct, tid, m0, n0, [&](int row, int m, int oc) {
            return (p.y_linear ? (long long)m * p.OC : rofs[row]) + col_off(oc);
        });
    }
}

// NHWC with IC < 4 -> NHWC4 (channels >= IC set to zx; their weights are zero).
__global__ void pad4_kernel(const uint8_t *__restrict__ x, uint32_t *__restrict__ x4, long long pixels, int IC,
                            int zx) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < pixels;
         i += (long long)gridDim.x * blockDim.x) {
        uint32_t v = 0;
        for (int c = 0; c < 4; ++c) v |= uint32_t(c < IC ? x[i * IC + c] : zx) << (8 * c);
        x4[i] = v;
    }
}

// im2col: col[m][k], k = (ky*KW + kx)*IC + ic, Kp columns, zx outside the image and for k >= K.
__global__ void im2col_kernel(const uint8_t *__restrict__ x, uint8_t *__restrict__ col, int H, int W, int IC,
                              int KH, int KW, int sh, int sw, int pt, int pl, int OH, int OW, long long M,
                              int Kp, int zx) {
    // one thread per 4 output bytes
    long long total4 = M * (Kp / 4);
    for (long long idx = blockIdx.x * (long long)blockDim.x + threadIdx.x; idx < total4;
         idx += (long long)gridDim.x * blockDim.x) {
        long long m = idx / (Kp / 4);
        int k0 = int(idx - m * (Kp / 4)) * 4;
        int ohw = OH * OW;
        int nimg = int(m / ohw), r = int(m - (long long)nimg * ohw);
        int oy = r / OW, ox = r - oy * OW;
        unsigned v = 0;
        for (int b = 0; b < 4; ++b) {
            int k = k0 + b;
            int val = zx;
            if (k < KH * KW * IC) {
                int tap = k / IC, ic = k - tap * IC;
                int ky = tap / KW, kx = tap - ky * KW;
                int iy = oy * sh - pt + ky, ix = ox * sw - pl + kx;
                if ((unsigned)iy < (unsigned)H && (unsigned)ix < (unsigned)W)
                    val = x[(((size_t)nimg * H + iy) * W + ix) * IC + ic];
            }
            v |= unsigned(val) << (8 * b);
        }
        reinterpret_cast<unsigned *>(col)[idx] = v;
    }
}

}  // namespace
