#include "mma_ops.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "cuda_context.h"
#include "mma_conv2d.cuh"

namespace qh::cuda_mma {

namespace {

[[noreturn]] void fail(const std::string &op, const std::string &what, cudaError_t e) {
    throw std::runtime_error(op + ": " + what + ": " + cudaGetErrorString(e));
}

// Device memory owned by a bound op.
struct DeviceMem {
    void *p = nullptr;
    DeviceMem() = default;
    DeviceMem(const DeviceMem &) = delete;
    ~DeviceMem() {
        if (p) cudaFree(p);
    }
    void alloc(size_t bytes, const std::string &op) {
        if (cudaError_t e = cudaMalloc(&p, bytes ? bytes : 16)) fail(op, "cudaMalloc", e);
    }
    void upload(const void *host, size_t bytes, const std::string &op) {
        alloc(bytes, op);
        if (cudaError_t e = cudaMemcpy(p, host, bytes, cudaMemcpyHostToDevice)) fail(op, "upload", e);
    }
};

struct State {
    ConvDesc d;
    int variant = 0;
    DeviceMem w, bias, mult, ws;
    QhRequant rq{};
    QhResidual res{};
    bool has_res = false;
    const uint8_t *x = nullptr;
    uint8_t *y = nullptr;
    cudaStream_t stream = nullptr;
    std::string name, kernel;  // for errors
};

// OIHW s8 weights back from the CPU packing (runtime/pack.h):
// packed(i, o, cb, kx, ky, ob) = w[16*ob + o][4*cb + i][ky][kx], Halide dims innermost first.
std::vector<int8_t> unpack_oihw(const PackedWeights &w) {
    const int cio = w.ic_pad / 4;
    std::vector<int8_t> out(size_t(w.oc) * w.ic * w.kh * w.kw);
    const int8_t *src = w.data.get();
    for (int oc = 0; oc < w.oc; oc++)
        for (int ic = 0; ic < w.ic; ic++)
            for (int ky = 0; ky < w.kh; ky++)
                for (int kx = 0; kx < w.kw; kx++) {
                    const int ob = oc / 16, o = oc % 16, cb = ic / 4, i = ic % 4;
                    const size_t k = i + 4 * (o + 16 * (cb + size_t(cio) * (kx + size_t(w.kw) * (ky + size_t(w.kh) * ob))));
                    out[((size_t(oc) * w.ic + ic) * w.kh + ky) * w.kw + kx] = src[k];
                }
    return out;
}

}  // namespace

void init_shared_context() {
    cudaError_t e;
    if (!qh_cuda_shared_stream(&e)) fail("cuda", "no usable CUDA device", e);
}

BoundOp bind_conv2d(const Tensor &x, const PackedWeights &w, const Conv2dParams &p, Tensor &y,
                    const Residual *residual) {
    const char *force = std::getenv("QHALIDE_CUDA_CONV");
    if (force && std::string(force) == "dp4a") return {};
    if (w.has_zero_point || y.dtype() != DType::u8 || w.oc % 8 != 0) return {};
    const std::string &op = p.name;
    auto st = std::make_shared<State>();
    ConvDesc &d = st->d;
    d.n = int(x.dim(0)); d.h = int(x.dim(1)); d.w = int(x.dim(2)); d.ic = int(x.dim(3));
    d.oc = w.oc; d.kh = w.kh; d.kw = w.kw; d.sh = p.stride_h; d.sw = p.stride_w;
    d.pt = p.pad_top; d.pl = p.pad_left; d.pb = p.pad_bottom; d.pr = p.pad_right;
    d.zx = w.input_zp;
    if (d.oh() != y.dim(1) || d.ow() != y.dim(2)) return {};  // ops.cpp has checked; be safe
    if (qh_cuda_conv2d_kpad(d) > 65536) return {};
    init_shared_context();
    st->stream = qh_cuda_shared_stream();

    int dev = 0, sms = 132;
    cudaGetDevice(&dev);
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
    st->variant = qh_cuda_conv2d_pick_variant(d, sms);
    if (qh_cuda_conv2d_variant(st->variant).splitk > 1) st->variant = 5;  // fused epilogues: no split-K
    if (qh_cuda_conv2d_direct(d) && d.ic % qh_cuda_conv2d_variant(st->variant).bk != 0) st->variant = 1;

    const std::vector<int8_t> oihw = unpack_oihw(w);
    std::vector<int8_t> packed(size_t(d.oc) * qh_cuda_conv2d_kpad(d));
    qh_cuda_pack_weights(d, oihw.data(), packed.data());
    st->w.upload(packed.data(), packed.size(), op);
    st->bias.upload(w.bias.data(), sizeof(int32_t) * d.oc, op);
    st->mult.upload(w.mult.data(), sizeof(float) * d.oc, op);
    if (size_t ws = qh_cuda_conv2d_workspace_bytes(d)) st->ws.alloc(ws, op);
    st->rq = QhRequant{static_cast<const int32_t *>(st->bias.p), static_cast<const float *>(st->mult.p),
                       y.quant.zp_at(0), p.act.min, p.act.max};
    st->rq.lo = std::max(st->rq.lo, 0);
    st->rq.hi = std::min(st->rq.hi, 255);
    if (residual) {
        st->has_res = true;
        st->res = QhResidual{reinterpret_cast<const uint8_t *>(residual->tensor->device_handle()),
                             residual->conv_zp, residual->res_zp, residual->conv_mult, residual->res_mult};
    }
    st->x = reinterpret_cast<const uint8_t *>(x.device_handle());
    st->y = reinterpret_cast<uint8_t *>(y.device_handle());
    const std::string name = std::string(residual ? "conv2d_add_u8s8u8" : "conv2d_u8s8u8") + "__cuda_mma__" +
                             qh_cuda_conv2d_variant(st->variant).name;
    st->name = op;
    st->kernel = name;
    return BoundOp(op, name, [st] {
        const cudaError_t e =
            st->has_res ? qh_cuda_conv2d_add_u8s8u8_v(st->d, st->variant, st->x, static_cast<const int8_t *>(st->w.p),
                                                      st->rq, st->res, st->y, st->ws.p, st->stream)
                        : qh_cuda_conv2d_u8s8u8_v(st->d, st->variant, st->x, static_cast<const int8_t *>(st->w.p),
                                                  st->rq, st->y, st->ws.p, st->stream);
        if (e != cudaSuccess) fail(st->name, "kernel " + st->kernel, e);
        return 0;
    });
}

}  // namespace qh::cuda_mma
