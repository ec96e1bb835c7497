// Device memory for the GPU kernels (runtime/gpu_kernels.h), through the Halide runtime's device
// interface, so that kernels, copies and allocations share the Halide CUDA runtime's one context
// and stream. Tensors on a device (Tensor::wrap_device) hold a handle from here; ops.cpp turns
// them into Halide buffers with a wrapped device pointer (device_view) and uploads their
// parameter buffers once at bind time (upload_once).
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "HalideBuffer.h"
#include "tensor.h"

namespace qh {

// True when libqhalide was built with the CUDA kernels (QHALIDE_BUILD_CUDA=ON).
bool cuda_built();
// True when it also has the tensor-core conv kernels (cuda_mma, cuda/; nvcc at build time).
bool cuda_mma_built();
// Registers every built-in backend's implementations (runtime/registry.h); the registry calls it
// once, before its first lookup.
void register_backends();
// Throws std::runtime_error naming `what` unless device `d` can run kernels here: "no CUDA
// device ..." without a driver or a GPU, or a library built without CUDA.
void require_device(Device d, const std::string &what);
// Halide's device interface of `d` (nullptr for cpu).
const halide_device_interface_t *device_interface(Device d);

[[noreturn]] void throw_halide_error(int rc, const std::string &what);

// Makes `b` (no host data) a view of device tensor `t`: the device pointer is wrapped, not owned.
template <typename T>
void device_view(Halide::Runtime::Buffer<T> &b, const Tensor &t) {
    const halide_device_interface_t *di = device_interface(t.device());
    if (!di) throw_halide_error(-1, "tensor " + t.describe() + ": no device interface");
    if (int rc = b.device_wrap_native(di, t.device_handle())) throw_halide_error(rc, "wrapping " + t.describe());
}
// Gives a host-only parameter buffer (weights, bias, scales) its own device copy, once; its host
// memory must not change afterwards. No-op for cpu.
template <typename T>
void upload_once(Halide::Runtime::Buffer<T> &b, Device d, const std::string &what) {
    if (d == Device::cpu || b.raw_buffer()->device) return;
    b.set_host_dirty(true);
    if (int rc = b.copy_to_device(device_interface(d)))
        throw_halide_error(rc, "uploading " + what + " to " + device_name(d));
}

// `bytes` of device memory owned by this object, optionally mirroring host memory of the same
// size (graph inputs and outputs). Copies and syncs are ordered with the kernels (one stream).
class DeviceBuffer {
public:
    DeviceBuffer() = default;
    DeviceBuffer(Device d, size_t bytes, void *host = nullptr);
    uint64_t handle() const { return buf_.raw_buffer()->device; }
    void upload();    // host -> device
    void download();  // device -> host
    void sync();      // waits until everything queued on the device has finished
    size_t bytes() const { return buf_.size_in_bytes(); }

private:
    Halide::Runtime::Buffer<uint8_t> buf_;
};

// Device work recorded once and replayed with one launch (CUDA graphs on the shared stream,
// cuda/cuda_context.h; needs the tensor-core build, cuda_mma_built()). Recording runs
// nothing: what `work` queues is captured, with the pointers and arguments it uses then, so a
// replay reruns exactly those kernels on exactly those buffers.
class DeviceGraph {
public:
    DeviceGraph() = default;
    // Records `work` for device `d`. Never throws for a recording that fails: the graph is then
    // empty and why() says what failed (e.g. an allocation inside `work`).
    static DeviceGraph record(Device d, const std::function<void()> &work);
    static DeviceGraph none(std::string why) {  // not recorded, and why
        DeviceGraph g;
        g.why_ = std::move(why);
        return g;
    }
    bool ready() const { return exec_ != nullptr; }
    const std::string &why() const { return why_; }
    void launch() const;  // queues one replay; asynchronous

private:
    std::shared_ptr<void> exec_;
    std::string why_;
};

}  // namespace qh
