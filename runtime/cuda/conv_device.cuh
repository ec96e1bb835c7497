// Device code shared by the two tensor-core conv kernels (mma_conv2d.cu: mma.sync,
// wgmma_conv2d.cu: wgmma): the PTX wrappers both loaders use, and the epilogue's arithmetic with
// the same IEEE float32 steps as generators/qh_math.h (so the GPU results equal the CPU kernels').
#pragma once
#include <cstdint>

namespace qh_conv {

__device__ __forceinline__ unsigned smem_u32(const void *p) {
    return static_cast<unsigned>(__cvta_generic_to_shared(p));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }
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
