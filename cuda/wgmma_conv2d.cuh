// Hopper (sm_90a) int8 conv2d microkernel: the same implicit GEMM as mma_conv2d.cuh, with the
// warpgroup MMA (wgmma.mma_async m64nNk32 u8 x s8 -> s32) instead of mma.sync. The contract is
// mma_conv2d.cuh's: ConvDesc, weights packed by qh_cuda_pack_weights (direct layout
// w_packed[oc * K + (ky*KW + kx)*IC + ic]), QhRequant / QhResidual epilogues with the same float32
// steps, bit-exact with mma.sync and the CPU path.
//
// Shapes: the direct path with IC % BK == 0 (a K stage of BK = 64 or 128 bytes never straddles
// two taps), OC % 8 == 0; no split-K. Device: compute capability 9.0 only (sm_90a code does not
// run elsewhere): check qh_cuda_wgmma_device_ok().
//
// Tile: CTA = 2 warpgroups (256 threads) x BM = 128 output pixels x BN = 64, 128 or 256 output
// channels; each warpgroup owns 64 rows and issues one m64nBNk32 per 32 bytes of K. The A and B
// stages live in shared memory in the swizzle layout wgmma reads through its matrix descriptors
// (BK = 128: 128-byte mode, chunk c of row r at r*128 + ((c ^ (r & 7)) << 4); BK = 64: 64-byte
// mode, r*64 + ((c ^ ((r >> 1) & 3)) << 4), the mma.sync loader's own patterns; 1024-byte
// aligned stages); cp.async fills them STAGES deep, and one wgmma group stays in flight while the
// next stage's loads are issued. Tiles whose shared memory allows it run 2 CTAs per SM.
#pragma once
#include "mma_conv2d.cuh"

// The shape is one the wgmma kernel takes with K stages of `bk` bytes (see above).
bool qh_cuda_wgmma_supported(const ConvDesc &d, int bk);
// The current device runs sm_90a code (compute capability 9.0).
bool qh_cuda_wgmma_device_ok();

// The tiles are variants of mma_conv2d.cuh's list (engine = 1), which is how callers reach
// them; (bn, stages, bk) outside that list is refused (cudaErrorInvalidValue).
// One entry for the three epilogues: rq == nullptr: s32 output y = acc (+ bias_s32[oc] when not
// null); rq: fused requantize to u8; rq and res: fused residual add (QLinearAdd), u8.
cudaError_t qh_cuda_wgmma_conv2d(const ConvDesc &d, int bn, int stages, int bk, const uint8_t *x_dev,
                                 const int8_t *w_packed_dev, void *y_dev, const int32_t *bias_s32,
                                 const QhRequant *rq, const QhResidual *res, cudaStream_t stream);
