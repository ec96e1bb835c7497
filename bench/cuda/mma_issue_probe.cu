// Issue-rate probe for the tensor-core conv (bench/cuda/NOTES.md, v5): how close can an
// m16n8k32 u8.s8 mma.sync stream get to the peak with W warps per SM, (a) from registers with
// NACC independent accumulators per warp, (b) with the conv's inner loop shape: a WM x WN warp
// tile whose fragments come from shared memory by ldmatrix.x4 each k-step (no global loads, no
// barriers), fragments double-buffered or not. Prints TOPS per configuration.
#include <cstdio>
#include <cuda_runtime.h>

__device__ __forceinline__ void mma(int (&c)[4], unsigned a0, unsigned a1, unsigned a2, unsigned a3, unsigned b0,
                                    unsigned b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k32.row.col.s32.u8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}
__device__ __forceinline__ void ldsm4(unsigned addr, unsigned &r0, unsigned &r1, unsigned &r2, unsigned &r3) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
                 : "r"(addr));
}

template <int NACC>
__global__ void reg_kernel(int *out, int iters) {
    unsigned a0 = threadIdx.x, a1 = a0 * 3, a2 = a0 * 5, a3 = a0 * 7, b0 = a0 * 11, b1 = a0 * 13;
    int c[NACC][4] = {};
    for (int i = 0; i < iters; ++i)
#pragma unroll
        for (int j = 0; j < NACC; ++j) mma(c[j], a0, a1, a2, a3, b0, b1);
    int s = 0;
#pragma unroll
    for (int j = 0; j < NACC; ++j) s += c[j][0] + c[j][1] + c[j][2] + c[j][3];
    out[blockIdx.x * blockDim.x + threadIdx.x] = s;
}

// Warp tile MI*16 x NI*8, 4 k-steps per "stage" of 128-byte rows (swizzled like the conv).
template <int MI, int NI, bool DB, int MINB>
__global__ void __launch_bounds__(128, MINB) smem_kernel(int *out, int iters) {
    extern __shared__ __align__(128) unsigned char sm[];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    for (int i = threadIdx.x; i < 32768 / 4; i += blockDim.x) reinterpret_cast<unsigned *>(sm)[i] = i * 2654435761u;
    __syncthreads();
    const unsigned base = static_cast<unsigned>(__cvta_generic_to_shared(sm));
    // A rows [0, 128), B rows [128, 256) of 128 bytes; warp w reads A rows (w&1)*64.., B (w>>1)&1
    const unsigned sA = base, sB = base + 128 * 128;
    const int a_row = ((warp & 1) * 64 + (lane & 15)) & 127, a_chk = lane >> 4;
    const int b_row = ((warp >> 1) * 32 + (lane & 7) + ((lane >> 4) << 3)) & 127, b_chk = (lane >> 3) & 1;
    auto sw = [](int r, int c) { return unsigned(r * 128 + ((c ^ (r & 7)) << 4)); };
    int acc[MI][NI][4] = {};
    unsigned af[2][MI][4], bf[2][NI][2];
    auto ld = [&](int buf, int kk) {
#pragma unroll
        for (int i = 0; i < MI; ++i)
            ldsm4(sA + sw((a_row + i * 16) & 127, a_chk + 2 * kk), af[buf][i][0], af[buf][i][1], af[buf][i][2],
                  af[buf][i][3]);
#pragma unroll
        for (int j = 0; j < NI; j += 2)
            ldsm4(sB + sw((b_row + j * 8) & 127, b_chk + 2 * kk), bf[buf][j][0], bf[buf][j][1], bf[buf][j + 1][0],
                  bf[buf][j + 1][1]);
    };
    if (DB) ld(0, 0);
    for (int it = 0; it < iters; ++it) {
#pragma unroll
        for (int kk = 0; kk < 4; ++kk) {
            const int cur = DB ? (kk & 1) : 0;
            if (DB) ld((kk + 1) & 1, (kk + 1) & 3);
            else ld(0, kk);
#pragma unroll
            for (int i = 0; i < MI; ++i)
#pragma unroll
                for (int j = 0; j < NI; ++j)
                    mma(acc[i][j], af[cur][i][0], af[cur][i][1], af[cur][i][2], af[cur][i][3], bf[cur][j][0], bf[cur][j][1]);
        }
    }
    int s = 0;
#pragma unroll
    for (int i = 0; i < MI; ++i)
#pragma unroll
        for (int j = 0; j < NI; ++j) s += acc[i][j][0] ^ acc[i][j][1] ^ acc[i][j][2] ^ acc[i][j][3];
    out[blockIdx.x * blockDim.x + threadIdx.x] = s;
}

template <class K>
double timeit(K kern, int blocks, int threads, int smem, double mmas_per_warp) {
    int *out;
    cudaMalloc(&out, (size_t)blocks * threads * 4);
    if (smem) cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
    kern<<<blocks, threads, smem>>>(out, 10);
    cudaDeviceSynchronize();
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    const int iters = 4000;
    cudaEventRecord(e0);
    kern<<<blocks, threads, smem>>>(out, iters);
    cudaEventRecord(e1);
    cudaEventSynchronize(e1);
    float ms;
    cudaEventElapsedTime(&ms, e0, e1);
    cudaError_t e = cudaGetLastError();
    cudaFree(out);
    int res = 0;
    cudaOccupancyMaxActiveBlocksPerMultiprocessor(&res, kern, threads, smem);
    printf("[res %d] ", res);
    if (e != cudaSuccess) { printf("error %s\n", cudaGetErrorString(e)); return 0; }
    double ops = 2.0 * 16 * 8 * 32 * mmas_per_warp * iters * (blocks * (threads / 32.0));
    return ops / (ms * 1e-3) / 1e12;
}

int main() {
    int sms;
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
    printf("registers only (TOPS), warps/SM x independent accumulators per warp:\n");
    for (int w : {4, 8, 16, 32}) {
        int blocks = sms * (w / 4), threads = 128;
        printf("  warps/SM %2d: acc4 %6.0f  acc16 %6.0f  acc32 %6.0f\n", w,
               timeit(reg_kernel<4>, blocks, threads, 0, 4), timeit(reg_kernel<16>, blocks, threads, 0, 16),
               timeit(reg_kernel<32>, blocks, threads, 0, 32));
    }
    printf("ldmatrix + mma inner loop (TOPS), warp tile, 4-warp blocks:\n");
    for (int bps : {1, 2, 4}) {
        int blocks = sms * bps, threads = 128, smem = 32768;
        printf("  warps/SM %2d: 64x64 %6.0f db %6.0f\n", 4 * bps,
               timeit(smem_kernel<4, 8, false, 1>, blocks, threads, smem, 4 * 32),
               timeit(smem_kernel<4, 8, true, 1>, blocks, threads, smem, 4 * 32));
    }
    printf("  warps/SM 16: 64x32 %6.0f db %6.0f | 32x64 %6.0f db %6.0f (launch bounds 4 blocks)\n",
           timeit(smem_kernel<4, 4, false, 4>, sms * 4, 128, 32768, 4 * 16),
           timeit(smem_kernel<4, 4, true, 4>, sms * 4, 128, 32768, 4 * 16),
           timeit(smem_kernel<2, 8, false, 4>, sms * 4, 128, 32768, 4 * 16),
           timeit(smem_kernel<2, 8, true, 4>, sms * 4, 128, 32768, 4 * 16));
    printf("  warps/SM  8: 64x32 %6.0f db %6.0f | 32x64 %6.0f db %6.0f\n",
           timeit(smem_kernel<4, 4, false, 1>, sms * 2, 128, 32768, 4 * 16),
           timeit(smem_kernel<4, 4, true, 1>, sms * 2, 128, 32768, 4 * 16),
           timeit(smem_kernel<2, 8, false, 1>, sms * 2, 128, 32768, 4 * 16),
           timeit(smem_kernel<2, 8, true, 1>, sms * 2, 128, 32768, 4 * 16));
    return 0;
}
