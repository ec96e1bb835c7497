// mma.sync peak probe with more independent accumulator chains than ../shared/tools/mma_rate.cu
// (which runs 4 per warp): s8 m16n8k32 and s4 m16n8k64 (.u4.s4 and .s4.s4) with 4, 8, 16 and 32
// chains per warp, 8 warps of 256 threads per SM x 8 blocks per SM, registers only. mma_rate's s4
// figure (50 TOPS on the H200) is latency-bound: the W4A4 conv, with 32 accumulators per warp,
// ran faster than it (bench/cuda/NOTES.md, "INT4").
//   nvcc -O3 -gencode=arch=compute_90a,code=sm_90a -o mma_rate_chains mma_rate_chains.cu
#include <cstdio>
#include <cuda_runtime.h>
template <int KIND, int CH>  // KIND 8: s8.s8 k32; 4: s4.s4 k64; 5: u4.s4 k64
__global__ void k(int *out, int iters) {
    unsigned a0 = threadIdx.x, a1 = a0 * 3, a2 = a0 * 5, a3 = a0 * 7, b0 = a0 * 11, b1 = a0 * 13;
    int c[CH][4] = {};
    for (int i = 0; i < iters; ++i) {
#pragma unroll
        for (int j = 0; j < CH; ++j) {
            if (KIND == 8)
                asm volatile("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                             : "+r"(c[j][0]), "+r"(c[j][1]), "+r"(c[j][2]), "+r"(c[j][3])
                             : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
            else if (KIND == 4)
                asm volatile("mma.sync.aligned.m16n8k64.row.col.s32.s4.s4.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                             : "+r"(c[j][0]), "+r"(c[j][1]), "+r"(c[j][2]), "+r"(c[j][3])
                             : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
            else
                asm volatile("mma.sync.aligned.m16n8k64.row.col.s32.u4.s4.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                             : "+r"(c[j][0]), "+r"(c[j][1]), "+r"(c[j][2]), "+r"(c[j][3])
                             : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
        }
    }
    int s = 0;
    for (int j = 0; j < CH; ++j)
        for (int q = 0; q < 4; ++q) s += c[j][q];
    out[blockIdx.x * blockDim.x + threadIdx.x] = s;
}
template <int KIND, int CH>
void run(int sms) {
    const int blocks = sms * 8, threads = 256, iters = 20000 * 4 / CH;
    int *out;
    cudaMalloc(&out, blocks * threads * 4);
    k<KIND, CH><<<blocks, threads>>>(out, 10);
    cudaDeviceSynchronize();
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    float best = 1e30f;
    for (int r = 0; r < 3; ++r) {
        cudaEventRecord(e0);
        k<KIND, CH><<<blocks, threads>>>(out, iters);
        cudaEventRecord(e1);
        cudaEventSynchronize(e1);
        float ms;
        cudaEventElapsedTime(&ms, e0, e1);
        best = ms < best ? ms : best;
    }
    const double kd = KIND == 8 ? 32 : 64;
    const double ops = 2.0 * 16 * 8 * kd * CH * double(iters) * (blocks * threads / 32.0);
    printf("%s m16n8k%d, %2d chains/warp: %6.0f TOPS (%s)\n", KIND == 8 ? "s8.s8" : KIND == 4 ? "s4.s4" : "u4.s4",
           int(kd), CH, ops / (best * 1e-3) / 1e12, cudaGetErrorString(cudaGetLastError()));
    cudaFree(out);
}
int main() {
    int sms;
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
    run<8, 4>(sms); run<8, 16>(sms);
    run<4, 4>(sms); run<4, 8>(sms); run<4, 16>(sms); run<4, 32>(sms);
    run<5, 4>(sms); run<5, 16>(sms); run<5, 32>(sms);
}
