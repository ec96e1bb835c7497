// W4A4 instantiations of the mma.sync conv: u4 activations x s4 weights on the byte view of the
// u4 tensors (one byte = two consecutive k), mma.sync m16n8k64 .u4.s4 (four m8n8k32 on sm_75,
// where cp.async becomes a synchronous copy); s32 output (raw accumulator, optionally + bias;
// split-K with atomics) or the fused u4 epilogues (requantize, residual add; conv_device.cuh). Built for sm_75, sm_80 and sm_90 (CMakeLists.txt); launched from
// qh_cuda_conv2d_run (mma_conv2d.cu) through qh_mma::dispatch_w4a4. Direct path (IC % 128 == 0,
// i.e. 64-byte K stages inside one tap) or the im2col workspace (mma_conv2d.cuh).
#include "mma_dispatch.cuh"

cudaError_t qh_mma::dispatch_w4a4(int epi, int v, const Params &p, int splitk, cudaStream_t s) {
    switch (epi) {
    case EPI_S32_ATOMIC: return dispatch<MODE_DIRECT, EPI_S32_ATOMIC, OPK_W4A4>(v, p, splitk, s);
    case EPI_S32: return dispatch<MODE_DIRECT, EPI_S32, OPK_W4A4>(v, p, 1, s);
    case EPI_U4: return dispatch<MODE_DIRECT, EPI_U4, OPK_W4A4>(v, p, 1, s);
    case EPI_U4_ADD: return dispatch<MODE_DIRECT, EPI_U4_ADD, OPK_W4A4>(v, p, 1, s);
    default: return cudaErrorNotSupported;
    }
}
