// W4A8 instantiations of the mma.sync conv (u8 activations x s4 weights kept 4-bit in device
// memory, widened to s8 fragments in registers; mma_conv2d.cuh, "4-bit weights"). A translation
// unit of its own so the two halves of the kernel list compile in parallel; launched from
// qh_cuda_conv2d_run (mma_conv2d.cu) through qh_mma::dispatch_w4a8.
#include "mma_dispatch.cuh"

cudaError_t qh_mma::dispatch_w4a8(bool gather, int epi, int v, const Params &p, int splitk, cudaStream_t s) {
    return dispatch_operands<OPK_W4A8>(gather, epi, v, p, splitk, s);
}
