// conv2d / conv2d_add / dense: every runnable kernel variant against the reference, bit-exact,
// over ResNet-18/50 layer shapes and awkward ones (odd channel counts, tails, asymmetric pads,
// batch > 1, zero points 0 and not, saturation at both ends, asymmetric weights).
#include <algorithm>
#include <cmath>

#include "ops.h"
#include "reference_ops.h"
#include "test_util.h"

namespace qh::test {
namespace {

enum class WeightKind { s8_symmetric, u8_zero_point, s8_zero_point };

struct ConvCase {
    std::string name;
    ref::ConvProblem p;
    int32_t x_zp = 128;
    WeightKind wk = WeightKind::s8_symmetric;
    DType out = DType::u8;
    bool relu = false;
    bool residual = false;
    float out_scale = 0.05f;  // small scale: many outputs saturate at both ends
};

ref::ConvProblem shape(int n, int hw, int c, int oc, int k, int s, int pad) {
    ref::ConvProblem p;
    p.n = n; p.h = p.w = hw; p.c = c; p.oc = oc; p.kh = p.kw = k;
    p.stride_h = p.stride_w = s;
    p.pad_top = p.pad_left = p.pad_bottom = p.pad_right = pad;
    return p;
}

std::vector<ConvCase> conv_cases() {
    std::vector<ConvCase> v;
    // ResNet-50 (v1) distinct conv shapes at batch 1.
    v.push_back({"r50_conv1_7x7s2", shape(1, 224, 3, 64, 7, 2, 3)});
    v.push_back({"r50_res2_1x1_64_64", shape(1, 56, 64, 64, 1, 1, 0)});
    v.push_back({"r50_res2_3x3_64_64", shape(1, 56, 64, 64, 3, 1, 1)});
    v.push_back({"r50_res2_1x1_64_256", shape(1, 56, 64, 256, 1, 1, 0)});
    v.push_back({"r50_res2_1x1_256_64", shape(1, 56, 256, 64, 1, 1, 0)});
    v.push_back({"r50_res3_1x1_256_128", shape(1, 56, 256, 128, 1, 1, 0)});
    v.push_back({"r50_res3_3x3s2_128", shape(1, 56, 128, 128, 3, 2, 1)});
    v.push_back({"r50_res3_1x1s2_256_512", shape(1, 56, 256, 512, 1, 2, 0)});
    v.push_back({"r50_res3_3x3_128", shape(1, 28, 128, 128, 3, 1, 1)});
    v.push_back({"r50_res4_3x3_256", shape(1, 14, 256, 256, 3, 1, 1)});
    v.push_back({"r50_res4_1x1_1024_256", shape(1, 14, 1024, 256, 1, 1, 0)});
    v.push_back({"r50_res5_3x3_512", shape(1, 7, 512, 512, 3, 1, 1)});
    v.push_back({"r50_res5_1x1_512_2048", shape(1, 7, 512, 2048, 1, 1, 0)});
    // ResNet-18 basic-block shapes.
    v.push_back({"r18_res3_3x3s2_64_128", shape(1, 56, 64, 128, 3, 2, 1)});
    v.push_back({"r18_res5_3x3_512_relu", shape(1, 7, 512, 512, 3, 1, 1), 0, WeightKind::s8_symmetric, DType::u8, true});
    // Awkward: tails in every dimension, batch > 1, odd kernels, asymmetric pads.
    {
        auto p = shape(3, 9, 5, 7, 3, 1, 1);
        v.push_back({"odd_c5_oc7_b3", p, 3});
    }
    {
        auto p = shape(2, 13, 13, 70, 5, 2, 2);
        p.w = 11; p.pad_right = 0; p.pad_bottom = 1;
        v.push_back({"c13_oc70_5x5s2_asym", p, 200});
    }
    v.push_back({"oc1_c1_1x1", shape(1, 7, 1, 1, 1, 1, 0), 0});
    v.push_back({"wide_kernel_1x7", [] { auto p = shape(1, 10, 20, 33, 1, 1, 0); p.kw = 7; p.pad_left = 3; p.pad_right = 3; return p; }(), 17});
    v.push_back({"s8_out", shape(2, 8, 24, 40, 3, 1, 1), 100, WeightKind::s8_symmetric, DType::s8});
    v.push_back({"s8_out_relu", shape(1, 8, 24, 40, 3, 1, 1), 100, WeightKind::s8_symmetric, DType::s8, true});
    v.push_back({"s32_out", shape(1, 6, 12, 20, 3, 2, 1), 255, WeightKind::s8_symmetric, DType::s32});
    v.push_back({"u8_weights_zp_u8out", shape(1, 9, 10, 18, 3, 1, 1), 90, WeightKind::u8_zero_point});
    v.push_back({"u8_weights_zp_s32out", shape(2, 7, 6, 5, 2, 1, 0), 1, WeightKind::u8_zero_point, DType::s32});
    v.push_back({"s8_weights_zp", shape(1, 8, 16, 32, 3, 1, 1), 7, WeightKind::s8_zero_point});
    // Fused residual add (+ ReLU) as in ResNet bottlenecks.
    v.push_back({"res_add_1x1_64_256", shape(1, 56, 64, 256, 1, 1, 0), 120, WeightKind::s8_symmetric, DType::u8, true, true});
    v.push_back({"res_add_odd", shape(2, 5, 9, 21, 3, 1, 1), 30, WeightKind::s8_symmetric, DType::u8, false, true});
    return v;
}

class Conv2dTest : public ::testing::TestWithParam<ConvCase> {};

TEST_P(Conv2dTest, BitExactAllVariants) {
    const ConvCase &tc = GetParam();
    const auto &p = tc.p;
    uint32_t seed = std::hash<std::string>()(tc.name);
    auto xv = random_vec<uint8_t>(size_t(p.n) * p.h * p.w * p.c, 0, 255, seed);
    const size_t nw = size_t(p.oc) * p.c * p.kh * p.kw;
    std::vector<int32_t> wv, zw;
    WeightsDesc wd;
    wd.name = tc.name;
    wd.oc = p.oc; wd.ic = p.c; wd.kh = p.kh; wd.kw = p.kw;
    std::vector<uint8_t> wu8;
    std::vector<int8_t> ws8;
    if (tc.wk == WeightKind::u8_zero_point) {
        wu8 = random_vec<uint8_t>(nw, 0, 255, seed + 1);
        wv.assign(wu8.begin(), wu8.end());
        zw = random_vec<int32_t>(p.oc, 0, 255, seed + 2);
        wd.dtype = DType::u8; wd.data = wu8.data();
    } else {
        ws8 = random_vec<int8_t>(nw, tc.wk == WeightKind::s8_symmetric ? -127 : -128, 127, seed + 1);
        wv.assign(ws8.begin(), ws8.end());
        zw = tc.wk == WeightKind::s8_symmetric ? std::vector<int32_t>{0}
                                               : random_vec<int32_t>(p.oc, -100, 100, seed + 2);
        wd.dtype = DType::s8; wd.data = ws8.data();
    }
    wd.zero_point = zw;
    auto bias = random_vec<int32_t>(p.oc, -20000, 20000, seed + 3);
    wd.bias = bias.data();
    std::vector<float> wscale(p.oc);
    for (int o = 0; o < p.oc; o++) wscale[o] = 0.002f + 0.0005f * (o % 7);
    wd.scale = wscale;
    const float xs = 0.02f;
    const int32_t yzp = tc.out == DType::s8 ? -5 : 77;

    auto acc = ref::conv2d_acc(p, xv, tc.x_zp, wv, zw, bias);
    Tensor x = tensor_from(DType::u8, {p.n, p.h, p.w, p.c}, xv, QuantParams::per_tensor(xs, tc.x_zp));
    std::vector<int64_t> yshape = {p.n, p.oh(), p.ow(), p.oc};
    Conv2dParams cp;
    cp.name = tc.name;
    cp.stride_h = p.stride_h; cp.stride_w = p.stride_w;
    cp.pad_top = p.pad_top; cp.pad_left = p.pad_left; cp.pad_bottom = p.pad_bottom; cp.pad_right = p.pad_right;

    std::vector<int32_t> want;
    Tensor residual;
    ResidualParams rp;
    int32_t lo = tc.out == DType::s8 ? -128 : 0, hi = tc.out == DType::s8 ? 127 : 255;
    if (tc.relu) { cp.act = Activation::relu(yzp); lo = yzp; }
    float pack_scale = tc.out == DType::s32 ? 0.f : tc.out_scale;
    if (tc.residual) {
        rp.conv_scale = tc.out_scale; rp.conv_zp = 64;
        auto rv = random_vec<uint8_t>(x.numel() / p.c * 0 + size_t(p.n) * p.oh() * p.ow() * p.oc, 0, 255, seed + 4);
        residual = tensor_from(DType::u8, yshape, rv, QuantParams::per_tensor(0.07f, 110));
        const float ys = 0.09f;
        std::vector<float> mult(p.oc);
        for (int o = 0; o < p.oc; o++) mult[o] = (xs * wscale[o]) / rp.conv_scale;
        auto c = ref::requantize_all(acc, p.oc, mult, rp.conv_zp, 0, 255);
        want.resize(c.size());
        for (size_t i = 0; i < c.size(); i++)
            want[i] = ref::quantized_add(c[i], rp.conv_zp, rp.conv_scale / ys, rv[i], 110,
                                         0.07f / ys, yzp, lo, hi);
        pack_scale = rp.conv_scale;
        (void)ys;
    } else if (tc.out == DType::s32) {
        for (auto a : acc) want.push_back(int32_t(a));
    } else {
        std::vector<float> mult(p.oc);
        for (int o = 0; o < p.oc; o++) mult[o] = (xs * wscale[o]) / tc.out_scale;
        want = ref::requantize_all(acc, p.oc, mult, yzp, lo, hi);
    }
    PackedWeights pw = pack_weights(wd, xs, tc.x_zp, pack_scale);
    EXPECT_EQ(pw.has_zero_point, tc.wk == WeightKind::u8_zero_point ||
                                     (tc.wk == WeightKind::s8_zero_point && pw.has_zero_point));

    // Saturation must really be exercised where the case expects it.
    if (tc.out == DType::u8 && !tc.residual && int64_t(p.c) * p.kh * p.kw >= 64) {
        EXPECT_NE(std::count(want.begin(), want.end(), lo), 0);
        EXPECT_NE(std::count(want.begin(), want.end(), 255), 0);
    }

    int ran = 0;
    QH_FOR_EACH_TARGET(tag) {
        Tensor y(tc.out, yshape, QuantParams::per_tensor(tc.residual ? 0.09f : tc.out_scale, yzp));
        if (tc.out == DType::s32) y.quant = {};
        std::fill_n(y.data<uint8_t>(), y.nbytes(), 0xA5);  // poison: every element must be written
        if (tc.residual) conv2d_add(x, pw, cp, rp, residual, y);
        else conv2d(x, pw, cp, y);
        std::vector<int32_t> got = tc.out == DType::u8 ? values<uint8_t>(y)
                                   : tc.out == DType::s8 ? values<int8_t>(y) : values<int32_t>(y);
        EXPECT_EQ(first_mismatch(got, want), "") << "kernel " << last_kernel(tc.residual ? "conv2d_add_u8s8u8" : "conv2d_u8s8u8");
        ran++;
    }
    EXPECT_GE(ran, 1);
}

INSTANTIATE_TEST_SUITE_P(Shapes, Conv2dTest, ::testing::ValuesIn(conv_cases()),
                         [](const auto &info) { return info.param.name; });

// dense / MatMulInteger-style: batch tails, K not a multiple of 4, 1000 classes.
struct DenseCase {
    std::string name;
    int b, k, oc;
    int32_t x_zp;
    DType out;
    bool u8_weights;
};

class DenseTest : public ::testing::TestWithParam<DenseCase> {};

TEST_P(DenseTest, BitExactAllVariants) {
    const DenseCase &tc = GetParam();
    uint32_t seed = std::hash<std::string>()(tc.name);
    auto xv = random_vec<uint8_t>(size_t(tc.b) * tc.k, 0, 255, seed);
    std::vector<int32_t> wv, zw;
    std::vector<uint8_t> wu8;
    std::vector<int8_t> ws8;
    WeightsDesc wd;
    wd.name = tc.name; wd.oc = tc.oc; wd.ic = tc.k;
    if (tc.u8_weights) {
        wu8 = random_vec<uint8_t>(size_t(tc.oc) * tc.k, 0, 255, seed + 1);
        wv.assign(wu8.begin(), wu8.end());
        zw = {131};
        wd.dtype = DType::u8; wd.data = wu8.data();
    } else {
        ws8 = random_vec<int8_t>(size_t(tc.oc) * tc.k, -128, 127, seed + 1);
        wv.assign(ws8.begin(), ws8.end());
        zw = {0};
        wd.dtype = DType::s8; wd.data = ws8.data();
    }
    wd.zero_point = zw;
    auto bias = random_vec<int32_t>(tc.oc, -5000, 5000, seed + 2);
    wd.bias = bias.data();
    wd.scale = {0.003f};
    ref::ConvProblem p;
    p.n = 1; p.h = 1; p.w = tc.b; p.c = tc.k; p.oc = tc.oc;
    auto acc = ref::conv2d_acc(p, xv, tc.x_zp, wv, zw, bias);
    float ys = 0.4f;
    int32_t yzp = tc.out == DType::s8 ? 3 : 120;
    std::vector<int32_t> want;
    if (tc.out == DType::s32) for (auto a : acc) want.push_back(int32_t(a));
    else want = ref::requantize_all(acc, tc.oc, {(0.01f * 0.003f) / ys}, yzp,
                                    tc.out == DType::s8 ? -128 : 0, tc.out == DType::s8 ? 127 : 255);
    PackedWeights pw = pack_weights(wd, 0.01f, tc.x_zp, tc.out == DType::s32 ? 0.f : ys);
    Tensor x = tensor_from(DType::u8, {tc.b, tc.k}, xv, QuantParams::per_tensor(0.01f, tc.x_zp));
    QH_FOR_EACH_TARGET(tag) {
        Tensor y(tc.out, {tc.b, tc.oc}, QuantParams::per_tensor(ys, yzp));
        std::fill_n(y.data<uint8_t>(), y.nbytes(), 0xA5);
        dense(x, pw, {}, y, tc.name);
        std::vector<int32_t> got = tc.out == DType::u8 ? values<uint8_t>(y)
                                   : tc.out == DType::s8 ? values<int8_t>(y) : values<int32_t>(y);
        EXPECT_EQ(first_mismatch(got, want), "");
    }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, DenseTest,
    ::testing::Values(DenseCase{"r50_fc_2048_1000", 1, 2048, 1000, 0, DType::u8, false},
                      DenseCase{"r18_fc_512_1000_b3", 3, 512, 1000, 13, DType::u8, false},
                      DenseCase{"k_tail_s8", 5, 37, 19, 200, DType::s8, false},
                      DenseCase{"s32_batch7", 7, 64, 70, 255, DType::s32, false},
                      DenseCase{"u8_weights_zp_s32", 4, 30, 9, 12, DType::s32, true},
                      DenseCase{"u8_weights_zp_u8", 2, 130, 65, 40, DType::u8, true}),
    [](const auto &info) { return info.param.name; });

// conv2d_grouped: depthwise (MobileNet / EfficientNet shapes), channel multipliers, grouped,
// dilated (dense and depthwise), asymmetric weights, batch and tails; every CPU variant
// against the reference, bit-exact, with a poisoned output.
struct GroupedCase {
    std::string name;
    ref::ConvProblem p;
    int32_t x_zp = 128;
    bool u8_weights = false;  // u8 weights with per-channel zero points (the z8 family)
    int32_t act_lo = 0, act_hi = 255;
};

ref::ConvProblem grouped_shape(int n, int hw, int c, int oc, int k, int s, int group, int dil = 1) {
    ref::ConvProblem p = shape(n, hw, c, oc, k, s, (k - 1) * dil / 2);
    p.group = group;
    p.dilation_h = p.dilation_w = dil;
    return p;
}

std::vector<GroupedCase> grouped_cases() {
    std::vector<GroupedCase> v;
    v.push_back({"dw3x3_s1_c32_112", grouped_shape(1, 112, 32, 32, 3, 1, 32)});
    v.push_back({"dw3x3_s2_c96_asym", [] {  // TF SAME at stride 2: pads (0, 0, 1, 1)
        auto p = grouped_shape(1, 56, 96, 96, 3, 2, 96);
        p.pad_top = p.pad_left = 0;
        return p;
    }(), 3});
    v.push_back({"dw5x5_s1_c240_relu6", grouped_shape(1, 14, 240, 240, 5, 1, 240), 0, false, 0, 200});
    v.push_back({"dw5x5_s2_c672", grouped_shape(1, 14, 672, 672, 5, 2, 672), 17});
    v.push_back({"dw3x3_c1152_7x7", grouped_shape(1, 7, 1152, 1152, 3, 1, 1152), 250});
    v.push_back({"dw_odd_c13_b2", grouped_shape(2, 9, 13, 13, 3, 1, 13), 60});
    v.push_back({"dw_multiplier2", grouped_shape(1, 10, 24, 48, 3, 1, 24), 99});
    v.push_back({"group4_c16_oc32", grouped_shape(1, 12, 16, 32, 3, 1, 4), 5});
    v.push_back({"group2_c6_oc10_odd", grouped_shape(2, 7, 6, 10, 3, 2, 2), 140});
    v.push_back({"dilated2_dense_c8_oc20", grouped_shape(1, 15, 8, 20, 3, 1, 1, 2), 31});
    v.push_back({"dilated3_dw_c40", grouped_shape(1, 16, 40, 40, 3, 1, 40, 3), 200});
    v.push_back({"dw_u8_weights_zp", grouped_shape(1, 11, 70, 70, 3, 1, 70), 128, true});
    v.push_back({"group4_u8_weights_zp", grouped_shape(2, 8, 12, 12, 5, 1, 4), 9, true});
    return v;
}

class GroupedConvTest : public ::testing::TestWithParam<GroupedCase> {};

TEST_P(GroupedConvTest, BitExactAllVariants) {
    const GroupedCase &tc = GetParam();
    const auto &p = tc.p;
    uint32_t seed = std::hash<std::string>()(tc.name);
    auto xv = random_vec<uint8_t>(size_t(p.n) * p.h * p.w * p.c, 0, 255, seed);
    const int cg = p.c / p.group;
    const size_t nw = size_t(p.oc) * cg * p.kh * p.kw;
    std::vector<int32_t> wv, zw;
    std::vector<uint8_t> wu8;
    std::vector<int8_t> ws8;
    WeightsDesc wd;
    wd.name = tc.name;
    wd.grouped = true;
    wd.oc = p.oc; wd.ic = cg; wd.kh = p.kh; wd.kw = p.kw;
    if (tc.u8_weights) {
        wu8 = random_vec<uint8_t>(nw, 0, 255, seed + 1);
        wv.assign(wu8.begin(), wu8.end());
        zw = random_vec<int32_t>(p.oc, 0, 255, seed + 2);
        wd.dtype = DType::u8; wd.data = wu8.data();
    } else {
        ws8 = random_vec<int8_t>(nw, -127, 127, seed + 1);
        wv.assign(ws8.begin(), ws8.end());
        zw = {0};
        wd.dtype = DType::s8; wd.data = ws8.data();
    }
    wd.zero_point = zw;
    auto bias = random_vec<int32_t>(p.oc, -3000, 3000, seed + 3);
    wd.bias = bias.data();
    std::vector<float> wscale(p.oc);
    for (int o = 0; o < p.oc; o++) wscale[o] = 0.002f + 0.0005f * (o % 7);
    wd.scale = wscale;
    const float xs = 0.02f, ys = 0.004f * float(p.kh * p.kw * cg) / 9.f;
    const int32_t yzp = 77;
    auto acc = ref::conv2d_acc(p, xv, tc.x_zp, wv, zw, bias);
    std::vector<float> mult(p.oc);
    for (int o = 0; o < p.oc; o++) mult[o] = (xs * wscale[o]) / ys;
    auto want = ref::requantize_all(acc, p.oc, mult, yzp, tc.act_lo, tc.act_hi);
    EXPECT_NE(std::count(want.begin(), want.end(), tc.act_lo), 0);  // both ends saturate somewhere
    EXPECT_NE(std::count(want.begin(), want.end(), tc.act_hi), 0);
    PackedWeights pw = pack_weights(wd, xs, tc.x_zp, ys);
    EXPECT_EQ(pw.has_zero_point, tc.u8_weights);

    Tensor x = tensor_from(DType::u8, {p.n, p.h, p.w, p.c}, xv, QuantParams::per_tensor(xs, tc.x_zp));
    Conv2dParams cp;
    cp.name = tc.name;
    cp.stride_h = p.stride_h; cp.stride_w = p.stride_w;
    cp.pad_top = p.pad_top; cp.pad_left = p.pad_left; cp.pad_bottom = p.pad_bottom; cp.pad_right = p.pad_right;
    cp.dilation_h = p.dilation_h; cp.dilation_w = p.dilation_w;
    cp.group = p.group;
    cp.act = {tc.act_lo, tc.act_hi};
    int ran = 0;
    QH_FOR_EACH_TARGET(tag) {
        Tensor y(DType::u8, {p.n, p.oh(), p.ow(), p.oc}, QuantParams::per_tensor(ys, yzp));
        std::fill_n(y.data<uint8_t>(), y.nbytes(), 0xA5);
        bind_conv2d_grouped(x, pw, cp, y).run();
        EXPECT_EQ(first_mismatch(values<uint8_t>(y), want), "")
            << "kernel " << last_kernel(tc.u8_weights ? "conv2d_grouped_u8z8u8" : "conv2d_grouped_u8s8u8");
        ran++;
    }
    EXPECT_GE(ran, 1);
}

INSTANTIATE_TEST_SUITE_P(Shapes, GroupedConvTest, ::testing::ValuesIn(grouped_cases()),
                         [](const auto &info) { return info.param.name; });

TEST(Conv2dErrors, ClearMessages) {
    std::vector<int8_t> w(16 * 8 * 9, 1);
    WeightsDesc wd;
    wd.name = "layer3.conv";
    wd.oc = 16; wd.ic = 8; wd.kh = wd.kw = 3;
    wd.data = w.data(); wd.scale = {0.1f};
    PackedWeights pw = pack_weights(wd, 0.1f, 5, 0.2f);
    Tensor x(DType::u8, {1, 10, 10, 4}, QuantParams::per_tensor(0.1f, 5));
    Tensor y(DType::u8, {1, 8, 8, 16}, QuantParams::per_tensor(0.2f, 0));
    Conv2dParams cp;
    cp.name = "layer3.conv";
    try {
        conv2d(x, pw, cp, y);
        FAIL() << "channel mismatch accepted";
    } catch (const std::invalid_argument &e) {
        EXPECT_NE(std::string(e.what()).find("layer3.conv"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("expect 8"), std::string::npos) << e.what();
    }
    Tensor x8(DType::u8, {1, 10, 10, 8}, QuantParams::per_tensor(0.1f, 5));
    Tensor ybad(DType::u8, {1, 9, 8, 16}, QuantParams::per_tensor(0.2f, 0));
    EXPECT_THROW(conv2d(x8, pw, cp, ybad), std::invalid_argument);
    Tensor xzp(DType::u8, {1, 10, 10, 8}, QuantParams::per_tensor(0.1f, 6));
    EXPECT_THROW(conv2d(xzp, pw, cp, y), std::invalid_argument);
    // Accumulator bound: K = 3*3*4096 > 32768 is refused at packing time.
    std::vector<int8_t> big(size_t(1) * 4096 * 9, 1);
    WeightsDesc wb = wd;
    wb.oc = 1; wb.ic = 4096; wb.data = big.data();
    try {
        pack_weights(wb, 0.1f, 0, 0.1f);
        FAIL() << "oversized reduction accepted";
    } catch (const std::invalid_argument &e) {
        EXPECT_NE(std::string(e.what()).find("accumulator bound"), std::string::npos) << e.what();
    }
}

// The bound itself is tight enough to be safe: the largest accepted reduction, all extremes.
TEST(Conv2dBounds, LargestAcceptedReductionIsExact) {
    const int K = int(kMaxReductionSymmetric);
    std::vector<int8_t> w(K, -128);
    WeightsDesc wd;
    wd.name = "bound"; wd.oc = 1; wd.ic = K; wd.data = w.data(); wd.scale = {1.f};
    PackedWeights pw = pack_weights(wd, 1.f, 0, 0.f);
    std::vector<uint8_t> xv(K, 255);
    Tensor x = tensor_from(DType::u8, {1, K}, xv, QuantParams::per_tensor(1.f, 0));
    QH_FOR_EACH_TARGET(tag) {
        Tensor y(DType::s32, {1, 1});
        dense(x, pw, {}, y, "bound");
        EXPECT_EQ(y.data<int32_t>()[0], int64_t(K) * 255 * -128);
    }
}

}  // namespace
}  // namespace qh::test

namespace qh::test {
namespace {

// Dispatch policy: automatic choice is the most specific runnable tag; forcing works, unknown
// tags are refused with the list of known ones.
TEST(Dispatch, ChoosesMostSpecificAndHonoursForce) {
    std::string best = runnable_targets().front();
    std::vector<int8_t> w(16, 1);
    WeightsDesc wd;
    wd.name = "dispatch"; wd.oc = 4; wd.ic = 4; wd.data = w.data(); wd.scale = {1.f};
    PackedWeights pw = pack_weights(wd, 1.f, 0, 1.f);
    Tensor x(DType::u8, {1, 4}, QuantParams::per_tensor(1.f, 0));
    Tensor y(DType::u8, {1, 4}, QuantParams::per_tensor(1.f, 0));
    force_target("");
    dense(x, pw, {}, y);
    EXPECT_EQ(last_kernel("dense_u8s8u8"), "dense_u8s8u8__" + best);
    {
        ForceTarget f("generic");
        dense(x, pw, {}, y);
        EXPECT_EQ(last_kernel("dense_u8s8u8"), "dense_u8s8u8__generic");
    }
    try {
        force_target("x86_sse9");
        FAIL() << "unknown tag accepted";
    } catch (const std::invalid_argument &e) {
        EXPECT_NE(std::string(e.what()).find("x86_avx512vnni"), std::string::npos) << e.what();
    }
    for (auto &t : target_tags())
        if (!cpu_supports(t)) EXPECT_THROW(force_target(t), std::runtime_error) << t;
}

}  // namespace
}  // namespace qh::test
