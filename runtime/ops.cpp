#include "ops.h"

#include <map>
#include <memory>
#include <mutex>
#include <cstring>
#include <stdexcept>

#include "HalideBuffer.h"
#include "device.h"
#include "gpu_kernels.h"
#include "graph.h"
#include "kernels.h"
#include "registry.h"

namespace qh {

namespace {

template <typename T>
using Buf = Halide::Runtime::Buffer<T>;

std::mutex g_last_mu;
std::map<std::string, std::string> g_last;

[[noreturn]] void fail(const std::string &op, const std::string &msg) {
    throw std::invalid_argument(op + ": " + msg);
}

// The message is only built when the check fails: ops run in Model::execute(), which must not
// allocate.
#define QH_EXPECT(ok, op, msg)     \
    do {                           \
        if (!(ok)) fail((op), (msg)); \
    } while (0)

void expect_tensor(const Tensor &t, const std::string &op, const char *what,
                   std::initializer_list<DType> dtypes, int rank) {
    QH_EXPECT(t.defined(), op, std::string(what) + " has no data");
    bool ok = false;
    std::string allowed;
    for (auto d : dtypes) {
        ok |= t.dtype() == d;
        allowed += std::string(allowed.empty() ? "" : " or ") + dtype_name(d);
    }
    QH_EXPECT(ok, op, std::string(what) + " is " + t.describe() + ", expected dtype " + allowed);
    QH_EXPECT(rank < 0 || t.rank() == rank, op,
           std::string(what) + " is " + t.describe() + ", expected rank " + std::to_string(rank));
}

void expect_per_tensor(const Tensor &t, const std::string &op, const char *what) {
    QH_EXPECT(t.quant.scale.size() == 1, op,
           std::string(what) + " needs one per-tensor scale, has " +
               std::to_string(t.quant.scale.size()));
    QH_EXPECT(t.quant.zero_point.size() <= 1, op,
           std::string(what) + " needs a per-tensor zero point");
}

// Halide buffer of `type` over a tensor's storage with Halide dims `sizes` (innermost first):
// the host memory, or for a device tensor the wrapped device pointer (no host data).
// Halide buffers (without the large_buffers target feature) address at most 2^31 - 1 bytes; a
// larger tensor is refused here, before any int32 stride arithmetic.
Buf<void> view_as(const Tensor &t, halide_type_t type, const std::vector<int> &sizes) {
    install_halide_error_handler();
    if (t.nbytes() > size_t(INT32_MAX))
        throw std::length_error("tensor " + t.describe() + " is " + std::to_string(t.nbytes()) +
                                " bytes, more than a kernel buffer's limit of 2^31 - 1 bytes (use a smaller batch)");
    if (t.device() == Device::cpu) return Buf<void>(type, const_cast<void *>(t.raw()), sizes);
    Buf<void> b(type, static_cast<void *>(nullptr), sizes);
    device_view(b, t);
    return b;
}
template <typename T>
Buf<T> view(const Tensor &t, std::vector<int> sizes) {
    return Buf<T>(view_as(t, halide_type_of<T>(), sizes));
}
halide_type_t dtype_halide(DType d) {
    switch (d) {
    case DType::u8: case DType::u4: return halide_type_of<uint8_t>();
    case DType::s8: case DType::s4: return halide_type_of<int8_t>();
    case DType::s32: return halide_type_of<int32_t>();
    default: return halide_type_of<float>();
    }
}
// Type-erased view (the output of a family whose dtype is picked at bind time).
Buf<void> view_any(const Tensor &t, const std::vector<int> &sizes) {
    return view_as(t, dtype_halide(t.dtype()), sizes);
}

// The device an op runs on: the one all its tensors live on.
Device op_device(const std::string &op, std::initializer_list<const Tensor *> ts) {
    const Device d = (*ts.begin())->device();
    for (const Tensor *t : ts)
        QH_EXPECT(t->device() == d, op, "tensors on different devices: " + (*ts.begin())->describe() + " and " +
                                            t->describe());
    return d;
}
std::vector<int> nhwc_dims(const Tensor &t) {  // Halide order: c, x, y, n
    return {(int)t.dim(3), (int)t.dim(2), (int)t.dim(1), (int)t.dim(0)};
}
// Halide dims of an activation's storage: a u4 tensor's c dimension counts bytes (two channels
// each; the channel count is even, checked by the binds).
std::vector<int> nhwc_storage_dims(const Tensor &t) {
    std::vector<int> d = nhwc_dims(t);
    if (t.dtype() == DType::u4) d[0] /= 2;
    return d;
}
// Type field of a kernel family name (<op>_<src><wei><dst>).
const char *type_field(DType t) { return dtype_name(t); }
std::string weight_field(const PackedWeights &w) {
    return w.has_zero_point ? "z8" : w.weight_bits == 4 ? "s4" : "s8";
}
// The family `name` of an op whose family follows from the call's types; a clear error if this
// library has none (e.g. an int4 combination that was not built).
template <typename Fn>
const KernelVariants<Fn> &family_or_fail(const std::string &op, const std::string &name) {
    const KernelVariants<Fn> *v = find_family<Fn>(name);
    if (!v) fail(op, "no kernel family " + name + " in this library (cmake/qhalide_kernels.cmake lists the "
                     "type combinations built)");
    return *v;
}

void record(const std::string &family, const std::string &kernel) {
    std::lock_guard<std::mutex> l(g_last_mu);
    g_last[family] = kernel;
}

// The family's kernel for device `d`: on the CPU the variant the dispatch policy chooses (with a
// shape key, the tuned kernel for this exact shape when tuning/db.json has one); on a GPU the
// family's GPU kernel (runtime/gpu_kernels.h: same signature, same packed weights).
template <typename Fn>
ChosenKernel<Fn> pick(const KernelVariants<Fn> &v, Device d, const std::string *shape_key = nullptr) {
    const char *family = v.front().family;
    ChosenKernel<Fn> k{};
    if (d == Device::cpu) {
        if (shape_key) {
            k = choose(v, *shape_key);
        } else {
            const auto &c = choose(v);
            k = {c.fn, c.name()};
        }
    } else {
        for (const auto &g : gpu_kernels::all())
            if (std::string(g.family) == family) k = {reinterpret_cast<Fn>(g.fn), g.name()};
        if (!k.fn) fail(family, std::string("no ") + device_name(d) + " kernel in this library");
    }
    record(family, k.name);
    return k;
}
template <typename Fn>
ChosenKernel<Fn> pick_shaped(const KernelVariants<Fn> &v, const std::string &shape_key, Device d) {
    return pick(v, d, &shape_key);
}

std::string conv_key(const Tensor &x, const PackedWeights &w, const Conv2dParams &p,
                     const Tensor &y) {
    return conv2d_shape_key((int)x.dim(0), (int)x.dim(3), (int)x.dim(1), (int)x.dim(2), w.oc,
                            (int)y.dim(1), (int)y.dim(2), w.kh, w.kw, p.stride_h, p.stride_w,
                            p.pad_top, p.pad_left);
}

// Shared dummy for inputs a kernel family ignores (the residual of a plain conv).
Buf<uint8_t> dummy_u8_4d() { static uint8_t d[1] = {0}; return Buf<uint8_t>(d, 1, 1, 1, 1); }

// Everything a conv2d / conv2d_add / dense kernel call reads, built once at bind time. Shared by
// the bound closure (std::function copies must not copy buffers that point into each other).
struct DotState {
    Buf<uint8_t> in, res;
    Buf<int8_t> wts;
    Buf<int32_t> bias, wzp;
    Buf<float> mult;
    Buf<void> out;
};

// On a GPU the packed weights and per-channel vectors are uploaded here, once.
std::shared_ptr<DotState> dot_state(const Buf<uint8_t> &in, const PackedWeights &w,
                                    std::vector<int> wdims, Buf<void> out, Device d) {
    auto st = std::make_shared<DotState>();
    st->in = in;
    st->res = dummy_u8_4d();
    st->wts = Buf<int8_t>(const_cast<int8_t *>(w.blocked()), wdims);
    st->bias = Buf<int32_t>(const_cast<int32_t *>(w.bias.data()), w.oc_pad);
    st->wzp = Buf<int32_t>(const_cast<int32_t *>(w.wzp.data()), w.oc_pad);
    st->mult = Buf<float>(const_cast<float *>(w.mult.data()), w.oc_pad);
    st->out = std::move(out);
    upload_once(st->res, d, "residual placeholder");
    upload_once(st->wts, d, w.name);
    upload_once(st->bias, d, w.name + " bias");
    upload_once(st->wzp, d, w.name + " weight zero points");
    upload_once(st->mult, d, w.name + " multipliers");
    return st;
}

// Packed weight blocks along output channels: 16 channels each, two per byte row for s4.
int weight_blocks(const PackedWeights &w) { return w.oc_pad / (w.weight_bits == 4 ? 32 : 16); }

std::shared_ptr<DotState> conv_state(const Tensor &x, const PackedWeights &w, const Tensor &y, Device d) {
    return dot_state(view<uint8_t>(x, nhwc_storage_dims(x)), w,
                     {4, 16, w.ic_pad / 4, w.kw, w.kh, weight_blocks(w)},
                     view_as(y, dtype_halide(y.dtype()), nhwc_storage_dims(y)), d);
}

void check_conv(const std::string &op, const Tensor &x, const PackedWeights &w,
                const Conv2dParams &p, const Tensor &y) {
    expect_tensor(x, op, "input", {DType::u8, DType::u4}, 4);
    QH_EXPECT(x.dtype() != DType::u4 || x.dim(3) % 2 == 0, op,
              "u4 input " + x.describe() + " needs an even channel count (pixels are whole bytes)");
    QH_EXPECT(p.group == 1 && p.dilation_h == 1 && p.dilation_w == 1 && !w.grouped, op,
              "a grouped or dilated conv (group=" + std::to_string(p.group) + ") runs on conv2d_grouped");
    QH_EXPECT(p.stride_h >= 1 && p.stride_w >= 1, op, "strides must be >= 1");
    QH_EXPECT(p.pad_top >= 0 && p.pad_left >= 0 && p.pad_bottom >= 0 && p.pad_right >= 0, op,
           "pads must be >= 0");
    QH_EXPECT(x.dim(3) == w.ic, op, "input " + x.describe() + " has " + std::to_string(x.dim(3)) +
                                     " channels, weights '" + w.name + "' expect " +
                                     std::to_string(w.ic));
    QH_EXPECT(x.quant.zp_at(0) == w.input_zp, op,
           "input zero point " + std::to_string(x.quant.zp_at(0)) + " differs from the " +
               std::to_string(w.input_zp) + " weights '" + w.name + "' were packed for");
    auto want = conv2d_output_shape(x, w, p);
    QH_EXPECT(y.shape() == want, op, "output is " + y.describe() + ", expected shape " +
                                      shape_str(want));
}

int32_t zp0(const Tensor &t) { return t.quant.zp_at(0); }

// conv2d and conv2d_add share one kernel signature; the residual arguments are unused by the
// plain conv families.
struct ResidualArgs {
    int32_t conv_zp = 0, res_zp = 0;
    float conv_mult = 0.f, res_mult = 0.f;
};

template <typename Fn>
BoundOp bind_conv_kernel(const std::string &op, const ChosenKernel<Fn> &k,
                         std::shared_ptr<DotState> st, const PackedWeights &w,
                         const Conv2dParams &p, int32_t zy, const ResidualArgs &r) {
    const Fn fn = k.fn;
    const int zx = w.input_zp, lo = p.act.min, hi = p.act.max, sw = p.stride_w, sh = p.stride_h,
              pl = p.pad_left, pt = p.pad_top;
    return BoundOp(op, k.name, [=] {
        return fn(st->in, zx, st->wts, st->bias, st->wzp, st->mult, zy, lo, hi, sw, sh, pl, pt,
                  st->res, r.conv_zp, r.res_zp, r.conv_mult, r.res_mult, st->out);
    });
}

}  // namespace

void BoundOp::fail(int rc) const {
    const std::string msg = take_halide_error();
    throw std::runtime_error(op_ + ": kernel " + kernel_ + " failed with Halide error " + std::to_string(rc) +
                             (msg.empty() ? std::string() : ": " + msg));
}

std::vector<int64_t> conv2d_output_shape(const Tensor &x, const PackedWeights &w,
                                         const Conv2dParams &p) {
    if (x.rank() != 4) fail(p.name, "input must be NHWC (rank 4), got " + x.describe());
    if ((p.kernel_h != 0 && p.kernel_h != w.kh) || (p.kernel_w != 0 && p.kernel_w != w.kw))
        fail(p.name, "kernel " + std::to_string(p.kernel_h) + "x" + std::to_string(p.kernel_w) +
                         " differs from the weights' " + std::to_string(w.kh) + "x" + std::to_string(w.kw));
    WindowAttrs win = p;
    win.kernel_h = w.kh;
    win.kernel_w = w.kw;
    const int64_t oh = win.out_h(x.dim(1)), ow = win.out_w(x.dim(2));
    if (oh <= 0 || ow <= 0)
        fail(p.name, "kernel " + std::to_string(w.kh) + "x" + std::to_string(w.kw) +
                         " larger than padded input " + x.describe());
    return {x.dim(0), oh, ow, w.oc};
}

BoundOp bind_conv2d(const Tensor &x, const PackedWeights &w, const Conv2dParams &p, Tensor &y) {
    const std::string &op = p.name;
    check_conv(op, x, w, p, y);
    expect_tensor(y, op, "output", {DType::u8, DType::s8, DType::s32, DType::u4}, 4);
    QH_EXPECT(y.dtype() != DType::u4 || y.dim(3) % 2 == 0, op,
              "u4 output " + y.describe() + " needs an even channel count (pixels are whole bytes)");
    if (y.dtype() != DType::s32) expect_per_tensor(y, op, "output");
    QH_EXPECT(!(w.has_zero_point && y.dtype() == DType::s8), op,
              "s8 output with asymmetric weights '" + w.name + "' is not supported (use u8 or s32)");
    const Device d = op_device(op, {&x, &y});
    const std::string family =
        std::string("conv2d_") + type_field(x.dtype()) + weight_field(w) + type_field(y.dtype());
    if (BoundOp b = bind_registered(GemmCall{"conv2d", x, w, &p, p.act, nullptr, 0, 0, 0.f, 0.f, y, op})) {
        record(family, b.kernel());
        return b;
    }
    auto st = conv_state(x, w, y, d);
    using Fn = kernels::conv2d_u8s8u8_fn;
    return bind_conv_kernel(op, pick_shaped(family_or_fail<Fn>(op, family), conv_key(x, w, p, y), d), st, w, p,
                            zp0(y), {});
}

BoundOp bind_conv2d_grouped(const Tensor &x, const PackedWeights &w, const Conv2dParams &p, Tensor &y) {
    const std::string &op = p.name;
    expect_tensor(x, op, "input", {DType::u8}, 4);
    expect_tensor(y, op, "output", {DType::u8, DType::s32}, 4);
    QH_EXPECT(w.grouped, op, "weights '" + w.name + "' are not packed for conv2d_grouped");
    QH_EXPECT(p.group >= 1 && w.oc % p.group == 0, op,
              "group=" + std::to_string(p.group) + " does not divide the " + std::to_string(w.oc) + " output channels");
    QH_EXPECT(p.dilation_h >= 1 && p.dilation_w >= 1 && p.stride_h >= 1 && p.stride_w >= 1, op,
              "strides and dilations must be >= 1");
    QH_EXPECT(p.pad_top >= 0 && p.pad_left >= 0 && p.pad_bottom >= 0 && p.pad_right >= 0, op, "pads must be >= 0");
    QH_EXPECT(x.dim(3) == int64_t(w.ic) * p.group, op,
              "input " + x.describe() + " has " + std::to_string(x.dim(3)) + " channels, weights '" + w.name +
                  "' expect " + std::to_string(w.ic) + " x group " + std::to_string(p.group));
    QH_EXPECT(x.quant.zp_at(0) == w.input_zp, op,
              "input zero point " + std::to_string(x.quant.zp_at(0)) + " differs from the " +
                  std::to_string(w.input_zp) + " weights '" + w.name + "' were packed for");
    if (y.dtype() == DType::u8) expect_per_tensor(y, op, "output");
    auto want = conv2d_output_shape(x, w, p);
    QH_EXPECT(y.shape() == want, op, "output is " + y.describe() + ", expected shape " + shape_str(want));
    const Device d = op_device(op, {&x, &y});
    const std::string family = std::string("conv2d_grouped_u8") + (w.has_zero_point ? "z8" : "s8") + type_field(y.dtype());
    auto st = dot_state(view<uint8_t>(x, nhwc_dims(x)), w, {w.oc_pad, w.ic, w.kw, w.kh},
                        view_any(y, nhwc_dims(y)), d);
    using Fn = kernels::conv2d_grouped_u8s8u8_fn;
    const auto k = pick_shaped(family_or_fail<Fn>(op, family), conv_key(x, w, p, y) + "_g" + std::to_string(p.group) +
                                                                   "_d" + std::to_string(p.dilation_h) + "x" +
                                                                   std::to_string(p.dilation_w), d);
    const Fn fn = k.fn;
    const int zx = w.input_zp, zy = zp0(y), lo = p.act.min, hi = p.act.max, sw = p.stride_w, sh = p.stride_h,
              pl = p.pad_left, pt = p.pad_top, dw = p.dilation_w, dh = p.dilation_h, m = w.oc / p.group;
    return BoundOp(op, k.name, [=] {
        return fn(st->in, zx, st->wts, st->bias, st->wzp, st->mult, zy, lo, hi, sw, sh, pl, pt, dw, dh, m, st->out);
    });
}

BoundOp bind_conv2d_add(const Tensor &x, const PackedWeights &w, const Conv2dParams &p,
                        const ResidualParams &rp, const Tensor &residual, Tensor &y) {
    const std::string &op = p.name;
    check_conv(op, x, w, p, y);
    expect_tensor(y, op, "output", {DType::u8, DType::u4}, 4);
    expect_tensor(residual, op, "residual", {DType::u8, DType::u4}, 4);
    QH_EXPECT(y.dtype() != DType::u4 || y.dim(3) % 2 == 0, op,
              "u4 output " + y.describe() + " needs an even channel count (pixels are whole bytes)");
    QH_EXPECT(residual.shape() == y.shape(), op, "residual " + residual.describe() +
                                                  " must have the output's shape " +
                                                  shape_str(y.shape()));
    QH_EXPECT(!w.has_zero_point, op, "fused residual needs symmetric weights ('" + w.name + "')");
    expect_per_tensor(y, op, "output");
    expect_per_tensor(residual, op, "residual");
    QH_EXPECT(rp.conv_scale > 0 && rp.conv_zp >= 0 && rp.conv_zp <= 255, op,
           "conv result needs a positive scale and a u8 zero point");
    const Device d = op_device(op, {&x, &residual, &y});
    const float sy = y.quant.scale[0];
    const ResidualArgs r{rp.conv_zp, zp0(residual), rp.conv_scale / sy,
                         residual.quant.scale[0] / sy};
    // A residual stored unlike the output is the family's fourth type field.
    const std::string family = std::string("conv2d_add_") + type_field(x.dtype()) + weight_field(w) +
                               type_field(y.dtype()) +
                               (residual.dtype() != y.dtype() ? type_field(residual.dtype()) : "");
    if (BoundOp b = bind_registered(
            GemmCall{"conv2d_add", x, w, &p, p.act, &residual, r.conv_zp, r.res_zp, r.conv_mult, r.res_mult, y, op})) {
        record(family, b.kernel());
        return b;
    }
    auto st = conv_state(x, w, y, d);
    st->res = view<uint8_t>(residual, nhwc_storage_dims(residual));
    using Fn = kernels::conv2d_u8s8u8_fn;
    return bind_conv_kernel(op, pick_shaped(family_or_fail<Fn>(op, family), conv_key(x, w, p, y), d), st, w, p,
                            zp0(y), r);
}

BoundOp bind_dense(const Tensor &x, const PackedWeights &w, const Activation &act, Tensor &y,
                   const std::string &op) {
    expect_tensor(x, op, "input", {DType::u8}, 2);
    expect_tensor(y, op, "output", {DType::u8, DType::s8, DType::s32}, 2);
    QH_EXPECT(w.kh == 1 && w.kw == 1, op, "weights '" + w.name + "' are not 2-D");
    QH_EXPECT(x.dim(1) == w.ic, op, "input " + x.describe() + " has K=" + std::to_string(x.dim(1)) +
                                     ", weights '" + w.name + "' expect " + std::to_string(w.ic));
    QH_EXPECT(y.dim(0) == x.dim(0) && y.dim(1) == w.oc, op,
           "output is " + y.describe() + ", expected [" + std::to_string(x.dim(0)) + "," +
               std::to_string(w.oc) + "]");
    QH_EXPECT(zp0(x) == w.input_zp, op, "input zero point differs from the packed weights'");
    if (y.dtype() != DType::s32) expect_per_tensor(y, op, "output");
    const Device d = op_device(op, {&x, &y});
    QH_EXPECT(!(w.has_zero_point && y.dtype() == DType::s8), op, "s8 output with asymmetric weights is not supported");
    const std::string family = std::string("dense_") + type_field(x.dtype()) + weight_field(w) + type_field(y.dtype());
    if (BoundOp b = bind_registered(GemmCall{"dense", x, w, nullptr, act, nullptr, 0, 0, 0.f, 0.f, y, op})) {
        record(family, b.kernel());
        return b;
    }
    auto st = dot_state(view<uint8_t>(x, {(int)x.dim(1), (int)x.dim(0)}), w,
                        {4, 16, w.ic_pad / 4, weight_blocks(w)},
                        view_any(y, {(int)y.dim(1), (int)y.dim(0)}), d);
    const int zx = w.input_zp, zy = zp0(y), lo = act.min, hi = act.max;
    using Fn = kernels::dense_u8s8u8_fn;
    const auto k = pick_shaped(family_or_fail<Fn>(op, family), dense_shape_key((int)x.dim(0), w.ic, w.oc), d);
    const auto fn = k.fn;
    return BoundOp(op, k.name, [=] {
        return fn(st->in, zx, st->wts, st->bias, st->wzp, st->mult, zy, lo, hi, st->out);
    });
}

std::vector<int64_t> pool_output_shape(const Tensor &x, const PoolParams &p) {
    if (x.rank() != 4) fail(p.name, "input must be NHWC (rank 4), got " + x.describe());
    QH_EXPECT(p.kernel_h >= 1 && p.kernel_w >= 1 && p.stride_h >= 1 && p.stride_w >= 1, p.name,
           "kernel and strides must be >= 1");
    QH_EXPECT(p.pad_top < p.kernel_h && p.pad_bottom < p.kernel_h && p.pad_left < p.kernel_w &&
               p.pad_right < p.kernel_w && p.pad_top >= 0 && p.pad_left >= 0,
           p.name, "pads must be >= 0 and smaller than the kernel");
    const int64_t oh = p.out_h(x.dim(1)), ow = p.out_w(x.dim(2));
    QH_EXPECT(oh > 0 && ow > 0, p.name, "kernel larger than padded input " + x.describe());
    return {x.dim(0), oh, ow, x.dim(3)};
}

namespace {
// Kernels whose arguments are two buffers (in, out) plus scalars: `args` (a generic lambda
// taking the kernel function and the two halide_buffer_t*) supplies the call.
struct InOut {
    Buf<void> in, out;
};
template <typename Fn, typename Call>
BoundOp bind_in_out(const std::string &op, const ChosenKernel<Fn> &k, Buf<void> in, Buf<void> out,
                    Call call) {
    auto st = std::make_shared<InOut>(InOut{std::move(in), std::move(out)});
    const Fn fn = k.fn;
    return BoundOp(op, k.name, [=] { return call(fn, st->in, st->out); });
}
}  // namespace

BoundOp bind_maxpool(const Tensor &x, const PoolParams &p, Tensor &y) {
    const std::string &op = p.name;
    expect_tensor(x, op, "input", {DType::u8, DType::s8}, 4);
    QH_EXPECT(y.dtype() == x.dtype(), op, "output dtype must equal the input's");
    auto want = pool_output_shape(x, p);
    QH_EXPECT(y.shape() == want, op, "output is " + y.describe() + ", expected " + shape_str(want));
    const PoolParams q = p;
    auto call = [q](auto fn, halide_buffer_t *in, halide_buffer_t *out) {
        return fn(in, q.kernel_w, q.kernel_h, q.stride_w, q.stride_h, q.pad_left, q.pad_top, out);
    };
    const Device d = op_device(op, {&x, &y});
    auto in = view_any(x, nhwc_dims(x)), out = view_any(y, nhwc_dims(y));
    return x.dtype() == DType::u8 ? bind_in_out(op, pick(kernels::maxpool_u8u8(), d), in, out, call)
                                  : bind_in_out(op, pick(kernels::maxpool_s8s8(), d), in, out, call);
}

BoundOp bind_global_avgpool(const Tensor &x, Tensor &y, int qmax) {
    const std::string op = "global_avgpool";
    expect_tensor(x, op, "input", {DType::u8}, 4);
    expect_tensor(y, op, "output", {DType::u8}, 2);
    QH_EXPECT(y.dim(0) == x.dim(0) && y.dim(1) == x.dim(3), op,
           "output is " + y.describe() + ", expected [N, C] of input " + x.describe());
    expect_per_tensor(x, op, "input");
    expect_per_tensor(y, op, "output");
    int64_t hw = x.dim(1) * x.dim(2);
    QH_EXPECT(hw > 0 && hw * 255 < INT32_MAX, op, "H*W out of the int32 accumulator range");
    const float mult = x.quant.scale[0] / (y.quant.scale[0] * float(hw));
    const int32_t zx = zp0(x), zy = zp0(y);
    QH_EXPECT(qmax >= 0 && qmax <= 255, op, "qmax " + std::to_string(qmax) + " outside u8");
    return bind_in_out(op, pick(kernels::global_avgpool_u8u8(), op_device(op, {&x, &y})), view_any(x, nhwc_dims(x)),
                       view_any(y, {(int)y.dim(1), (int)y.dim(0)}),
                       [=](auto fn, halide_buffer_t *in, halide_buffer_t *out) {
                           return fn(in, zx, mult, zy, qmax, out);
                       });
}

BoundOp bind_avgpool(const Tensor &x, const PoolParams &p, bool count_include_pad, Tensor &y, int qmax) {
    const std::string &op = p.name;
    expect_tensor(x, op, "input", {DType::u8}, 4);
    expect_tensor(y, op, "output", {DType::u8}, 4);
    auto want = pool_output_shape(x, p);
    QH_EXPECT(y.shape() == want, op, "output is " + y.describe() + ", expected " + shape_str(want));
    expect_per_tensor(x, op, "input");
    expect_per_tensor(y, op, "output");
    QH_EXPECT(int64_t(p.kernel_h) * p.kernel_w * 255 < INT32_MAX, op, "window out of the int32 accumulator range");
    QH_EXPECT(qmax >= 0 && qmax <= 255, op, "qmax " + std::to_string(qmax) + " outside u8");
    const float mult = x.quant.scale[0] / y.quant.scale[0];
    const int32_t zx = zp0(x), zy = zp0(y);
    const int H = int(x.dim(1)), W = int(x.dim(2));
    const int cx0 = count_include_pad ? -p.pad_left : 0, cx1 = count_include_pad ? W + p.pad_right : W;
    const int cy0 = count_include_pad ? -p.pad_top : 0, cy1 = count_include_pad ? H + p.pad_bottom : H;
    const PoolParams q = p;
    return bind_in_out(op, pick(kernels::avgpool_u8u8(), op_device(op, {&x, &y})), view_any(x, nhwc_dims(x)),
                       view_any(y, nhwc_dims(y)), [=](auto fn, halide_buffer_t *in, halide_buffer_t *out) {
                           return fn(in, q.kernel_w, q.kernel_h, q.stride_w, q.stride_h, q.pad_left, q.pad_top, cx0,
                                     cx1, cy0, cy1, zx, mult, zy, qmax, out);
                       });
}

namespace {
// The 256-entry table of a u8 -> u8 op, where the kernel reads it (device memory on a GPU).
std::shared_ptr<Buf<uint8_t>> table_buffer(const uint8_t *table, Device d, const std::string &op) {
    auto t = std::make_shared<Buf<uint8_t>>(256);
    std::memcpy(t->data(), table, 256);
    upload_once(*t, d, op + " table");
    return t;
}
}  // namespace

BoundOp bind_lut(const Tensor &x, const uint8_t *table, Tensor &y, const std::string &op) {
    expect_tensor(x, op, "input", {DType::u8}, -1);
    expect_tensor(y, op, "output", {DType::u8}, -1);
    QH_EXPECT(x.numel() == y.numel(), op, "input " + x.describe() + " and output " + y.describe() + " differ in size");
    const Device d = op_device(op, {&x, &y});
    auto t = table_buffer(table, d, op);
    const int n = int(x.numel());
    return bind_in_out(op, pick(kernels::lut_u8u8(), d), view_any(x, {n, 1}), view_any(y, {n, 1}),
                       [t](auto fn, halide_buffer_t *in, halide_buffer_t *out) { return fn(in, *t, out); });
}

BoundOp bind_concat_slice(const Tensor &x, const uint8_t *table, Tensor &y, int axis, int64_t offset,
                          const std::string &op) {
    expect_tensor(x, op, "input", {DType::u8}, -1);
    expect_tensor(y, op, "output", {DType::u8}, -1);
    const int r = int(x.rank());
    QH_EXPECT(y.rank() == r && axis >= 0 && axis < r, op, "input " + x.describe() + " and output " + y.describe() +
                                                              " along axis " + std::to_string(axis));
    bool fits = offset >= 0 && offset + x.dim(axis) <= y.dim(axis);
    for (int d = 0; d < r; d++) fits = fits && (d == axis || x.dim(d) == y.dim(d));
    QH_EXPECT(fits, op, "input " + x.describe() + " does not fit output " + y.describe() + " at " +
                            std::to_string(offset) + " along axis " + std::to_string(axis));
    const Device d = op_device(op, {&x, &y});
    auto t = table_buffer(table, d, op);
    int64_t inner = 1, outer = 1;
    for (int k = axis + 1; k < r; k++) inner *= x.dim(k);
    for (int k = 0; k < axis; k++) outer *= x.dim(k);
    const int rx = int(x.dim(axis) * inner), ry = int(y.dim(axis) * inner);
    // The slice: rx elements from element offset * inner of each row, row stride ry. Built over the
    // storage at that element (host pointer or wrapped device pointer), not as a crop.
    (void)view_any(y, {ry, int(outer)});  // y's size checks
    const halide_dimension_t dims[2] = {{0, rx, 1, 0}, {0, int(outer), ry, 0}};
    const size_t skip = size_t(offset * inner);  // u8: bytes
    Buf<void> out;
    if (d == Device::cpu) {
        out = Buf<void>(halide_type_of<uint8_t>(), static_cast<uint8_t *>(y.raw()) + skip, 2, dims);
    } else {
        out = Buf<void>(halide_type_of<uint8_t>(), nullptr, 2, dims);
        if (int rc = out.device_wrap_native(device_interface(d), y.device_handle() + skip))
            throw_halide_error(rc, "wrapping a slice of " + y.describe());
    }
    return bind_in_out(op, pick(kernels::lut_u8u8(), d), view_any(x, {rx, int(outer)}), std::move(out),
                       [t](auto fn, halide_buffer_t *in, halide_buffer_t *out) { return fn(in, *t, out); });
}

BoundOp bind_mul(const Tensor &a, const Tensor &b, const Activation &act, Tensor &y, const std::string &op) {
    expect_tensor(a, op, "a", {DType::u8}, -1);
    expect_tensor(b, op, "b", {DType::u8}, -1);
    expect_tensor(y, op, "output", {DType::u8}, -1);
    QH_EXPECT(a.shape() == y.shape(), op, "output " + y.describe() + " must have a's shape " + a.describe());
    for (const Tensor *t : {&a, &b, (const Tensor *)&y}) expect_per_tensor(*t, op, "operand");
    // (c, p, n) views: c the last dimension, n the first (rank 4; else 1), p the rest.
    const int r = int(a.rank());
    QH_EXPECT(r >= 1 && int(b.rank()) <= r, op, "b " + b.describe() + " has a higher rank than a " + a.describe());
    std::vector<int64_t> bs(r, 1);  // b's shape right-aligned to a's
    for (int d = 0; d < int(b.rank()); d++) bs[r - b.rank() + d] = b.dim(d);
    for (int d = 0; d < r; d++)
        QH_EXPECT(bs[d] == a.dim(d) || bs[d] == 1, op, "b " + b.describe() + " does not broadcast to " + a.describe());
    const int64_t C = a.dim(r - 1), N = r == 4 ? a.dim(0) : 1, P = a.numel() / std::max<int64_t>(C * N, 1);
    int64_t bp = 1;
    bool p_full = true, p_one = true;
    for (int d = (r == 4 ? 1 : 0); d < r - 1; d++) {
        bp *= bs[d];
        p_full = p_full && bs[d] == a.dim(d);
        p_one = p_one && bs[d] == 1;
    }
    QH_EXPECT(p_full || p_one, op, "b " + b.describe() + " broadcasts over some of " + a.describe() +
                                       "'s inner dimensions but not all (supported: all or none)");
    const int64_t bc = bs[r - 1], bn = r == 4 ? bs[0] : 1;
    halide_dimension_t bd[3] = {{0, int(C), bc == 1 ? 0 : 1, 0},
                                {0, int(P), p_one ? 0 : int(bc), 0},
                                {0, int(N), bn == 1 ? 0 : int(bc * bp), 0}};
    const Device d = op_device(op, {&a, &b, &y});
    auto bb = std::make_shared<Buf<uint8_t>>(view<uint8_t>(b, {int(b.numel())}));
    *bb = Buf<uint8_t>(bb->data(), 3, bd);
    if (d != Device::cpu) device_view(*bb, b);
    const float m = (a.quant.scale[0] * b.quant.scale[0]) / y.quant.scale[0];
    const int32_t za = zp0(a), zb = zp0(b), zy = zp0(y), lo = act.min, hi = act.max;
    const std::vector<int> dims = {int(C), int(P), int(N)};
    return bind_in_out(op, pick(kernels::mul_u8u8u8(), d), view_any(a, dims), view_any(y, dims),
                       [=](auto fn, halide_buffer_t *in, halide_buffer_t *out) {
                           return fn(in, za, *bb, zb, m, zy, lo, hi, out);
                       });
}

BoundOp bind_add(const Tensor &a, const Tensor &b, const Activation &act, Tensor &y) {
    const std::string op = "add";
    expect_tensor(a, op, "a", {DType::u8}, -1);
    expect_tensor(b, op, "b", {DType::u8}, -1);
    expect_tensor(y, op, "output", {DType::u8}, -1);
    QH_EXPECT(a.shape() == b.shape() && a.shape() == y.shape(), op,
           "shapes must match (no broadcasting): a " + a.describe() + ", b " + b.describe() +
               ", output " + y.describe());
    for (const Tensor *t : {&a, &b, (const Tensor *)&y}) expect_per_tensor(*t, op, "operand");
    const float sy = y.quant.scale[0], ma = a.quant.scale[0] / sy, mb = b.quant.scale[0] / sy;
    const int32_t za = zp0(a), zb = zp0(b), zy = zp0(y), lo = act.min, hi = act.max;
    const int n = (int)a.numel();
    auto bb = std::make_shared<Buf<uint8_t>>(view<uint8_t>(b, {n}));
    return bind_in_out(op, pick(kernels::add_u8u8u8(), op_device(op, {&a, &b, &y})), view_any(a, {n}), view_any(y, {n}),
                       [=](auto fn, halide_buffer_t *in, halide_buffer_t *out) {
                           return fn(in, za, ma, *bb, zb, mb, zy, lo, hi, out);
                       });
}

namespace {
// (inner, channel, outer) view of a tensor for per-axis parameters.
std::vector<int> axis_view(const Tensor &t, int axis, const std::string &op) {
    if (axis < 0) return {(int)t.numel(), 1, 1};
    QH_EXPECT(axis < t.rank(), op, "axis " + std::to_string(axis) + " out of range for " +
                                    t.describe());
    int64_t inner = 1, outer = 1;
    for (int i = axis + 1; i < t.rank(); i++) inner *= t.dim(i);
    for (int i = 0; i < axis; i++) outer *= t.dim(i);
    return {(int)inner, (int)t.dim(axis), (int)outer};
}

// Per-channel parameter vectors, owned by the bound op, and Halide views of them.
struct ChannelParams {
    std::vector<float> scale;
    std::vector<int32_t> zp;
    Buf<float> scale_buf;
    Buf<int32_t> zp_buf;
    void make_views(Device d) {
        scale_buf = Buf<float>(scale.data(), (int)scale.size());
        zp_buf = Buf<int32_t>(zp.data(), (int)zp.size());
        upload_once(scale_buf, d, "per-channel scales");
        upload_once(zp_buf, d, "per-channel zero points");
    }
};

// Per-channel scale and zero point vectors matching the channel extent of `v`.
void channel_params(const QuantParams &q, int channels, const std::string &op,
                    std::vector<float> &scale, std::vector<int32_t> &zp) {
    QH_EXPECT(!q.scale.empty(), op, "missing scale");
    QH_EXPECT(q.scale.size() == 1 || (int)q.scale.size() == channels, op,
           "scale has " + std::to_string(q.scale.size()) + " values, expected 1 or " +
               std::to_string(channels));
    QH_EXPECT(q.zero_point.size() <= 1 || (int)q.zero_point.size() == channels, op,
           "zero point has " + std::to_string(q.zero_point.size()) + " values, expected 1 or " +
               std::to_string(channels));
    scale.resize(channels);
    zp.resize(channels);
    for (int c = 0; c < channels; c++) {
        scale[c] = q.scale_at(c);
        zp[c] = q.zp_at(c);
        QH_EXPECT(scale[c] > 0, op, "scale must be positive");
    }
}

std::shared_ptr<ChannelParams> channel_params(const QuantParams &q, int channels,
                                              const std::string &op, Device d) {
    auto cp = std::make_shared<ChannelParams>();
    channel_params(q, channels, op, cp->scale, cp->zp);
    cp->make_views(d);
    return cp;
}
}  // namespace

BoundOp bind_quantize(const Tensor &x, Tensor &y, int qmax) {
    const std::string op = "quantize";
    expect_tensor(x, op, "input", {DType::f32}, -1);
    expect_tensor(y, op, "output", {DType::u8, DType::s8}, -1);
    QH_EXPECT(x.shape() == y.shape(), op, "input and output shapes differ");
    const Device d = op_device(op, {&x, &y});
    auto v = axis_view(y, y.quant.axis, op);
    auto cp = channel_params(y.quant, v[1], op, d);
    if (qmax < 0) qmax = y.dtype() == DType::u8 ? 255 : 127;
    QH_EXPECT(qmax <= (y.dtype() == DType::u8 ? 255 : 127), op, "qmax " + std::to_string(qmax) + " beyond the output type");
    auto call = [cp, qmax](auto fn, halide_buffer_t *in, halide_buffer_t *out) {
        return fn(in, cp->scale_buf, cp->zp_buf, qmax, out);
    };
    auto in = view_any(x, v), out = view_any(y, v);
    return y.dtype() == DType::u8
               ? bind_in_out(op, pick(kernels::quantize_f32u8(), d), in, out, call)
               : bind_in_out(op, pick(kernels::quantize_f32s8(), d), in, out, call);
}

BoundOp bind_dequantize(const Tensor &x, Tensor &y) {
    const std::string op = "dequantize";
    expect_tensor(x, op, "input", {DType::u8, DType::s8, DType::s32}, -1);
    expect_tensor(y, op, "output", {DType::f32}, -1);
    QH_EXPECT(x.shape() == y.shape(), op, "input and output shapes differ");
    const Device d = op_device(op, {&x, &y});
    auto v = axis_view(x, x.quant.axis, op);
    auto cp = channel_params(x.quant, v[1], op, d);
    auto call = [cp](auto fn, halide_buffer_t *in, halide_buffer_t *out) {
        return fn(in, cp->scale_buf, cp->zp_buf, out);
    };
    auto in = view_any(x, v), out = view_any(y, v);
    if (x.dtype() == DType::u8) return bind_in_out(op, pick(kernels::dequantize_u8f32(), d), in, out, call);
    if (x.dtype() == DType::s8) return bind_in_out(op, pick(kernels::dequantize_s8f32(), d), in, out, call);
    return bind_in_out(op, pick(kernels::dequantize_s32f32(), d), in, out, call);
}

BoundOp bind_change_layout(const Tensor &x, Tensor &y, bool to_nhwc) {
    const std::string op = to_nhwc ? "nchw_to_nhwc" : "nhwc_to_nchw";
    expect_tensor(x, op, "input", {DType::f32, DType::u8, DType::s8}, 4);
    expect_tensor(y, op, "output", {x.dtype()}, 4);
    const auto &s = x.shape();
    const std::vector<int64_t> want = to_nhwc ? nhwc_shape(s) : nchw_shape(s);
    QH_EXPECT(y.shape() == want, op, "output is " + y.describe() + ", expected shape " + shape_str(want));
    const Device d = op_device(op, {&x, &y});
    // NCHW is (p, c, n) with p = h*W + w dense, NHWC (c, p, n): y(a, b, n) = x(b, a, n).
    const int n = int(s[0]), c = int(to_nhwc ? s[1] : s[3]), pix = int(to_nhwc ? s[2] * s[3] : s[1] * s[2]);
    const std::vector<int> nchw = {pix, c, n}, nhwc = {c, pix, n};
    auto call = [](auto fn, halide_buffer_t *in, halide_buffer_t *out) { return fn(in, out); };
    if (x.dtype() == DType::f32)
        return bind_in_out(op, pick(kernels::transpose_f32f32(), d), view_any(x, to_nhwc ? nchw : nhwc),
                           view_any(y, to_nhwc ? nhwc : nchw), call);
    const halide_type_t u8 = halide_type_of<uint8_t>();
    return bind_in_out(op, pick(kernels::transpose_u8u8(), d), view_as(x, u8, to_nhwc ? nchw : nhwc),
                       view_as(y, u8, to_nhwc ? nhwc : nchw), call);
}

BoundOp bind_requantize(const Tensor &x, Tensor &y, const Activation &act) {
    const std::string op = "requantize";
    expect_tensor(x, op, "input", {DType::s32}, -1);
    expect_tensor(y, op, "output", {DType::u8, DType::s8, DType::u4, DType::s4}, -1);
    QH_EXPECT(x.shape() == y.shape(), op, "input and output shapes differ");
    const Device d = op_device(op, {&x, &y});
    int axis = y.quant.axis >= 0 ? y.quant.axis : x.quant.axis;
    auto v = axis_view(x, axis, op);
    std::vector<float> sx;
    std::vector<int32_t> zx;
    channel_params(x.quant, v[1], op, sx, zx);
    auto cp = std::make_shared<ChannelParams>();  // scale becomes the multiplier sx / sy
    channel_params(y.quant, v[1], op, cp->scale, cp->zp);
    for (int c = 0; c < v[1]; c++) {
        QH_EXPECT(zx[c] == 0, op, "the s32 input must have zero point 0");
        cp->scale[c] = sx[c] / cp->scale[c];
    }
    cp->make_views(d);
    const int32_t lo = act.min, hi = act.max;
    auto call = [cp, lo, hi](auto fn, halide_buffer_t *in, halide_buffer_t *out) {
        return fn(in, cp->scale_buf, cp->zp_buf, lo, hi, out);
    };
    auto in = view_any(x, v);
    const int nbytes = (int)y.nbytes();
    switch (y.dtype()) {
    case DType::u8: return bind_in_out(op, pick(kernels::requantize_s32u8(), d), in, view_any(y, v), call);
    case DType::s8: return bind_in_out(op, pick(kernels::requantize_s32s8(), d), in, view_any(y, v), call);
    case DType::u4:
        return bind_in_out(op, pick(kernels::requantize_s32u4(), d), in,
                           view_as(y, halide_type_of<uint8_t>(), {nbytes}), call);
    default:
        return bind_in_out(op, pick(kernels::requantize_s32s4(), d), in,
                           view_as(y, halide_type_of<int8_t>(), {nbytes}), call);
    }
}

BoundOp bind_int4_pack(const Tensor &x, Tensor &y) {
    const std::string op = "int4_pack";
    expect_tensor(x, op, "input", {DType::s8, DType::u8}, -1);
    QH_EXPECT(y.dtype() == (x.dtype() == DType::s8 ? DType::s4 : DType::u4), op,
           "output must be s4 for s8 input, u4 for u8 input; got " + y.describe());
    QH_EXPECT(x.numel() == y.numel(), op, "element counts differ");
    auto call = [](auto fn, halide_buffer_t *in, halide_buffer_t *out) { return fn(in, out); };
    const Device d = op_device(op, {&x, &y});
    auto in = view_any(x, {(int)x.numel()});
    Buf<void> out = view_as(y, halide_type_of<uint8_t>(), {(int)y.nbytes()});
    return x.dtype() == DType::s8 ? bind_in_out(op, pick(kernels::int4_pack_s8s4(), d), in, out, call)
                                  : bind_in_out(op, pick(kernels::int4_pack_u8u4(), d), in, out, call);
}

BoundOp bind_int4_unpack(const Tensor &x, Tensor &y) {
    const std::string op = "int4_unpack";
    expect_tensor(x, op, "input", {DType::s4, DType::u4}, -1);
    QH_EXPECT(y.dtype() == (x.dtype() == DType::s4 ? DType::s8 : DType::u8), op,
           "output must be s8 for s4 input, u8 for u4 input; got " + y.describe());
    QH_EXPECT(x.numel() == y.numel(), op, "element counts differ");
    auto call = [](auto fn, halide_buffer_t *in, halide_buffer_t *out) { return fn(in, out); };
    const Device d = op_device(op, {&x, &y});
    Buf<void> in = view_as(x, halide_type_of<uint8_t>(), {(int)x.nbytes()});
    auto out = view_any(y, {(int)y.numel()});
    return x.dtype() == DType::s4 ? bind_in_out(op, pick(kernels::int4_unpack_s4s8(), d), in, out, call)
                                  : bind_in_out(op, pick(kernels::int4_unpack_u4u8(), d), in, out, call);
}

// One-off forms.
void conv2d(const Tensor &x, const PackedWeights &w, const Conv2dParams &p, Tensor &y) {
    bind_conv2d(x, w, p, y).run();
}
void conv2d_add(const Tensor &x, const PackedWeights &w, const Conv2dParams &p,
                const ResidualParams &rp, const Tensor &residual, Tensor &y) {
    bind_conv2d_add(x, w, p, rp, residual, y).run();
}
void dense(const Tensor &x, const PackedWeights &w, const Activation &act, Tensor &y,
           const std::string &name) {
    bind_dense(x, w, act, y, name).run();
}
void maxpool(const Tensor &x, const PoolParams &p, Tensor &y) { bind_maxpool(x, p, y).run(); }
void global_avgpool(const Tensor &x, Tensor &y) { bind_global_avgpool(x, y).run(); }
void add(const Tensor &a, const Tensor &b, const Activation &act, Tensor &y) {
    bind_add(a, b, act, y).run();
}
void quantize(const Tensor &x, Tensor &y) { bind_quantize(x, y).run(); }
void dequantize(const Tensor &x, Tensor &y) { bind_dequantize(x, y).run(); }
void requantize(const Tensor &x, Tensor &y, const Activation &act) {
    bind_requantize(x, y, act).run();
}
void int4_pack(const Tensor &x, Tensor &y) { bind_int4_pack(x, y).run(); }
void int4_unpack(const Tensor &x, Tensor &y) { bind_int4_unpack(x, y).run(); }

std::string last_kernel(const std::string &family) {
    std::lock_guard<std::mutex> l(g_last_mu);
    auto it = g_last.find(family);
    return it == g_last.end() ? "" : it->second;
}

}  // namespace qh
