// conv2d / conv2d_add / dense on the cuda_mma target: the tensor-core microkernel (mma_conv2d.cuh),
// bound like every op in runtime/ops.h, in one of three formulations chosen per layer by
// measurement at bind: its fused CUDA requantize (and residual-add) epilogue, or the Halide
// pipeline conv2d_extern (define_extern to the microkernel, Halide epilogue), direct or with an
// im2col packing stage (docs/ARCHITECTURE.md; QHALIDE_CUDA_FORMULATION forces one).
// They are the registry's "cuda_mma" entries (runtime/registry.h; register_implementations(),
// called by register_backends() when the library has the microkernel: nvcc found at build time,
// QH_HAVE_CUDA_MMA); an empty BoundOp means "not for this layer" (asymmetric weights, s8 output,
// s32 conv output) and the next entry, the cuda_dp4a Halide kernel, binds instead.
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
