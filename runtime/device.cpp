#include "device.h"

#include <stdexcept>

#include "gpu_kernels.h"
#include "kernels.h"
#if QH_HAVE_CUDA_MMA
#include "../cuda/cuda_context.h"
#include "../cuda/mma_ops.h"
#endif
#if QHALIDE_HAS_CUDA
#include "HalideRuntimeCuda.h"
#endif

namespace qh {

void throw_halide_error(int rc, const std::string &what) {
    const std::string msg = take_halide_error();
    throw std::runtime_error(what + " failed with Halide error " + std::to_string(rc) +
                             (msg.empty() ? std::string() : ": " + msg));
}

namespace {
void check(int rc, const std::string &what) {
    if (rc) throw_halide_error(rc, what);
}
}  // namespace

bool cuda_built() { return QHALIDE_HAS_CUDA != 0; }
bool cuda_mma_built() {
#if QH_HAVE_CUDA_MMA
    return true;
#else
    return false;
#endif
}

// The backends this library was built with, as entries of the implementation registry
// (runtime/registry.h): the one place that names them.
void register_backends() {
#if QH_HAVE_CUDA_MMA
    cuda_mma::register_implementations();
#endif
}

void require_device(Device d, const std::string &what) {
    if (d == Device::cpu) return;
    if (!cuda_built())
        throw std::runtime_error(what + ": this qhalide was built without the CUDA kernels (QHALIDE_BUILD_CUDA=OFF)");
    if (!gpu_kernels::cuda_device_available())
        throw std::runtime_error(what + ": no CUDA device (the CUDA driver libcuda.so.1 did not load or reports "
                                        "no GPU); run on a machine with an NVIDIA GPU, or use the CPU");
#if QH_HAVE_CUDA_MMA
    // Before Halide's first CUDA call: Halide then uses the primary context and the stream the
    // tensor-core kernels use.
    cuda_mma::init_shared_context();
#endif
}

const halide_device_interface_t *device_interface(Device d) {
#if QHALIDE_HAS_CUDA
    if (d == Device::cuda) return halide_cuda_device_interface();
#endif
    (void)d;
    return nullptr;
}

DeviceBuffer::DeviceBuffer(Device d, size_t bytes, void *host) {
    require_device(d, "device allocation");
    if (bytes == 0) bytes = 64;
    if (bytes > size_t(INT32_MAX)) throw std::runtime_error("device allocation of " + std::to_string(bytes) + " bytes: over 2 GiB");
    buf_ = Halide::Runtime::Buffer<uint8_t>(static_cast<uint8_t *>(host), int(bytes));
    check(buf_.device_malloc(device_interface(d)), "device allocation of " + std::to_string(bytes) + " bytes");
}

void DeviceBuffer::upload() {
    buf_.set_host_dirty(true);
    check(buf_.copy_to_device(buf_.raw_buffer()->device_interface), "copy to device");
}

void DeviceBuffer::download() {
    buf_.set_device_dirty(true);
    check(buf_.copy_to_host(), "copy to host");
}

void DeviceBuffer::sync() { check(buf_.device_sync(), "device sync"); }

DeviceGraph DeviceGraph::record(Device d, const std::function<void()> &work) {
    DeviceGraph g;
    if (d != Device::cuda) {
        g.why_ = std::string("no graphs for ") + device_name(d);
        return g;
    }
#if QH_HAVE_CUDA_MMA
    cudaGraphExec_t exec = nullptr;
    if (qh_cuda_graph_record(work, &exec, &g.why_) == cudaSuccess)
        g.exec_ = std::shared_ptr<void>(exec, [](void *p) { qh_cuda_graph_destroy(static_cast<cudaGraphExec_t>(p)); });
#else
    (void)work;
    g.why_ = "this qhalide was built without the CUDA runtime kernels (no nvcc at build time)";
#endif
    return g;
}

void DeviceGraph::launch() const {
    if (!exec_) throw std::runtime_error("CUDA graph launch: nothing recorded (" + why_ + ")");
#if QH_HAVE_CUDA_MMA
    if (cudaError_t e = qh_cuda_graph_launch(static_cast<cudaGraphExec_t>(exec_.get())))
        throw std::runtime_error(std::string("CUDA graph launch: ") + cudaGetErrorString(e));
#else
    throw std::runtime_error("CUDA graph launch: not built");
#endif
}

}  // namespace qh
