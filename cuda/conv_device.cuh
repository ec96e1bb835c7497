// Device code shared by the two tensor-core conv kernels (mma_conv2d.cu: mma.sync,
// wgmma_conv2d.cu: wgmma): the PTX wrappers both loaders use, and the epilogue's arithmetic with
// the same IEEE float32 steps as generators/qh_math.h (so the GPU results equal the CPU kernels').
#pragma once
#include <cstdint>

#include <cuda_runtime.h>

namespace qh_conv {

// Epilogue kinds: s32 (optionally + bias), s32 accumulated with atomics (split-K, mma.sync only),
// fused requantize to u8, fused requantize + residual add (QLinearAdd) to u8, and the same two
// with u4 storage output (values clamped to [lo, hi] within [0, 15] by the caller's rq, packed
// two per byte, channel 2i in the low nibble; the residual of EPI_U4_ADD is u4 storage too; the
// conv's own intermediate result stays u8, as in generators/conv2d_generator.cpp).
enum { EPI_S32 = 0, EPI_S32_ATOMIC = 1, EPI_U8 = 2, EPI_U8_ADD = 3, EPI_U4 = 4, EPI_U4_ADD = 5 };
__host__ __device__ constexpr bool epi_quant(int e) { return e == EPI_U8 || e == EPI_U8_ADD || e == EPI_U4 || e == EPI_U4_ADD; }
__host__ __device__ constexpr bool epi_add(int e) { return e == EPI_U8_ADD || e == EPI_U4_ADD; }

// Launches kern<<<grid, threads, smem, s>>>(p), first raising Kern's dynamic shared-memory limit
// to `smem` (once per kernel; retried after a failure).
template <auto Kern, class P>
cudaError_t launch_dynamic_smem(dim3 grid, int threads, int smem, cudaStream_t s, const P &p) {
    static bool attr_done = false;
    if (!attr_done) {
        if (cudaError_t e = cudaFuncSetAttribute(Kern, cudaFuncAttributeMaxDynamicSharedMemorySize, smem)) return e;
        attr_done = true;
    }
    Kern<<<grid, threads, smem, s>>>(p);
    return cudaGetLastError();
}

// The load position's next K stage of `bk` bytes on the direct path, k = (ky*KW + kx)*IC + ic:
// ic0 += bk, carrying into kx, then ky (IC % bk == 0, so a stage never straddles two taps).
__device__ __forceinline__ void next_k_stage(int &ic0, int &kx, int &ky, int bk, int ic, int kw) {
    ic0 += bk;
    if (ic0 >= ic) {
        ic0 = 0;
        if (++kx == kw) {
            kx = 0;
            ++ky;
        }
    }
}

__device__ __forceinline__ unsigned smem_u32(const void *p) {
    return static_cast<unsigned>(__cvta_generic_to_shared(p));
}
// sm_75 (the W4A4 kernel's oldest target) has no cp.async: its copies are synchronous there
// (mma_kernel.cuh), so committing and waiting are no-ops.
__device__ __forceinline__ void cp_async_commit() {
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
    asm volatile("cp.async.commit_group;\n" ::);
#endif
}
template <int N>
__device__ __forceinline__ void cp_async_wait() {
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
#endif
}
__device__ __forceinline__ void st_shared_v4(unsigned dst, int v) {
    asm volatile("st.shared.v4.b32 [%0], {%1, %1, %1, %1};\n" ::"r"(dst), "r"(v));
}

// y = clamp(round_half_even(clamp((acc + bias) * mult, -65536, 65536)) + zy, lo, hi)
// (qh::requantize); __fmul_rn is never contracted into an fma.
__device__ __forceinline__ int requant(int acc, int bias, float mult, int zy, int lo, int hi) {
    float f = __fmul_rn(float(acc + bias), mult);
    f = fminf(fmaxf(f, -65536.0f), 65536.0f);
    int q = __float2int_rn(f) + zy;  // round half to even
    return min(max(q, lo), hi);
}

// QLinearAdd of the conv's u8 result c and the residual r: the float32 steps of
// qh::quantized_add. __fmul_rn/__fadd_rn are never contracted into an fma.
__device__ __forceinline__ int qadd(int c, int zc, float mc, int r, int zr, float mr, int zy, int lo, int hi) {
    float f = __fadd_rn(__fmul_rn(float(c - zc), mc), __fmul_rn(float(r - zr), mr));
    f = fminf(fmaxf(f, -65536.0f), 65536.0f);
    int q = __float2int_rn(f) + zy;
    return min(max(q, lo), hi);
}

// The epilogue stages the BM x BN output tile in shared memory (row pitch staged_pitch), then
// writes it in 16-byte chunks. u8 epilogues stage the requantized value: with (zy, lo, hi) of the
// output, or for the residual add the conv's own u8 result (zc, 0, 255); s32 stages acc + bias.
template <int EPI, int BN>
__host__ __device__ constexpr int staged_pitch() {
    return epi_quant(EPI) ? BN + 16 : (BN + 8) * 4;  // bank-conflict free
}

// The epilogue parameters of output channels oc and oc + 1 (oc clamped to OC - 2 by the caller):
// bias (0 where s32 has none) and, for u8, the requantization multipliers.
struct ChannelPair {
    int b0 = 0, b1 = 0;
    float m0 = 0.f, m1 = 0.f;
};
template <int EPI, class P>
__device__ __forceinline__ ChannelPair channel_pair(const P &p, int oc) {
    ChannelPair c;
    if (p.bias) c.b0 = p.bias[oc], c.b1 = p.bias[oc + 1];
    if constexpr (epi_quant(EPI)) c.m0 = p.mult[oc], c.m1 = p.mult[oc + 1];
    return c;
}

// Stages the accumulator pair (v0, v1) of tile row `row`, columns col and col + 1.
template <int EPI, int BN, class P>
__device__ __forceinline__ void stage_pair(const P &p, uint8_t *ct, int row, int col, const ChannelPair &c, int v0,
                                           int v1) {
    constexpr int LD = staged_pitch<EPI, BN>();
    if constexpr (epi_quant(EPI)) {
        const bool add = epi_add(EPI);
        const int zy = add ? p.zc : p.zy, lo = add ? 0 : p.lo, hi = add ? 255 : p.hi;
        const int q0 = requant(v0, c.b0, c.m0, zy, lo, hi), q1 = requant(v1, c.b1, c.m1, zy, lo, hi);
        *reinterpret_cast<uchar2 *>(ct + row * LD + col) = make_uchar2((unsigned char)q0, (unsigned char)q1);
    } else {
        *reinterpret_cast<int2 *>(ct + row * LD + col * 4) = make_int2(v0 + c.b0, v1 + c.b1);
    }
}

template <bool ADD, int ESZ, class P>
__device__ __forceinline__ void store_chunk(const P &p, const uint8_t *src, uint8_t *dst, const uint8_t *res, int n,
                                            bool whole);

// Writes the staged tile (output rows m0.., channels n0..) to p.y, one 16-byte chunk per thread
// and step; elem(row, m, oc) is the element offset of (pixel m, channel oc) in p.y (and p.res).
// A chunk never crosses a 32-channel block.
template <int EPI, int BM, int BN, int THREADS, class P, class ElemOffset>
__device__ __forceinline__ void store_staged_tile(const P &p, const uint8_t *ct, int tid, int m0, int n0,
                                                  ElemOffset elem) {
    constexpr bool ADD = epi_add(EPI);
    constexpr int ESZ = epi_quant(EPI) ? 1 : 4;
    constexpr int LD = staged_pitch<EPI, BN>();
    if constexpr (EPI == EPI_U4 || EPI == EPI_U4_ADD) {
        // 16 staged values (u8 within [0, 15], or the conv's own u8 result for the add) -> 8 bytes
        constexpr int CPR = BN / 16;
        for (int idx = tid; idx < BM * CPR; idx += THREADS) {
            const int row = idx / CPR, cc = idx - row * CPR;
            const int m = m0 + row, oc = n0 + cc * 16;
            if (m >= p.M || oc >= p.OC) continue;
            const long long eb = elem(row, m, oc) / 2;  // byte offset (OC and oc are even)
            const int n = min(16, p.OC - oc);
            const uint8_t *src = ct + row * LD + cc * 16;
            uint8_t *dst = static_cast<uint8_t *>(p.y) + eb;
            const uint8_t *res = ADD ? p.res + eb : nullptr;
            uint8_t ob[8];
#pragma unroll
            for (int e = 0; e < 8; ++e) {
                if (2 * e < n) {
                    int lo = src[2 * e], hi = src[2 * e + 1];
                    if constexpr (ADD) {
                        const int r = res[e];
                        lo = qadd(lo, p.zc, p.mc, r & 15, p.zr, p.mr, p.zy, p.lo, p.hi);
                        hi = qadd(hi, p.zc, p.mc, r >> 4, p.zr, p.mr, p.zy, p.lo, p.hi);
                    }
                    ob[e] = uint8_t(lo | hi << 4);
                }
            }
            if (n == 16 && (p.OC & 15) == 0) {
                uint2 v;
                memcpy(&v, ob, 8);
                *reinterpret_cast<uint2 *>(dst) = v;
            } else {
                for (int e = 0; 2 * e < n; ++e) dst[e] = ob[e];
            }
        }
        return;
    }
    constexpr int CPR = BN * ESZ / 16;  // 16-byte chunks per row
    constexpr int EPC = 16 / ESZ;       // elements per chunk
    for (int idx = tid; idx < BM * CPR; idx += THREADS) {
        const int row = idx / CPR, cc = idx - row * CPR;
        const int m = m0 + row, oc = n0 + cc * EPC;
        if (m >= p.M || oc >= p.OC) continue;
        const long long eo = elem(row, m, oc);
        const int n = min(EPC, p.OC - oc);
        store_chunk<ADD, ESZ>(p, ct + row * LD + cc * 16, static_cast<uint8_t *>(p.y) + eo * ESZ,
                              ADD ? p.res + eo : nullptr, n, n == EPC && ((p.OC * ESZ) & 15) == 0);
    }
}

// The epilogue's last step for one staged 16-byte chunk (16 / ESZ elements of ESZ bytes) at
// `src` in shared memory: to `dst` in global memory, `n` elements valid, one 16-byte store when
// `whole`. ADD (u8 only): the chunk holds the conv's own u8 result; y = qadd(it, the residual at
// `res`) with p's zc, mc, zr, mr, zy, lo, hi.
template <bool ADD, int ESZ, class P>
__device__ __forceinline__ void store_chunk(const P &p, const uint8_t *src, uint8_t *dst, const uint8_t *res, int n,
                                            bool whole) {
    if constexpr (ADD) {
        if (whole) {
            uint4 rv = *reinterpret_cast<const uint4 *>(res), cv = *reinterpret_cast<const uint4 *>(src), ov;
            const uint8_t *rb = reinterpret_cast<const uint8_t *>(&rv), *cb = reinterpret_cast<const uint8_t *>(&cv);
            uint8_t *ob = reinterpret_cast<uint8_t *>(&ov);
#pragma unroll
            for (int e = 0; e < 16; ++e) ob[e] = (uint8_t)qadd(cb[e], p.zc, p.mc, rb[e], p.zr, p.mr, p.zy, p.lo, p.hi);
            *reinterpret_cast<uint4 *>(dst) = ov;
        } else {
            for (int e = 0; e < n; ++e) dst[e] = (uint8_t)qadd(src[e], p.zc, p.mc, res[e], p.zr, p.mr, p.zy, p.lo, p.hi);
        }
    } else if (whole) {
        *reinterpret_cast<uint4 *>(dst) = *reinterpret_cast<const uint4 *>(src);
    } else {
        for (int e = 0; e < n; ++e)
            for (int b = 0; b < ESZ; ++b) dst[e * ESZ + b] = src[e * ESZ + b];
    }
}

}  // namespace qh_conv
