#include "ops.h"

#include <map>
#include <mutex>
#include <stdexcept>

#include "HalideBuffer.h"
#include "kernels.h"

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
    QH_EXPECT(t.raw() != nullptr || t.numel() == 0, op, std::string(what) + " has no data");
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

// Halide buffer over a tensor's storage with Halide dims `sizes` (innermost first).
template <typename T>
Buf<T> view(const Tensor &t, std::vector<int> sizes) {
    return Buf<T>(const_cast<T *>(t.data<T>()), sizes);
}

template <typename Fn>
const KernelVariant<Fn> &pick(const KernelVariants<Fn> &v) {
    const auto &k = choose(v);
    std::lock_guard<std::mutex> l(g_last_mu);
    g_last[k.family] = k.name();
    return k;
}

// The variant, or the tuned kernel for this exact shape (tuning/db.json) when there is one.
template <typename Fn>
ChosenKernel<Fn> pick_shaped(const KernelVariants<Fn> &v, const std::string &shape_key) {
    auto k = choose(v, shape_key);
    std::lock_guard<std::mutex> l(g_last_mu);
    g_last[v.front().family] = k.name;
    return k;
}

std::string conv_key(const Tensor &x, const PackedWeights &w, const Conv2dParams &p,
                     const Tensor &y) {
    return conv2d_shape_key((int)x.dim(0), (int)x.dim(3), (int)x.dim(1), (int)x.dim(2), w.oc,
                            (int)y.dim(1), (int)y.dim(2), w.kh, w.kw, p.stride_h, p.stride_w,
                            p.pad_top, p.pad_left);
}

void check_rc(int rc, const std::string &op, const std::string &kernel) {
    if (rc != 0)
        throw std::runtime_error(op + ": kernel " + kernel + " failed with Halide error " +
                                 std::to_string(rc));
}

// Shared dummies for inputs a kernel family ignores (e.g. the residual of a plain conv).
Buf<uint8_t> dummy_u8_4d() { static uint8_t d[1] = {0}; return Buf<uint8_t>(d, 1, 1, 1, 1); }

struct ConvCall {
    Buf<uint8_t> in;
    Buf<int8_t> wts;
    Buf<int32_t> bias, wzp;
    Buf<float> mult;
};

ConvCall conv_buffers(const Tensor &x, const PackedWeights &w) {
    ConvCall c;
    c.in = view<uint8_t>(x, {(int)x.dim(3), (int)x.dim(2), (int)x.dim(1), (int)x.dim(0)});
    c.wts = Buf<int8_t>(w.data.get(), {4, 16, w.ic_pad / 4, w.kw, w.kh, w.oc_pad / 16});
    c.bias = Buf<int32_t>(const_cast<int32_t *>(w.bias.data()), w.oc_pad);
    c.wzp = Buf<int32_t>(const_cast<int32_t *>(w.wzp.data()), w.oc_pad);
    c.mult = Buf<float>(const_cast<float *>(w.mult.data()), w.oc_pad);
    return c;
}

void check_conv(const std::string &op, const Tensor &x, const PackedWeights &w,
                const Conv2dParams &p, const Tensor &y) {
    expect_tensor(x, op, "input", {DType::u8}, 4);
    QH_EXPECT(p.group == 1, op, "group=" + std::to_string(p.group) + " unsupported (only 1)");
    QH_EXPECT(p.dilation_h == 1 && p.dilation_w == 1, op, "dilation unsupported (only 1)");
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

}  // namespace

std::vector<int64_t> conv2d_output_shape(const Tensor &x, const PackedWeights &w,
                                         const Conv2dParams &p) {
    if (x.rank() != 4) fail(p.name, "input must be NHWC (rank 4), got " + x.describe());
    int64_t oh = (x.dim(1) + p.pad_top + p.pad_bottom - w.kh) / p.stride_h + 1;
    int64_t ow = (x.dim(2) + p.pad_left + p.pad_right - w.kw) / p.stride_w + 1;
    if (oh <= 0 || ow <= 0)
        fail(p.name, "kernel " + std::to_string(w.kh) + "x" + std::to_string(w.kw) +
                         " larger than padded input " + x.describe());
    return {x.dim(0), oh, ow, w.oc};
}

void conv2d(const Tensor &x, const PackedWeights &w, const Conv2dParams &p, Tensor &y) {
    const std::string &op = p.name;
    check_conv(op, x, w, p, y);
    expect_tensor(y, op, "output", {DType::u8, DType::s8, DType::s32}, 4);
    if (y.dtype() != DType::s32) expect_per_tensor(y, op, "output");
    ConvCall c = conv_buffers(x, w);
    Buf<void> out;
    int rc;
    std::vector<int> osz = {(int)y.dim(3), (int)y.dim(2), (int)y.dim(1), (int)y.dim(0)};
    auto run = [&](const auto &variants, auto out_buf) {
        const auto k = pick_shaped(variants, conv_key(x, w, p, y));
        rc = k.fn(c.in, w.input_zp, c.wts, c.bias, c.wzp, c.mult, zp0(y), p.act.min, p.act.max,
                  p.stride_w, p.stride_h, p.pad_left, p.pad_top, dummy_u8_4d(), 0, 0, 0.f, 0.f,
                  out_buf);
        check_rc(rc, op, k.name);
    };
    switch (y.dtype()) {
    case DType::u8:
        if (w.has_zero_point) run(kernels::conv2d_u8z8u8(), view<uint8_t>(y, osz));
        else run(kernels::conv2d_u8s8u8(), view<uint8_t>(y, osz));
        break;
    case DType::s8:
        QH_EXPECT(!w.has_zero_point, op, "s8 output with asymmetric weights '" + w.name +
                                          "' is not supported (use u8 or s32)");
        run(kernels::conv2d_u8s8s8(), view<int8_t>(y, osz));
        break;
    default:
        if (w.has_zero_point) run(kernels::conv2d_u8z8s32(), view<int32_t>(y, osz));
        else run(kernels::conv2d_u8s8s32(), view<int32_t>(y, osz));
    }
}

void conv2d_add(const Tensor &x, const PackedWeights &w, const Conv2dParams &p,
                const ResidualParams &rp, const Tensor &residual, Tensor &y) {
    const std::string &op = p.name;
    check_conv(op, x, w, p, y);
    expect_tensor(y, op, "output", {DType::u8}, 4);
    expect_tensor(residual, op, "residual", {DType::u8}, 4);
    QH_EXPECT(residual.shape() == y.shape(), op, "residual " + residual.describe() +
                                                  " must have the output's shape " +
                                                  shape_str(y.shape()));
    QH_EXPECT(!w.has_zero_point, op, "fused residual needs symmetric weights ('" + w.name + "')");
    expect_per_tensor(y, op, "output");
    expect_per_tensor(residual, op, "residual");
    QH_EXPECT(rp.conv_scale > 0 && rp.conv_zp >= 0 && rp.conv_zp <= 255, op,
           "conv result needs a positive scale and a u8 zero point");
    ConvCall c = conv_buffers(x, w);
    std::vector<int> osz = {(int)y.dim(3), (int)y.dim(2), (int)y.dim(1), (int)y.dim(0)};
    float sy = y.quant.scale[0];
    const auto k = pick_shaped(kernels::conv2d_add_u8s8u8(), conv_key(x, w, p, y));
    int rc = k.fn(c.in, w.input_zp, c.wts, c.bias, c.wzp, c.mult, zp0(y), p.act.min, p.act.max,
                  p.stride_w, p.stride_h, p.pad_left, p.pad_top, view<uint8_t>(residual, osz),
                  rp.conv_zp, zp0(residual), rp.conv_scale / sy, residual.quant.scale[0] / sy,
                  view<uint8_t>(y, osz));
    check_rc(rc, op, k.name);
}

void dense(const Tensor &x, const PackedWeights &w, const Activation &act, Tensor &y,
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
    Buf<uint8_t> in = view<uint8_t>(x, {(int)x.dim(1), (int)x.dim(0)});
    Buf<int8_t> wts(w.data.get(), {4, 16, w.ic_pad / 4, w.oc_pad / 16});
    Buf<int32_t> bias(const_cast<int32_t *>(w.bias.data()), w.oc_pad);
    Buf<int32_t> wzp(const_cast<int32_t *>(w.wzp.data()), w.oc_pad);
    Buf<float> mult(const_cast<float *>(w.mult.data()), w.oc_pad);
    std::vector<int> osz = {(int)y.dim(1), (int)y.dim(0)};
    auto run = [&](const auto &variants, auto out_buf) {
        const auto k = pick_shaped(variants, dense_shape_key((int)x.dim(0), w.ic, w.oc));
        check_rc(k.fn(in, w.input_zp, wts, bias, wzp, mult, zp0(y), act.min, act.max, out_buf),
                 op, k.name);
    };
    switch (y.dtype()) {
    case DType::u8:
        if (w.has_zero_point) run(kernels::dense_u8z8u8(), view<uint8_t>(y, osz));
        else run(kernels::dense_u8s8u8(), view<uint8_t>(y, osz));
        break;
    case DType::s8:
        QH_EXPECT(!w.has_zero_point, op, "s8 output with asymmetric weights is not supported");
        run(kernels::dense_u8s8s8(), view<int8_t>(y, osz));
        break;
    default:
        if (w.has_zero_point) run(kernels::dense_u8z8s32(), view<int32_t>(y, osz));
        else run(kernels::dense_u8s8s32(), view<int32_t>(y, osz));
    }
}

std::vector<int64_t> pool_output_shape(const Tensor &x, const PoolParams &p) {
    if (x.rank() != 4) fail(p.name, "input must be NHWC (rank 4), got " + x.describe());
    QH_EXPECT(p.kernel_h >= 1 && p.kernel_w >= 1 && p.stride_h >= 1 && p.stride_w >= 1, p.name,
           "kernel and strides must be >= 1");
    QH_EXPECT(p.pad_top < p.kernel_h && p.pad_bottom < p.kernel_h && p.pad_left < p.kernel_w &&
               p.pad_right < p.kernel_w && p.pad_top >= 0 && p.pad_left >= 0,
           p.name, "pads must be >= 0 and smaller than the kernel");
    int64_t oh = (x.dim(1) + p.pad_top + p.pad_bottom - p.kernel_h) / p.stride_h + 1;
    int64_t ow = (x.dim(2) + p.pad_left + p.pad_right - p.kernel_w) / p.stride_w + 1;
    QH_EXPECT(oh > 0 && ow > 0, p.name, "kernel larger than padded input " + x.describe());
    return {x.dim(0), oh, ow, x.dim(3)};
}

void maxpool(const Tensor &x, const PoolParams &p, Tensor &y) {
    const std::string &op = p.name;
    expect_tensor(x, op, "input", {DType::u8, DType::s8}, 4);
    QH_EXPECT(y.dtype() == x.dtype(), op, "output dtype must equal the input's");
    auto want = pool_output_shape(x, p);
    QH_EXPECT(y.shape() == want, op, "output is " + y.describe() + ", expected " + shape_str(want));
    std::vector<int> isz = {(int)x.dim(3), (int)x.dim(2), (int)x.dim(1), (int)x.dim(0)};
    std::vector<int> osz = {(int)y.dim(3), (int)y.dim(2), (int)y.dim(1), (int)y.dim(0)};
    auto run = [&](const auto &variants, auto in, auto out) {
        const auto &k = pick(variants);
        check_rc(k.fn(in, p.kernel_w, p.kernel_h, p.stride_w, p.stride_h, p.pad_left, p.pad_top,
                      out),
                 op, k.name());
    };
    if (x.dtype() == DType::u8)
        run(kernels::maxpool_u8u8(), view<uint8_t>(x, isz), view<uint8_t>(y, osz));
    else
        run(kernels::maxpool_s8s8(), view<int8_t>(x, isz), view<int8_t>(y, osz));
}

void global_avgpool(const Tensor &x, Tensor &y) {
    const std::string op = "global_avgpool";
    expect_tensor(x, op, "input", {DType::u8}, 4);
    expect_tensor(y, op, "output", {DType::u8}, 2);
    QH_EXPECT(y.dim(0) == x.dim(0) && y.dim(1) == x.dim(3), op,
           "output is " + y.describe() + ", expected [N, C] of input " + x.describe());
    expect_per_tensor(x, op, "input");
    expect_per_tensor(y, op, "output");
    int64_t hw = x.dim(1) * x.dim(2);
    QH_EXPECT(hw > 0 && hw * 255 < INT32_MAX, op, "H*W out of the int32 accumulator range");
    float mult = x.quant.scale[0] / (y.quant.scale[0] * float(hw));
    const auto &k = pick(kernels::global_avgpool_u8u8());
    check_rc(k.fn(view<uint8_t>(x, {(int)x.dim(3), (int)x.dim(2), (int)x.dim(1), (int)x.dim(0)}),
                  zp0(x), mult, zp0(y), view<uint8_t>(y, {(int)y.dim(1), (int)y.dim(0)})),
             op, k.name());
}

void add(const Tensor &a, const Tensor &b, const Activation &act, Tensor &y) {
    const std::string op = "add";
    expect_tensor(a, op, "a", {DType::u8}, -1);
    expect_tensor(b, op, "b", {DType::u8}, -1);
    expect_tensor(y, op, "output", {DType::u8}, -1);
    QH_EXPECT(a.shape() == b.shape() && a.shape() == y.shape(), op,
           "shapes must match (no broadcasting): a " + a.describe() + ", b " + b.describe() +
               ", output " + y.describe());
    for (const Tensor *t : {&a, &b, (const Tensor *)&y}) expect_per_tensor(*t, op, "operand");
    float sy = y.quant.scale[0];
    int n = (int)a.numel();
    const auto &k = pick(kernels::add_u8u8u8());
    check_rc(k.fn(view<uint8_t>(a, {n}), zp0(a), a.quant.scale[0] / sy, view<uint8_t>(b, {n}),
                  zp0(b), b.quant.scale[0] / sy, zp0(y), act.min, act.max, view<uint8_t>(y, {n})),
             op, k.name());
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
}  // namespace

void quantize(const Tensor &x, Tensor &y) {
    const std::string op = "quantize";
    expect_tensor(x, op, "input", {DType::f32}, -1);
    expect_tensor(y, op, "output", {DType::u8, DType::s8}, -1);
    QH_EXPECT(x.shape() == y.shape(), op, "input and output shapes differ");
    auto v = axis_view(y, y.quant.axis, op);
    std::vector<float> s;
    std::vector<int32_t> z;
    channel_params(y.quant, v[1], op, s, z);
    Buf<float> sb(s.data(), v[1]);
    Buf<int32_t> zb(z.data(), v[1]);
    auto run = [&](const auto &variants, auto out) {
        const auto &k = pick(variants);
        check_rc(k.fn(view<float>(x, v), sb, zb, out), op, k.name());
    };
    if (y.dtype() == DType::u8) run(kernels::quantize_f32u8(), view<uint8_t>(y, v));
    else run(kernels::quantize_f32s8(), view<int8_t>(y, v));
}

void dequantize(const Tensor &x, Tensor &y) {
    const std::string op = "dequantize";
    expect_tensor(x, op, "input", {DType::u8, DType::s8, DType::s32}, -1);
    expect_tensor(y, op, "output", {DType::f32}, -1);
    QH_EXPECT(x.shape() == y.shape(), op, "input and output shapes differ");
    auto v = axis_view(x, x.quant.axis, op);
    std::vector<float> s;
    std::vector<int32_t> z;
    channel_params(x.quant, v[1], op, s, z);
    Buf<float> sb(s.data(), v[1]);
    Buf<int32_t> zb(z.data(), v[1]);
    auto run = [&](const auto &variants, auto in) {
        const auto &k = pick(variants);
        check_rc(k.fn(in, sb, zb, view<float>(y, v)), op, k.name());
    };
    if (x.dtype() == DType::u8) run(kernels::dequantize_u8f32(), view<uint8_t>(x, v));
    else if (x.dtype() == DType::s8) run(kernels::dequantize_s8f32(), view<int8_t>(x, v));
    else run(kernels::dequantize_s32f32(), view<int32_t>(x, v));
}

void requantize(const Tensor &x, Tensor &y, const Activation &act) {
    const std::string op = "requantize";
    expect_tensor(x, op, "input", {DType::s32}, -1);
    expect_tensor(y, op, "output", {DType::u8, DType::s8, DType::u4, DType::s4}, -1);
    QH_EXPECT(x.shape() == y.shape(), op, "input and output shapes differ");
    int axis = y.quant.axis >= 0 ? y.quant.axis : x.quant.axis;
    auto v = axis_view(x, axis, op);
    std::vector<float> sx, sy;
    std::vector<int32_t> zx, zy;
    channel_params(x.quant, v[1], op, sx, zx);
    channel_params(y.quant, v[1], op, sy, zy);
    std::vector<float> m(v[1]);
    for (int c = 0; c < v[1]; c++) {
        QH_EXPECT(zx[c] == 0, op, "the s32 input must have zero point 0");
        m[c] = sx[c] / sy[c];
    }
    Buf<float> mb(m.data(), v[1]);
    Buf<int32_t> zb(zy.data(), v[1]);
    Buf<int32_t> in = view<int32_t>(x, v);
    int nbytes = (int)y.nbytes();
    auto run = [&](const auto &variants, auto out) {
        const auto &k = pick(variants);
        check_rc(k.fn(in, mb, zb, act.min, act.max, out), op, k.name());
    };
    switch (y.dtype()) {
    case DType::u8: run(kernels::requantize_s32u8(), view<uint8_t>(y, v)); break;
    case DType::s8: run(kernels::requantize_s32s8(), view<int8_t>(y, v)); break;
    case DType::u4: run(kernels::requantize_s32u4(), view<uint8_t>(y, {nbytes})); break;
    default: run(kernels::requantize_s32s4(), view<int8_t>(y, {nbytes}));
    }
}

void int4_pack(const Tensor &x, Tensor &y) {
    const std::string op = "int4_pack";
    expect_tensor(x, op, "input", {DType::s8, DType::u8}, -1);
    QH_EXPECT(y.dtype() == (x.dtype() == DType::s8 ? DType::s4 : DType::u4), op,
           "output must be s4 for s8 input, u4 for u8 input; got " + y.describe());
    QH_EXPECT(x.numel() == y.numel(), op, "element counts differ");
    std::vector<int> n = {(int)x.numel()}, nb = {(int)y.nbytes()};
    auto run = [&](const auto &variants, auto in) {
        const auto &k = pick(variants);
        check_rc(k.fn(in, view<uint8_t>(y, nb)), op, k.name());
    };
    if (x.dtype() == DType::s8) run(kernels::int4_pack_s8s4(), view<int8_t>(x, n));
    else run(kernels::int4_pack_u8u4(), view<uint8_t>(x, n));
}

void int4_unpack(const Tensor &x, Tensor &y) {
    const std::string op = "int4_unpack";
    expect_tensor(x, op, "input", {DType::s4, DType::u4}, -1);
    QH_EXPECT(y.dtype() == (x.dtype() == DType::s4 ? DType::s8 : DType::u8), op,
           "output must be s8 for s4 input, u8 for u4 input; got " + y.describe());
    QH_EXPECT(x.numel() == y.numel(), op, "element counts differ");
    std::vector<int> n = {(int)y.numel()}, nb = {(int)x.nbytes()};
    auto run = [&](const auto &variants, auto out) {
        const auto &k = pick(variants);
        check_rc(k.fn(view<uint8_t>(x, nb), out), op, k.name());
    };
    if (x.dtype() == DType::s4) run(kernels::int4_unpack_s4s8(), view<int8_t>(y, n));
    else run(kernels::int4_unpack_u4u8(), view<uint8_t>(y, n));
}

std::string last_kernel(const std::string &family) {
    std::lock_guard<std::mutex> l(g_last_mu);
    auto it = g_last.find(family);
    return it == g_last.end() ? "" : it->second;
}

}  // namespace qh
