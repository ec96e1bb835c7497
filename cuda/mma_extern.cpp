// The accumulator stage of the conv2d_extern Halide pipelines (generators/conv2d_extern_generator.cpp):
// Halide calls qh_cuda_mma_conv2d_s32 through Func::define_extern(..., DeviceAPI::CUDA), first as
// a bounds query (an output buffer without memory), then with its buffers. Halide device-allocates the output (CUDA, no host
// memory) and marks it device-dirty afterwards; the inputs are this function's business (Halide's
// rule for extern stages), so it copies them to the device when they are not there yet (a no-op
// for the runtime's device tensors and for the im2col matrix Halide just computed on the GPU).
// For a CUDA buffer halide_buffer_t::device is the CUdeviceptr itself, so the microkernel gets the
// plain device pointers. It launches on qh_cuda_shared_stream(), the stream Halide's own kernels
// use (cuda_context.h), so the epilogue kernel that follows is ordered after it.
#include <cstdint>
#include <string>

#include "HalideRuntime.h"
#include "HalideRuntimeCuda.h"
#include "cuda_context.h"
#include "mma_conv2d.cuh"

namespace {

int fail(void *uc, const std::string &what) {
    halide_error(uc, ("qh_cuda_mma_conv2d_s32: " + what + "\n").c_str());
    return halide_error_code_device_run_failed;
}

// Checks that `b` is exactly the dense region [0, e0) x [0, e1) x ... (innermost first).
bool dense_from_zero(const halide_buffer_t *b, std::initializer_list<long long> extents) {
    if (b->dimensions != int(extents.size())) return false;
    long long stride = 1;
    int d = 0;
    for (long long e : extents) {
        if (b->dim[d].min != 0 || b->dim[d].extent != e || b->dim[d].stride != stride) return false;
        stride *= e;
        d++;
    }
    return true;
}

std::string dims(const halide_buffer_t *b) {
    std::string s = "[";
    for (int d = 0; d < b->dimensions; d++)
        s += (d ? ", " : "") + std::to_string(b->dim[d].min) + "+" + std::to_string(b->dim[d].extent) + "/" +
             std::to_string(b->dim[d].stride);
    return s + "]";
}

void set_region(halide_buffer_t *b, std::initializer_list<std::pair<int, int>> region) {
    int d = 0;
    for (auto [min, extent] : region) {
        b->dim[d].min = min;
        b->dim[d].extent = extent;
        d++;
    }
}

}  // namespace

// x: u8 (c, x, y, n) NHWC input (direct) or the im2col matrix (k, x, y, n) viewed as a 1x1 conv's
// input (ic = Kp); w: s8 (k, oc) packed weights [oc][kp]; out: s32 (c, x, y, n) accumulators.
// The geometry comes as scalars (the bounds query has no buffer extents to read). No user_context
// (the kernels are built without that target feature): the runtime calls get nullptr.
extern "C" int qh_cuda_mma_conv2d_s32(halide_buffer_t *x, halide_buffer_t *w, int variant, int zx,
                                      int ic, int iw, int ih, int kp, int oc, int kw, int kh, int sx, int sy,
                                      int px, int py, halide_buffer_t *out) {
    void *const uc = nullptr;
    if (out->is_bounds_query()) {
        // The bounds query: the output is a query buffer (its real call has a device allocation);
        // the inputs may be copies of the real buffers (Halide inits them from the pipeline's
        // inputs), so their dims are set whatever they hold. Whole layers only: all channels and
        // pixels of the images asked for, all the weights.
        set_region(x, {{0, ic}, {0, iw}, {0, ih}, {out->dim[3].min, out->dim[3].extent}});
        set_region(w, {{0, kp}, {0, oc}});
        return 0;
    }
    const int n = out->dim[3].extent, ow = out->dim[1].extent, oh = out->dim[2].extent;
    ConvDesc d;
    d.n = n; d.h = ih; d.w = iw; d.ic = ic; d.oc = oc;
    d.kh = kh; d.kw = kw; d.sh = sy; d.sw = sx; d.pt = py; d.pl = px;
    // The bottom/right padding only sets the output size: the one that gives the buffer's.
    d.pb = (oh - 1) * sy + kh - ih - py;
    d.pr = (ow - 1) * sx + kw - iw - px;
    d.zx = zx;
    if (!dense_from_zero(out, {oc, ow, oh, n}))
        return fail(uc, "the accumulator must be one dense whole layer, got " + dims(out) + " for OC " +
                            std::to_string(oc));
    if (!dense_from_zero(x, {ic, iw, ih, n})) return fail(uc, "input is not dense NHWC from 0: " + dims(x));
    if (!dense_from_zero(w, {kp, oc})) return fail(uc, "weights are not [OC][Kp] dense: " + dims(w));
    if (d.oh() != oh || d.ow() != ow || oh <= 0 || ow <= 0) return fail(uc, "inconsistent output size");
    if (qh_cuda_conv2d_kpad(d) != kp)
        return fail(uc, "packed weights have Kp " + std::to_string(kp) + ", the microkernel expects " +
                            std::to_string(qh_cuda_conv2d_kpad(d)));
    if (qh_cuda_conv2d_workspace_bytes(d) != 0)
        return fail(uc, "this shape needs a microkernel workspace (use the im2col formulation)");
    if (variant < 0 || variant >= qh_cuda_conv2d_num_variants())
        return fail(uc, "no tile variant " + std::to_string(variant));
    const halide_device_interface_t *cuda = halide_cuda_device_interface();
    for (halide_buffer_t *b : {x, w}) {
        if (int rc = halide_copy_to_device(uc, b, cuda)) return rc;
        if (b->device_interface != cuda) return fail(uc, "an input lives on another device");
    }
    if (!out->device || out->device_interface != cuda) return fail(uc, "the output has no CUDA allocation");
    cudaError_t err = cudaSuccess;
    cudaStream_t stream = qh_cuda_shared_stream(&err);
    if (!stream) return fail(uc, std::string("no CUDA stream: ") + cudaGetErrorString(err));
    err = qh_cuda_conv2d_u8s8s32_v(d, variant, reinterpret_cast<const uint8_t *>(x->device),
                                   reinterpret_cast<const int8_t *>(w->device), reinterpret_cast<int32_t *>(out->device),
                                   nullptr, stream);
    if (err != cudaSuccess)
        return fail(uc, std::string("tile variant ") + qh_cuda_conv2d_variant(variant).name + ": " +
                            cudaGetErrorString(err));
    out->set_device_dirty(true);
    return 0;
}
