// conv2d / conv2d_add / dense on the cuda_mma target: the tensor-core microkernel (mma_conv2d.cuh),
// bound like every op in runtime/ops.h, in one of three formulations chosen per layer by
// measurement at bind: its fused CUDA requantize (and residual-add) epilogue, or the Halide
// pipeline conv2d_extern (define_extern to the microkernel, Halide epilogue), direct or with an
// im2col packing stage (docs/ARCHITECTURE.md; QHALIDE_CUDA_FORMULATION forces one).
// They are the registry's "cuda_mma" entries (runtime/registry.h; register_implementations(),
// called by register_backends() when the library has the microkernel: nvcc found at build time,
// QH_HAVE_CUDA_MMA); an empty BoundOp means "not for this layer" (asymmetric weights, s8 output,
// s32 conv output) and the next entry, the cuda_dp4a Halide kernel, binds instead.
// INT4 (issue 14): PackedWeights::weight_bits = 4 (values of `unpacked` in [-8, 7]) keeps the
// weights 4-bit on the device and runs the W4A8 kernels (u8 tensors; conv2d[_add]_u8s4u8,
// dense_u8s4u8 / _u8s4s32); u4 storage tensors (x, y and the residual) with 4-bit weights run the
// W4A4 kernel (mma.sync m16n8k64, conv2d[_add]_u4s4u4, fused formulation only). 4-bit layers
// have the fused formulation only (the extern pipelines take s8 weights); weights outside
// [-8, 7] marked 4-bit are declined.
#pragma once
#include "ops.h"

namespace qh::cuda_mma {

// The arguments of the residual epilogue (conv2d_add), in output units.
struct Residual {
    const Tensor *tensor;
    int32_t conv_zp, res_zp;
    float conv_mult, res_mult;
};

// x, y, residual: device tensors (Tensor::wrap_device, CUDA). Weights are unpacked from the CPU
// packing, repacked for the microkernel (and for the im2col formulation) and uploaded once; the effective bias (zero point
// folded) and the multipliers are the same arrays the Halide kernels use.
BoundOp bind_conv2d(const Tensor &x, const PackedWeights &w, const Conv2dParams &p, Tensor &y,
                    const Residual *residual);

// dense {N, K} -> {N, OC} as a 1x1 conv: u8 (fused requantize) or s32 (= acc + effective bias).
BoundOp bind_dense(const Tensor &x, const PackedWeights &w, const Activation &act, Tensor &y,
                   const std::string &name);

// Registers conv2d / conv2d_add / dense on Device::cuda with the implementation registry.
void register_implementations();

// Makes Halide's CUDA runtime use the primary context and the shared stream (cuda_context.h);
// must run before the first Halide CUDA call. Throws when there is no usable device.
void init_shared_context();

}  // namespace qh::cuda_mma
