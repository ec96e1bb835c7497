// One CUDA context and one stream for everything qhalide runs on the GPU: Halide's cuda_dp4a
// kernels and the hand-written tensor-core kernels (mma_conv2d.cuh).
//
// Halide's CUDA runtime would otherwise create a context of its own (cuCtxCreate) and launch on
// the null stream, while CUDA-runtime kernels run in the device's primary context: device
// pointers of one context are not valid in the other, and two streams need synchronization.
// qh_cuda_shared_stream() retains the primary context of device 0, creates one non-blocking
// stream in it and installs Halide's context/stream handlers (halide_set_cuda_acquire_context,
// halide_set_cuda_release_context, halide_set_cuda_get_stream) so Halide uses both.
#pragma once
#include <cuda_runtime.h>

// The shared stream (created and the handlers installed on the first call; thread-safe).
// Returns nullptr and sets *err when there is no usable CUDA device.
cudaStream_t qh_cuda_shared_stream(cudaError_t *err = nullptr);
