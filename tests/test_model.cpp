// Graph runtime end to end: prepare/execute of quantized graphs against a composition of the
// plain C++ reference ops (bit-exact), the built-in ResNets (int8 vs the fp32 path, every kernel
// variant identical), calibration, memory planning and the error cases.
#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <cstring>
#include <random>

#include "model.h"
#include "reference_ops.h"
#include "models/resnet.h"
#include "small_quant_graph.h"
#include "mobile_graphs.h"
#include "test_util.h"

using namespace qh;
using qh::testing_graphs::node;
using qh::testing_graphs::SmallQuantGraph;
using qh::test::random_input;

namespace {

void set_input(Model &m, const Tensor &x) {
    ASSERT_EQ(m.input(0).shape(), x.shape());
    std::memcpy(m.input(0).raw(), x.raw(), x.nbytes());
}

std::vector<float> output_vec(const Model &m) {
    const Tensor &y = m.output(0);
    return std::vector<float>(y.data<float>(), y.data<float>() + y.numel());
}

int argmax(const float *p, int n) { return int(std::max_element(p, p + n) - p); }


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

// Layout changes at a model's edge: element (n, c, h, w) of the NCHW tensor is element
// (n, h, w, c) of the NHWC one, for 8-bit, 32-bit and 4-bit (nibble-packed, odd count) tensors.
TEST(Layout, ConvertersMapEveryElement) {
    Tensor f(DType::f32, {2, 3, 4, 5});  // NCHW
    for (int64_t i = 0; i < f.numel(); i++) f.data<float>()[i] = float(i);
    Tensor h = nchw_to_nhwc(f);
    ASSERT_EQ(h.shape(), (std::vector<int64_t>{2, 4, 5, 3}));
    for (int n = 0; n < 2; n++)
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < 4; y++)
                for (int x = 0; x < 5; x++)
                    ASSERT_EQ(h.data<float>()[((n * 4 + y) * 5 + x) * 3 + c], float(((n * 3 + c) * 4 + y) * 5 + x));
    Tensor back = nhwc_to_nchw(h);
    EXPECT_EQ(std::memcmp(back.raw(), f.raw(), f.nbytes()), 0);
    Tensor u(DType::u8, {1, 40, 33, 70});  // more than one 32 x 32 tile each way
    for (int64_t i = 0; i < u.numel(); i++) u.data<uint8_t>()[i] = uint8_t(i * 7 + i / 251);
    Tensor ub = nhwc_to_nchw(nchw_to_nhwc(u));
    EXPECT_EQ(std::memcmp(ub.raw(), u.raw(), u.nbytes()), 0);
    EXPECT_EQ(nchw_to_nhwc(u).data<uint8_t>()[69 * 40 + 1], u.data<uint8_t>()[1 * 33 * 70 + 69]);  // (0,1,0,69)
    Tensor q(DType::u4, {1, 3, 1, 3});  // NCHW values 0..8, two per byte
    std::memset(q.raw(), 0, q.nbytes());
    for (int i = 0; i < 9; i++) static_cast<uint8_t *>(q.raw())[i / 2] |= uint8_t(i << (4 * (i & 1)));
    Tensor qh4 = nchw_to_nhwc(q);
    ASSERT_EQ(qh4.nbytes(), 5u);
    const uint8_t want[5] = {0x30, 0x16, 0x74, 0x52, 0x08};  // NHWC order 0 3 6 1 4 7 2 5 8
    EXPECT_EQ(std::memcmp(qh4.raw(), want, 5), 0);
    Tensor wrong(DType::f32, {2, 3, 4, 5});
    try {
        nchw_to_nhwc(f, wrong);
        FAIL() << "a wrongly shaped destination was accepted";
    } catch (const std::invalid_argument &e) {
        EXPECT_NE(std::string(e.what()).find("f32[2,4,5,3]"), std::string::npos) << e.what();
    }
    EXPECT_THROW(nchw_to_nhwc(Tensor(DType::f32, {2, 3})), std::invalid_argument);
}

// A graph that declares NCHW (every ONNX model) takes and gives its rank-4 tensors in NCHW:
// Model::input / output, run() and execution contexts; rank-2 outputs are unchanged. The values
// are those of the same graph run in NHWC.
TEST(Model, DeclaredNchwLayoutIsConvertedAtTheEdge) {
    SmallQuantGraph sg;
    sg.g.outputs.push_back(sg.g.find_value("relu2"));  // a rank-4 output {N,9,9,8}
    Graph nchw = sg.g;
    nchw.io_layout = Layout::nchw;
    EXPECT_EQ(nchw.io_shape(nchw.inputs[0]), (std::vector<int64_t>{1, 8, 9, 9}));
    Tensor x = random_input({2, 9, 9, 8}, 5);
    auto a = Model::prepare(sg.g, {2});
    auto b = Model::prepare(nchw, {2});
    EXPECT_EQ(a->input_layout(0), Layout::nhwc);
    EXPECT_EQ(b->input_layout(0), Layout::nchw);
    EXPECT_EQ(b->output_layout(0), Layout::nhwc);  // logits {N,K}: one layout
    EXPECT_EQ(b->output_layout(1), Layout::nchw);
    ASSERT_EQ(b->input(0).shape(), (std::vector<int64_t>{2, 8, 9, 9}));
    ASSERT_EQ(b->output(1).shape(), (std::vector<int64_t>{2, 8, 9, 9}));
    std::memcpy(a->input(0).raw(), x.raw(), x.nbytes());
    const Tensor xc = nhwc_to_nchw(x);
    std::memcpy(b->input(0).raw(), xc.raw(), xc.nbytes());
    a->execute();
    b->execute();
    EXPECT_EQ(std::memcmp(a->output(0).raw(), b->output(0).raw(), a->output(0).nbytes()), 0);
    int differ = 0;
    for (int n = 0; n < 2; n++)
        for (int c = 0; c < 8; c++)
            for (int p = 0; p < 81; p++)
                differ += b->output(1).data<float>()[(n * 8 + c) * 81 + p] != a->output(1).data<float>()[(n * 81 + p) * 8 + c];
    EXPECT_EQ(differ, 0);
    std::vector<Tensor> r = b->run({xc});
    ASSERT_EQ(r.size(), 2u);
    EXPECT_EQ(r[1].shape(), b->output(1).shape());
    EXPECT_EQ(std::memcmp(r[1].raw(), b->output(1).raw(), r[1].nbytes()), 0);
    auto ctx = b->create_context();
    std::memcpy(ctx->input(0).raw(), xc.raw(), xc.nbytes());
    ctx->execute();
    EXPECT_EQ(std::memcmp(ctx->output(1).raw(), b->output(1).raw(), r[1].nbytes()), 0);
    EXPECT_THROW(b->run({x}), std::invalid_argument);  // NHWC where NCHW is declared
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

// MobileNetV2-style and EfficientNet-style graphs (tests/mobile_graphs.h: depthwise, grouped
// and dilated convs, ReLU6, SiLU, squeeze-excitation Mul, HardSwish, Concat, AveragePool):
// every CPU variant gives the same logits, bit for bit, at batch 2; the int8 model agrees with
// fp32; every op runs on its kernel (no fp32 fallback inside the int8 model).
TEST(MobileGraphs, EveryKernelVariantGivesIdenticalLogits) {
    for (Graph g : {testing_graphs::mobilenet_v2_graph(), testing_graphs::efficientnet_graph()}) {
        SCOPED_TRACE(g.name);
        g = testing_graphs::calibrated(g);
        Tensor x = random_input({2, 32, 32, 3}, 301);
        std::vector<float> first;
        std::string first_tag;
        QH_FOR_EACH_TARGET(tag) {
            auto m = Model::prepare(g, {2});
            std::set<std::string> ops;
            for (const auto &l : m->layers()) {
                ops.insert(l.op.substr(0, l.op.find('+')));
                EXPECT_EQ(l.kernel.find("fp32"), std::string::npos) << l.name << " " << l.kernel;
            }
            const bool mv2 = g.name == "mobilenet_v2_style";
            for (const char *op : mv2 ? std::vector<const char *>{"conv2d_grouped", "concat", "avgpool", "conv2d_add"}
                                      : std::vector<const char *>{"conv2d_grouped", "mul", "sigmoid", "hard_sigmoid", "conv2d_add"})
                EXPECT_TRUE(ops.count(op)) << op;
            set_input(*m, x);
            m->execute();
            auto out = output_vec(*m);
            if (first.empty()) {
                first = out;
                first_tag = tag;
            } else {
                EXPECT_EQ(out, first) << tag << " vs " << first_tag;
            }
        }
        auto mf = Model::prepare(g, {2, 0, Precision::fp32});
        set_input(*mf, x);
        mf->execute();
        auto f = output_vec(*mf);
        double dot = 0, na = 0, nb = 0;
        for (size_t i = 0; i < f.size(); i++) dot += f[i] * first[i], na += f[i] * f[i], nb += first[i] * first[i];
        EXPECT_GT(dot / std::sqrt(na * nb), 0.98) << "int8 vs fp32 logit cosine";
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
