// The one launcher behind every entry point of mma_conv2d.cuh, with the memory layout as a
// parameter. Not part of the library's interface: the library launches NHWC only (through the
// entry points); bench/cuda/mma_conv_bench.cu reaches the other layouts here for its layout
// measurement (bench/cuda/NOTES.md, "Layouts"). The strided loader and epilogue stay in the one
// kernel because NHWC is one parameter set of them.
#pragma once
#include "mma_conv2d.cuh"

// x, y (and a residual) share the layout; c = channel, 32-channel blocks:
//   NHWC:     x[((n*H + y)*W + x)*C + c]
//   HWNC:     x[((y*W + x)*N + n)*C + c]         (GEMM rows ordered (oy, ox, n))
//   NC32HW32: x[(((n*(C/32) + c/32)*H + y)*W + x)*32 + c%32]   (needs IC, OC % 32 == 0)
// The kernel addresses pixels through strides (n, y, x, 32-channel block), so the three are
// parameter sets of one loader and one epilogue. Layouts other than NHWC: direct path only
// (IC % 64 == 0; other shapes return cudaErrorNotSupported), mma.sync tiles only (wgmma returns
// cudaErrorNotSupported). Weights are packed as in mma_conv2d.cuh in every layout. W4A4 (abits =
// 4): the layout applies to the byte view of u4 storage (C = IC/2 bytes a pixel, so NC32HW32 is
// NC64HW64 in channels), s32 output only.
enum class QhLayout { NHWC = 0, HWNC = 1, NC32HW32 = 2 };

// rq == nullptr: s32 output y = acc (+ bias_s32[oc] when not null); rq: fused requantize to u8;
// rq and res: fused residual add to u8. Errors and workspace as in mma_conv2d.cuh.
cudaError_t qh_cuda_conv2d_run(const ConvDesc &d, int variant, const uint8_t *x_dev, const int8_t *w_packed_dev,
                               void *y_dev, const QhRequant *rq, const QhResidual *res, void *workspace,
                               cudaStream_t stream, const int32_t *bias_s32 = nullptr,
                               QhLayout layout = QhLayout::NHWC);
