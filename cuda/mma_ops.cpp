#include "mma_ops.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "HalideBuffer.h"
#include "HalideRuntimeCuda.h"
#include "cuda_context.h"
#include "gpu_kernels.h"
#include "mma_conv2d.cuh"
#include "options.h"
#include "registry.h"

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
    ~DeviceMem() { reset(); }
    void reset() {
        if (p) cudaFree(p);
        p = nullptr;
    }
    void alloc(size_t bytes, const std::string &op) {
        if (cudaError_t e = cudaMalloc(&p, bytes ? bytes : 16)) fail(op, "cudaMalloc", e);
    }
    void upload(const void *host, size_t bytes, const std::string &op) {
        alloc(bytes, op);
        if (cudaError_t e = cudaMemcpy(p, host, bytes, cudaMemcpyHostToDevice)) fail(op, "upload", e);
    }
};

// The formulations of one layer (ARCHITECTURE.md, "cuda_mma formulations"):
//   fused:         the microkernel with its CUDA-fused requantize / residual-add epilogue;
//   extern:        the Halide pipeline conv2d_extern (define_extern to the microkernel on the
//                  NHWC input, epilogue in Halide), where the microkernel needs no workspace;
//   extern_im2col: the Halide pipeline with the im2col packing stage, the microkernel as a 1x1
//                  conv over the im2col matrix;
//   widened:       W4A8 only: each run first widens the layer's 4-bit weights to the 8-bit packing
//                  in a device scratch shared by every widened layer of the process, then runs the
//                  int8 kernel with the fused epilogue. The weights stay 4-bit in device memory;
//                  where the layer is compute-bound (large batch) this skips the per-tile widening
//                  of the fused W4A8 kernel, as vLLM's AWQ does (dequantize, then GEMM) for large M.
enum class Form { fused, ext, ext_im2col, widened };
const char *form_name(Form f) {
    return f == Form::fused ? "fused" : f == Form::ext ? "extern" : f == Form::ext_im2col ? "extern_im2col" : "widened";
}

template <typename T>
using Buf = Halide::Runtime::Buffer<T>;
using ExternFn = decltype(&qh_conv2d_extern_u8s8u8__cuda_mma);  // all four families alike

// One bound conv2d_extern pipeline: its kernel and Halide views of the layer's device memory.
struct ExternPipe {
    ExternFn fn = nullptr;
    std::string family;
    ConvDesc d;       // the microkernel's problem: the layer, or the 1x1 conv over col
    DeviceMem w_own;  // im2col weights (direct: the fused path's packing is wrapped)
    Buf<uint8_t> x, res, y;
    Buf<int8_t> w;
    Buf<int32_t> bias;
    Buf<float> mult;
};

struct State {
    ConvDesc d;
    Form form = Form::fused;
    int variant = 0;
    DeviceMem w, bias, mult, ws;
    QhRequant rq{};
    QhResidual res{};
    bool has_res = false, s32 = false;
    int32_t act_min = 0, act_max = 255;  // the layer's activation clamp (Halide epilogue)
    const uint8_t *x = nullptr;
    uint8_t *y = nullptr;
    cudaStream_t stream = nullptr;
    std::unique_ptr<ExternPipe> ext, ext_col;  // null where the formulation does not apply
    std::shared_ptr<DeviceMem> w8;               // widened: the shared scratch (null otherwise)
    std::string name, kernel;  // for errors
};

// The widening scratch: one device buffer for every widened layer, at least 4 MiB (the largest
// ResNet-50 layer widens to 2.4 MB); a layer that needs more gets a larger one, and earlier
// layers keep theirs (shared_ptr). Widen + GEMM of one layer must not interleave with another
// layer's on the shared stream: launch() enqueues the pair under kWidenMutex, and widened layers
// are not replayable (a device graph never holds one), so no other enqueue path touches it.
std::mutex kWidenMutex;
std::shared_ptr<DeviceMem> widen_scratch(size_t bytes, const std::string &op) {
    static std::mutex mu;
    static std::weak_ptr<DeviceMem> current;
    static size_t current_bytes = 0;
    std::lock_guard<std::mutex> l(mu);
    std::shared_ptr<DeviceMem> p = current.lock();
    if (p && current_bytes >= bytes) return p;
    p = std::make_shared<DeviceMem>();
    current_bytes = std::max<size_t>(bytes, size_t(4) << 20);
    p->alloc(current_bytes, op);
    current = p;
    return p;
}

// The problem the int8 kernel sees in the widened formulation: the same layer with 8-bit weights.
ConvDesc widened_desc(const ConvDesc &d) {
    ConvDesc d8 = d;
    d8.wbits = 8;
    return d8;
}
bool is_w4a8(const ConvDesc &d) { return d.wbits == 4 && d.abits == 8; }


}  // namespace

void init_shared_context() {
    cudaError_t e;
    if (!qh_cuda_shared_stream(&e)) fail("cuda", "no usable CUDA device", e);
}

namespace {

int num_sms() {
    int dev = 0, sms = 132;
    cudaGetDevice(&dev);
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
    return sms;
}

// A tile variant the microkernel accepts for `d`: 128-byte K stages only when IC % 128 == 0 on
// the direct path, no split-K under a fused u8 epilogue.
bool variant_ok(const ConvDesc &d, int v, bool fused) {
    const QhCudaConvVariant &V = qh_cuda_conv2d_variant(v);
    const int ic_bytes = d.abits == 4 ? d.ic / 2 : d.ic;  // u4 activations: the byte view's K stages
    return !(fused && V.splitk > 1) && !(qh_cuda_conv2d_direct(d) && ic_bytes % V.bk != 0) &&
           !(d.abits == 4 && V.engine != 0);
}

// Weights, bias, multipliers on the device and the heuristic tile variant for one GEMM-shaped
// op. `fused`: a fused u8 epilogue follows (no split-K variants there). The kernel owns its
// weight layout: it packs from the neutral form PackedWeights keeps (w.unpacked: OIHW s8, the
// same weights the kernel list's blocked layout holds; bias / multipliers per channel), never
// from another kernel's layout. `oihw` refers to that neutral form (the im2col formulation packs
// it into its own layout too). 4-bit weights (desc.wbits = 4) stay 4-bit on the device
// (mma_conv2d.cuh); null when a value is outside [-8, 7] (the caller declines the layer).
std::shared_ptr<State> make_state(const ConvDesc &desc, const PackedWeights &w, bool fused,
                                  const std::string &op, const std::vector<int8_t> *&oihw) {
    oihw = &w.unpacked;
    std::vector<int8_t> packed(qh_cuda_packed_weight_bytes(desc));
    if (!qh_cuda_pack_weights(desc, oihw->data(), packed.data())) return nullptr;
    init_shared_context();
    auto st = std::make_shared<State>();
    st->d = desc;
    const ConvDesc &d = st->d;
    st->stream = qh_cuda_shared_stream();
    st->variant = qh_cuda_conv2d_pick_variant(d, num_sms());
    if (fused && qh_cuda_conv2d_variant(st->variant).splitk > 1) st->variant = 5;
    if (!variant_ok(d, st->variant, fused)) st->variant = 1;
    st->w.upload(packed.data(), packed.size(), op);
    st->bias.upload(w.bias.data(), sizeof(int32_t) * d.oc, op);
    st->mult.upload(w.mult.data(), sizeof(float) * d.oc, op);
    if (size_t ws = qh_cuda_conv2d_workspace_bytes(d)) st->ws.alloc(ws, op);
    st->name = op;
    return st;
}

// KernelOptions::cuda_formulation (QHALIDE_CUDA_FORMULATION) = fused|extern|extern_im2col: that
// formulation wherever the layer allows it (tests); empty: chosen by measurement. Anything else is
// an error.
constexpr Form kFused = Form::fused;  // the one formulation a device graph can replay

const Form *forced_form(const std::string &op) {
    static const Form forms[] = {Form::fused, Form::ext, Form::ext_im2col, Form::widened};
    const std::string want = kernel_options().cuda_formulation;
    if (want.empty()) return nullptr;
    for (const Form &f : forms)
        if (want == form_name(f)) return &f;
    throw std::invalid_argument(op + ": cuda formulation '" + want +
                                "' (KernelOptions::cuda_formulation / QHALIDE_CUDA_FORMULATION) is not one of fused, extern, extern_im2col, widened");
}

// Halide view of device memory (wrapped, not owned).
template <typename T>
Buf<T> device_buf(const void *p, std::vector<int> sizes, const std::string &op) {
    Buf<T> b(static_cast<T *>(nullptr), sizes);
    if (int rc = b.device_wrap_native(halide_cuda_device_interface(), uint64_t(reinterpret_cast<uintptr_t>(p))))
        throw std::runtime_error(op + ": wrapping device memory for Halide failed with error " + std::to_string(rc));
    return b;
}

// Packed reduction length of the im2col formulation: K rounded up to a multiple of 128, the
// microkernel's own im2col granularity (KALIGN): every tile's K stage (64 or 128 bytes) divides
// it, so the 1x1 conv over col takes the direct path with any variant.
constexpr int kIm2colKAlign = 128;
int im2col_kpad(const ConvDesc &d) { return (d.k() + kIm2colKAlign - 1) / kIm2colKAlign * kIm2colKAlign; }

// The conv2d_extern pipeline for this layer, direct or im2col, or null where it does not apply:
// u8 output only (the pipelines' epilogue), and direct only where the microkernel needs no
// workspace (the stem's NHWC4 pad pass and its own im2col path do).
// x / y dims: Halide order (c, x, y, n) of the layer's input and output (dense: 1x1 images).
std::unique_ptr<ExternPipe> make_extern(const State &st, bool im2col, const std::vector<int8_t> &oihw,
                                        const std::vector<int> &xdims, const std::vector<int> &ydims,
                                        const uint8_t *residual) {
    const ConvDesc &d = st.d;
    if (st.s32) return nullptr;
    if (d.wbits != 8 || d.abits != 8) return nullptr;  // the pipelines take u8 x s8 (int4: fused only)
    if (!im2col && qh_cuda_conv2d_workspace_bytes(d) != 0) return nullptr;
    if (im2col && im2col_kpad(d) > 65536) return nullptr;
    // The accumulator (and col) are Halide-allocated intermediates of every run: with reuse on,
    // halide_device_free puts them on the CUDA runtime's free list (per stream, best fit, at most
    // ~32 blocks, released and retried when cuMemAlloc runs out of memory) and the next run's
    // halide_device_malloc takes them from there instead of cuMemAlloc / cuMemFree per layer
    // and run. Process-wide; the cuda_dp4a path allocates nothing per run, so it is unaffected.
    halide_reuse_device_allocations(nullptr, true);
    auto e = std::make_unique<ExternPipe>();
    const bool add = st.has_res;
    e->fn = im2col ? (add ? gpu_kernels::conv2d_add_extern_im2col_u8s8u8__cuda_mma()
                          : gpu_kernels::conv2d_extern_im2col_u8s8u8__cuda_mma()).fn
                   : (add ? gpu_kernels::conv2d_add_extern_u8s8u8__cuda_mma()
                          : gpu_kernels::conv2d_extern_u8s8u8__cuda_mma()).fn;
    e->family = im2col ? (add ? "conv2d_add_extern_im2col_u8s8u8" : "conv2d_extern_im2col_u8s8u8")
                       : (add ? "conv2d_add_extern_u8s8u8" : "conv2d_extern_u8s8u8");
    int kp = qh_cuda_conv2d_kpad(d);
    const void *wdev = st.w.p;
    e->d = d;
    if (im2col) {
        // [OC][Kp] at k = (ky*KW + kx)*IC + ic, zero past K: the generator's col(k, m) order.
        kp = im2col_kpad(d);
        std::vector<int8_t> packed(size_t(d.oc) * kp, 0);
        for (int oc = 0; oc < d.oc; oc++)
            for (int ic = 0; ic < d.ic; ic++)
                for (int ky = 0; ky < d.kh; ky++)
                    for (int kx = 0; kx < d.kw; kx++)
                        packed[size_t(oc) * kp + (ky * d.kw + kx) * d.ic + ic] =
                            oihw[((size_t(oc) * d.ic + ic) * d.kh + ky) * d.kw + kx];
        e->w_own.upload(packed.data(), packed.size(), st.name);
        wdev = e->w_own.p;
        ConvDesc c;  // what the extern runs: a 1x1 conv over col viewed as N x OH x OW x Kp
        c.n = d.n; c.h = d.oh(); c.w = d.ow(); c.ic = kp; c.oc = d.oc; c.zx = d.zx;
        e->d = c;
    }
    e->x = device_buf<uint8_t>(st.x, xdims, st.name);
    e->y = device_buf<uint8_t>(st.y, ydims, st.name);
    e->res = residual ? device_buf<uint8_t>(residual, ydims, st.name) : Buf<uint8_t>(1, 1, 1, 1);
    e->w = device_buf<int8_t>(wdev, {kp, d.oc}, st.name);
    e->bias = device_buf<int32_t>(st.bias.p, {d.oc}, st.name);
    e->mult = device_buf<float>(st.mult.p, {d.oc}, st.name);
    return e;
}

// One run of the layer in formulation `f` with tile variant `v`: 0, a CUDA error code (fused)
// or a Halide error code (extern).
int launch(State &st, Form f, int v) {
    if (f == Form::widened) {
        const ConvDesc d8 = widened_desc(st.d);
        int8_t *w8 = static_cast<int8_t *>(st.w8->p);
        std::lock_guard<std::mutex> l(kWidenMutex);
        if (cudaError_t e = qh_cuda_widen_w4a8(st.d, static_cast<const uint8_t *>(st.w.p), w8, st.stream)) return e;
        if (st.s32) return qh_cuda_conv2d_u8s8s32_bias_v(d8, v, st.x, w8, st.rq.bias, reinterpret_cast<int32_t *>(st.y), st.ws.p, st.stream);
        if (st.has_res) return qh_cuda_conv2d_add_u8s8u8_v(d8, v, st.x, w8, st.rq, st.res, st.y, st.ws.p, st.stream);
        return qh_cuda_conv2d_u8s8u8_v(d8, v, st.x, w8, st.rq, st.y, st.ws.p, st.stream);
    }
    if (f == Form::fused) {
        const int8_t *wp = static_cast<const int8_t *>(st.w.p);
        if (st.d.abits == 4) {  // W4A4: u4 storage in and out
            const uint8_t *w4 = static_cast<const uint8_t *>(st.w.p);
            if (st.has_res) return qh_cuda_conv2d_add_u4s4u4_v(st.d, v, st.x, w4, st.rq, st.res, st.y, st.ws.p, st.stream);
            return qh_cuda_conv2d_u4s4u4_v(st.d, v, st.x, w4, st.rq, st.y, st.ws.p, st.stream);
        }
        if (st.s32)
            return qh_cuda_conv2d_u8s8s32_bias_v(st.d, v, st.x, wp, st.rq.bias, reinterpret_cast<int32_t *>(st.y),
                                                 st.ws.p, st.stream);
        if (st.has_res)
            return qh_cuda_conv2d_add_u8s8u8_v(st.d, v, st.x, wp, st.rq, st.res, st.y, st.ws.p, st.stream);
        return qh_cuda_conv2d_u8s8u8_v(st.d, v, st.x, wp, st.rq, st.y, st.ws.p, st.stream);
    }
    ExternPipe &e = *(f == Form::ext ? st.ext : st.ext_col);
    const ConvDesc &d = st.d;
    return e.fn(e.x, d.zx, e.w, e.bias, e.mult, st.rq.zy, st.act_min, st.act_max, d.kw, d.kh, d.sw, d.sh, d.pl,
                d.pt, v, e.res, st.res.conv_zp, st.res.res_zp, st.res.conv_mult, st.res.res_mult, e.y);
}

std::string kernel_name(const State &st, Form f, int v, const std::string &family) {
    if (f == Form::widened) return family + "__cuda_mma__widened_" + qh_cuda_conv2d_variant(v).name;
    const std::string fam = f == Form::fused ? family : (f == Form::ext ? st.ext : st.ext_col)->family;
    return fam + "__cuda_mma__" + qh_cuda_conv2d_variant(v).name;
}

// Median of 5 timed runs (CUDA events on the shared stream) after one untimed run, in ms;
// negative when the candidate fails to run.
float time_candidate(State &st, Form f, int v, cudaEvent_t e0, cudaEvent_t e1) {
    if (launch(st, f, v) != 0) {
        cudaGetLastError();
        return -1.f;
    }
    std::vector<float> t;
    for (int i = 0; i < 5; i++) {
        cudaEventRecord(e0, st.stream);
        int rc = launch(st, f, v);
        cudaEventRecord(e1, st.stream);
        cudaEventSynchronize(e1);
        if (rc != 0) return -1.f;
        float ms = 0;
        cudaEventElapsedTime(&ms, e0, e1);
        t.push_back(ms);
    }
    std::nth_element(t.begin(), t.begin() + 2, t.end());
    return t[2];
}

// The formulation and tile variant for this layer, by measurement: (a) fused, every variant the
// layer allows; (b) extern and (c) extern_im2col where they apply, each with only a few variants
// to bound prepare time: the one (a) found fastest and the size heuristic for the problem the
// microkernel sees there (split-K allowed: the accumulator is s32). Every candidate runs on the
// same pseudo-random input bytes (timing on zeros can flatter a kernel), 5 times, CUDA events on
// the shared stream, lowest median wins. At prepare the op's input and output slots hold nothing
// live. QHALIDE_CUDA_TUNE=0 keeps the size heuristic (and the fused formulation unless
// QHALIDE_CUDA_FORMULATION forces another); QHALIDE_CUDA_FORMULATION restricts the choice to
// one formulation where the layer allows it; QHALIDE_CUDA_TUNE_LOG=1 prints every candidate's
// time and the winner to stderr. Under ReplayableOnly (ops.h), unless forced, only the fused
// formulation.
void choose(State &st) {
    const ResolvedKernelOptions opt = kernel_options();
    const Form *forced = forced_form(st.name);  // an explicit formulation wins
    if (!forced && opt.replayable_only) forced = &kFused;
    if (forced && *forced == Form::ext && !st.ext) forced = nullptr;
    if (forced && *forced == Form::ext_im2col && !st.ext_col) forced = nullptr;
    if (forced && *forced == Form::widened && !st.w8) forced = nullptr;
    auto heuristic = [&](Form f) {
        const ConvDesc &d = f == Form::fused ? st.d : (f == Form::ext ? st.ext : st.ext_col)->d;
        int v = qh_cuda_conv2d_pick_variant(d, num_sms());
        if (!variant_ok(d, v, f == Form::fused)) v = f == Form::fused ? st.variant : 1;
        return v;
    };
    if (!opt.cuda_tune) {
        st.form = forced ? *forced : Form::fused;
        st.variant = st.form == Form::fused || st.form == Form::widened ? st.variant : heuristic(st.form);
        return;
    }
    const ConvDesc &d = st.d;
    {
        // One pseudo-random byte pattern for every layer, extended as larger inputs come.
        static std::mutex mu;
        static std::vector<uint8_t> noise;
        static uint32_t r = 0x9E3779B9u;
        std::lock_guard<std::mutex> l(mu);
        const size_t bytes = size_t(d.n) * d.h * d.w * d.ic * d.abits / 8;  // u4: packed
        while (noise.size() < bytes) noise.push_back(uint8_t((r = r * 1664525u + 1013904223u) >> 24));
        if (cudaError_t e = cudaMemcpy(const_cast<uint8_t *>(st.x), noise.data(), bytes, cudaMemcpyHostToDevice))
            fail(st.name, "tuning input", e);
    }
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    float best = 1e30f;
    const int fallback = st.variant;
    bool found = false;
    const bool log = opt.cuda_tune_log;
    std::string log_line;
    auto timed = [&](Form f, int v) {
        const float ms = time_candidate(st, f, v, e0, e1);
        if (log)
            log_line += std::string(" ") + form_name(f) + ":" + qh_cuda_conv2d_variant(v).name + "=" +
                        (ms >= 0 ? std::to_string(ms * 1000.f).substr(0, 7) + "us" : "failed");
        return ms;
    };
    auto consider = [&](Form f, int v) {
        if (forced && *forced != f) return;
        const float ms = timed(f, v);
        if (ms >= 0 && ms < best) {
            best = ms;
            st.form = f;
            st.variant = v;
            found = true;
        }
    };
    int best_fused = fallback;  // seeds the extern candidates (the fused heuristic when forced)
    if (!forced || *forced == Form::fused) {
        float bf = 1e30f;
        for (int v = 0; v < qh_cuda_conv2d_num_variants(); v++) {
            if (!variant_ok(d, v, !st.s32)) continue;
            const float ms = timed(Form::fused, v);
            if (ms >= 0 && ms < bf) bf = ms, best_fused = v;
            if (ms >= 0 && ms < best) best = ms, st.form = Form::fused, st.variant = v, found = true;
        }
    }
    if (st.w8 && (!forced || *forced == Form::widened))  // W4A8: every variant of the int8 kernel
        for (int v = 0; v < qh_cuda_conv2d_num_variants(); v++)
            if (variant_ok(widened_desc(d), v, !st.s32)) consider(Form::widened, v);
    for (Form f : {Form::ext, Form::ext_im2col}) {
        const ExternPipe *e = f == Form::ext ? st.ext.get() : st.ext_col.get();
        if (!e) continue;
        const int h = heuristic(f);
        consider(f, h);
        if (best_fused != h && variant_ok(e->d, best_fused, false)) consider(f, best_fused);
    }
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    if (!found) {
        st.form = forced ? *forced : Form::fused;
        st.variant = st.form == Form::fused || st.form == Form::widened ? fallback : heuristic(st.form);
    }
    cudaGetLastError();  // a failed candidate is skipped, not fatal; the chosen one runs checked
    if (log)  // QHALIDE_CUDA_TUNE_LOG=1: every candidate's median and the winner, one line a layer
        std::fprintf(stderr, "cuda_mma tune %s [n=%d %dx%dx%d -> %d, %dx%d s%d]:%s => %s:%s\n", st.name.c_str(), d.n,
                     d.h, d.w, d.ic, d.oc, d.kh, d.kw, d.sh, log_line.c_str(), form_name(st.form),
                     qh_cuda_conv2d_variant(st.variant).name);
    // Drop the tuning runs' cached accumulators (the chosen pipeline allocates again once).
    halide_cuda_release_unused_device_allocations(nullptr);
}

// Binds the chosen formulation; the others' device memory is freed.
BoundOp bind_gemm(std::shared_ptr<State> st, const Activation &act, const Tensor &y, const std::string &family,
                  const std::vector<int8_t> &oihw, const std::vector<int> &xdims, const std::vector<int> &ydims,
                  const uint8_t *residual) {
    const int out_max = st->d.abits == 4 ? 15 : 255;  // u4 storage output: [0, 15]
    st->rq = QhRequant{static_cast<const int32_t *>(st->bias.p), static_cast<const float *>(st->mult.p),
                       y.quant.zp_at(0), std::max(act.min, 0), std::min(act.max, out_max)};
    st->act_min = act.min;
    st->act_max = act.max;
    st->ext = make_extern(*st, false, oihw, xdims, ydims, residual);
    st->ext_col = make_extern(*st, true, oihw, xdims, ydims, residual);
    if (is_w4a8(st->d))  // a candidate unless the plan must be replayable (choose())
        st->w8 = widen_scratch(size_t(st->d.oc) * qh_cuda_conv2d_kpad(st->d), st->name);
    choose(*st);
    if (st->form != Form::widened) st->w8.reset();
    if (st->form != Form::ext) st->ext.reset();
    if (st->form != Form::ext_im2col) st->ext_col.reset();
    if (st->form == Form::ext_im2col) st->w.reset();
    const bool own_kernel = st->form == Form::fused || st->form == Form::widened;  // the microkernel, no Halide
    if (!own_kernel) st->ws.reset();
    st->kernel = kernel_name(*st, st->form, st->variant, family);
    BoundOp op(st->name, st->kernel, [st, own_kernel] {
        const int rc = launch(*st, st->form, st->variant);
        if (rc != 0 && own_kernel) fail(st->name, "kernel " + st->kernel, cudaError_t(rc));
        return rc;  // a Halide error code: BoundOp names the layer and the kernel
    });
    if (st->form == Form::widened)
        op.set_not_replayable("its widened 4-bit weights share one device scratch with other layers");
    else if (st->form != Form::fused)  // acc (and col) are Halide-allocated per run
        op.set_not_replayable("its Halide pipeline allocates device scratch per run");
    return op;
}

}  // namespace

BoundOp bind_conv2d(const Tensor &x, const PackedWeights &w, const Conv2dParams &p, Tensor &y,
                    const Residual *residual) {
    // u8 in / out (weights s8, or s4 with weight_bits = 4: W4A8), or u4 storage in / out (and
    // residual) with s4 weights (W4A4, mma.sync m16n8k64, IC even, zx within [0, 15]).
    if (w.has_zero_point || w.oc % 8 != 0 || (w.weight_bits != 8 && w.weight_bits != 4)) return {};
    const DType io = x.dtype();
    if ((io != DType::u8 && io != DType::u4) || y.dtype() != io || (residual && residual->tensor->dtype() != io))
        return {};
    const bool a4 = io == DType::u4;
    if (a4 && (w.weight_bits != 4 || x.dim(3) % 2 != 0 || w.input_zp < 0 || w.input_zp > 15)) return {};
    ConvDesc d;
    d.wbits = w.weight_bits;
    d.abits = a4 ? 4 : 8;
    d.n = int(x.dim(0)); d.h = int(x.dim(1)); d.w = int(x.dim(2)); d.ic = int(x.dim(3));
    d.oc = w.oc; d.kh = w.kh; d.kw = w.kw; d.sh = p.stride_h; d.sw = p.stride_w;
    d.pt = p.pad_top; d.pl = p.pad_left; d.pb = p.pad_bottom; d.pr = p.pad_right;
    d.zx = w.input_zp;
    if (qh_cuda_conv2d_kpad(d) > 65536) return {};  // ops.cpp has checked the shapes
    const std::vector<int8_t> *oihw = nullptr;
    auto st = make_state(d, w, true, p.name, oihw);
    if (!st) return {};
    st->x = reinterpret_cast<const uint8_t *>(x.device_handle());
    st->y = reinterpret_cast<uint8_t *>(y.device_handle());
    const uint8_t *res_dev = nullptr;
    if (residual) {
        st->has_res = true;
        res_dev = reinterpret_cast<const uint8_t *>(residual->tensor->device_handle());
        st->res = QhResidual{res_dev, residual->conv_zp, residual->res_zp, residual->conv_mult, residual->res_mult};
    }
    const std::string types = a4 ? "u4s4u4" : d.wbits == 4 ? "u8s4u8" : "u8s8u8";
    return bind_gemm(st, p.act, y, (residual ? "conv2d_add_" : "conv2d_") + types, *oihw,
                     {d.ic, d.w, d.h, d.n}, {d.oc, d.ow(), d.oh(), d.n}, res_dev);
}

BoundOp bind_dense(const Tensor &x, const PackedWeights &w, const Activation &act, Tensor &y,
                   const std::string &name) {
    const bool s32 = y.dtype() == DType::s32;
    if (w.has_zero_point || x.dtype() != DType::u8 || (y.dtype() != DType::u8 && !s32) || w.oc % 8 != 0 ||
        (w.weight_bits != 8 && w.weight_bits != 4))
        return {};
    ConvDesc d;  // a 1x1 conv over N images of 1x1 pixels
    d.wbits = w.weight_bits;
    d.n = int(x.dim(0)); d.h = 1; d.w = 1; d.ic = int(x.dim(1)); d.oc = w.oc;
    d.zx = w.input_zp;
    if (qh_cuda_conv2d_kpad(d) > 65536) return {};
    const std::vector<int8_t> *oihw = nullptr;
    auto st = make_state(d, w, !s32, name, oihw);
    if (!st) return {};
    st->x = reinterpret_cast<const uint8_t *>(x.device_handle());
    st->y = reinterpret_cast<uint8_t *>(y.device_handle());
    st->s32 = s32;
    const std::string wt = d.wbits == 4 ? "s4" : "s8";
    return bind_gemm(st, act, y, s32 ? "dense_u8" + wt + "s32" : "dense_u8" + wt + "u8", *oihw, {d.ic, 1, 1, d.n},
                     {d.oc, 1, 1, d.n}, nullptr);
}

void register_implementations() {
    // Above the cuda_dp4a Halide kernels wherever it binds (symmetric weights, u8 output, OC % 8).
    constexpr int kPriority = 10;
    register_implementation({"cuda_mma", "conv2d", Device::cuda, kPriority, [](const GemmCall &c) {
                                 return cuda_mma::bind_conv2d(c.x, c.w, *c.conv, c.y, nullptr);
                             }});
    register_implementation({"cuda_mma", "conv2d_add", Device::cuda, kPriority, [](const GemmCall &c) {
                                 const Residual r{c.residual, c.conv_zp, c.res_zp, c.conv_mult, c.res_mult};
                                 return cuda_mma::bind_conv2d(c.x, c.w, *c.conv, c.y, &r);
                             }});
    register_implementation({"cuda_mma", "dense", Device::cuda, kPriority, [](const GemmCall &c) {
                                 return cuda_mma::bind_dense(c.x, c.w, c.act, c.y, c.name);
                             }});
}

}  // namespace qh::cuda_mma
