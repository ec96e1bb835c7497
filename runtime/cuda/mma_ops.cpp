#include "mma_ops.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
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
    bool has_res = false, s32 = false;
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

namespace {

// Weights, bias, multipliers on the device and the tile variant for one GEMM-shaped op.
// `fused`: a fused u8 epilogue follows (no split-K variants there).
std::shared_ptr<State> make_state(const ConvDesc &desc, const PackedWeights &w, bool fused,
                                  const std::string &op) {
    init_shared_context();
    auto st = std::make_shared<State>();
    st->d = desc;
    const ConvDesc &d = st->d;
    st->stream = qh_cuda_shared_stream();
    int dev = 0, sms = 132;
    cudaGetDevice(&dev);
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
    st->variant = qh_cuda_conv2d_pick_variant(d, sms);
    if (fused && qh_cuda_conv2d_variant(st->variant).splitk > 1) st->variant = 5;
    if (qh_cuda_conv2d_direct(d) && d.ic % qh_cuda_conv2d_variant(st->variant).bk != 0) st->variant = 1;
    const std::vector<int8_t> oihw = unpack_oihw(w);
    std::vector<int8_t> packed(size_t(d.oc) * qh_cuda_conv2d_kpad(d));
    qh_cuda_pack_weights(d, oihw.data(), packed.data());
    st->w.upload(packed.data(), packed.size(), op);
    st->bias.upload(w.bias.data(), sizeof(int32_t) * d.oc, op);
    st->mult.upload(w.mult.data(), sizeof(float) * d.oc, op);
    if (size_t ws = qh_cuda_conv2d_workspace_bytes(d)) st->ws.alloc(ws, op);
    st->name = op;
    return st;
}

bool forced_dp4a() {
    const char *force = std::getenv("QHALIDE_CUDA_CONV");
    return force && std::string(force) == "dp4a";
}

cudaError_t launch(const State &st, int variant) {
    const int8_t *wp = static_cast<const int8_t *>(st.w.p);
    if (st.s32)
        return qh_cuda_conv2d_u8s8s32_bias_v(st.d, variant, st.x, wp, st.rq.bias, reinterpret_cast<int32_t *>(st.y),
                                             st.ws.p, st.stream);
    if (st.has_res)
        return qh_cuda_conv2d_add_u8s8u8_v(st.d, variant, st.x, wp, st.rq, st.res, st.y, st.ws.p, st.stream);
    return qh_cuda_conv2d_u8s8u8_v(st.d, variant, st.x, wp, st.rq, st.y, st.ws.p, st.stream);
}

// The tile variant for this layer by measurement: every variant the layer allows (no split-K
// under a fused u8 epilogue, 128-byte K stages only when IC % 128 == 0 on the direct path) runs
// 5 times on random input bytes (timing on zeros can flatter a kernel), CUDA events on the shared
// stream, the lowest median wins. At prepare the op's input and output slots hold nothing live.
// QHALIDE_CUDA_TUNE=0 keeps the size heuristic (qh_cuda_conv2d_pick_variant).
void tune(State &st) {
    const char *env = std::getenv("QHALIDE_CUDA_TUNE");
    if (env && std::string(env) == "0") return;
    const ConvDesc &d = st.d;
    {
        // One pseudo-random byte pattern for every layer, extended as larger inputs come.
        static std::mutex mu;
        static std::vector<uint8_t> noise;
        static uint32_t r = 0x9E3779B9u;
        std::lock_guard<std::mutex> l(mu);
        const size_t bytes = size_t(d.n) * d.h * d.w * d.ic;
        while (noise.size() < bytes) noise.push_back(uint8_t((r = r * 1664525u + 1013904223u) >> 24));
        if (cudaError_t e = cudaMemcpy(const_cast<uint8_t *>(st.x), noise.data(), bytes, cudaMemcpyHostToDevice))
            fail(st.name, "tuning input", e);
    }
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    float best = 1e30f;
    for (int v = 0; v < qh_cuda_conv2d_num_variants(); v++) {
        const QhCudaConvVariant &V = qh_cuda_conv2d_variant(v);
        if ((!st.s32 && V.splitk > 1) || (qh_cuda_conv2d_direct(d) && d.ic % V.bk != 0)) continue;
        if (launch(st, v) != cudaSuccess) {
            cudaGetLastError();
            continue;
        }
        std::vector<float> t;
        for (int i = 0; i < 5; i++) {
            cudaEventRecord(e0, st.stream);
            launch(st, v);
            cudaEventRecord(e1, st.stream);
            cudaEventSynchronize(e1);
            float ms = 0;
            cudaEventElapsedTime(&ms, e0, e1);
            t.push_back(ms);
        }
        std::nth_element(t.begin(), t.begin() + 2, t.end());
        if (t[2] < best) {
            best = t[2];
            st.variant = v;
        }
    }
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    if (cudaError_t e = cudaGetLastError()) fail(st.name, "tuning", e);
}

// u8 output with the fused requantize (and residual add) epilogue, or s32 = acc + bias.
BoundOp bind_gemm(std::shared_ptr<State> st, const Activation &act, const Tensor &x, Tensor &y,
                  const std::string &family) {
    st->x = reinterpret_cast<const uint8_t *>(x.device_handle());
    st->y = reinterpret_cast<uint8_t *>(y.device_handle());
    st->s32 = y.dtype() == DType::s32;
    st->rq = QhRequant{static_cast<const int32_t *>(st->bias.p), static_cast<const float *>(st->mult.p),
                       y.quant.zp_at(0), std::max(act.min, 0), std::min(act.max, 255)};
    tune(*st);
    st->kernel = family + "__cuda_mma__" + qh_cuda_conv2d_variant(st->variant).name;
    return BoundOp(st->name, st->kernel, [st] {
        if (cudaError_t e = launch(*st, st->variant)) fail(st->name, "kernel " + st->kernel, e);
        return 0;
    });
}

}  // namespace

BoundOp bind_conv2d(const Tensor &x, const PackedWeights &w, const Conv2dParams &p, Tensor &y,
                    const Residual *residual) {
    if (forced_dp4a() || w.has_zero_point || y.dtype() != DType::u8 || w.oc % 8 != 0) return {};
    ConvDesc d;
    d.n = int(x.dim(0)); d.h = int(x.dim(1)); d.w = int(x.dim(2)); d.ic = int(x.dim(3));
    d.oc = w.oc; d.kh = w.kh; d.kw = w.kw; d.sh = p.stride_h; d.sw = p.stride_w;
    d.pt = p.pad_top; d.pl = p.pad_left; d.pb = p.pad_bottom; d.pr = p.pad_right;
    d.zx = w.input_zp;
    if (qh_cuda_conv2d_kpad(d) > 65536) return {};  // ops.cpp has checked the shapes
    auto st = make_state(d, w, true, p.name);
    if (residual) {
        st->has_res = true;
        st->res = QhResidual{reinterpret_cast<const uint8_t *>(residual->tensor->device_handle()),
                             residual->conv_zp, residual->res_zp, residual->conv_mult, residual->res_mult};
    }
    return bind_gemm(st, p.act, x, y, residual ? "conv2d_add_u8s8u8" : "conv2d_u8s8u8");
}

BoundOp bind_dense(const Tensor &x, const PackedWeights &w, const Activation &act, Tensor &y,
                   const std::string &name) {
    const bool s32 = y.dtype() == DType::s32;
    if (forced_dp4a() || w.has_zero_point || (y.dtype() != DType::u8 && !s32) || w.oc % 8 != 0) return {};
    ConvDesc d;  // a 1x1 conv over N images of 1x1 pixels
    d.n = int(x.dim(0)); d.h = 1; d.w = 1; d.ic = int(x.dim(1)); d.oc = w.oc;
    d.zx = w.input_zp;
    if (qh_cuda_conv2d_kpad(d) > 65536) return {};
    auto st = make_state(d, w, !s32, name);
    return bind_gemm(st, act, x, y, s32 ? "dense_u8s8s32" : "dense_u8s8u8");
}

}  // namespace qh::cuda_mma
