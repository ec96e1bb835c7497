// GPU kernels of the library (cmake/qhalide_targets.cmake: QH_GPU_TARGET_TAGS, today cuda_dp4a,
// and the opt-in cuda_mma families), listed apart from the CPU dispatch table (kernels.h):
// `choose()` must never pick a GPU kernel for a CPU call. A cuda_dp4a kernel has the signature
// of its family's CPU kernels (same generator, same packed weight layout, runtime/pack.h); the
// cuda_mma ones (conv2d_extern families) are GPU-only, called by cuda/mma_ops.cpp. All
// take buffers with a device allocation of halide_cuda_device_interface() (HalideRuntimeCuda.h);
// host-only inputs are copied to the device by the kernel, outputs are left device-dirty.
//
// The Halide runtime inside libqhalide carries the CUDA module; it loads libcuda.so at the
// first GPU call, so programs that never call a GPU kernel need no driver.
#pragma once
#include <string>
#include <vector>

#include "kernels.h"

namespace qh::gpu_kernels {

// qh::gpu_kernels::<family>__<tag>() -> {family, tag, fn}, e.g. conv2d_u8s8u8__cuda_dp4a(). The
// function type is the kernel's own: the family's CPU type for families with CPU variants, and
// the only one for GPU-only families (TAGS in cmake/qhalide_kernels.cmake, e.g.
// conv2d_extern_u8s8u8__cuda_mma, which take the microkernel's weight packing).
#define QH_GPU_VARIANT(f, t)                                          \
    inline KernelVariant<decltype(&qh_##f##__##t)> f##__##t() {      \
        return {#f, #t, &qh_##f##__##t};                              \
    }
#include "qh_gpu_kernel_table.inc"
#undef QH_GPU_VARIANT

// Every GPU kernel, type-erased (fn is the family's function type, see kernels.h), for the ops'
// lookup of a family's GPU variant.
struct AnyGpuKernel {
    const char *family, *tag;
    void (*fn)();
    std::string name() const { return std::string(family) + "__" + tag; }
};
const std::vector<AnyGpuKernel> &all();

// Every GPU kernel name ("conv2d_u8s8u8__cuda_dp4a", ...), in kernel-list order.
std::vector<std::string> all_names();

// True when a CUDA driver (libcuda.so.1) loads and reports at least one device. Never throws
// or aborts: it dlopens the driver itself and does not touch the Halide runtime.
bool cuda_device_available();

}  // namespace qh::gpu_kernels
