#include "gpu_kernels.h"

#include <dlfcn.h>

namespace qh::gpu_kernels {

std::vector<std::string> all_names() {
    std::vector<std::string> v;
#define QH_GPU_VARIANT(f, t) v.push_back(#f "__" #t);
#include "qh_gpu_kernel_table.inc"
#undef QH_GPU_VARIANT
    return v;
}

const std::vector<AnyGpuKernel> &all() {
    static const std::vector<AnyGpuKernel> v = {
#define QH_GPU_VARIANT(f, t) {#f, #t, reinterpret_cast<void (*)()>(&qh_##f##__##t)},
#include "qh_gpu_kernel_table.inc"
#undef QH_GPU_VARIANT
    };
    return v;
}

bool cuda_device_available() {
    static const bool ok = [] {
        void *lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
        if (!lib) lib = dlopen("libcuda.so", RTLD_NOW | RTLD_LOCAL);
        if (!lib) return false;
        using InitFn = int (*)(unsigned);
        using CountFn = int (*)(int *);
        auto init = reinterpret_cast<InitFn>(dlsym(lib, "cuInit"));
        auto count = reinterpret_cast<CountFn>(dlsym(lib, "cuDeviceGetCount"));
        int n = 0;
        // The library stays loaded: the Halide runtime dlopens the same driver later.
        return init && count && init(0) == 0 && count(&n) == 0 && n > 0;
    }();
    return ok;
}

}  // namespace qh::gpu_kernels
