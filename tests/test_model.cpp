// Graph runtime end to end: prepare/execute of quantized graphs against a composition of the
// plain C++ reference ops (bit-exact), the built-in ResNets (int8 vs the fp32 path, every kernel
// variant identical), calibration, memory planning and the error cases.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "model.h"
#include "reference_ops.h"
#include "resnet.h"
#include "test_util.h"

using namespace qh;

namespace {

Tensor random_input(std::vector<int64_t> shape, uint32_t seed) {
    Tensor t(DType::f32, shape);
    std::mt19937 g(seed);
    std::normal_distribution<float> d(0.f, 1.f);
    for (int64_t i = 0; i < t.numel(); i++) t.data<float>()[i] = d(g);
    return t;
}

void set_input(Model &m, const Tensor &x) {
    ASSERT_EQ(m.input(0).shape(), x.shape());
    std::memcpy(m.input(0).raw(), x.raw(), x.nbytes());
}

std::vector<float> output_vec(const Model &m) {
    const Tensor &y = m.output(0);
    return std::vector<float>(y.data<float>(), y.data<float>() + y.numel());
}

int argmax(const float *p, int n) { return int(std::max_element(p, p + n) - p); }

GraphNode node(OpKind op, std::string name, std::vector<int> in) {
    GraphNode n;
    n.op = op;
    n.name = std::move(name);
    n.inputs = std::move(in);
    return n;
}

// A small quantized graph in QOperator style (integer weights, s32 bias, quant on every
// value), covering every fusion: conv3x3+relu, conv1x1+add+relu, maxpool, gap, flatten, dense.
struct SmallQuantGraph {
    Graph g;
    std::vector<int32_t> w1, w2, w3, b1, b2, b3;
    std::vector<float> s1, s2, s3;
    static constexpr int C = 8, H = 9, W = 9, K = 5;

    SmallQuantGraph() {
        std::mt19937 rng(7);
        std::uniform_int_distribution<int> wd(-127, 127), bd(-3000, 3000);
        auto make_w = [&](std::vector<int32_t> &w, std::vector<float> &s, std::vector<int32_t> &b, int oc, int per) {
            w.resize(size_t(oc) * per);
            for (auto &v : w) v = wd(rng);
            for (int o = 0; o < oc; o++) s.push_back(0.002f + 0.0005f * o);
            b.resize(oc);
            for (auto &v : b) v = bd(rng);
        };
        make_w(w1, s1, b1, C, C * 9);
        make_w(w2, s2, b2, C, C);
        make_w(w3, s3, b3, K, C);

        g.name = "small";
        int x = g.add_value("x", {1, H, W, C});
        g.values[x].quant = QuantParams::per_tensor(0.05f, 128);
        g.inputs = {x};
        auto conv = [&](std::string name, int in, const std::vector<int32_t> &w, const std::vector<float> &s,
                        const std::vector<int32_t> &b, int k) {
            GraphNode n = node(OpKind::Conv, name, {in});
            n.window.kernel_h = n.window.kernel_w = k;
            n.window.pad_top = n.window.pad_left = n.window.pad_bottom = n.window.pad_right = k / 2;
            n.weights = Tensor(DType::s8, {C, C, k, k});
            for (size_t i = 0; i < w.size(); i++) n.weights.data<int8_t>()[i] = int8_t(w[i]);
            n.weights.quant.scale = s;
            n.weights.quant.zero_point = {0};
            n.weights.quant.axis = 0;
            n.bias = Tensor(DType::s32, {C});
            std::memcpy(n.bias.raw(), b.data(), 4 * C);
            return g.add_node(std::move(n));
        };
        int c1 = conv("conv1", x, w1, s1, b1, 3);
        int r1 = g.add_node(node(OpKind::Relu, "relu1", {c1}));
        int c2 = conv("conv2", r1, w2, s2, b2, 1);
        int a = g.add_node(node(OpKind::Add, "add", {c2, r1}));
        int r2 = g.add_node(node(OpKind::Relu, "relu2", {a}));
        GraphNode mp = node(OpKind::MaxPool, "pool", {r2});
        mp.window = {3, 3, 2, 2, 1, 1, 1, 1};
        int p = g.add_node(std::move(mp));
        int gp = g.add_node(node(OpKind::GlobalAvgPool, "gap", {p}));
        int f = g.add_node(node(OpKind::Flatten, "flatten", {gp}));
        GraphNode d = node(OpKind::Dense, "fc", {f});
        d.weights = Tensor(DType::s8, {K, C});
        for (size_t i = 0; i < w3.size(); i++) d.weights.data<int8_t>()[i] = int8_t(w3[i]);
        d.weights.quant.scale = s3;
        d.weights.quant.axis = 0;
        d.bias = Tensor(DType::s32, {K});
        std::memcpy(d.bias.raw(), b3.data(), 4 * K);
        int y = g.add_node(std::move(d));
        g.outputs = {y};
        g.values[r1].quant = QuantParams::per_tensor(0.1f, 3);
        g.values[c2].quant = QuantParams::per_tensor(0.2f, 120);  // the conv's own result in conv_add
        g.values[a].quant = QuantParams::per_tensor(0.15f, 60);
        g.values[r2].quant = QuantParams::per_tensor(0.15f, 60);
        g.values[gp].quant = QuantParams::per_tensor(0.07f, 10);
    }

    // The same network from the reference ops, step by step (ONNX QOperator semantics).
    std::vector<float> reference(const Tensor &xf) const {
        auto q = [&](const std::string &n) { return g.values[g.find_value(n)].quant; };
        const QuantParams qx = q("x"), q1 = q("relu1"), qc2 = q("conv2"), qy = q("relu2"), qg = q("gap");
        std::vector<uint8_t> x(xf.numel());
        for (size_t i = 0; i < x.size(); i++) x[i] = uint8_t(ref::quantize(xf.data<float>()[i], qx.scale[0], qx.zero_point[0], 0, 255));
        auto mults = [](float sx, const std::vector<float> &sw, float sy) {
            std::vector<float> m;
            for (float s : sw) m.push_back((sx * s) / sy);
            return m;
        };
        ref::ConvProblem p3{1, H, W, C, C, 3, 3, 1, 1, 1, 1, 1, 1}, p1{1, H, W, C, C, 1, 1};
        std::vector<int32_t> zw(C, 0);
        auto y1 = ref::requantize_all(ref::conv2d_acc(p3, x, qx.zero_point[0], w1, zw, b1), C,
                                      mults(qx.scale[0], s1, q1.scale[0]), q1.zero_point[0], q1.zero_point[0], 255);
        std::vector<uint8_t> y1u(y1.begin(), y1.end());
        auto c2 = ref::requantize_all(ref::conv2d_acc(p1, y1u, q1.zero_point[0], w2, zw, b2), C,
                                      mults(q1.scale[0], s2, qc2.scale[0]), qc2.zero_point[0], 0, 255);
        std::vector<int32_t> y2(c2.size());
        for (size_t i = 0; i < y2.size(); i++)
            y2[i] = ref::quantized_add(c2[i], qc2.zero_point[0], qc2.scale[0] / qy.scale[0], y1[i], q1.zero_point[0],
                                       q1.scale[0] / qy.scale[0], qy.zero_point[0], qy.zero_point[0], 255);
        const int oh = 5, ow = 5;
        auto pooled = ref::maxpool(y2, 1, H, W, C, 3, 3, 2, 2, 1, 1, oh, ow);
        std::vector<uint8_t> pu(pooled.begin(), pooled.end());
        auto gap = ref::global_avgpool(pu, 1, oh * ow, C, qy.zero_point[0], qy.scale[0], qg.zero_point[0], qg.scale[0]);
        std::vector<float> out(K);
        for (int o = 0; o < K; o++) {
            int64_t acc = b3[o];
            for (int c = 0; c < C; c++) acc += int64_t(gap[c] - qg.zero_point[0]) * w3[o * C + c];
            out[o] = ref::dequantize(int32_t(acc), qg.scale[0] * s3[o], 0);
        }
        return out;
    }
};

}  // namespace

TEST(Model, SmallQuantGraphBitExactWithReferenceOps) {
    SmallQuantGraph sg;
    Tensor x = random_input({1, 9, 9, 8}, 3);
    std::vector<float> want = sg.reference(x);
    QH_FOR_EACH_TARGET(tag) {
        auto m = Model::prepare(sg.g, {});
        set_input(*m, x);
        m->execute();
        std::vector<float> got = output_vec(*m);
        ASSERT_EQ(got.size(), want.size());
        for (size_t i = 0; i < got.size(); i++) EXPECT_EQ(got[i], want[i]) << tag << " logit " << i;
        // Fusions happened as documented.
        std::vector<std::string> ops;
        for (const auto &l : m->layers()) ops.push_back(l.op);
        std::vector<std::string> expect = {"quantize", "conv2d+relu", "conv2d_add+relu", "maxpool",
                                           "global_avgpool", "dense", "dequantize"};
        EXPECT_EQ(ops, expect);
        EXPECT_NE(m->layers()[1].kernel.find(tag), std::string::npos) << m->layers()[1].kernel;
    }
}

TEST(Model, ExecuteIsRepeatableAndBatchIndependent) {
    SmallQuantGraph sg;
    Tensor x1 = random_input({1, 9, 9, 8}, 11), x2 = random_input({1, 9, 9, 8}, 12);
    auto m1 = Model::prepare(sg.g, {});
    auto m2 = Model::prepare(sg.g, {2});
    std::memcpy(m2->input(0).raw(), x1.raw(), x1.nbytes());
    std::memcpy(m2->input(0).data<float>() + x1.numel(), x2.raw(), x2.nbytes());
    m2->execute();
    for (int b = 0; b < 2; b++) {
        set_input(*m1, b ? x2 : x1);
        m1->execute();
        m1->execute();
        std::vector<float> one = output_vec(*m1);
        for (int k = 0; k < 5; k++) EXPECT_EQ(m2->output(0).data<float>()[b * 5 + k], one[k]) << "batch " << b;
    }
}

// ResNet-18 at 64x64 keeps the test fast; same builder as the app's 224x224 models.
class ResNetSmall : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        g_ = new Graph(build_resnet({18, 10, 64}));
        std::vector<Tensor> samples;
        for (int i = 0; i < 3; i++) samples.push_back(random_input({1, 64, 64, 3}, 100 + i));
        int calls = 0;
        CalibrationOptions co;
        co.progress = [&](int done, int total) {
            calls++;
            EXPECT_EQ(total, 3);
            EXPECT_EQ(done, calls);
        };
        calibrate(*g_, samples, co);
        EXPECT_EQ(calls, 3);
    }
    static void TearDownTestSuite() { delete g_; }
    static Graph *g_;
};
Graph *ResNetSmall::g_ = nullptr;

TEST_F(ResNetSmall, Int8AgreesWithFp32) {
    auto mf = Model::prepare(*g_, {1, 0, Precision::fp32});
    auto mq = Model::prepare(*g_, {});
    int agree = 0;
    for (int s = 0; s < 4; s++) {
        Tensor x = random_input({1, 64, 64, 3}, 200 + s);
        set_input(*mf, x);
        set_input(*mq, x);
        mf->execute();
        mq->execute();
        auto a = output_vec(*mf), b = output_vec(*mq);
        double dot = 0, na = 0, nb = 0;
        for (size_t i = 0; i < a.size(); i++) dot += a[i] * b[i], na += a[i] * a[i], nb += b[i] * b[i];
        EXPECT_GT(dot / std::sqrt(na * nb), 0.99) << "sample " << s;
        agree += argmax(a.data(), 10) == argmax(b.data(), 10);
    }
    EXPECT_GE(agree, 3);
}

TEST_F(ResNetSmall, EveryKernelVariantGivesIdenticalLogits) {
    Tensor x = random_input({2, 64, 64, 3}, 300);
    std::vector<float> first;
    QH_FOR_EACH_TARGET(tag) {
        auto m = Model::prepare(*g_, {2});
        set_input(*m, x);
        m->execute();
        auto out = output_vec(*m);
        if (first.empty())
            first = out;
        else
            EXPECT_EQ(out, first) << tag;
    }
}

TEST_F(ResNetSmall, FusesResidualsAndPlansOneArena) {
    auto m = Model::prepare(*g_, {});
    int conv = 0, conv_add = 0;
    for (const auto &l : m->layers()) {
        conv += l.op.rfind("conv2d", 0) == 0;
        conv_add += l.op == "conv2d_add+relu";
        EXPECT_NE(l.op, "relu") << l.name << ": every ReLU of ResNet-18 fuses into a conv or add";
    }
    EXPECT_EQ(conv, 20);     // 17 convs + 3 downsample convs (BatchNorm folded)
    EXPECT_EQ(conv_add, 8);  // every residual add fused into the conv before it
    // The arena is smaller than all intermediate u8 tensors together.
    auto shapes = infer_shapes(fold_batchnorm(*g_), 1);
    size_t all = 0;
    for (auto &s : shapes) {
        size_t n = 1;
        for (auto d : s) n *= size_t(d);
        all += n;
    }
    EXPECT_GT(m->arena_bytes(), 0u);
    EXPECT_LT(m->arena_bytes(), all / 3);
}

TEST_F(ResNetSmall, PercentileCalibrationClipsAndOverridesApply) {
    Graph g = build_resnet({18, 10, 64});
    std::vector<Tensor> samples = {random_input({1, 64, 64, 3}, 100)};
    CalibrationOptions co;
    co.method = CalibrationOptions::Method::percentile;
    co.percentile = 99.0;
    co.overrides["layer1.0.relu1"] = QuantParams::per_tensor(0.5f, 0);
    calibrate(g, samples, co);
    Graph gm = build_resnet({18, 10, 64});
    calibrate(gm, samples, {});
    int tighter = 0;
    for (size_t i = 0; i < g.values.size(); i++) {
        if (g.values[i].quant.empty() || g.values[i].name == "layer1.0.relu1") continue;
        EXPECT_LE(g.values[i].quant.scale[0], gm.values[i].quant.scale[0] * 1.0001f) << g.values[i].name;
        tighter += g.values[i].quant.scale[0] < gm.values[i].quant.scale[0] * 0.9f;
    }
    EXPECT_GT(tighter, 10);
    EXPECT_EQ(g.values[g.find_value("layer1.0.relu1")].quant.scale[0], 0.5f);
    EXPECT_TRUE(g.values[g.find_value("fc")].quant.empty()) << "graph outputs stay float";
}

TEST(ModelErrors, UncalibratedFloatModelNamesTheNode) {
    Graph g = build_resnet({18, 10, 64});
    try {
        Model::prepare(g, {});
        FAIL() << "expected an error";
    } catch (const std::runtime_error &e) {
        EXPECT_NE(std::string(e.what()).find("no quantization parameters"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("calibrate"), std::string::npos) << e.what();
    }
    EXPECT_NO_THROW(Model::prepare(g, {1, 0, Precision::fp32}));
}

TEST(ModelErrors, ShapeMismatchesNameTheNode) {
    SmallQuantGraph sg;
    sg.g.values[0].shape = {1, 9, 9, 6};  // weights expect 8 channels
    try {
        Model::prepare(sg.g, {});
        FAIL();
    } catch (const std::runtime_error &e) {
        EXPECT_NE(std::string(e.what()).find("'conv1'"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("8"), std::string::npos) << e.what();
    }
    SmallQuantGraph s2;
    s2.g.nodes[5].op = OpKind::Flatten;  // flatten a 5x5 map: refused
    EXPECT_THROW(Model::prepare(s2.g, {}), std::runtime_error);
    SmallQuantGraph s3;
    s3.g.nodes[1].inputs = {s3.g.nodes[2].output};  // use before definition
    EXPECT_THROW(s3.g.validate(), std::runtime_error);
    EXPECT_THROW(Model::prepare(s3.g, {0}), std::runtime_error);
    EXPECT_THROW(calibrate(s3.g, {}, {}), std::runtime_error);
}

TEST(ModelErrors, CalibrationSampleShapeIsChecked) {
    Graph g = build_resnet({18, 10, 64});
    try {
        calibrate(g, {random_input({1, 32, 32, 3}, 1)}, {});
        FAIL();
    } catch (const std::runtime_error &e) {
        EXPECT_NE(std::string(e.what()).find("sample 0"), std::string::npos) << e.what();
    }
}

TEST(Calibration, QuantFromRangeMatchesOnnxRuntime) {
    // scale = (max(hi,0) - min(lo,0)) / 255, zp = round(-lo / scale)
    QuantParams q = quant_from_range(-1.f, 3.f);
    EXPECT_FLOAT_EQ(q.scale[0], 4.f / 255.f);
    EXPECT_EQ(q.zero_point[0], 64);
    q = quant_from_range(0.5f, 2.f);  // range widened to include 0
    EXPECT_FLOAT_EQ(q.scale[0], 2.f / 255.f);
    EXPECT_EQ(q.zero_point[0], 0);
    q = quant_from_range(0.f, 0.f);  // degenerate: scale 1
    EXPECT_EQ(q.scale[0], 1.f);
}
