// One CUDA context and one stream for everything qhalide runs on the GPU: Halide's cuda_dp4a
// kernels and the hand-written tensor-core kernels (mma_conv2d.cuh).
//
// Halide's CUDA runtime would otherwise create a context of its own (cuCtxCreate) and launch on
// the null stream, while CUDA-runtime kernels run in the device's primary context: device
// pointers of one context are not valid in the other, and two streams need synchronization.
// qh_cuda_shared_stream() retains the primary context of device 0, creates one (blocking)
// stream in it and installs Halide's context/stream handlers (halide_set_cuda_acquire_context,
// halide_set_cuda_release_context, halide_set_cuda_get_stream) so Halide uses both.
#pragma once
#include <cuda_runtime.h>

#include <functional>
#include <string>

// The shared stream (created and the handlers installed on the first call; thread-safe).
// Returns nullptr and sets *err when there is no usable CUDA device.
cudaStream_t qh_cuda_shared_stream(cudaError_t *err = nullptr);

// CUDA graphs on the shared stream: the layers of a prepared model are recorded once and replayed
// with one launch, instead of one launch (and its CPU-side cost) per kernel.
//
// Records what `work` queues on the shared stream into a graph and instantiates it; nothing runs
// while recording. The capture mode is thread-local: an API call that is not allowed during
// capture (an allocation, a synchronization, a copy on the legacy stream) fails inside `work`
// instead of being baked into the graph, and the capture is then abandoned. On failure returns
// the error, sets *exec = nullptr and puts the reason into *why (an exception thrown by `work`
// is caught and its message reported).
cudaError_t qh_cuda_graph_record(const std::function<void()> &work, cudaGraphExec_t *exec, std::string *why);
// Queues one replay on the shared stream (asynchronous, like the kernels it holds).
cudaError_t qh_cuda_graph_launch(cudaGraphExec_t exec);
void qh_cuda_graph_destroy(cudaGraphExec_t exec);
