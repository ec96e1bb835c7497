#include "float_ops.h"

#include <cblas.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <stdexcept>

namespace qh::f32 {

ConvWeights prepare_conv_weights(const Tensor &w, const Tensor &bias, int group) {
    if (w.dtype() != DType::f32) throw std::runtime_error("fp32 path: weights must be f32, have " + w.describe());
    ConvWeights c;
    c.group = group;
    c.oc = int(w.dim(0));
    c.ic = int(w.dim(1));
    c.kh = w.rank() == 4 ? int(w.dim(2)) : 1;
    c.kw = w.rank() == 4 ? int(w.dim(3)) : 1;
    const int K = c.kh * c.kw * c.ic;
    c.w.resize(size_t(c.oc) * K);
    const float *src = w.data<float>();
    for (int o = 0; o < c.oc; o++)
        for (int i = 0; i < c.ic; i++)
            for (int y = 0; y < c.kh; y++)
                for (int x = 0; x < c.kw; x++)
                    c.w[size_t(o) * K + (size_t(y) * c.kw + x) * c.ic + i] =
                        src[((size_t(o) * c.ic + i) * c.kh + y) * c.kw + x];
    c.bias.assign(c.oc, 0.f);
    if (bias.rank() > 0) std::memcpy(c.bias.data(), bias.data<float>(), sizeof(float) * c.oc);
    return c;
}

namespace {

bool is_pointwise(const ConvWeights &w, const WindowAttrs &a) {
    return w.group == 1 && w.kh == 1 && w.kw == 1 && a.stride_h == 1 && a.stride_w == 1 && a.pad_top == 0 &&
           a.pad_left == 0 && a.pad_bottom == 0 && a.pad_right == 0;
}

// C {M, OC} = A {M, K} W^T + bias
void gemm_bias(int M, int K, const float *A, const ConvWeights &w, float *C) {
    for (int m = 0; m < M; m++) std::memcpy(C + size_t(m) * w.oc, w.bias.data(), sizeof(float) * w.oc);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, w.oc, K, 1.f, A, K, w.w.data(), K, 1.f, C, w.oc);
}

}  // namespace

size_t conv2d_scratch_floats(const std::vector<int64_t> &xs, const ConvWeights &w, const WindowAttrs &a) {
    if (is_pointwise(w, a)) return 0;
    if (w.group > 1 && w.ic == 1 && w.oc == w.group) return 0;  // depthwise: direct loops
    return size_t(a.out_h(xs[1]) * a.out_w(xs[2])) * w.kh * w.kw * w.ic;
}

namespace {
// Depthwise (one input and one output channel per group): y[c] = bias[c] + sum x[c] w[c],
// vectorizable over the dense channels.
void depthwise(const Tensor &x, const ConvWeights &w, const WindowAttrs &a, Tensor &y) {
    const int N = int(x.dim(0)), H = int(x.dim(1)), W = int(x.dim(2)), C = int(x.dim(3));
    const int OH = int(y.dim(1)), OW = int(y.dim(2)), K = w.kh * w.kw;
    for (int n = 0; n < N; n++)
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                float *o = y.data<float>() + ((size_t(n) * OH + oy) * OW + ox) * C;
                std::memcpy(o, w.bias.data(), sizeof(float) * C);
                for (int ky = 0; ky < w.kh; ky++) {
                    const int iy = oy * a.stride_h + ky * a.dilation_h - a.pad_top;
                    if (iy < 0 || iy >= H) continue;
                    for (int kx = 0; kx < w.kw; kx++) {
                        const int ix = ox * a.stride_w + kx * a.dilation_w - a.pad_left;
                        if (ix < 0 || ix >= W) continue;
                        const float *i = x.data<float>() + ((size_t(n) * H + iy) * W + ix) * C;
                        const size_t t = size_t(ky) * w.kw + kx;
                        for (int c = 0; c < C; c++) o[c] += i[c] * w.w[size_t(c) * K + t];
                    }
                }
            }
}
}  // namespace

void conv2d(const Tensor &x, const ConvWeights &w, const WindowAttrs &a, float *scratch, Tensor &y) {
    const int N = int(x.dim(0)), H = int(x.dim(1)), W = int(x.dim(2)), C = int(x.dim(3));
    const int OH = int(y.dim(1)), OW = int(y.dim(2));
    if (is_pointwise(w, a)) {
        gemm_bias(N * H * W, C, x.data<float>(), w, y.data<float>());
        return;
    }
    if (w.group > 1 && w.ic == 1 && w.oc == w.group) return depthwise(x, w, a, y);
    // Per image and group: im2col of the group's channels, then one sgemm into the group's
    // output channels (ldc = OC).
    const int CG = w.ic, MG = w.oc / w.group, K = w.kh * w.kw * CG;
    for (int n = 0; n < N; n++) {
        const float *xn = x.data<float>() + size_t(n) * H * W * C;
        float *yn = y.data<float>() + size_t(n) * OH * OW * w.oc;
        for (int p = 0; p < OH * OW; p++) std::memcpy(yn + size_t(p) * w.oc, w.bias.data(), sizeof(float) * w.oc);
        for (int g = 0; g < w.group; g++) {
            // im2col: row (oy, ox), columns (ky, kx, c); zeros outside the image.
            for (int oy = 0; oy < OH; oy++)
                for (int ox = 0; ox < OW; ox++) {
                    float *row = scratch + (size_t(oy) * OW + ox) * K;
                    for (int ky = 0; ky < w.kh; ky++) {
                        const int iy = oy * a.stride_h + ky * a.dilation_h - a.pad_top;
                        for (int kx = 0; kx < w.kw; kx++) {
                            const int ix = ox * a.stride_w + kx * a.dilation_w - a.pad_left;
                            float *dst = row + (size_t(ky) * w.kw + kx) * CG;
                            if (iy < 0 || iy >= H || ix < 0 || ix >= W)
                                std::memset(dst, 0, sizeof(float) * CG);
                            else
                                std::memcpy(dst, xn + (size_t(iy) * W + ix) * C + size_t(g) * CG, sizeof(float) * CG);
                        }
                    }
                }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, OH * OW, MG, K, 1.f, scratch, K,
                        w.w.data() + size_t(g) * MG * K, K, 1.f, yn + size_t(g) * MG, w.oc);
        }
    }
}

void dense(const Tensor &x, const ConvWeights &w, Tensor &y) {
    gemm_bias(int(x.dim(0)), int(x.dim(1)), x.data<float>(), w, y.data<float>());
}

void relu(const Tensor &x, Tensor &y) {
    const float *s = x.data<float>();
    float *d = y.data<float>();
    for (int64_t i = 0; i < x.numel(); i++) d[i] = std::max(s[i], 0.f);
}

void add(const Tensor &a, const Tensor &b, Tensor &y) {
    const float *p = a.data<float>(), *q = b.data<float>();
    float *d = y.data<float>();
    for (int64_t i = 0; i < a.numel(); i++) d[i] = p[i] + q[i];
}

namespace {
// y = op(a, b), b broadcast to a's shape (numpy rules, ranks right-aligned).
template <typename Op>
void broadcast_binary(const Tensor &a, const Tensor &b, Tensor &y, Op op) {
    // b's element for a's index: strides of b's shape right-aligned to a's, 0 where broadcast.
    const int r = int(a.rank()), rb = int(b.rank());
    std::vector<int64_t> stride(r, 0);
    int64_t s = 1;
    for (int d = rb - 1; d >= 0; d--) {
        stride[r - rb + d] = b.dim(d) == 1 ? 0 : s;
        s *= b.dim(d);
    }
    const float *p = a.data<float>(), *q = b.data<float>();
    float *o = y.data<float>();
    std::vector<int64_t> idx(r, 0);
    int64_t bi = 0;
    for (int64_t i = 0; i < a.numel(); i++) {
        o[i] = op(p[i], q[bi]);
        for (int d = r - 1; d >= 0; d--) {  // next index of a, b's offset with it
            bi += stride[d];
            if (++idx[d] < a.dim(d)) break;
            bi -= stride[d] * idx[d];
            idx[d] = 0;
        }
    }
}
}  // namespace

void mul(const Tensor &a, const Tensor &b, Tensor &y) {
    broadcast_binary(a, b, y, [](float u, float v) { return u * v; });
}

void add_broadcast(const Tensor &a, const Tensor &b, Tensor &y) {
    broadcast_binary(a, b, y, [](float u, float v) { return u + v; });
}

void batchnorm(const Tensor &x, const std::vector<float> &scale, const std::vector<float> &shift, Tensor &y) {
    const size_t C = scale.size();
    const float *s = x.data<float>();
    float *d = y.data<float>();
    for (int64_t i = 0; i < x.numel(); i++) d[i] = s[i] * scale[i % C] + shift[i % C];
}

void maxpool(const Tensor &x, const WindowAttrs &a, Tensor &y) {
    const int N = int(x.dim(0)), H = int(x.dim(1)), W = int(x.dim(2)), C = int(x.dim(3));
    const int OH = int(y.dim(1)), OW = int(y.dim(2));
    const float *s = x.data<float>();
    float *d = y.data<float>();
    for (int n = 0; n < N; n++)
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                float *o = d + ((size_t(n) * OH + oy) * OW + ox) * C;
                std::fill(o, o + C, -std::numeric_limits<float>::infinity());
                for (int ky = 0; ky < a.kernel_h; ky++) {
                    int iy = oy * a.stride_h + ky - a.pad_top;
                    if (iy < 0 || iy >= H) continue;
                    for (int kx = 0; kx < a.kernel_w; kx++) {
                        int ix = ox * a.stride_w + kx - a.pad_left;
                        if (ix < 0 || ix >= W) continue;
                        const float *i = s + ((size_t(n) * H + iy) * W + ix) * C;
                        for (int c = 0; c < C; c++) o[c] = std::max(o[c], i[c]);
                    }
                }
            }
}

void avgpool(const Tensor &x, const WindowAttrs &a, bool count_include_pad, Tensor &y) {
    const int N = int(x.dim(0)), H = int(x.dim(1)), W = int(x.dim(2)), C = int(x.dim(3));
    const int OH = int(y.dim(1)), OW = int(y.dim(2));
    std::vector<double> acc(C);
    for (int n = 0; n < N; n++)
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                std::fill(acc.begin(), acc.end(), 0.0);
                const int y0 = oy * a.stride_h - a.pad_top, x0 = ox * a.stride_w - a.pad_left;
                const int cy0 = count_include_pad ? -a.pad_top : 0, cy1 = count_include_pad ? H + a.pad_bottom : H;
                const int cx0 = count_include_pad ? -a.pad_left : 0, cx1 = count_include_pad ? W + a.pad_right : W;
                const int cnt = std::max(std::min(y0 + a.kernel_h, cy1) - std::max(y0, cy0), 1) *
                                std::max(std::min(x0 + a.kernel_w, cx1) - std::max(x0, cx0), 1);
                for (int iy = std::max(y0, 0); iy < std::min(y0 + a.kernel_h, H); iy++)
                    for (int ix = std::max(x0, 0); ix < std::min(x0 + a.kernel_w, W); ix++) {
                        const float *i = x.data<float>() + ((size_t(n) * H + iy) * W + ix) * C;
                        for (int c = 0; c < C; c++) acc[c] += i[c];
                    }
                float *o = y.data<float>() + ((size_t(n) * OH + oy) * OW + ox) * C;
                for (int c = 0; c < C; c++) o[c] = float(acc[c] / cnt);
            }
}

void global_avgpool(const Tensor &x, Tensor &y) {
    const int N = int(x.dim(0)), HW = int(x.dim(1) * x.dim(2)), C = int(x.dim(3));
    const float *s = x.data<float>();
    float *d = y.data<float>();
    std::vector<double> acc(C);
    for (int n = 0; n < N; n++) {
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int p = 0; p < HW; p++)
            for (int c = 0; c < C; c++) acc[c] += s[(size_t(n) * HW + p) * C + c];
        for (int c = 0; c < C; c++) d[size_t(n) * C + c] = float(acc[c] / HW);
    }
}

}  // namespace qh::f32
