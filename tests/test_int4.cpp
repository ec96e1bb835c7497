// INT4 kernels: conv2d / conv2d_add / dense with s4 weights (W4A8) and u4 storage activations
// (W4A4 and the u8 <-> u4 edges), every runnable variant against the plain reference, bit-exact:
// odd channel counts (W4A8), padding, strides, tails, zero points 0 and 15, saturation at both
// ends of the nibble range, nibble boundaries of weights and activations, and the packing
// decisions (which weights become s4, the accumulator bound).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "model.h"
#include "models/resnet.h"
#include "ops.h"
#include "precision.h"
#include "reference_ops.h"
#include "test_util.h"

namespace qh::test {
namespace {

enum class W4 { s4_packed, s8_bits4, u4_zp8 };

struct Int4Case {
    std::string name;
    ref::ConvProblem p;
    DType src = DType::u8, dst = DType::u8;
    int32_t x_zp = 7;
    W4 wk = W4::s4_packed;
    bool relu = false, residual = false;
    DType res = DType::f32;  // residual storage; f32 = the dst's
};

ref::ConvProblem shape(int n, int hw, int c, int oc, int k, int s, int pad) {
    ref::ConvProblem p;
    p.n = n; p.h = p.w = hw; p.c = c; p.oc = oc; p.kh = p.kw = k;
    p.stride_h = p.stride_w = s;
    p.pad_top = p.pad_left = p.pad_bottom = p.pad_right = pad;
    return p;
}

std::vector<Int4Case> cases() {
    const DType u8 = DType::u8, u4 = DType::u4;
    std::vector<Int4Case> v;
    // W4A8 (u8 activations, s4 weights): ResNet shapes and odd ones.
    v.push_back({"w4a8_r50_3x3_64", shape(1, 14, 64, 64, 3, 1, 1), u8, u8, 128});
    v.push_back({"w4a8_r50_1x1_256_64", shape(1, 14, 256, 64, 1, 1, 0), u8, u8, 3});
    v.push_back({"w4a8_stem_7x7s2", shape(1, 30, 3, 64, 7, 2, 3), u8, u8, 120, W4::s8_bits4});
    v.push_back({"w4a8_odd_c5_oc7_b3", shape(3, 9, 5, 7, 3, 1, 1), u8, u8, 0});
    v.push_back({"w4a8_oc70_5x5s2", shape(2, 11, 13, 70, 5, 2, 2), u8, u8, 255, W4::u4_zp8});
    v.push_back({"w4a8_relu", shape(1, 7, 96, 33, 3, 1, 1), u8, u8, 40, W4::s4_packed, true});
    v.push_back({"w4a8_add_relu", shape(2, 6, 24, 40, 1, 1, 0), u8, u8, 9, W4::s4_packed, true, true});
    v.push_back({"w4a8_add_odd", shape(1, 5, 9, 21, 3, 2, 1), u8, u8, 200, W4::s8_bits4, false, true});
    // W4A4 (u4 storage in and out): even channel counts, zero points at both nibble ends.
    v.push_back({"w4a4_3x3_64", shape(1, 14, 64, 64, 3, 1, 1), u4, u4, 0});
    v.push_back({"w4a4_3x3s2_zp15", shape(2, 9, 32, 48, 3, 2, 1), u4, u4, 15});
    v.push_back({"w4a4_1x1_c6_oc10", shape(1, 7, 6, 10, 1, 1, 0), u4, u4, 8});
    v.push_back({"w4a4_c2_oc2_tail", shape(3, 5, 2, 2, 3, 1, 2), u4, u4, 15, W4::u4_zp8});
    v.push_back({"w4a4_relu", shape(1, 8, 16, 34, 3, 1, 1), u4, u4, 4, W4::s4_packed, true});
    v.push_back({"w4a4_add", shape(1, 7, 64, 128, 1, 1, 0), u4, u4, 0, W4::s4_packed, false, true});
    v.push_back({"w4a4_add_relu_odd", shape(2, 5, 10, 18, 3, 1, 1), u4, u4, 12, W4::s8_bits4, true, true});
    // Edges of a 4-bit region: u8 storage in, u4 out, and back.
    v.push_back({"u8_to_u4", shape(1, 9, 24, 32, 3, 1, 1), u8, u4, 100});
    v.push_back({"u4_to_u8", shape(1, 9, 24, 30, 3, 2, 1), u4, u8, 3});
    v.push_back({"u8_to_u4_add", shape(1, 6, 12, 16, 1, 1, 0), u8, u4, 50, W4::s4_packed, true, true});
    v.push_back({"u4_to_u8_add", shape(2, 4, 20, 24, 3, 1, 1), u4, u8, 1, W4::s4_packed, false, true});
    // A residual stored unlike the output (the fourth type field of the family).
    v.push_back({"w4a4_add_res_u8", shape(1, 6, 16, 32, 3, 1, 1), u4, u4, 2, W4::s4_packed, true, true, u8});
    v.push_back({"u8_to_u4_add_res_u8", shape(2, 5, 12, 18, 1, 1, 0), u8, u4, 60, W4::s4_packed, false, true, u8});
    v.push_back({"w4a8_add_res_u4", shape(1, 7, 24, 40, 3, 2, 1), u8, u8, 70, W4::s4_packed, true, true, u4});
    v.push_back({"u4_to_u8_add_res_u4", shape(1, 6, 10, 14, 3, 1, 1), u4, u8, 9, W4::s8_bits4, false, true, u4});
    return v;
}

// A u8/u4 tensor holding `vals` (NHWC order), packed for u4.
Tensor activation(DType t, std::vector<int64_t> shape, const std::vector<int32_t> &vals, QuantParams q) {
    Tensor r(t, std::move(shape), std::move(q));
    if (t == DType::u4) {
        auto b = ref::int4_pack(vals);
        std::copy(b.begin(), b.end(), r.data<uint8_t>());
    } else {
        std::copy(vals.begin(), vals.end(), r.data<uint8_t>());
    }
    return r;
}
std::vector<int32_t> activation_values(const Tensor &t) {
    if (t.dtype() != DType::u4) return values<uint8_t>(t);
    std::vector<uint8_t> b(t.data<uint8_t>(), t.data<uint8_t>() + t.nbytes());
    return ref::int4_unpack(b, t.numel(), false);
}

class Int4ConvTest : public ::testing::TestWithParam<Int4Case> {};

TEST_P(Int4ConvTest, BitExactAllVariants) {
    const Int4Case &tc = GetParam();
    const auto &p = tc.p;
    const uint32_t seed = std::hash<std::string>()(tc.name);
    const int xmax = tc.src == DType::u4 ? 15 : 255, ymax = tc.dst == DType::u4 ? 15 : 255;
    auto x32 = random_vec<int32_t>(size_t(p.n) * p.h * p.w * p.c, 0, xmax, seed);
    std::vector<uint8_t> xv(x32.begin(), x32.end());
    const size_t nw = size_t(p.oc) * p.c * p.kh * p.kw;
    // Weights cover the whole nibble range, so both nibble ends and the sign bit are exercised.
    auto w = random_vec<int32_t>(nw, -8, 7, seed + 1);
    WeightsDesc wd;
    wd.name = tc.name;
    wd.oc = p.oc; wd.ic = p.c; wd.kh = p.kh; wd.kw = p.kw;
    std::vector<uint8_t> packed;
    std::vector<int8_t> s8(w.begin(), w.end());
    std::vector<int32_t> ref_w = w, zw = {0};
    if (tc.wk == W4::s4_packed) {
        packed = ref::int4_pack(w);
        wd.dtype = DType::s4; wd.data = packed.data();
    } else if (tc.wk == W4::u4_zp8) {  // ONNX UINT4 weights with zero point 8: w' = w - 8
        std::vector<int32_t> u(w.size());
        for (size_t i = 0; i < w.size(); i++) u[i] = w[i] + 8;
        packed = ref::int4_pack(u);
        wd.dtype = DType::u4; wd.data = packed.data();
        wd.zero_point = {8};
        ref_w = u; zw = {8};
    } else {
        wd.dtype = DType::s8; wd.data = s8.data(); wd.bits = 4;
    }
    auto bias = random_vec<int32_t>(p.oc, -3000, 3000, seed + 3);
    wd.bias = bias.data();
    std::vector<float> wscale(p.oc);
    for (int o = 0; o < p.oc; o++) wscale[o] = 0.02f + 0.005f * (o % 5);
    wd.scale = wscale;
    // Output scales small enough that both ends of the output range saturate somewhere.
    const float xs = 0.1f, ys = tc.dst == DType::u4 ? 0.3f : tc.src == DType::u4 ? 0.03f : 0.1f;
    const int32_t yzp = tc.dst == DType::u4 ? 5 : 77;

    auto acc = ref::conv2d_acc(p, xv, tc.x_zp, ref_w, zw, bias);
    Tensor x = activation(tc.src, {p.n, p.h, p.w, p.c}, x32, QuantParams::per_tensor(xs, tc.x_zp));
    std::vector<int64_t> yshape = {p.n, p.oh(), p.ow(), p.oc};
    Conv2dParams cp;
    cp.name = tc.name;
    cp.stride_h = p.stride_h; cp.stride_w = p.stride_w;
    cp.pad_top = p.pad_top; cp.pad_left = p.pad_left; cp.pad_bottom = p.pad_bottom; cp.pad_right = p.pad_right;
    int32_t lo = 0, hi = ymax;
    if (tc.relu) { cp.act = Activation::relu(yzp); lo = yzp; }
    cp.act.max = std::min(cp.act.max, ymax);

    std::vector<int32_t> want;
    Tensor residual;
    ResidualParams rp;
    float pack_scale = ys;
    if (tc.residual) {
        rp.conv_scale = 0.2f; rp.conv_zp = 64;
        const DType rt = tc.res == DType::f32 ? tc.dst : tc.res;
        const int32_t rzp = rt == DType::u4 ? 9 : 110;
        const float rs = rt == DType::u4 ? 0.9f : 0.07f;
        auto rv = random_vec<int32_t>(size_t(p.n) * p.oh() * p.ow() * p.oc, 0, rt == DType::u4 ? 15 : 255, seed + 4);
        residual = activation(rt, yshape, rv, QuantParams::per_tensor(rs, rzp));
        std::vector<float> mult(p.oc);
        for (int o = 0; o < p.oc; o++) mult[o] = (xs * wscale[o]) / rp.conv_scale;
        auto c = ref::requantize_all(acc, p.oc, mult, rp.conv_zp, 0, 255);
        want.resize(c.size());
        for (size_t i = 0; i < c.size(); i++)
            want[i] = ref::quantized_add(c[i], rp.conv_zp, rp.conv_scale / ys, rv[i], rzp, rs / ys, yzp, lo, hi);
        pack_scale = rp.conv_scale;
    } else {
        std::vector<float> mult(p.oc);
        for (int o = 0; o < p.oc; o++) mult[o] = (xs * wscale[o]) / ys;
        want = ref::requantize_all(acc, p.oc, mult, yzp, lo, hi);
    }
    PackedWeights pw = pack_weights(wd, xs, tc.x_zp, pack_scale);
    ASSERT_EQ(pw.weight_bits, 4);
    ASSERT_FALSE(pw.has_zero_point);
    EXPECT_EQ(pw.packed_bytes() * 2, size_t(pw.oc_pad) * pw.kh * pw.kw * pw.ic_pad);
    // Saturation at both ends of the output range must really happen somewhere.
    if (!tc.relu && int64_t(p.c) * p.kh * p.kw >= 64) {
        EXPECT_NE(std::count(want.begin(), want.end(), 0), 0);
        EXPECT_NE(std::count(want.begin(), want.end(), ymax), 0);
    }

    const std::string family = std::string(tc.residual ? "conv2d_add_" : "conv2d_") + dtype_name(tc.src) + "s4" +
                               dtype_name(tc.dst) + (tc.res != DType::f32 ? dtype_name(tc.res) : "");
    int ran = 0;
    QH_FOR_EACH_TARGET(tag) {
        Tensor y(tc.dst, yshape, QuantParams::per_tensor(ys, yzp));
        std::fill_n(y.data<uint8_t>(), y.nbytes(), 0xA5);  // poison: every element must be written
        if (tc.residual) conv2d_add(x, pw, cp, rp, residual, y);
        else conv2d(x, pw, cp, y);
        EXPECT_EQ(last_kernel(family), family + "__" + tag);
        EXPECT_EQ(first_mismatch(activation_values(y), want), "") << "kernel " << last_kernel(family);
        ran++;
    }
    EXPECT_GE(ran, 1);
}

INSTANTIATE_TEST_SUITE_P(Shapes, Int4ConvTest, ::testing::ValuesIn(cases()),
                         [](const auto &info) { return info.param.name; });

struct DenseCase {
    std::string name;
    int b, k, oc;
    int32_t x_zp;
    DType out;
};
class Int4DenseTest : public ::testing::TestWithParam<DenseCase> {};

TEST_P(Int4DenseTest, BitExactAllVariants) {
    const DenseCase &tc = GetParam();
    const uint32_t seed = std::hash<std::string>()(tc.name);
    auto xv = random_vec<uint8_t>(size_t(tc.b) * tc.k, 0, 255, seed);
    auto w = random_vec<int32_t>(size_t(tc.oc) * tc.k, -8, 7, seed + 1);
    auto packed = ref::int4_pack(w);
    WeightsDesc wd;
    wd.name = tc.name; wd.oc = tc.oc; wd.ic = tc.k;
    wd.dtype = DType::s4; wd.data = packed.data();
    auto bias = random_vec<int32_t>(tc.oc, -5000, 5000, seed + 2);
    wd.bias = bias.data();
    wd.scale = {0.05f};
    ref::ConvProblem p;
    p.n = 1; p.h = 1; p.w = tc.b; p.c = tc.k; p.oc = tc.oc;
    auto acc = ref::conv2d_acc(p, xv, tc.x_zp, w, {0}, bias);
    const float ys = 0.9f;
    std::vector<int32_t> want;
    if (tc.out == DType::s32) for (auto a : acc) want.push_back(int32_t(a));
    else want = ref::requantize_all(acc, tc.oc, {(0.01f * 0.05f) / ys}, 120, 0, 255);
    PackedWeights pw = pack_weights(wd, 0.01f, tc.x_zp, tc.out == DType::s32 ? 0.f : ys);
    ASSERT_EQ(pw.weight_bits, 4);
    Tensor x = tensor_from(DType::u8, {tc.b, tc.k}, xv, QuantParams::per_tensor(0.01f, tc.x_zp));
    const std::string family = std::string("dense_u8s4") + dtype_name(tc.out);
    QH_FOR_EACH_TARGET(tag) {
        Tensor y(tc.out, {tc.b, tc.oc}, QuantParams::per_tensor(ys, 120));
        std::fill_n(y.data<uint8_t>(), y.nbytes(), 0xA5);
        dense(x, pw, {}, y, tc.name);
        EXPECT_EQ(last_kernel(family), family + "__" + tag);
        std::vector<int32_t> got = tc.out == DType::u8 ? values<uint8_t>(y) : values<int32_t>(y);
        EXPECT_EQ(first_mismatch(got, want), "");
    }
}

INSTANTIATE_TEST_SUITE_P(Shapes, Int4DenseTest,
                         ::testing::Values(DenseCase{"fc_2048_1000", 1, 2048, 1000, 0, DType::s32},
                                           DenseCase{"fc_512_1000_b3_u8", 3, 512, 1000, 13, DType::u8},
                                           DenseCase{"k_tail_b5", 5, 37, 19, 200, DType::s32}),
                         [](const auto &info) { return info.param.name; });

// Which weights become s4: symmetric nibbles only; asymmetric 4-bit weights whose w - z_w leave
// [-8, 7] keep the s8 form (still exact, twice the bytes), and the reduction bound is 65536.
TEST(Int4Packing, NibbleDecisionAndBounds) {
    std::vector<int32_t> w = {-8, 7, 0, 3, -1, 5};
    WeightsDesc wd;
    wd.name = "w";
    wd.oc = 2; wd.ic = 3;
    auto packed = ref::int4_pack(w);
    wd.dtype = DType::s4; wd.data = packed.data();
    wd.scale = {1.f};
    EXPECT_EQ(pack_weights(wd, 1.f, 0, 1.f).weight_bits, 4);
    // UINT4 with zero point 3: w - 3 spans [-3, 12] -> s8.
    std::vector<int32_t> u = {0, 15, 3, 4, 9, 1};
    auto pu = ref::int4_pack(u);
    wd.dtype = DType::u4; wd.data = pu.data(); wd.zero_point = {3};
    PackedWeights p8 = pack_weights(wd, 1.f, 0, 1.f);
    EXPECT_EQ(p8.weight_bits, 8);
    EXPECT_EQ(p8.unpacked, (std::vector<int8_t>{-3, 12, 0, 1, 6, -2}));
    // s8 weights asked for 4 bits but holding -9: s8.
    std::vector<int8_t> s8 = {-9, 1, 2, 3, 4, 5};
    wd.dtype = DType::s8; wd.data = s8.data(); wd.zero_point = {}; wd.bits = 4;
    EXPECT_EQ(pack_weights(wd, 1.f, 0, 1.f).weight_bits, 8);
    // The bound: K = 65536 accepted, one input-channel block more refused.
    std::vector<int8_t> big(size_t(65540), 1);
    wd.data = big.data(); wd.oc = 1; wd.ic = 65536;
    EXPECT_EQ(pack_weights(wd, 1.f, 0, 1.f).weight_bits, 4);
    wd.ic = 65540;
    EXPECT_NE(error_of([&] { pack_weights(wd, 1.f, 0, 1.f); }).find("exceeds the int32 accumulator bound 65536"),
              std::string::npos);
}

TEST(Int4Errors, OddChannelsInU4StorageAreRefused) {
    std::vector<int32_t> w(3 * 3, 1);
    auto packed = ref::int4_pack(w);
    WeightsDesc wd;
    wd.name = "w"; wd.oc = 3; wd.ic = 3; wd.dtype = DType::s4; wd.data = packed.data(); wd.scale = {1.f};
    PackedWeights pw = pack_weights(wd, 1.f, 0, 1.f);
    Tensor x(DType::u4, {1, 4, 4, 3}, QuantParams::per_tensor(1.f, 0));
    Tensor y(DType::u8, {1, 4, 4, 3}, QuantParams::per_tensor(1.f, 0));
    Conv2dParams cp;
    cp.name = "odd";
    EXPECT_NE(error_of([&] { conv2d(x, pw, cp, y); }).find("u4 input u4[1,4,4,3] needs an even channel count"),
              std::string::npos);
}

}  // namespace
}  // namespace qh::test

// ---------------------------------------------------------------------------------------------
// Whole models: ResNet-18 (built-in, synthetic weights, 64x64) at W4A8, W4A4 and a mixed
// configuration: every CPU variant gives identical logits, packed u4 storage gives the same
// logits as u8 storage of the same 4-bit values, the kernels are the int4 families, weights
// shrink, and the logits stay close to fp32 (the accuracy proxy).
namespace qh::test {
namespace {

struct Int4Resnet {
    Graph g;
    std::vector<Tensor> samples;
    explicit Int4Resnet(LayerPrecision p, const std::string &bits_every_other = "") {
        g = build_resnet({18, 10, 64});
        if (p != LayerPrecision::automatic) set_uniform_precision(g, p);
        if (!bits_every_other.empty()) {  // mixed: every other conv w4a4, the rest int8
            BitConfig c;
            const auto layers = quantizable_layers(g);
            for (size_t k = 1; k + 1 < layers.size(); k++)
                c.layers.push_back({g.nodes[layers[k]].name, k % 2 ? LayerPrecision::w4a4 : LayerPrecision::int8});
            apply_bit_config(g, c);
        }
        for (int i = 0; i < 3; i++) samples.push_back(random_input({1, 64, 64, 3}, 100 + i));
        calibrate(g, samples, {});
    }
};

std::vector<float> run_once(const Graph &g, const Tensor &x, PrepareOptions po) {
    auto m = Model::prepare(g, po);
    std::memcpy(m->input(0).raw(), x.raw(), x.nbytes());
    m->execute();
    const Tensor &y = m->output(0);
    return std::vector<float>(y.data<float>(), y.data<float>() + y.numel());
}

double cosine(const std::vector<float> &a, const std::vector<float> &b) {
    double d = 0, na = 0, nb = 0;
    for (size_t i = 0; i < a.size(); i++) d += a[i] * b[i], na += a[i] * a[i], nb += b[i] * b[i];
    return d / std::sqrt(na * nb);
}

int count_kernels(const Model &m, const std::string &family) {
    int n = 0;
    for (const auto &l : m.layers()) n += l.kernel.rfind(family + "__", 0) == 0;
    return n;
}

TEST(Int4Model, W4A4ResNet18VariantsAndStorageAgree) {
    Int4Resnet r(LayerPrecision::w4a4);
    Tensor x = random_input({2, 64, 64, 3}, 300);
    PrepareOptions po;
    po.batch = 2;
    auto m = Model::prepare(r.g, po);
    // Packed u4 between the 4-bit layers, u8 at the edges (maxpool, the last block before the pool).
    EXPECT_GT(count_kernels(*m, "conv2d_u4s4u4") + count_kernels(*m, "conv2d_add_u4s4u4"), 8);
    EXPECT_GT(count_kernels(*m, "conv2d_u8s4u4") + count_kernels(*m, "conv2d_add_u8s4u4"), 0);
    EXPECT_EQ(count_kernels(*m, "conv2d_u8s8u8"), 1) << "the stem stays int8";
    std::vector<float> first;
    QH_FOR_EACH_TARGET(tag) {
        auto out = run_once(r.g, x, po);
        if (first.empty()) first = out;
        else EXPECT_EQ(out, first) << tag;
    }
    po.pack_4bit = false;
    EXPECT_EQ(run_once(r.g, x, po), first) << "u8 storage of the same 4-bit values";
    auto mu8 = Model::prepare(r.g, po);
    EXPECT_EQ(count_kernels(*mu8, "conv2d_u4s4u4"), 0);
    // (The arena's peak is at the 8-bit stem here, so packing cannot lower it below.)
    EXPECT_LE(m->arena_bytes(), mu8->arena_bytes());
}

// W4A4 asked of every layer, the stem conv and the FC included (set_uniform_precision without
// keeping the edges): the FC runs W4A4 as dense_u8s4 on 4-bit activations stored one a byte (the
// pooled 512 values an image); the stem reads the graph input, which keeps 8 bits, so it runs
// W4A8 and effective_precision says so.
TEST(Int4Model, W4A4OnEveryLayerIncludingStemAndFc) {
    Graph g = build_resnet({18, 10, 64});
    set_uniform_precision(g, LayerPrecision::w4a4, /*keep_edges=*/false);
    std::vector<Tensor> samples;
    for (int i = 0; i < 3; i++) samples.push_back(random_input({1, 64, 64, 3}, 100 + i));
    calibrate(g, samples, {});
    const std::vector<int> layers = quantizable_layers(g);
    for (int i : layers)
        EXPECT_EQ(effective_precision(g, g.nodes[i]), i == layers.front() ? LayerPrecision::w4a8 : LayerPrecision::w4a4)
            << g.nodes[i].name;
    Tensor x = random_input({2, 64, 64, 3}, 302);
    PrepareOptions po;
    po.batch = 2;
    auto m = Model::prepare(g, po);
    EXPECT_EQ(count_kernels(*m, "dense_u8s4s32"), 1);
    EXPECT_EQ(count_kernels(*m, "conv2d_u8s8u8"), 0);
    for (const auto &l : m->layers())
        if (l.layer == g.nodes[layers.front()].name)
            EXPECT_EQ(l.kernel.rfind("conv2d_u8s4", 0), 0u) << "the stem, W4A8: " << l.kernel;
    std::vector<float> first;
    QH_FOR_EACH_TARGET(tag) {
        auto out = run_once(g, x, po);
        if (first.empty()) first = out;
        else EXPECT_EQ(out, first) << tag;
    }
    Graph g8 = build_resnet({18, 10, 64});
    calibrate(g8, samples, {});
    EXPECT_GT(cosine(run_once(g8, x, po), first), 0.9) << "W4A4 everywhere still tracks int8";
}

TEST(Int4Model, WeightBytesAndAccuracyProxy) {
    Int4Resnet r8(LayerPrecision::automatic), r48(LayerPrecision::w4a8), r44(LayerPrecision::w4a4);
    auto m8 = Model::prepare(r8.g, {}), m48 = Model::prepare(r48.g, {}), m44 = Model::prepare(r44.g, {});
    EXPECT_LE(double(m48->weight_bytes()), 0.55 * double(m8->weight_bytes()));
    EXPECT_EQ(m48->weight_bytes(), m44->weight_bytes());
    EXPECT_GT(count_kernels(*m48, "conv2d_u8s4u8") + count_kernels(*m48, "conv2d_add_u8s4u8"), 10);
    double c48 = 0, c44 = 0;
    const int n = 4;
    for (int s = 0; s < n; s++) {
        Tensor x = random_input({1, 64, 64, 3}, 200 + s);
        PrepareOptions fp;
        fp.precision = Precision::fp32;
        auto f = run_once(r8.g, x, fp);
        c48 += cosine(f, run_once(r48.g, x, {})) / n;
        c44 += cosine(f, run_once(r44.g, x, {})) / n;
    }
    std::printf("ResNet-18 64x64 synthetic: logit cosine vs fp32: w4a8 %.4f, w4a4 %.4f\n", c48, c44);
    EXPECT_GT(c48, 0.9);
    EXPECT_GT(c44, 0.7);
}

TEST(Int4Model, MixedConfigurationRunsEachLayerAtItsPrecision) {
    Int4Resnet r(LayerPrecision::automatic, "every other");
    int w4a4 = 0, int8 = 0;
    for (int i : quantizable_layers(r.g)) {
        const LayerPrecision p = effective_precision(r.g, r.g.nodes[i]);
        w4a4 += p == LayerPrecision::w4a4;
        int8 += p == LayerPrecision::int8;
    }
    EXPECT_GT(w4a4, 3);
    EXPECT_GT(int8, 3);
    Tensor x = random_input({1, 64, 64, 3}, 301);
    std::vector<float> first;
    QH_FOR_EACH_TARGET(tag) {
        auto out = run_once(r.g, x, {});
        if (first.empty()) first = out;
        else EXPECT_EQ(out, first) << tag;
    }
    // The configuration round-trips through its file form.
    const std::string path = ::testing::TempDir() + "/bits.txt";
    {
        std::ofstream f(path);
        f << bit_config_text(r.g);
    }
    Graph g2 = build_resnet({18, 10, 64});
    apply_bit_config(g2, read_bit_config(path));
    calibrate(g2, r.samples, {});
    EXPECT_EQ(bit_config_text(g2), bit_config_text(r.g));
    EXPECT_NE(error_of([&] {
                  BitConfig c;
                  c.layers.push_back({"no_such_layer", LayerPrecision::w4a4});
                  apply_bit_config(g2, c);
              }).find("has no Conv or Dense layer 'no_such_layer'"),
              std::string::npos);
}

}  // namespace
}  // namespace qh::test

namespace qh::test {
namespace {

// A 4-bit GlobalAveragePool output (ONNX Runtime's W4A4 models quantize the pool's output to
// UINT4): the kernel saturates at qmax = 15, exactly the reference clamped to [0, 15].
TEST(Int4Eltwise, GlobalAvgPoolSaturatesAtQmax) {
    const int n = 2, hw = 5, c = 19;
    auto xv = random_vec<uint8_t>(size_t(n) * hw * hw * c, 0, 255, 91);
    Tensor x = tensor_from(DType::u8, {n, hw, hw, c}, xv, QuantParams::per_tensor(0.1f, 7));
    auto want = ref::global_avgpool(xv, n, hw * hw, c, 7, 0.1f, 2, 0.9f);
    int saturated = 0;
    for (auto &w : want) {
        saturated += w > 15;
        w = std::min(w, 15);
    }
    ASSERT_GT(saturated, 0);
    QH_FOR_EACH_TARGET(tag) {
        Tensor y(DType::u8, {n, c}, QuantParams::per_tensor(0.9f, 2));
        bind_global_avgpool(x, y, 15).run();
        EXPECT_EQ(first_mismatch(values<uint8_t>(y), want), "");
    }
}

}  // namespace
}  // namespace qh::test

namespace qh::test {
namespace {

// Float islands (LayerPrecision::fp32) in a quantized ResNet-18, beside int8 and W4A4 layers:
// the island runs on the fp32 path between a dequantize of its input and a quantize of its
// output (named steps), and its quantized output equals exactly dequantize -> the fp32 op ->
// QuantizeLinear computed separately; every CPU variant agrees.
TEST(Int4Model, FloatIslandsBesideInt8AndW4A4) {
    Graph g = build_resnet({18, 10, 64});
    BitConfig c;
    c.layers = {{"layer1.0.conv2", LayerPrecision::fp32}, {"layer2.0.conv1", LayerPrecision::w4a4},
                {"layer2.0.conv2", LayerPrecision::w4a4}, {"fc", LayerPrecision::fp32}};
    apply_bit_config(g, c);
    std::vector<Tensor> samples;
    for (int i = 0; i < 2; i++) samples.push_back(random_input({1, 64, 64, 3}, 100 + i));
    calibrate(g, samples, {});
    Tensor x = random_input({1, 64, 64, 3}, 310);
    PrepareOptions po;
    po.keep_all_values = true;
    auto m = Model::prepare(g, po);
    std::memcpy(m->input(0).raw(), x.raw(), x.nbytes());
    m->execute();
    int island_steps = 0;
    for (const auto &l : m->layers()) {
        if (l.layer == "layer1.0.conv2" || l.layer == "fc") {
            EXPECT_EQ(l.kernel, "fp32 reference") << l.name;
            island_steps++;
        }
    }
    EXPECT_EQ(island_steps, 2);
    std::vector<std::string> ops;
    for (const auto &l : m->layers()) ops.push_back(l.op + ":" + l.name);
    EXPECT_NE(std::find(ops.begin(), ops.end(), "dequantize:layer1.0.relu1"), ops.end());
    EXPECT_NE(std::find(ops.begin(), ops.end(), "quantize:layer1.0.conv2.bn"), ops.end()) << "the island's output";

    // The island's output, recomputed: dequantize its u8 input, the fp32 conv, QuantizeLinear.
    const Graph gf = fold_batchnorm(g);
    int node = -1;
    for (size_t i = 0; i < gf.nodes.size(); i++)
        if (gf.nodes[i].name == "layer1.0.conv2") node = int(i);
    ASSERT_GE(node, 0);
    const int in = gf.nodes[node].inputs[0], out = gf.nodes[node].output;
    const Tensor *xi = m->value(in), *yo = m->value(out);
    ASSERT_TRUE(xi && yo);
    ASSERT_EQ(xi->dtype(), DType::u8);
    ASSERT_EQ(yo->dtype(), DType::u8);
    Graph one;
    one.name = "island";
    const int vin = one.add_value("x", xi->shape(), DType::f32);
    one.inputs = {vin};
    GraphNode conv = gf.nodes[node];
    conv.inputs = {vin};
    conv.precision = LayerPrecision::automatic;
    one.outputs = {one.add_node(conv, "y")};
    PrepareOptions pf;
    pf.precision = Precision::fp32;
    auto mf = Model::prepare(one, pf);
    const QuantParams &qi = gf.values[in].quant, &qo = gf.values[out].quant;
    for (int64_t k = 0; k < xi->numel(); k++)
        mf->input(0).data<float>()[k] = float(int(xi->data<uint8_t>()[k]) - qi.zp_at(0)) * qi.scale_at(0);
    mf->execute();
    std::vector<int32_t> want, got = values<uint8_t>(*yo);
    for (int64_t k = 0; k < mf->output(0).numel(); k++)
        want.push_back(ref::quantize(mf->output(0).data<float>()[k], qo.scale_at(0), qo.zp_at(0), 0, 255));
    EXPECT_EQ(first_mismatch(got, want), "");

    std::vector<float> first;
    QH_FOR_EACH_TARGET(tag) {
        auto out1 = run_once(g, x, {});
        if (first.empty()) first = out1;
        else EXPECT_EQ(out1, first) << tag;
    }
}

}  // namespace
}  // namespace qh::test
