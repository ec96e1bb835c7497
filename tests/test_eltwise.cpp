// Pooling and elementwise ops: every runnable kernel variant against the reference, bit-exact.
// maxpool (u8/s8), global_avgpool, add, quantize, dequantize, requantize (u8/s8/u4/s4),
// int4_pack / int4_unpack, plus the validation errors of each op. Outputs are poisoned (0xA5)
// before each run so an element a kernel forgets to write is caught.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <set>
#include <stdexcept>

#include "ops.h"
#include "reference_ops.h"
#include "test_util.h"

namespace qh::test {
namespace {

void poison(Tensor &t) { std::fill_n(t.data<uint8_t>(), t.nbytes(), 0xA5); }

// Bit patterns of a float tensor, so float outputs compare exactly (and NaN/-0 are visible).
std::vector<int32_t> float_bits(const float *p, size_t n) {
    std::vector<int32_t> r(n);
    std::memcpy(r.data(), p, n * sizeof(float));
    return r;
}

std::vector<int32_t> tensor_values(const Tensor &t) {
    switch (t.dtype()) {
    case DType::u8: return values<uint8_t>(t);
    case DType::s8: return values<int8_t>(t);
    case DType::s32: return values<int32_t>(t);
    case DType::f32: return float_bits(t.data<float>(), size_t(t.numel()));
    default: {
        std::vector<uint8_t> bytes(t.data<uint8_t>(), t.data<uint8_t>() + t.nbytes());
        return ref::int4_unpack(bytes, t.numel(), t.dtype() == DType::s4);
    }
    }
}

// The kernel the last call of `family` used must be the forced variant.
void expect_variant(const std::string &family, const std::string &tag) {
    EXPECT_EQ(last_kernel(family), family + "__" + tag);
}

// Index of the per-axis channel of flat element i of a tensor of `shape` (axis < 0: 0).
size_t channel_of(const std::vector<int64_t> &shape, int axis, size_t i) {
    if (axis < 0) return 0;
    int64_t inner = 1;
    for (size_t d = axis + 1; d < shape.size(); d++) inner *= shape[d];
    return size_t((int64_t(i) / inner) % shape[axis]);
}

std::vector<int32_t> bytes_of(const Tensor &t) {
    return std::vector<int32_t>(t.data<uint8_t>(), t.data<uint8_t>() + t.nbytes());
}

int64_t numel_of(const std::vector<int64_t> &s) {
    int64_t n = 1;
    for (auto d : s) n *= d;
    return n;
}

template <typename Fn>
void expect_invalid(Fn fn, const std::string &op, const std::string &what) {
    try {
        fn();
        ADD_FAILURE() << what << ": accepted, expected std::invalid_argument naming " << op;
    } catch (const std::invalid_argument &e) {
        EXPECT_NE(std::string(e.what()).find(op), std::string::npos)
            << what << ": message does not name " << op << ": " << e.what();
    }
}

// ---------------------------------------------------------------------------------------------
// maxpool

struct PoolCase {
    std::string name;
    DType dt;
    int n, h, w, c;
    int kh, kw, sh, sw, pt, pl, pb, pr;
    int lo = -1000, hi = 1000;  // value range (clipped to the dtype)
};

std::vector<PoolCase> pool_cases() {
    return {
        {"resnet_u8_3x3s2p1", DType::u8, 1, 112, 112, 64, 3, 3, 2, 2, 1, 1, 1, 1},
        {"resnet_s8_3x3s2p1", DType::s8, 1, 112, 112, 64, 3, 3, 2, 2, 1, 1, 1, 1},
        {"c5_b3_u8", DType::u8, 3, 9, 11, 5, 3, 3, 2, 2, 1, 1, 1, 1},
        {"c17_s8", DType::s8, 1, 13, 10, 17, 3, 3, 2, 2, 1, 1, 1, 1},
        {"asym_pads_u8", DType::u8, 2, 10, 13, 17, 3, 3, 1, 2, 2, 0, 1, 2},
        {"asym_pads_s8", DType::s8, 1, 11, 8, 5, 3, 3, 2, 1, 0, 2, 2, 1},
        {"k2s2_nopad_u8", DType::u8, 2, 8, 8, 17, 2, 2, 2, 2, 0, 0, 0, 0},
        {"k2s2_nopad_odd_s8", DType::s8, 3, 9, 7, 5, 2, 2, 2, 2, 0, 0, 0, 0},
        {"k3x2_s2x1_u8", DType::u8, 1, 12, 9, 33, 3, 2, 2, 1, 1, 1, 1, 0},
        // All-negative s8: a kernel padding with 0 instead of -inf (type min) would win there.
        {"s8_negative_pad", DType::s8, 2, 7, 7, 5, 3, 3, 2, 2, 1, 1, 1, 1, -128, -1},
        {"c1_u8", DType::u8, 1, 6, 5, 1, 3, 3, 1, 1, 1, 1, 1, 1},
    };
}

void PrintTo(const PoolCase &c, std::ostream *os) { *os << c.name; }

class MaxPoolTest : public ::testing::TestWithParam<PoolCase> {};

TEST_P(MaxPoolTest, BitExactAllVariants) {
    const PoolCase &tc = GetParam();
    const bool s8 = tc.dt == DType::s8;
    int lo = std::max(tc.lo, s8 ? -128 : 0), hi = std::min(tc.hi, s8 ? 127 : 255);
    uint32_t seed = uint32_t(std::hash<std::string>()(tc.name));
    size_t nx = size_t(tc.n) * tc.h * tc.w * tc.c;
    auto xv = random_vec<int32_t>(nx, lo, hi, seed);
    Tensor x(tc.dt, {tc.n, tc.h, tc.w, tc.c}, QuantParams::per_tensor(0.1f, s8 ? 0 : 128));
    for (size_t i = 0; i < nx; i++) {
        if (s8) x.data<int8_t>()[i] = int8_t(xv[i]);
        else x.data<uint8_t>()[i] = uint8_t(xv[i]);
    }
    PoolParams p;
    p.kernel_h = tc.kh; p.kernel_w = tc.kw; p.stride_h = tc.sh; p.stride_w = tc.sw;
    p.pad_top = tc.pt; p.pad_left = tc.pl; p.pad_bottom = tc.pb; p.pad_right = tc.pr;
    const int oh = (tc.h + tc.pt + tc.pb - tc.kh) / tc.sh + 1;
    const int ow = (tc.w + tc.pl + tc.pr - tc.kw) / tc.sw + 1;
    std::vector<int64_t> yshape = {tc.n, oh, ow, tc.c};
    ASSERT_EQ(pool_output_shape(x, p), yshape);
    auto want = ref::maxpool(xv, tc.n, tc.h, tc.w, tc.c, tc.kh, tc.kw, tc.sh, tc.sw, tc.pt, tc.pl,
                             oh, ow);
    // Every window overlaps the input: no reference output may be the "empty" sentinel.
    ASSERT_EQ(std::count(want.begin(), want.end(), INT32_MIN), 0);
    ASSERT_GT(std::set<int32_t>(want.begin(), want.end()).size(), 1u);
    if (tc.hi < 0) {
        ASSERT_LT(*std::max_element(want.begin(), want.end()), 0);
    }

    int ran = 0;
    QH_FOR_EACH_TARGET(tag) {
        Tensor y(tc.dt, yshape, x.quant);
        poison(y);
        maxpool(x, p, y);
        EXPECT_EQ(first_mismatch(tensor_values(y), want), "");
        expect_variant(s8 ? "maxpool_s8s8" : "maxpool_u8u8", tag);
        ran++;
    }
    EXPECT_GE(ran, 1);
}

INSTANTIATE_TEST_SUITE_P(Shapes, MaxPoolTest, ::testing::ValuesIn(pool_cases()),
                         [](const auto &info) { return info.param.name; });

// ---------------------------------------------------------------------------------------------
// avgpool (ONNX AveragePool on u8): count_include_pad both ways, ceil_mode, asymmetric pads

struct AvgCase {
    std::string name;
    int n, h, w, c, kh, kw, sh, sw, pt, pl, pb, pr;
    bool include_pad, ceil;
    int32_t zx, zy;
    float sx, sy;
};

class AvgPoolTest : public ::testing::TestWithParam<AvgCase> {};

TEST_P(AvgPoolTest, BitExactAllVariants) {
    const AvgCase &tc = GetParam();
    uint32_t seed = uint32_t(std::hash<std::string>()(tc.name));
    auto xv = random_vec<uint8_t>(size_t(tc.n) * tc.h * tc.w * tc.c, 0, 255, seed);
    Tensor x = tensor_from(DType::u8, {tc.n, tc.h, tc.w, tc.c}, xv, QuantParams::per_tensor(tc.sx, tc.zx));
    PoolParams p;
    p.kernel_h = tc.kh; p.kernel_w = tc.kw; p.stride_h = tc.sh; p.stride_w = tc.sw;
    p.pad_top = tc.pt; p.pad_left = tc.pl; p.pad_bottom = tc.pb; p.pad_right = tc.pr;
    p.ceil_mode = tc.ceil;
    const auto yshape = pool_output_shape(x, p);
    const int oh = int(yshape[1]), ow = int(yshape[2]);
    if (tc.ceil) EXPECT_GT(oh, int(window_output_extent(tc.h, tc.kh, tc.sh, tc.pt, tc.pb)));  // ceil adds a row
    auto want = ref::avgpool(xv, tc.n, tc.h, tc.w, tc.c, tc.kh, tc.kw, tc.sh, tc.sw, tc.pt, tc.pl, tc.pb, tc.pr,
                             tc.include_pad, oh, ow, tc.zx, tc.sx, tc.zy, tc.sy);
    ASSERT_GT(std::set<int32_t>(want.begin(), want.end()).size(), 8u);
    int ran = 0;
    QH_FOR_EACH_TARGET(tag) {
        Tensor y(DType::u8, yshape, QuantParams::per_tensor(tc.sy, tc.zy));
        poison(y);
        bind_avgpool(x, p, tc.include_pad, y).run();
        EXPECT_EQ(first_mismatch(tensor_values(y), want), "");
        expect_variant("avgpool_u8u8", tag);
        ran++;
    }
    EXPECT_GE(ran, 1);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, AvgPoolTest,
    ::testing::Values(AvgCase{"k3s1_pad1_excl", 1, 12, 12, 40, 3, 3, 1, 1, 1, 1, 1, 1, false, false, 128, 100, 0.05f, 0.04f},
                      AvgCase{"k3s1_pad1_incl", 2, 9, 11, 17, 3, 3, 1, 1, 1, 1, 1, 1, true, false, 128, 120, 0.02f, 0.02f},
                      AvgCase{"k3s2_ceil_asym", 1, 15, 15, 33, 3, 3, 2, 2, 1, 0, 0, 1, false, true, 77, 0, 0.1f, 0.05f},
                      AvgCase{"k2s2_ceil_incl", 1, 7, 7, 64, 2, 2, 2, 2, 0, 0, 0, 0, true, true, 0, 128, 0.03f, 0.03f},
                      AvgCase{"k7_global_like", 1, 7, 7, 96, 7, 7, 1, 1, 0, 0, 0, 0, false, false, 128, 128, 0.02f, 0.002f}),
    [](const auto &info) { return info.param.name; });

// lut: y = table[x]; the concat slice writes its channels at an offset and nothing else.
TEST(Lut, TableAndConcatSliceAllVariants) {
    std::array<uint8_t, 256> table;
    for (int i = 0; i < 256; i++) table[i] = uint8_t(255 - (i * 7) % 256);
    auto xv = random_vec<uint8_t>(2 * 5 * 3 * 24, 0, 255, 3);
    Tensor x = tensor_from(DType::u8, {2, 5, 3, 24}, xv, QuantParams::per_tensor(1.f, 0));
    int ran = 0;
    QH_FOR_EACH_TARGET(tag) {
        Tensor y(DType::u8, {2, 5, 3, 24});
        poison(y);
        bind_lut(x, table.data(), y).run();
        for (size_t i = 0; i < xv.size(); i++) ASSERT_EQ(y.data<uint8_t>()[i], table[xv[i]]) << i;
        Tensor cat(DType::u8, {2, 5, 3, 40});
        std::memset(cat.raw(), 0xEE, cat.nbytes());
        bind_concat_slice(x, table.data(), cat, 3, 9).run();
        for (int64_t pix = 0; pix < 30; pix++)
            for (int c = 0; c < 40; c++) {
                const uint8_t got = cat.data<uint8_t>()[pix * 40 + c];
                const uint8_t want = c >= 9 && c < 33 ? table[xv[pix * 24 + (c - 9)]] : uint8_t(0xEE);
                ASSERT_EQ(got, want) << "pixel " << pix << " channel " << c;
            }
        // Along H (NHWC axis 1): rows of W * C elements.
        Tensor cat_h(DType::u8, {2, 8, 3, 24});
        std::memset(cat_h.raw(), 0xEE, cat_h.nbytes());
        bind_concat_slice(x, table.data(), cat_h, 1, 2).run();
        for (int64_t n = 0; n < 2; n++)
            for (int64_t h = 0; h < 8; h++)
                for (int64_t k = 0; k < 3 * 24; k++) {
                    const uint8_t got = cat_h.data<uint8_t>()[(n * 8 + h) * 72 + k];
                    const uint8_t want = h >= 2 && h < 7 ? table[xv[(n * 5 + h - 2) * 72 + k]] : uint8_t(0xEE);
                    ASSERT_EQ(got, want) << "n " << n << " h " << h << " k " << k;
                }
        expect_variant("lut_u8u8", tag);
        ran++;
    }
    EXPECT_GE(ran, 1);
}

// mul (QLinearMul) with numpy broadcasting of b over NHWC a.
TEST(Mul, BroadcastsBitExactAllVariants) {
    const std::vector<int64_t> as = {2, 5, 7, 19};
    auto av = random_vec<uint8_t>(2 * 5 * 7 * 19, 0, 255, 21);
    Tensor a = tensor_from(DType::u8, as, av, QuantParams::per_tensor(0.04f, 120));
    for (std::vector<int64_t> bs : {as, std::vector<int64_t>{2, 1, 1, 19}, std::vector<int64_t>{1, 1, 1, 19},
                                    std::vector<int64_t>{1}, std::vector<int64_t>{2, 5, 7, 1}, std::vector<int64_t>{19}}) {
        SCOPED_TRACE(shape_str(bs));
        int64_t nb = 1;
        for (auto d : bs) nb *= d;
        auto bv = random_vec<uint8_t>(size_t(nb), 0, 255, 22);
        Tensor b = tensor_from(DType::u8, bs, bv, QuantParams::per_tensor(0.03f, 7));
        // b's element for a's index (n, h, w, c), numpy broadcasting right-aligned.
        std::vector<int64_t> bfull(4, 1);
        for (size_t d = 0; d < bs.size(); d++) bfull[4 - bs.size() + d] = bs[d];
        std::vector<int32_t> want(av.size());
        for (int64_t n = 0; n < 2; n++)
            for (int64_t h = 0; h < 5; h++)
                for (int64_t w = 0; w < 7; w++)
                    for (int64_t c = 0; c < 19; c++) {
                        const int64_t i = ((n * 5 + h) * 7 + w) * 19 + c;
                        const int64_t j = (((bfull[0] > 1 ? n : 0) * bfull[1] + (bfull[1] > 1 ? h : 0)) * bfull[2] +
                                           (bfull[2] > 1 ? w : 0)) * bfull[3] + (bfull[3] > 1 ? c : 0);
                        want[i] = ref::qlinear_mul(av[i], 120, 0.04f, bv[j], 7, 0.03f, 60, 0.05f, 0, 255);
                    }
        ASSERT_GT(std::set<int32_t>(want.begin(), want.end()).size(), 20u);
        if (bs == as) ASSERT_GT(std::count(want.begin(), want.end(), 255), 0);  // saturates
        int ran = 0;
        QH_FOR_EACH_TARGET(tag) {
            Tensor y(DType::u8, as, QuantParams::per_tensor(0.05f, 60));
            poison(y);
            bind_mul(a, b, {0, 255}, y).run();
            EXPECT_EQ(first_mismatch(tensor_values(y), want), "");
            expect_variant("mul_u8u8u8", tag);
            ran++;
        }
        EXPECT_GE(ran, 1);
    }
}

// ---------------------------------------------------------------------------------------------
// global_avgpool

struct GapCase {
    std::string name;
    int n, h, w, c;
    int32_t zx, zy;
    float sx, sy;
    bool expect_saturation;
};

void PrintTo(const GapCase &c, std::ostream *os) { *os << c.name; }

class GlobalAvgPoolTest : public ::testing::TestWithParam<GapCase> {};

TEST_P(GlobalAvgPoolTest, BitExactAllVariants) {
    const GapCase &tc = GetParam();
    uint32_t seed = uint32_t(std::hash<std::string>()(tc.name));
    const int hw = tc.h * tc.w;
    // Channel-dependent ranges so channel means spread over the whole u8 range.
    std::vector<uint8_t> xv(size_t(tc.n) * hw * tc.c);
    std::mt19937 g(seed);
    for (int b = 0; b < tc.n; b++)
        for (int ch = 0; ch < tc.c; ch++) {
            int base = (ch * 37 + b * 101) % 256;
            std::uniform_int_distribution<int> d(std::max(0, base - 40), std::min(255, base + 40));
            for (int i = 0; i < hw; i++) xv[(size_t(b) * hw + i) * tc.c + ch] = uint8_t(d(g));
        }
    Tensor x = tensor_from(DType::u8, {tc.n, tc.h, tc.w, tc.c}, xv,
                           QuantParams::per_tensor(tc.sx, tc.zx));
    auto want = ref::global_avgpool(xv, tc.n, hw, tc.c, tc.zx, tc.sx, tc.zy, tc.sy);
    ASSERT_GT(std::set<int32_t>(want.begin(), want.end()).size(), 10u);
    if (tc.expect_saturation) {
        EXPECT_NE(std::count(want.begin(), want.end(), 0), 0);
        EXPECT_NE(std::count(want.begin(), want.end(), 255), 0);
    }
    int ran = 0;
    QH_FOR_EACH_TARGET(tag) {
        Tensor y(DType::u8, {tc.n, tc.c}, QuantParams::per_tensor(tc.sy, tc.zy));
        poison(y);
        global_avgpool(x, y);
        EXPECT_EQ(first_mismatch(tensor_values(y), want), "");
        expect_variant("global_avgpool_u8u8", tag);
        ran++;
    }
    EXPECT_GE(ran, 1);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, GlobalAvgPoolTest,
    ::testing::Values(GapCase{"resnet_7x7x2048_zp0", 1, 7, 7, 2048, 0, 0, 0.05f, 0.06f, false},
                      GapCase{"resnet_7x7x2048_zp", 1, 7, 7, 2048, 120, 131, 0.05f, 0.02f, true},
                      GapCase{"odd_3x5x3x13_zp0", 3, 5, 3, 13, 0, 0, 0.1f, 0.1f, false},
                      GapCase{"odd_3x5x3x13_zp", 3, 5, 3, 13, 100, 7, 0.03f, 0.011f, true}),
    [](const auto &info) { return info.param.name; });

// The mean of equal values is that value: a hand-checked case independent of the reference.
TEST(GlobalAvgPool, ConstantInputIsIdentity) {
    std::vector<uint8_t> xv(2 * 3 * 4 * 5);
    for (size_t i = 0; i < xv.size(); i++) xv[i] = uint8_t(10 * (i % 5) + 3);
    Tensor x = tensor_from(DType::u8, {2, 3, 4, 5}, xv, QuantParams::per_tensor(0.5f, 3));
    QH_FOR_EACH_TARGET(tag) {
        Tensor y(DType::u8, {2, 5}, QuantParams::per_tensor(0.5f, 3));
        poison(y);
        global_avgpool(x, y);
        for (int i = 0; i < 10; i++) EXPECT_EQ(y.data<uint8_t>()[i], 10 * (i % 5) + 3) << i;
    }
}

// ---------------------------------------------------------------------------------------------
// add

struct AddCase {
    std::string name;
    std::vector<int64_t> shape;
    float sa, sb, sy;
    int32_t za, zb, zy;
    int act = 0;  // 0 none, 1 relu, 2 custom clamp [20, 200]
    bool expect_saturation = false;
};

void PrintTo(const AddCase &c, std::ostream *os) { *os << c.name; }

class AddTest : public ::testing::TestWithParam<AddCase> {};

TEST_P(AddTest, BitExactAllVariants) {
    const AddCase &tc = GetParam();
    uint32_t seed = uint32_t(std::hash<std::string>()(tc.name));
    size_t n = size_t(numel_of(tc.shape));
    auto av = random_vec<uint8_t>(n, 0, 255, seed);
    auto bv = random_vec<uint8_t>(n, 0, 255, seed + 1);
    Tensor a = tensor_from(DType::u8, tc.shape, av, QuantParams::per_tensor(tc.sa, tc.za));
    Tensor b = tensor_from(DType::u8, tc.shape, bv, QuantParams::per_tensor(tc.sb, tc.zb));
    Activation act;
    if (tc.act == 1) act = Activation::relu(tc.zy);
    if (tc.act == 2) act = {20, 200};
    int32_t lo = std::max<int32_t>(act.min, 0), hi = std::min<int32_t>(act.max, 255);
    float ma = tc.sa / tc.sy, mb = tc.sb / tc.sy;
    std::vector<int32_t> want(n);
    for (size_t i = 0; i < n; i++)
        want[i] = ref::quantized_add(av[i], tc.za, ma, bv[i], tc.zb, mb, tc.zy, lo, hi);
    ASSERT_GT(std::set<int32_t>(want.begin(), want.end()).size(), std::min<size_t>(n / 2, 20));
    if (tc.expect_saturation) {
        EXPECT_NE(std::count(want.begin(), want.end(), lo), 0) << "low end not exercised";
        EXPECT_NE(std::count(want.begin(), want.end(), hi), 0) << "high end not exercised";
    }
    if (tc.act == 1) {
        // ReLU must really clip: some unclamped results lie below the output zero point.
        size_t below = 0;
        for (size_t i = 0; i < n; i++)
            below += ref::quantized_add(av[i], tc.za, ma, bv[i], tc.zb, mb, tc.zy, 0, 255) < tc.zy;
        EXPECT_GT(below, 0u);
    }
    int ran = 0;
    QH_FOR_EACH_TARGET(tag) {
        Tensor y(DType::u8, tc.shape, QuantParams::per_tensor(tc.sy, tc.zy));
        poison(y);
        add(a, b, act, y);
        EXPECT_EQ(first_mismatch(tensor_values(y), want), "");
        expect_variant("add_u8u8u8", tag);
        ran++;
    }
    EXPECT_GE(ran, 1);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, AddTest,
    ::testing::Values(
        AddCase{"flat_1001", {1001}, 0.05f, 0.07f, 0.09f, 128, 110, 120},
        AddCase{"nhwc_1001_relu", {1, 7, 11, 13}, 0.05f, 0.07f, 0.09f, 128, 110, 120, 1},
        AddCase{"saturate_both_ends", {3, 5, 67}, 0.1f, 0.2f, 0.05f, 100, 150, 128, 0, true},
        AddCase{"saturate_relu", {1, 28, 28, 3}, 0.1f, 0.2f, 0.05f, 100, 150, 90, 1, true},
        AddCase{"custom_clamp", {257}, 0.1f, 0.1f, 0.1f, 128, 128, 128, 2, true},
        AddCase{"resnet_56x56x256", {1, 56, 56, 256}, 0.031f, 0.027f, 0.045f, 0, 64, 17, 1},
        AddCase{"single", {1}, 0.5f, 0.25f, 0.125f, 1, 2, 3},
        AddCase{"len_63", {63}, 0.013f, 0.5f, 0.3f, 255, 0, 3},
        AddCase{"len_65", {65}, 0.3f, 0.3f, 0.3f, 0, 0, 0}),
    [](const auto &info) { return info.param.name; });

// Round half to even and exact identities, checked by hand.
TEST(Add, HandCheckedValues) {
    // ma = mb = 0.5: a + b odd gives exact .5 ties.
    std::vector<uint8_t> av = {1, 3, 5, 7, 0, 255, 128, 2}, bv = {0, 0, 0, 0, 1, 255, 129, 1};
    Tensor a = tensor_from(DType::u8, {8}, av, QuantParams::per_tensor(1.f, 0));
    Tensor b = tensor_from(DType::u8, {8}, bv, QuantParams::per_tensor(1.f, 0));
    // y = round((a + b) / 2): 0.5->0, 1.5->2, 2.5->2, 3.5->4, 0.5->0, 255, 128.5->128, 1.5->2
    std::vector<int32_t> want = {0, 2, 2, 4, 0, 255, 128, 2};
    QH_FOR_EACH_TARGET(tag) {
        Tensor y(DType::u8, {8}, QuantParams::per_tensor(2.f, 0));
        poison(y);
        add(a, b, {}, y);
        EXPECT_EQ(first_mismatch(tensor_values(y), want), "");
    }
}

// ---------------------------------------------------------------------------------------------
// quantize

struct QuantCase {
    std::string name;
    DType out;
    std::vector<int64_t> shape;
    int axis;  // -1 per tensor
    enum Data { random, ties, huge } data;
};

std::vector<float> quant_input(const QuantCase &tc, const std::vector<float> &scale, size_t n,
                               uint32_t seed) {
    std::mt19937 g(seed);
    std::vector<float> x(n);
    std::uniform_real_distribution<float> d(-300.f, 300.f);
    std::uniform_int_distribution<int> k(-100, 100);
    for (size_t i = 0; i < n; i++) {
        float s = scale[channel_of(tc.shape, tc.axis, i)];
        switch (tc.data) {
        case QuantCase::random: x[i] = d(g) * s; break;
        // (k + 0.5) * s with s a power of two: x / s is exactly k + 0.5.
        case QuantCase::ties: x[i] = (float(k(g)) + 0.5f) * s; break;
        case QuantCase::huge: {
            static const float big[] = {1e30f, -1e30f, 3.0e38f, -3.0e38f,
                                        std::numeric_limits<float>::infinity(),
                                        -std::numeric_limits<float>::infinity(),
                                        65536.f, -65536.f, 1e6f, -1e6f, 300.f, -300.f};
            x[i] = i % 3 == 0 ? d(g) * s : big[i % 12];
            break;
        }
        }
    }
    return x;
}

void PrintTo(const QuantCase &c, std::ostream *os) { *os << c.name; }

class QuantizeTest : public ::testing::TestWithParam<QuantCase> {};

TEST_P(QuantizeTest, BitExactAllVariants) {
    const QuantCase &tc = GetParam();
    uint32_t seed = uint32_t(std::hash<std::string>()(tc.name));
    const bool s8 = tc.out == DType::s8;
    const int32_t tlo = s8 ? -128 : 0, thi = s8 ? 127 : 255;
    size_t channels = tc.axis < 0 ? 1 : size_t(tc.shape[tc.axis]);
    std::vector<float> scale(channels);
    std::vector<int32_t> zp(channels);
    for (size_t c = 0; c < channels; c++) {
        // Powers of two for ties (exact halves); otherwise awkward non-representable scales.
        scale[c] = tc.data == QuantCase::ties ? std::ldexp(1.f, int(c % 4) - 1)
                                              : 0.37f + 0.113f * float(c);
        zp[c] = s8 ? int32_t(c * 29 % 61) - 30 : int32_t(c * 53 % 200) + 20;
    }
    size_t n = size_t(numel_of(tc.shape));
    auto xv = quant_input(tc, scale, n, seed);
    Tensor x = tensor_from(DType::f32, tc.shape, xv);
    QuantParams q{scale, zp, tc.axis};
    std::vector<int32_t> want(n);
    size_t ties = 0, lo_sat = 0, hi_sat = 0;
    for (size_t i = 0; i < n; i++) {
        size_t c = channel_of(tc.shape, tc.axis, i);
        want[i] = ref::quantize(xv[i], scale[c], zp[c], tlo, thi);
        float r = xv[i] / scale[c];
        ties += std::isfinite(r) && r - std::floor(r) == 0.5f;
        lo_sat += want[i] == tlo;
        hi_sat += want[i] == thi;
    }
    if (tc.data == QuantCase::ties) {
        ASSERT_EQ(ties, n) << "every input must be an exact .5 tie";
        // Half to even differs from half away from zero on about half of them.
        size_t even_differs = 0;
        for (size_t i = 0; i < n; i++) {
            size_t c = channel_of(tc.shape, tc.axis, i);
            float r = xv[i] / scale[c];
            int32_t away = int32_t(std::round(r)) + zp[c];
            even_differs += std::clamp(away, tlo, thi) != want[i];
        }
        EXPECT_GT(even_differs, n / 8);
    }
    if (tc.data == QuantCase::huge || tc.data == QuantCase::random) {
        EXPECT_GT(lo_sat, 0u);
        EXPECT_GT(hi_sat, 0u);
    }
    int ran = 0;
    QH_FOR_EACH_TARGET(tag) {
        Tensor y(tc.out, tc.shape, q);
        poison(y);
        quantize(x, y);
        EXPECT_EQ(first_mismatch(tensor_values(y), want), "");
        expect_variant(s8 ? "quantize_f32s8" : "quantize_f32u8", tag);
        ran++;
    }
    EXPECT_GE(ran, 1);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, QuantizeTest,
    ::testing::Values(QuantCase{"u8_tensor", DType::u8, {1, 13, 11, 7}, -1, QuantCase::random},
                      QuantCase{"s8_tensor", DType::s8, {1001}, -1, QuantCase::random},
                      QuantCase{"u8_axis1_nchw", DType::u8, {2, 5, 6, 7}, 1, QuantCase::random},
                      QuantCase{"s8_axis1_nchw", DType::s8, {3, 3, 5, 5}, 1, QuantCase::random},
                      QuantCase{"u8_axis_last", DType::u8, {2, 4, 3, 17}, 3, QuantCase::random},
                      QuantCase{"s8_axis0", DType::s8, {5, 33}, 0, QuantCase::random},
                      QuantCase{"u8_ties", DType::u8, {517}, -1, QuantCase::ties},
                      QuantCase{"s8_ties_axis1", DType::s8, {2, 4, 9, 7}, 1, QuantCase::ties},
                      QuantCase{"u8_huge", DType::u8, {1, 3, 7, 9}, 1, QuantCase::huge},
                      QuantCase{"s8_huge", DType::s8, {301}, -1, QuantCase::huge}),
    [](const auto &info) { return info.param.name; });

TEST(Quantize, HandCheckedTiesAndSaturation) {
    const float inf = std::numeric_limits<float>::infinity();
    std::vector<float> xv = {2.5f, -2.5f, 0.5f, -0.5f, 1.5f, -1.5f, 3.5f, 1e30f, -1e30f, inf, -inf,
                             0.f};
    Tensor x = tensor_from(DType::f32, {12}, xv);
    std::vector<int32_t> want_s8 = {2, -2, 0, 0, 2, -2, 4, 127, -128, 127, -128, 0};
    std::vector<int32_t> want_u8 = {12, 8, 10, 10, 12, 8, 14, 255, 0, 255, 0, 10};
    QH_FOR_EACH_TARGET(tag) {
        Tensor ys(DType::s8, {12}, QuantParams::per_tensor(1.f, 0));
        poison(ys);
        quantize(x, ys);
        EXPECT_EQ(first_mismatch(tensor_values(ys), want_s8), "");
        Tensor yu(DType::u8, {12}, QuantParams::per_tensor(1.f, 10));
        poison(yu);
        quantize(x, yu);
        EXPECT_EQ(first_mismatch(tensor_values(yu), want_u8), "");
    }
}

// x / scale is a true division: 0.3f / 0.1f rounds differently from 0.3f * (1 / 0.1f) for some
// values; check against the reference over many near-tie quotients.
TEST(Quantize, TrueDivisionNotReciprocal) {
    const float s = 0.1f;
    std::vector<float> xv;
    // Floats within a few ulps of (k + 0.5) * s: where x / s and x * (1 / s) round apart.
    for (int k = -120; k <= 120; k++) {
        float x = (float(k) + 0.5f) * s;
        for (int u = 0; u < 3; u++) x = std::nextafter(x, -1e9f);
        for (int u = 0; u < 7; u++, x = std::nextafter(x, 1e9f)) xv.push_back(x);
    }
    size_t n = xv.size(), differs = 0;
    std::vector<int32_t> want(n);
    for (size_t i = 0; i < n; i++) {
        want[i] = ref::quantize(xv[i], s, 0, -128, 127);
        int32_t recip = std::clamp(int32_t(std::nearbyint(xv[i] * (1.f / s))), -128, 127);
        differs += recip != want[i];
    }
    EXPECT_GT(differs, 0u) << "the case does not separate division from reciprocal multiply";
    Tensor x = tensor_from(DType::f32, {int64_t(n)}, xv);
    QH_FOR_EACH_TARGET(tag) {
        Tensor y(DType::s8, {int64_t(n)}, QuantParams::per_tensor(s, 0));
        poison(y);
        quantize(x, y);
        EXPECT_EQ(first_mismatch(tensor_values(y), want), "");
    }
}

// ---------------------------------------------------------------------------------------------
// dequantize

struct DequantCase {
    std::string name;
    DType in;
    std::vector<int64_t> shape;
    int axis;
};

void PrintTo(const DequantCase &c, std::ostream *os) { *os << c.name; }

class DequantizeTest : public ::testing::TestWithParam<DequantCase> {};

TEST_P(DequantizeTest, BitExactAllVariants) {
    const DequantCase &tc = GetParam();
    uint32_t seed = uint32_t(std::hash<std::string>()(tc.name));
    size_t n = size_t(numel_of(tc.shape));
    size_t channels = tc.axis < 0 ? 1 : size_t(tc.shape[tc.axis]);
    std::vector<float> scale(channels);
    std::vector<int32_t> zp(channels);
    for (size_t c = 0; c < channels; c++) {
        scale[c] = 0.0173f * float(c + 1) + 1e-4f;
        zp[c] = tc.in == DType::u8 ? int32_t(c * 41 % 256)
                : tc.in == DType::s8 ? int32_t(c * 41 % 256) - 128
                : c == 0             ? 0
                                     : int32_t(c * 7919 % 20001) - 10000;
    }
    Tensor x(tc.in, tc.shape, QuantParams{scale, zp, tc.axis});
    std::vector<int32_t> xv;
    if (tc.in == DType::u8) {
        xv = random_vec<int32_t>(n, 0, 255, seed);
        for (size_t i = 0; i < n; i++) x.data<uint8_t>()[i] = uint8_t(xv[i]);
    } else if (tc.in == DType::s8) {
        xv = random_vec<int32_t>(n, -128, 127, seed);
        for (size_t i = 0; i < n; i++) x.data<int8_t>()[i] = int8_t(xv[i]);
    } else {
        xv = random_vec<int32_t>(n, -(1 << 30), 1 << 30, seed);
        // Values float32 cannot hold exactly, and the extremes (with zero point 0 channels).
        for (size_t i = 0; i < n; i += 7) xv[i] = (1 << 24) + 1 + int32_t(i);
        for (size_t i : {size_t(0), size_t(1)})
            if (zp[channel_of(tc.shape, tc.axis, i)] == 0) xv[i] = i ? INT32_MIN : INT32_MAX;
        std::copy(xv.begin(), xv.end(), x.data<int32_t>());
    }
    std::vector<float> wantf(n);
    for (size_t i = 0; i < n; i++) {
        size_t c = channel_of(tc.shape, tc.axis, i);
        wantf[i] = ref::dequantize(xv[i], scale[c], zp[c]);
    }
    auto want = float_bits(wantf.data(), n);
    ASSERT_GT(std::set<int32_t>(want.begin(), want.end()).size(), std::min<size_t>(n / 4, 50));
    const char *family = tc.in == DType::u8 ? "dequantize_u8f32"
                         : tc.in == DType::s8 ? "dequantize_s8f32" : "dequantize_s32f32";
    int ran = 0;
    QH_FOR_EACH_TARGET(tag) {
        Tensor y(DType::f32, tc.shape);
        poison(y);
        dequantize(x, y);
        EXPECT_EQ(first_mismatch(tensor_values(y), want), "");
        expect_variant(family, tag);
        ran++;
    }
    EXPECT_GE(ran, 1);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, DequantizeTest,
    ::testing::Values(DequantCase{"u8_tensor", DType::u8, {1, 9, 9, 13}, -1},
                      DequantCase{"s8_tensor", DType::s8, {1001}, -1},
                      DequantCase{"s32_tensor", DType::s32, {3, 333}, -1},
                      DequantCase{"u8_axis1_nchw", DType::u8, {2, 5, 7, 3}, 1},
                      DequantCase{"s8_axis1_nchw", DType::s8, {1, 17, 4, 5}, 1},
                      DequantCase{"s32_axis1_nchw", DType::s32, {2, 3, 11, 13}, 1},
                      DequantCase{"s32_axis_last", DType::s32, {1, 4, 4, 70}, 3}),
    [](const auto &info) { return info.param.name; });

TEST(Dequantize, HandCheckedValues) {
    std::vector<uint8_t> xv = {0, 3, 128, 255};
    Tensor x = tensor_from(DType::u8, {4}, xv, QuantParams::per_tensor(2.f, 128));
    std::vector<float> want = {-256.f, -250.f, 0.f, 254.f};
    QH_FOR_EACH_TARGET(tag) {
        Tensor y(DType::f32, {4});
        poison(y);
        dequantize(x, y);
        EXPECT_EQ(first_mismatch(tensor_values(y), float_bits(want.data(), 4)), "");
    }
}

// ---------------------------------------------------------------------------------------------
// requantize

struct RequantCase {
    std::string name;
    DType out;
    std::vector<int64_t> shape;
    int axis;
    int act;  // 0 none, 1 relu, 2 custom clamp
};

void PrintTo(const RequantCase &c, std::ostream *os) { *os << c.name; }

class RequantizeTest : public ::testing::TestWithParam<RequantCase> {};

TEST_P(RequantizeTest, BitExactAllVariants) {
    const RequantCase &tc = GetParam();
    uint32_t seed = uint32_t(std::hash<std::string>()(tc.name));
    size_t n = size_t(numel_of(tc.shape));
    const bool is_signed = tc.out == DType::s8 || tc.out == DType::s4;
    const bool int4 = tc.out == DType::u4 || tc.out == DType::s4;
    const int32_t tlo = is_signed ? (int4 ? -8 : -128) : 0;
    const int32_t thi = is_signed ? (int4 ? 7 : 127) : (int4 ? 15 : 255);
    size_t channels = tc.axis < 0 ? 1 : size_t(tc.shape[tc.axis]);
    std::vector<float> sx(channels), sy(channels);
    std::vector<int32_t> zy(channels);
    for (size_t c = 0; c < channels; c++) {
        sx[c] = 1e-4f * float(3 + c % 5);
        sy[c] = int4 ? 0.11f + 0.07f * float(c % 3) : 0.013f + 0.004f * float(c % 4);
        int32_t span = thi - tlo;
        zy[c] = tlo + int32_t((c * 7 + 3) % (span + 1));
    }
    Activation act;
    if (tc.act == 1) act = Activation::relu(zy[0]);
    if (tc.act == 2) act = int4 ? Activation{is_signed ? -5 : 3, is_signed ? 4 : 12}
                                : Activation{is_signed ? -100 : 20, is_signed ? 90 : 200};
    if (tc.act == 1) {
        ASSERT_TRUE(tc.axis < 0) << "relu with per-axis zero points is ambiguous";
    }
    const int32_t lo = std::max(act.min, tlo), hi = std::min(act.max, thi);
    // Accumulators spanning well past the output range (saturation), plus exact ties and the
    // int32 extremes.
    int32_t range = int32_t(float(thi - tlo) * 1.6f * (sy[0] / sx[0]));
    auto xv = random_vec<int32_t>(n, -range, range, seed);
    xv[0] = INT32_MAX;
    if (n > 1) xv[1] = INT32_MIN;
    if (n > 2) xv[2] = 0;
    Tensor x = tensor_from(DType::s32, tc.shape, xv,
                           QuantParams{sx, std::vector<int32_t>(channels, 0), tc.axis});
    std::vector<int32_t> want(n);
    for (size_t i = 0; i < n; i++) {
        size_t c = channel_of(tc.shape, tc.axis, i);
        float m = sx[c] / sy[c];
        want[i] = ref::requantize(xv[i], m, zy[c], lo, hi);
    }
    EXPECT_NE(std::count(want.begin(), want.end(), lo), 0) << "low clamp not exercised";
    EXPECT_NE(std::count(want.begin(), want.end(), hi), 0) << "high clamp not exercised";
    ASSERT_GT(std::set<int32_t>(want.begin(), want.end()).size(),
              std::min(n - 1, size_t(int4 ? 3 : 20)));
    const char *family = tc.out == DType::u8 ? "requantize_s32u8"
                         : tc.out == DType::s8 ? "requantize_s32s8"
                         : tc.out == DType::u4 ? "requantize_s32u4" : "requantize_s32s4";
    int ran = 0;
    QH_FOR_EACH_TARGET(tag) {
        Tensor y(tc.out, tc.shape, QuantParams{sy, zy, tc.axis});
        poison(y);
        requantize(x, y, act);
        EXPECT_EQ(first_mismatch(tensor_values(y), want), "");
        if (int4 && n % 2) {  // odd count: the last high nibble stays zero
            EXPECT_EQ(y.data<uint8_t>()[n / 2] >> 4, 0) << "last high nibble not zero";
        }
        expect_variant(family, tag);
        ran++;
    }
    EXPECT_GE(ran, 1);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, RequantizeTest,
    ::testing::Values(RequantCase{"u8_tensor", DType::u8, {1, 13, 11, 19}, -1, 0},
                      RequantCase{"s8_tensor", DType::s8, {1001}, -1, 0},
                      RequantCase{"u8_relu", DType::u8, {3, 5, 7, 9}, -1, 1},
                      RequantCase{"s8_relu", DType::s8, {777}, -1, 1},
                      RequantCase{"u8_clamp", DType::u8, {513}, -1, 2},
                      RequantCase{"s8_axis1_nchw", DType::s8, {2, 6, 7, 5}, 1, 0},
                      RequantCase{"u8_axis1_clamp", DType::u8, {1, 9, 8, 8}, 1, 2},
                      RequantCase{"u8_axis_last", DType::u8, {1, 5, 5, 70}, 3, 0},
                      RequantCase{"u4_tensor_odd", DType::u4, {1, 3, 5, 7}, -1, 0},
                      RequantCase{"s4_tensor_odd", DType::s4, {1001}, -1, 0},
                      RequantCase{"u4_relu", DType::u4, {2, 64}, -1, 1},
                      RequantCase{"s4_clamp_odd", DType::s4, {3, 67}, -1, 2},
                      RequantCase{"u4_axis1_odd", DType::u4, {1, 3, 5, 7}, 1, 0},
                      RequantCase{"s4_axis1", DType::s4, {2, 5, 4, 4}, 1, 2},
                      RequantCase{"s4_single", DType::s4, {3}, -1, 0}),
    [](const auto &info) { return info.param.name; });

TEST(Requantize, HandCheckedTies) {
    // sx / sy = 0.5: odd accumulators are exact ties, rounded half to even.
    std::vector<int32_t> xv = {1, 3, 5, -1, -3, -5, 7, 300, -300};
    Tensor x = tensor_from(DType::s32, {9}, xv, QuantParams::per_tensor(1.f, 0));
    std::vector<int32_t> want_s8 = {0, 2, 2, 0, -2, -2, 4, 127, -128};
    // zp 10, clamp [0, 160]: 150 + 10 clips to 160, -150 + 10 to 0.
    std::vector<int32_t> want_u8 = {10, 12, 12, 10, 8, 8, 14, 160, 0};
    std::vector<int32_t> want_s4 = {0, 2, 2, 0, -2, -2, 4, 7, -8};
    QH_FOR_EACH_TARGET(tag) {
        Tensor ys(DType::s8, {9}, QuantParams::per_tensor(2.f, 0));
        poison(ys);
        requantize(x, ys);
        EXPECT_EQ(first_mismatch(tensor_values(ys), want_s8), "");
        Tensor yu(DType::u8, {9}, QuantParams::per_tensor(2.f, 10));
        poison(yu);
        requantize(x, yu, Activation{0, 160});
        EXPECT_EQ(first_mismatch(tensor_values(yu), want_u8), "");
        Tensor y4(DType::s4, {9}, QuantParams::per_tensor(2.f, 0));
        poison(y4);
        requantize(x, y4);
        EXPECT_EQ(first_mismatch(tensor_values(y4), want_s4), "");
    }
}

// ---------------------------------------------------------------------------------------------
// Saturation when the scaled value leaves the int32 range (|v| >= 2^31) before rounding: the
// kernels clamp round(v) to +-65536, so such values must saturate like any other, at the end
// matching their sign.

TEST(Saturation, QuantizeBeyondInt32) {
    const float inf = std::numeric_limits<float>::infinity();
    std::vector<float> xv = {2147483648.f, 3e9f, 1e20f, 3.0e38f, inf, -2147483648.f, -3e9f, -inf,
                             2147483520.f /* largest float < 2^31 */, 65536.f};
    std::vector<int32_t> want_u8 = {255, 255, 255, 255, 255, 0, 0, 0, 255, 255};
    for (size_t i = 0; i < xv.size(); i++) ASSERT_EQ(ref::quantize(xv[i], 1.f, 7, 0, 255), want_u8[i]);
    Tensor x = tensor_from(DType::f32, {int64_t(xv.size())}, xv);
    QH_FOR_EACH_TARGET(tag) {
        Tensor y(DType::u8, x.shape(), QuantParams::per_tensor(1.f, 7));
        poison(y);
        quantize(x, y);
        EXPECT_EQ(first_mismatch(tensor_values(y), want_u8), "");
    }
}

TEST(Saturation, RequantizeLargeMultiplier) {
    // sx / sy = 1000: accumulators >= 2147484 scale past 2^31.
    std::vector<int32_t> xv = {INT32_MAX, 1 << 30, 3000000, 2147484, 100, -100, -3000000, INT32_MIN};
    Tensor x = tensor_from(DType::s32, {8}, xv, QuantParams::per_tensor(1000.f, 0));
    std::vector<int32_t> want = {255, 255, 255, 255, 255, 0, 0, 0};
    std::vector<int32_t> want4 = {7, 7, 7, 7, 7, -8, -8, -8};
    QH_FOR_EACH_TARGET(tag) {
        Tensor y(DType::u8, {8}, QuantParams::per_tensor(1.f, 128));
        poison(y);
        requantize(x, y);
        EXPECT_EQ(first_mismatch(tensor_values(y), want), "");
        Tensor y4(DType::s4, {8}, QuantParams::per_tensor(1.f, 0));
        poison(y4);
        requantize(x, y4);
        EXPECT_EQ(first_mismatch(tensor_values(y4), want4), "");
    }
}

TEST(Saturation, AddLargeMultiplier) {
    // sa / sy = sb / sy = 1e8: (a - za) * 1e8 passes 2^31 for |a - za| >= 22.
    std::vector<uint8_t> av = {255, 200, 151, 128, 100, 0};
    Tensor a = tensor_from(DType::u8, {6}, av, QuantParams::per_tensor(1e8f, 128));
    Tensor b = tensor_from(DType::u8, {6}, av, QuantParams::per_tensor(1e8f, 128));
    std::vector<int32_t> want = {255, 255, 255, 128, 0, 0};
    QH_FOR_EACH_TARGET(tag) {
        Tensor y(DType::u8, {6}, QuantParams::per_tensor(1.f, 128));
        poison(y);
        add(a, b, {}, y);
        EXPECT_EQ(first_mismatch(tensor_values(y), want), "");
    }
}

TEST(Saturation, GlobalAvgPoolLargeMultiplier) {
    std::vector<uint8_t> xv = {255, 0, 100, 200};  // {1, 1, 1, 4}: mean = value
    Tensor x = tensor_from(DType::u8, {1, 1, 1, 4}, xv, QuantParams::per_tensor(1e8f, 100));
    std::vector<int32_t> want = {255, 0, 128, 255};
    QH_FOR_EACH_TARGET(tag) {
        Tensor y(DType::u8, {1, 4}, QuantParams::per_tensor(1.f, 128));
        poison(y);
        global_avgpool(x, y);
        EXPECT_EQ(first_mismatch(tensor_values(y), want), "");
    }
}

// ---------------------------------------------------------------------------------------------
// int4_pack / int4_unpack

struct Int4Case {
    std::string name;
    bool is_signed;
    int64_t n;
};

void PrintTo(const Int4Case &c, std::ostream *os) { *os << c.name; }

class Int4Test : public ::testing::TestWithParam<Int4Case> {};

TEST_P(Int4Test, PackBitExact) {
    const Int4Case &tc = GetParam();
    uint32_t seed = uint32_t(std::hash<std::string>()(tc.name));
    const DType src = tc.is_signed ? DType::s8 : DType::u8;
    const DType dst = tc.is_signed ? DType::s4 : DType::u4;
    auto xv = random_vec<int32_t>(size_t(tc.n), tc.is_signed ? -128 : 0, tc.is_signed ? 127 : 255,
                                  seed);
    Tensor x(src, {tc.n});
    for (int64_t i = 0; i < tc.n; i++) {
        if (tc.is_signed) x.data<int8_t>()[i] = int8_t(xv[i]);
        else x.data<uint8_t>()[i] = uint8_t(xv[i]);
    }
    std::vector<int32_t> sat(size_t(tc.n));
    size_t clipped = 0;
    for (int64_t i = 0; i < tc.n; i++) {
        sat[i] = tc.is_signed ? std::clamp(xv[i], -8, 7) : std::min(xv[i], 15);
        clipped += sat[i] != xv[i];
    }
    if (tc.n >= 16) {
        EXPECT_GT(clipped, 0u) << "saturation not exercised";
    }
    auto want_bytes = ref::int4_pack(sat);
    std::vector<int32_t> want(want_bytes.begin(), want_bytes.end());
    QH_FOR_EACH_TARGET(tag) {
        Tensor y(dst, {tc.n});
        ASSERT_EQ(y.nbytes(), size_t((tc.n + 1) / 2));
        poison(y);
        int4_pack(x, y);
        EXPECT_EQ(first_mismatch(bytes_of(y), want), "");
        expect_variant(tc.is_signed ? "int4_pack_s8s4" : "int4_pack_u8u4", tag);
    }
}

TEST_P(Int4Test, UnpackBitExact) {
    const Int4Case &tc = GetParam();
    uint32_t seed = uint32_t(std::hash<std::string>()(tc.name)) + 7;
    const DType src = tc.is_signed ? DType::s4 : DType::u4;
    const DType dst = tc.is_signed ? DType::s8 : DType::u8;
    Tensor x(src, {tc.n});
    // Random bytes, including garbage in the unused high nibble of an odd count.
    auto bytes = random_vec<uint8_t>(x.nbytes(), 0, 255, seed);
    std::copy(bytes.begin(), bytes.end(), x.data<uint8_t>());
    auto want = ref::int4_unpack(bytes, tc.n, tc.is_signed);
    if (tc.n >= 32) {
        EXPECT_NE(std::count(want.begin(), want.end(), tc.is_signed ? -8 : 15), 0);
        EXPECT_NE(std::count(want.begin(), want.end(), tc.is_signed ? 7 : 0), 0);
    }
    QH_FOR_EACH_TARGET(tag) {
        Tensor y(dst, {tc.n});
        poison(y);
        int4_unpack(x, y);
        EXPECT_EQ(first_mismatch(tensor_values(y), want), "");
        expect_variant(tc.is_signed ? "int4_unpack_s4s8" : "int4_unpack_u4u8", tag);
    }
}

TEST_P(Int4Test, RoundTrip) {
    const Int4Case &tc = GetParam();
    uint32_t seed = uint32_t(std::hash<std::string>()(tc.name)) + 13;
    auto xv = random_vec<int32_t>(size_t(tc.n), tc.is_signed ? -8 : 0, tc.is_signed ? 7 : 15,
                                  seed);
    Tensor x(tc.is_signed ? DType::s8 : DType::u8, {tc.n});
    for (int64_t i = 0; i < tc.n; i++) {
        if (tc.is_signed) x.data<int8_t>()[i] = int8_t(xv[i]);
        else x.data<uint8_t>()[i] = uint8_t(xv[i]);
    }
    QH_FOR_EACH_TARGET(tag) {
        Tensor p(tc.is_signed ? DType::s4 : DType::u4, {tc.n});
        poison(p);
        int4_pack(x, p);
        if (tc.n % 2) {
            EXPECT_EQ(p.data<uint8_t>()[tc.n / 2] >> 4, 0) << "last high nibble";
        }
        Tensor y(x.dtype(), {tc.n});
        poison(y);
        int4_unpack(p, y);
        EXPECT_EQ(first_mismatch(tensor_values(y), xv), "");
    }
}

INSTANTIATE_TEST_SUITE_P(Counts, Int4Test,
                         ::testing::Values(Int4Case{"s_1", true, 1}, Int4Case{"u_1", false, 1},
                                           Int4Case{"s_7", true, 7}, Int4Case{"u_7", false, 7},
                                           Int4Case{"s_64", true, 64}, Int4Case{"u_64", false, 64},
                                           Int4Case{"s_1001", true, 1001},
                                           Int4Case{"u_1001", false, 1001},
                                           Int4Case{"s_4096", true, 4096},
                                           Int4Case{"u_4097", false, 4097}),
                         [](const auto &info) { return info.param.name; });

TEST(Int4, HandCheckedSaturationAndLayout) {
    std::vector<int8_t> sv = {-128, -9, -8, 7, 8, 127, -1};
    std::vector<int32_t> want_s = {0x88, 0x78, 0x77, 0x0f};  // -8,-8 | -8,7 | 7,7 | -1,(0)
    std::vector<uint8_t> uv = {0, 15, 16, 255, 1};
    std::vector<int32_t> want_u = {0xf0, 0xff, 0x01};
    Tensor xs = tensor_from(DType::s8, {7}, sv);
    Tensor xu = tensor_from(DType::u8, {5}, uv);
    QH_FOR_EACH_TARGET(tag) {
        Tensor ys(DType::s4, {7});
        poison(ys);
        int4_pack(xs, ys);
        EXPECT_EQ(first_mismatch(bytes_of(ys), want_s), "");
        Tensor yu(DType::u4, {5});
        poison(yu);
        int4_pack(xu, yu);
        EXPECT_EQ(first_mismatch(bytes_of(yu), want_u), "");
        Tensor back(DType::s8, {7});
        poison(back);
        int4_unpack(ys, back);
        EXPECT_EQ(first_mismatch(values<int8_t>(back), {-8, -8, -8, 7, 7, 7, -1}), "");
    }
}

// ---------------------------------------------------------------------------------------------
// Validation errors: each names the op.

TEST(EltwiseErrors, MaxPool) {
    PoolParams p;
    p.kernel_h = p.kernel_w = 3; p.stride_h = p.stride_w = 2;
    p.pad_top = p.pad_left = p.pad_bottom = p.pad_right = 1;
    Tensor x(DType::u8, {1, 8, 8, 4});
    Tensor y_shape(DType::u8, {1, 5, 4, 4});
    expect_invalid([&] { maxpool(x, p, y_shape); }, "maxpool", "wrong output shape");
    Tensor y_dtype(DType::s8, {1, 4, 4, 4});
    expect_invalid([&] { maxpool(x, p, y_dtype); }, "maxpool", "output dtype differs");
    Tensor x32(DType::s32, {1, 8, 8, 4}), y32(DType::s32, {1, 4, 4, 4});
    expect_invalid([&] { maxpool(x32, p, y32); }, "maxpool", "s32 input");
    Tensor x3(DType::u8, {8, 8, 4}), y3(DType::u8, {4, 4, 4});
    expect_invalid([&] { maxpool(x3, p, y3); }, "maxpool", "rank 3 input");
    PoolParams named = p;
    named.name = "stem.pool";
    expect_invalid([&] { maxpool(x, named, y_shape); }, "stem.pool", "layer name");
}

TEST(EltwiseErrors, GlobalAvgPool) {
    auto q = QuantParams::per_tensor(0.1f, 0);
    Tensor x(DType::u8, {1, 7, 7, 16}, q);
    Tensor y_shape(DType::u8, {1, 15}, q);
    expect_invalid([&] { global_avgpool(x, y_shape); }, "global_avgpool", "wrong output shape");
    Tensor xs8(DType::s8, {1, 7, 7, 16}, q), y(DType::u8, {1, 16}, q);
    expect_invalid([&] { global_avgpool(xs8, y); }, "global_avgpool", "s8 input");
    Tensor yf(DType::f32, {1, 16}, q);
    expect_invalid([&] { global_avgpool(x, yf); }, "global_avgpool", "f32 output");
    Tensor xaxis(DType::u8, {1, 7, 7, 16}, QuantParams{{0.1f, 0.2f}, {0, 0}, 3});
    expect_invalid([&] { global_avgpool(xaxis, y); }, "global_avgpool", "per-axis input");
}

TEST(EltwiseErrors, Add) {
    auto q = QuantParams::per_tensor(0.1f, 3);
    Tensor a(DType::u8, {1, 4, 4, 8}, q), b(DType::u8, {1, 4, 4, 8}, q), y(DType::u8, {1, 4, 4, 8}, q);
    Tensor b_shape(DType::u8, {1, 4, 8, 4}, q);
    expect_invalid([&] { add(a, b_shape, {}, y); }, "add", "mismatched shapes");
    Tensor y_shape(DType::u8, {1, 4, 4, 9}, q);
    expect_invalid([&] { add(a, b, {}, y_shape); }, "add", "output shape");
    Tensor b_s8(DType::s8, {1, 4, 4, 8}, q);
    expect_invalid([&] { add(a, b_s8, {}, y); }, "add", "s8 operand");
    Tensor y_s32(DType::s32, {1, 4, 4, 8}, q);
    expect_invalid([&] { add(a, b, {}, y_s32); }, "add", "s32 output");
    Tensor b_noq(DType::u8, {1, 4, 4, 8});
    expect_invalid([&] { add(a, b_noq, {}, y); }, "add", "missing quant params");
}

TEST(EltwiseErrors, Quantize) {
    Tensor x(DType::f32, {2, 3, 4, 4});
    Tensor y_shape(DType::u8, {2, 3, 4, 5}, QuantParams::per_tensor(0.1f, 0));
    expect_invalid([&] { quantize(x, y_shape); }, "quantize", "mismatched shapes");
    Tensor y_dtype(DType::s32, {2, 3, 4, 4}, QuantParams::per_tensor(0.1f, 0));
    expect_invalid([&] { quantize(x, y_dtype); }, "quantize", "s32 output");
    Tensor xu8(DType::u8, {2, 3, 4, 4}), y(DType::u8, {2, 3, 4, 4}, QuantParams::per_tensor(0.1f, 0));
    expect_invalid([&] { quantize(xu8, y); }, "quantize", "u8 input");
    Tensor y_scales(DType::u8, {2, 3, 4, 4}, QuantParams{{0.1f, 0.2f}, {0, 0}, 1});
    expect_invalid([&] { quantize(x, y_scales); }, "quantize", "2 scales for 3 channels");
    Tensor y_zps(DType::u8, {2, 3, 4, 4}, QuantParams{{0.1f, 0.2f, 0.3f}, {0, 0}, 1});
    expect_invalid([&] { quantize(x, y_zps); }, "quantize", "2 zero points for 3 channels");
    Tensor y_axis(DType::u8, {2, 3, 4, 4}, QuantParams{{0.1f, 0.2f, 0.3f}, {0}, 4});
    expect_invalid([&] { quantize(x, y_axis); }, "quantize", "axis out of range");
    Tensor y_noscale(DType::u8, {2, 3, 4, 4});
    expect_invalid([&] { quantize(x, y_noscale); }, "quantize", "missing scale");
    Tensor y_neg(DType::u8, {2, 3, 4, 4}, QuantParams::per_tensor(-0.1f, 0));
    expect_invalid([&] { quantize(x, y_neg); }, "quantize", "negative scale");
    // the message is quantize's own, not dequantize's
    try {
        quantize(x, y_scales);
    } catch (const std::invalid_argument &e) {
        EXPECT_EQ(std::string(e.what()).find("dequantize"), std::string::npos) << e.what();
    }
}

TEST(EltwiseErrors, Dequantize) {
    Tensor x(DType::u8, {2, 3, 4, 4}, QuantParams::per_tensor(0.1f, 0));
    Tensor y_shape(DType::f32, {2, 3, 4, 5});
    expect_invalid([&] { dequantize(x, y_shape); }, "dequantize", "mismatched shapes");
    Tensor y(DType::f32, {2, 3, 4, 4}), y_u8(DType::u8, {2, 3, 4, 4});
    expect_invalid([&] { dequantize(x, y_u8); }, "dequantize", "u8 output");
    Tensor xf(DType::f32, {2, 3, 4, 4}, QuantParams::per_tensor(0.1f, 0));
    expect_invalid([&] { dequantize(xf, y); }, "dequantize", "f32 input");
    Tensor x_scales(DType::s8, {2, 3, 4, 4}, QuantParams{{0.1f, 0.2f, 0.3f, 0.4f}, {0}, 1});
    expect_invalid([&] { dequantize(x_scales, y); }, "dequantize", "4 scales for 3 channels");
    Tensor x4(DType::u4, {2, 3, 4, 4}, QuantParams::per_tensor(0.1f, 0));
    expect_invalid([&] { dequantize(x4, y); }, "dequantize", "u4 input");
}

TEST(EltwiseErrors, Requantize) {
    Tensor x(DType::s32, {2, 3, 4, 4}, QuantParams::per_tensor(0.01f, 0));
    Tensor y(DType::u8, {2, 3, 4, 4}, QuantParams::per_tensor(0.1f, 0));
    Tensor y_shape(DType::u8, {2, 3, 4, 5}, QuantParams::per_tensor(0.1f, 0));
    expect_invalid([&] { requantize(x, y_shape); }, "requantize", "mismatched shapes");
    Tensor x_u8(DType::u8, {2, 3, 4, 4}, QuantParams::per_tensor(0.01f, 0));
    expect_invalid([&] { requantize(x_u8, y); }, "requantize", "u8 input");
    Tensor y_f32(DType::f32, {2, 3, 4, 4}, QuantParams::per_tensor(0.1f, 0));
    expect_invalid([&] { requantize(x, y_f32); }, "requantize", "f32 output");
    Tensor y_scales(DType::u8, {2, 3, 4, 4}, QuantParams{{0.1f, 0.2f}, {0}, 1});
    expect_invalid([&] { requantize(x, y_scales); }, "requantize", "2 scales for 3 channels");
    Tensor x_scales(DType::s32, {2, 3, 4, 4}, QuantParams{{0.1f, 0.2f, 0.3f, 0.4f}, {0}, 1});
    Tensor y_axis(DType::u8, {2, 3, 4, 4}, QuantParams{{0.1f, 0.2f, 0.3f}, {0}, 1});
    expect_invalid([&] { requantize(x_scales, y_axis); }, "requantize", "4 input scales");
    Tensor x_zp(DType::s32, {2, 3, 4, 4}, QuantParams::per_tensor(0.01f, 5));
    expect_invalid([&] { requantize(x_zp, y); }, "requantize", "non-zero input zero point");
    Tensor y4(DType::s4, {2, 3, 4, 5}, QuantParams::per_tensor(0.1f, 0));
    expect_invalid([&] { requantize(x, y4); }, "requantize", "s4 output shape");
}

TEST(EltwiseErrors, Int4) {
    Tensor s8(DType::s8, {7}), u8(DType::u8, {7}), s4(DType::s4, {7}), u4(DType::u4, {7});
    expect_invalid([&] { int4_pack(s8, u4); }, "int4_pack", "s8 -> u4");
    expect_invalid([&] { int4_pack(u8, s4); }, "int4_pack", "u8 -> s4");
    Tensor s4_8(DType::s4, {8}), s8_8(DType::s8, {8});
    expect_invalid([&] { int4_pack(s8, s4_8); }, "int4_pack", "count mismatch");
    Tensor s32(DType::s32, {7});
    expect_invalid([&] { int4_pack(s32, s4); }, "int4_pack", "s32 input");
    expect_invalid([&] { int4_unpack(s4, u8); }, "int4_unpack", "s4 -> u8");
    expect_invalid([&] { int4_unpack(u4, s8); }, "int4_unpack", "u4 -> s8");
    expect_invalid([&] { int4_unpack(s4, s8_8); }, "int4_unpack", "count mismatch");
    expect_invalid([&] { int4_unpack(s8, s8_8); }, "int4_unpack", "s8 input");
}

}  // namespace
}  // namespace qh::test
