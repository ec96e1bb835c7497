// Hopper wgmma int8 implicit-GEMM conv2d. See wgmma_conv2d.cuh for the contract.
#include "wgmma_conv2d.cuh"

#include "conv_device.cuh"

namespace {

using namespace qh_conv;

struct Params {
    const uint8_t *x;
    const int8_t *w;
    void *y;
    const int32_t *bias;
    const float *mult;
    int H, W, IC, OC, KW, KH, sh, sw, pt, pl, OH, OW, M, K;
    int zx4, zy, lo, hi;
    const uint8_t *res;
    int zc, zr;
    float mc, mr;
};

__device__ __forceinline__ uint4 ld_shared_v4(unsigned src) {
    uint4 v;
    asm volatile("ld.shared.v4.b32 {%0, %1, %2, %3}, [%4];\n" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "r"(src));
    return v;
}
__device__ __forceinline__ void st_shared_v4u(unsigned dst, uint4 v) {
    asm volatile("st.shared.v4.b32 [%0], {%1, %2, %3, %4};\n" ::"r"(dst), "r"(v.x), "r"(v.y), "r"(v.z), "r"(v.w));
}
__device__ __forceinline__ void cp_async16_pred(unsigned dst, const void *src, bool ok) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %2, 0;\n@p cp.async.cg.shared.global [%0], [%1], 16;\n}\n" ::"r"(dst),
                 "l"(src), "r"((int)ok));
}
__device__ __forceinline__ void cp_async16(unsigned dst, const void *src) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst), "l"(src));
}
// Makes this thread's shared-memory writes (cp.async and st.shared, the generic proxy) visible
// to the async proxy wgmma reads through.
__device__ __forceinline__ void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wgmma_wait() { asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory"); }

// Shared-memory matrix descriptor (PTX ISA, "Matrix Descriptor Format"): start address >> 4 in
// bits 0-13, leading-dimension byte offset >> 4 in 16-29 (unused for K-major swizzled tiles
// whose K extent per instruction, 32 bytes, lies inside one row: 1), stride-dimension byte
// offset >> 4 in 32-45 (8 rows: 8*BK bytes, the next swizzle atom), swizzle mode in 62-63
// (1 = 128-byte, 2 = 64-byte). Stepping K by 32 bytes inside a row adds 32 >> 4 to the address.
template <int BK>
__device__ __forceinline__ uint64_t desc_sw(unsigned saddr) {
    return uint64_t((saddr & 0x3FFFF) >> 4) | (uint64_t(1) << 16) | (uint64_t(8 * BK >> 4) << 32) |
           (uint64_t(BK == 128 ? 1 : 2) << 62);
}

__device__ __forceinline__ void wgmma_m64n64k32(int (&d)[32], uint64_t da, uint64_t db) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k32.s32.u8.s8 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, %32, %33, p;\n}\n"
        : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3]), "+r"(d[4]), "+r"(d[5]), "+r"(d[6]), "+r"(d[7]), "+r"(d[8]), "+r"(d[9]), "+r"(d[10]), "+r"(d[11]), "+r"(d[12]), "+r"(d[13]), "+r"(d[14]), "+r"(d[15]), "+r"(d[16]), "+r"(d[17]), "+r"(d[18]), "+r"(d[19]), "+r"(d[20]), "+r"(d[21]), "+r"(d[22]), "+r"(d[23]), "+r"(d[24]), "+r"(d[25]), "+r"(d[26]), "+r"(d[27]), "+r"(d[28]), "+r"(d[29]), "+r"(d[30]), "+r"(d[31])
        : "l"(da), "l"(db), "r"(1));
}

__device__ __forceinline__ void wgmma_m64n128k32(int (&d)[64], uint64_t da, uint64_t db) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k32.s32.u8.s8 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, %64, %65, p;\n}\n"
        : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3]), "+r"(d[4]), "+r"(d[5]), "+r"(d[6]), "+r"(d[7]), "+r"(d[8]), "+r"(d[9]), "+r"(d[10]), "+r"(d[11]), "+r"(d[12]), "+r"(d[13]), "+r"(d[14]), "+r"(d[15]), "+r"(d[16]), "+r"(d[17]), "+r"(d[18]), "+r"(d[19]), "+r"(d[20]), "+r"(d[21]), "+r"(d[22]), "+r"(d[23]), "+r"(d[24]), "+r"(d[25]), "+r"(d[26]), "+r"(d[27]), "+r"(d[28]), "+r"(d[29]), "+r"(d[30]), "+r"(d[31]), "+r"(d[32]), "+r"(d[33]), "+r"(d[34]), "+r"(d[35]), "+r"(d[36]), "+r"(d[37]), "+r"(d[38]), "+r"(d[39]), "+r"(d[40]), "+r"(d[41]), "+r"(d[42]), "+r"(d[43]), "+r"(d[44]), "+r"(d[45]), "+r"(d[46]), "+r"(d[47]), "+r"(d[48]), "+r"(d[49]), "+r"(d[50]), "+r"(d[51]), "+r"(d[52]), "+r"(d[53]), "+r"(d[54]), "+r"(d[55]), "+r"(d[56]), "+r"(d[57]), "+r"(d[58]), "+r"(d[59]), "+r"(d[60]), "+r"(d[61]), "+r"(d[62]), "+r"(d[63])
        : "l"(da), "l"(db), "r"(1));
}

__device__ __forceinline__ void wgmma_m64n256k32(int (&d)[128], uint64_t da, uint64_t db) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %130, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n256k32.s32.u8.s8 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, %64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, %80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, %96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, %112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127}, %128, %129, p;\n}\n"
        : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3]), "+r"(d[4]), "+r"(d[5]), "+r"(d[6]), "+r"(d[7]), "+r"(d[8]), "+r"(d[9]), "+r"(d[10]), "+r"(d[11]), "+r"(d[12]), "+r"(d[13]), "+r"(d[14]), "+r"(d[15]), "+r"(d[16]), "+r"(d[17]), "+r"(d[18]), "+r"(d[19]), "+r"(d[20]), "+r"(d[21]), "+r"(d[22]), "+r"(d[23]), "+r"(d[24]), "+r"(d[25]), "+r"(d[26]), "+r"(d[27]), "+r"(d[28]), "+r"(d[29]), "+r"(d[30]), "+r"(d[31]), "+r"(d[32]), "+r"(d[33]), "+r"(d[34]), "+r"(d[35]), "+r"(d[36]), "+r"(d[37]), "+r"(d[38]), "+r"(d[39]), "+r"(d[40]), "+r"(d[41]), "+r"(d[42]), "+r"(d[43]), "+r"(d[44]), "+r"(d[45]), "+r"(d[46]), "+r"(d[47]), "+r"(d[48]), "+r"(d[49]), "+r"(d[50]), "+r"(d[51]), "+r"(d[52]), "+r"(d[53]), "+r"(d[54]), "+r"(d[55]), "+r"(d[56]), "+r"(d[57]), "+r"(d[58]), "+r"(d[59]), "+r"(d[60]), "+r"(d[61]), "+r"(d[62]), "+r"(d[63]), "+r"(d[64]), "+r"(d[65]), "+r"(d[66]), "+r"(d[67]), "+r"(d[68]), "+r"(d[69]), "+r"(d[70]), "+r"(d[71]), "+r"(d[72]), "+r"(d[73]), "+r"(d[74]), "+r"(d[75]), "+r"(d[76]), "+r"(d[77]), "+r"(d[78]), "+r"(d[79]), "+r"(d[80]), "+r"(d[81]), "+r"(d[82]), "+r"(d[83]), "+r"(d[84]), "+r"(d[85]), "+r"(d[86]), "+r"(d[87]), "+r"(d[88]), "+r"(d[89]), "+r"(d[90]), "+r"(d[91]), "+r"(d[92]), "+r"(d[93]), "+r"(d[94]), "+r"(d[95]), "+r"(d[96]), "+r"(d[97]), "+r"(d[98]), "+r"(d[99]), "+r"(d[100]), "+r"(d[101]), "+r"(d[102]), "+r"(d[103]), "+r"(d[104]), "+r"(d[105]), "+r"(d[106]), "+r"(d[107]), "+r"(d[108]), "+r"(d[109]), "+r"(d[110]), "+r"(d[111]), "+r"(d[112]), "+r"(d[113]), "+r"(d[114]), "+r"(d[115]), "+r"(d[116]), "+r"(d[117]), "+r"(d[118]), "+r"(d[119]), "+r"(d[120]), "+r"(d[121]), "+r"(d[122]), "+r"(d[123]), "+r"(d[124]), "+r"(d[125]), "+r"(d[126]), "+r"(d[127])
        : "l"(da), "l"(db), "r"(1));
}

template <int BN>
__device__ __forceinline__ void wgmma_tile(int (&d)[BN / 2], uint64_t da, uint64_t db) {
    if constexpr (BN == 64)
        wgmma_m64n64k32(d, da, db);
    else if constexpr (BN == 128)
        wgmma_m64n128k32(d, da, db);
    else
        wgmma_m64n256k32(d, da, db);
}

// Shared-memory tile rows of BK bytes in the swizzle pattern of wgmma's matching mode: chunk c
// (16 bytes) of row r at r*BK + ((c ^ f(r)) << 4), f(r) = r & 7 for 128-byte rows (128B mode,
// 8-row x 128-byte atoms), (r >> 1) & 3 for 64-byte rows (64B mode, 8-row x 64-byte atoms): the
// XOR of address bits 4-6 (4-5) with bits 7-9 (7-8), as the hardware applies it.
template <int BK>
__device__ __forceinline__ unsigned swz(int r, int c) {
    if constexpr (BK == 128)
        return r * 128 + ((c ^ (r & 7)) << 4);
    else
        return r * 64 + ((c ^ ((r >> 1) & 3)) << 4);
}


constexpr int BM = 128, THREADS = 256;

// Shared memory of a tile configuration: the pipeline, or the staged output tile if larger,
// plus 1024 bytes to align the stages to the swizzle atoms. W4 (4-bit weights, mma_conv2d.cuh):
// the B ring holds BK/2 bytes a row, plus three widened s8 B buffers that wgmma reads.
template <int BN, int STAGES, int BK, int EPI, bool W4 = false>
constexpr int smem_bytes() {
    constexpr int pipe = W4 ? STAGES * (BM * BK + BN * BK / 2) + 3 * BN * BK : STAGES * (BM + BN) * BK;
    constexpr int staged = BM * staged_pitch<EPI, BN>();
    return (pipe > staged ? pipe : staged) + 1024;
}
// Two CTAs per SM where both fit (shared memory and 128 registers a thread): one CTA's prologue
// and epilogue then overlap the other's main loop, which short reductions need.
template <int BN, int STAGES, int BK, bool W4 = false>
constexpr int min_blocks() {
    return BN <= 128 && 2 * smem_bytes<BN, STAGES, BK, EPI_S32, W4>() <= 227 * 1024 ? 2 : 1;
}

// W4: the B stage arrives by cp.async as 4-bit rows (BK/2 bytes, linear, in the W4A8 fragment
// order of mma_conv2d.cuh) into the ring; the thread that copied a 16-byte chunk (32 k of one
// row) widens it after its own cp.async wait, one k-block ahead of the wgmma that reads it, into
// s8 chunks 2c (k 0..15: (r << 4) & 0xF0F0F0F0, the low nibbles) and 2c + 1 (k 16..31:
// r & 0xF0F0F0F0) of a widened buffer in the swizzle layout, i.e. 16 * w; three widened buffers
// rotate (the one written at k-block kt + 1, the one read at kt, the one read at kt - 1 by the
// wgmma group still in flight). The accumulators are shifted back by 4 before the epilogue.
template <int BN, int STAGES, int BK, int EPI, bool W4>
__global__ void __launch_bounds__(THREADS, (min_blocks<BN, STAGES, BK, W4>())) conv_wgmma_kernel(const Params p) {
#if defined(__CUDA_ARCH__) && !defined(__CUDA_ARCH_FEAT_SM90_ALL)
    __trap();  // compiled for a target without wgmma: never launched (qh_cuda_wgmma_device_ok)
#else
    constexpr int CH = BK / 16;                        // 16-byte chunks per tile row
    constexpr int ROWS_PER_ITER = THREADS / CH;        // 32
    constexpr int A_ITERS = BM / ROWS_PER_ITER, B_ITERS = BN / ROWS_PER_ITER;
    constexpr int STAGE_A = BM * BK, STAGE_B = BN * BK;
    constexpr int PREFETCH = STAGES - 2;  // stages loaded ahead: one more stays with the wgmma in flight
    static_assert(PREFETCH >= 1, "at least 3 stages");
    constexpr int CH4 = BK / 32, STAGE_B4 = BN * BK / 2;  // W4: 16-byte chunks of a 4-bit row, ring stage
    constexpr int B4_ITERS = (BN * CH4 + THREADS - 1) / THREADS;

    extern __shared__ uint8_t smem_raw[];
    uint8_t *smem = reinterpret_cast<uint8_t *>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t(1023));
    const unsigned sA = smem_u32(smem), sB = sA + STAGES * STAGE_A;
    const unsigned sB8 = sB + STAGES * (W4 ? STAGE_B4 : STAGE_B);  // W4: the widened buffers

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, wg = warp >> 2;
    const int m0 = blockIdx.x * BM, n0 = blockIdx.y * BN;
    const int KT = p.K / BK;

    const int chunk = tid % CH;
    const uint8_t *a_base[A_ITERS];
    int a_iy0[A_ITERS], a_ix0[A_ITERS];
    const int ohw = p.OH * p.OW;
#pragma unroll
    for (int i = 0; i < A_ITERS; ++i) {
        int m = m0 + tid / CH + i * ROWS_PER_ITER;
        if (m < p.M) {
            int nimg = m / ohw, r = m - nimg * ohw;
            int oy = r / p.OW, ox = r - oy * p.OW;
            a_base[i] = p.x + (size_t)nimg * p.H * p.W * p.IC + chunk * 16;
            a_iy0[i] = oy * p.sh - p.pt;
            a_ix0[i] = ox * p.sw - p.pl;
        } else {
            a_base[i] = p.x;
            a_iy0[i] = -(1 << 28);  // always outside: zx, never stored
            a_ix0[i] = 0;
        }
    }
    const int8_t *b_base[B_ITERS];
    bool b_ok[B_ITERS];
#pragma unroll
    for (int j = 0; j < B_ITERS; ++j) {
        int oc = n0 + tid / CH + j * ROWS_PER_ITER;
        b_ok[j] = oc < p.OC;
        b_base[j] = p.w + (size_t)(b_ok[j] ? oc : 0) * p.K + chunk * 16;
    }

    // W4: this thread's 4-bit B chunks, fixed for the whole loop (the loop is bound by its own
    // instruction stream, ncu: IPC ~2 with ~1 eligible warp per scheduler, so no per-stage
    // 64-bit address arithmetic, no branches): source (advanced by BK/2 bytes a stage), its place
    // in a ring stage, its two widened chunks (the second = the first ^ 16: chunk 2c+1 of the
    // same swizzled row). Rows past OC are not loaded: their columns are never stored.
    const uint8_t *b4_src[B4_ITERS];
    unsigned b4_off[B4_ITERS], b4_w0[B4_ITERS];
    bool b4_on[B4_ITERS], b4_ld[B4_ITERS];
    if constexpr (W4) {
#pragma unroll
        for (int it = 0; it < B4_ITERS; ++it) {
            const int idx = tid + it * THREADS;
            const int row = idx / CH4, c = idx - row * CH4, oc = n0 + row;
            b4_on[it] = (BN * CH4) % THREADS == 0 || idx < BN * CH4;
            b4_ld[it] = b4_on[it] && oc < p.OC;
            b4_src[it] = reinterpret_cast<const uint8_t *>(p.w) + (size_t)(b4_ld[it] ? oc : 0) * (p.K / 2) + c * 16;
            b4_off[it] = row * (BK / 2) + c * 16;
            b4_w0[it] = swz<BK>(row, 2 * c);
        }
    }

    // k-block kt covers K bytes [kt*128, kt*128 + 128) = tap (ky, kx), channels ic0 .. ic0+127.
    int ld_kt = 0, ld_ic0 = 0, ld_ky = 0, ld_kx = 0;
    auto load_stage = [&](int stage) {
        const unsigned dA = sA + stage * STAGE_A, dB = sB + stage * STAGE_B;
#pragma unroll
        for (int i = 0; i < A_ITERS; ++i) {
            int row = tid / CH + i * ROWS_PER_ITER;
            int iy = a_iy0[i] + ld_ky, ix = a_ix0[i] + ld_kx;
            unsigned dst = dA + swz<BK>(row, chunk);
            if ((unsigned)iy < (unsigned)p.H && (unsigned)ix < (unsigned)p.W)
                cp_async16(dst, a_base[i] + ((size_t)iy * p.W + ix) * p.IC + ld_ic0);
            else
                st_shared_v4(dst, p.zx4);
        }
        if constexpr (W4) {
            const unsigned dB4 = sB + stage * STAGE_B4;
#pragma unroll
            for (int it = 0; it < B4_ITERS; ++it) {
                if (b4_on[it]) cp_async16_pred(dB4 + b4_off[it], b4_src[it], b4_ld[it]);
                b4_src[it] += BK / 2;
            }
        } else {
#pragma unroll
            for (int j = 0; j < B_ITERS; ++j) {
                int row = tid / CH + j * ROWS_PER_ITER;
                unsigned dst = dB + swz<BK>(row, chunk);
                if (b_ok[j])
                    cp_async16(dst, b_base[j] + (size_t)ld_kt * BK);
                else
                    st_shared_v4(dst, 0);
            }
        }
        ++ld_kt;
        next_k_stage(ld_ic0, ld_kx, ld_ky, BK, p.IC, p.KW);
    };

    // W4: widens this thread's chunks of ring stage `stage` into widened buffer `buf`.
    // src4 / dst8: shared addresses of the ring stage and the widened buffer.
    auto widen = [&](unsigned src4, unsigned dst8) {
#pragma unroll
        for (int it = 0; it < B4_ITERS; ++it) {
            if (b4_on[it]) {
                const uint4 v = ld_shared_v4(src4 + b4_off[it]);
                constexpr unsigned M = 0xF0F0F0F0u;
                st_shared_v4u(dst8 + b4_w0[it], make_uint4((v.x << 4) & M, (v.y << 4) & M, (v.z << 4) & M, (v.w << 4) & M));
                st_shared_v4u(dst8 + (b4_w0[it] ^ 16u), make_uint4(v.x & M, v.y & M, v.z & M, v.w & M));
            }
        }
    };

    int acc[BN / 2];
#pragma unroll
    for (int i = 0; i < BN / 2; ++i) acc[i] = 0;

#pragma unroll
    for (int s = 0; s < PREFETCH; ++s) {
        if (s < KT) load_stage(s);
        cp_async_commit();
    }
    if constexpr (W4) {
        cp_async_wait<PREFETCH - 1>();  // this thread's copies of stage 0
        if (KT > 0) widen(sB, sB8);
        // Rotating shared addresses instead of kt % STAGES and kt % 3 (divisions) in the loop:
        // stage kt (A, read by wgmma), stage kt + PREFETCH (loaded), stage kt + 1 (widened), and the
        // widened buffers of k-blocks kt and kt + 1.
        unsigned a_rd = sA, st_wr = PREFETCH, b4_nx = sB + (1 % STAGES) * STAGE_B4, b8_rd = sB8, b8_nx = sB8 + STAGE_B;
        for (int kt = 0; kt < KT; ++kt) {
            cp_async_wait<PREFETCH - 1>();  // this thread's copies of stage kt have landed
            fence_proxy_async();            // its cp.async and the widened stores of kt, to wgmma
            __syncthreads();
            if (kt + PREFETCH < KT) load_stage(st_wr);
            cp_async_commit();
            st_wr = st_wr + 1 == STAGES ? 0 : st_wr + 1;
            const unsigned a_tile = a_rd + wg * 64 * BK;
            wgmma_fence();
#pragma unroll
            for (int kk = 0; kk < BK / 32; ++kk)
                wgmma_tile<BN>(acc, desc_sw<BK>(a_tile + kk * 32), desc_sw<BK>(b8_rd + kk * 32));
            wgmma_commit();
            // Widen k-block kt+1 while kt runs: its copies (this thread's) have landed once at most
            // PREFETCH-1 groups are pending; its buffer was last read by k-block kt-2, which both
            // warpgroups finished before this iteration's barrier. The next iteration's fence and
            // barrier publish it to the async proxy.
            cp_async_wait<PREFETCH - 1>();
            if (kt + 1 < KT) widen(b4_nx, b8_nx);
            a_rd = a_rd + STAGE_A == sA + STAGES * STAGE_A ? sA : a_rd + STAGE_A;
            b4_nx = b4_nx + STAGE_B4 == sB + STAGES * STAGE_B4 ? sB : b4_nx + STAGE_B4;
            b8_rd = b8_nx;
            b8_nx = b8_nx + STAGE_B == sB8 + 3 * STAGE_B ? sB8 : b8_nx + STAGE_B;
            wgmma_wait<1>();
        }
    }
    for (int kt = 0; kt < (W4 ? 0 : KT); ++kt) {  // 8-bit weights
        cp_async_wait<PREFETCH - 1>();  // this thread's copies of stage kt have landed
        fence_proxy_async();
        // Everyone's stage kt is in shared memory, and every warpgroup has finished the wgmma
        // group of k-block kt-2 (it waited for it before this barrier), whose slot is refilled now.
        __syncthreads();
        {
            int nk = kt + PREFETCH;
            if (nk < KT) load_stage(nk % STAGES);
            cp_async_commit();
        }
        const int stage = kt % STAGES;
        const unsigned a_tile = sA + stage * STAGE_A + wg * 64 * BK;
        const unsigned b_tile = sB + stage * STAGE_B;
        wgmma_fence();
#pragma unroll
        for (int kk = 0; kk < BK / 32; ++kk)
            wgmma_tile<BN>(acc, desc_sw<BK>(a_tile + kk * 32), desc_sw<BK>(b_tile + kk * 32));
        wgmma_commit();
        wgmma_wait<1>();  // k-block kt-1 done; kt stays in flight over the next loads
    }
    wgmma_wait<0>();
    cp_async_wait<0>();
    if constexpr (W4) {  // the tensor cores summed x * 16w: exact, |acc| < 2^31
#pragma unroll
        for (int i = 0; i < BN / 2; ++i) acc[i] >>= 4;
    }
    __syncthreads();  // the pipeline buffers are free: stage the output tile there

    // Accumulator fragment of m64nNk32: warp w of the warpgroup holds rows 16w + g and 16w + g + 8,
    // acc[4j + 0..1] at columns 8j + 2t, 8j + 2t + 1 of row g, acc[4j + 2..3] of row g + 8.
    const int g = lane >> 2, t4 = lane & 3;
    const int row_base = wg * 64 + (warp & 3) * 16 + g;
#pragma unroll
    for (int j = 0; j < BN / 8; ++j) {
        const int col = j * 8 + 2 * t4;
        const ChannelPair c = channel_pair<EPI>(p, min(n0 + col, p.OC - 2));
#pragma unroll
        for (int h = 0; h < 2; ++h)
            stage_pair<EPI, BN>(p, smem, row_base + 8 * h, col, c, acc[4 * j + 2 * h], acc[4 * j + 2 * h + 1]);
    }
    __syncthreads();
    store_staged_tile<EPI, BM, BN, THREADS>(p, smem, tid, m0, n0,
                                            [&](int, int m, int oc) { return (long long)m * p.OC + oc; });
#endif
}

template <int BN, int STAGES, int BK, int EPI, bool W4>
cudaError_t launch_t(const Params &p, cudaStream_t s) {
    static_assert(smem_bytes<BN, STAGES, BK, EPI, W4>() <= 227 * 1024, "shared memory");
    return launch_dynamic_smem<conv_wgmma_kernel<BN, STAGES, BK, EPI, W4>>(
        dim3((p.M + BM - 1) / BM, (p.OC + BN - 1) / BN), THREADS, smem_bytes<BN, STAGES, BK, EPI, W4>(), s, p);
}

// The tiles mma_conv2d.cu's variant list names (engine = 1).
template <int EPI, bool W4>
cudaError_t dispatch(int bn, int stages, int bk, const Params &p, cudaStream_t s) {
    if (bk == 128 && bn == 128 && stages == 4) return launch_t<128, 4, 128, EPI, W4>(p, s);
    if (bk == 128 && bn == 256 && stages == 4) return launch_t<256, 4, 128, EPI, W4>(p, s);
    if (bk == 128 && bn == 128 && stages == 6) return launch_t<128, 6, 128, EPI, W4>(p, s);
    if (bk == 128 && bn == 128 && stages == 3) return launch_t<128, 3, 128, EPI, W4>(p, s);
    if (bk == 128 && bn == 64 && stages == 4) return launch_t<64, 4, 128, EPI, W4>(p, s);
    if (bk == 64 && bn == 128 && stages == 6) return launch_t<128, 6, 64, EPI, W4>(p, s);
    if (bk == 64 && bn == 64 && stages == 4) return launch_t<64, 4, 64, EPI, W4>(p, s);
    return cudaErrorInvalidValue;
}
template <int EPI>
cudaError_t dispatch_w(bool w4, int bn, int stages, int bk, const Params &p, cudaStream_t s) {
    return w4 ? dispatch<EPI, true>(bn, stages, bk, p, s) : dispatch<EPI, false>(bn, stages, bk, p, s);
}

}  // namespace

bool qh_cuda_wgmma_supported(const ConvDesc &d, int bk) {
    return (bk == 64 || bk == 128) && d.ic % bk == 0 && d.oc % 8 == 0 && d.n > 0 && d.oh() > 0 && d.ow() > 0 &&
           d.k() <= 65536 && d.m() < (1LL << 31);
}

bool qh_cuda_wgmma_device_ok() {
    int dev = 0, major = 0, minor = 0;
    if (cudaGetDevice(&dev) != cudaSuccess) return false;
    cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
    cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev);
    return major == 9 && minor == 0;
}

cudaError_t qh_cuda_wgmma_conv2d(const ConvDesc &d, int bn, int stages, int bk, const uint8_t *x, const int8_t *w, void *y,
                                 const int32_t *bias_s32, const QhRequant *rq, const QhResidual *res,
                                 cudaStream_t s) {
    if (!qh_cuda_wgmma_supported(d, bk)) return cudaErrorInvalidValue;
    if (res && (!rq || !res->residual)) return cudaErrorInvalidValue;
    if (d.abits != 8 || (d.wbits != 8 && d.wbits != 4)) return cudaErrorNotSupported;
    const bool w4 = d.wbits == 4;
    Params p{};
    p.x = x; p.w = w; p.y = y;
    p.H = d.h; p.W = d.w; p.IC = d.ic; p.OC = d.oc; p.KW = d.kw; p.KH = d.kh;
    p.sh = d.sh; p.sw = d.sw; p.pt = d.pt; p.pl = d.pl;
    p.OH = d.oh(); p.OW = d.ow(); p.M = int(d.m()); p.K = d.k();
    p.zx4 = int(0x01010101u * unsigned(d.zx & 255));
    p.bias = bias_s32;
    if (rq) {
        p.bias = rq->bias; p.mult = rq->mult; p.zy = rq->zy; p.lo = rq->lo; p.hi = rq->hi;
    }
    if (res) {
        p.res = res->residual; p.zc = res->conv_zp; p.zr = res->res_zp; p.mc = res->conv_mult; p.mr = res->res_mult;
        return dispatch_w<EPI_U8_ADD>(w4, bn, stages, bk, p, s);
    }
    return rq ? dispatch_w<EPI_U8>(w4, bn, stages, bk, p, s) : dispatch_w<EPI_S32>(w4, bn, stages, bk, p, s);
}
