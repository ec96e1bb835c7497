// Reliability (issue "Reliability"): the reproducers of every class of failure found by the
// independent test of 4d6265a, each asserting the exact clean error; and concurrent execution
// (execution contexts, Model::run) bit-exact with one thread.
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <functional>
#include <random>
#include <thread>

#include "HalideRuntime.h"
#include "graph.h"
#include "kernels.h"
#include "model.h"
#include "onnx_builder.h"
#include "onnx_import.h"
#include "ops.h"
#include "models/resnet.h"
#include "resource_limits.h"
#include "small_quant_graph.h"
#include "test_util.h"

namespace qh::test {
namespace {

// f must throw E whose message contains every part, and the message must be one line.
template <typename E = std::exception>
void expect_error(const std::function<void()> &f, const std::vector<std::string> &parts) {
    try {
        f();
    } catch (const E &e) {
        const std::string msg = e.what();
        for (const auto &p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
        EXPECT_EQ(msg.find('\n'), std::string::npos) << "message spans lines: " << msg;
        return;
    } catch (const std::exception &e) {
        ADD_FAILURE() << "wrong exception type: " << e.what();
        return;
    }
    ADD_FAILURE() << "no error thrown (expected one containing '" << (parts.empty() ? "" : parts[0]) << "')";
}

// Sets the memory budget for one scope.
struct Budget {
    explicit Budget(size_t b) { set_memory_budget(b); }
    ~Budget() { set_memory_budget(0); }
};

// x -> QuantizeLinear -> DequantizeLinear -> Relu -> QuantizeLinear -> DequantizeLinear: the
// 5-node model whose lowering read freed memory (a reference into the value list was kept while
// an internal value was appended). Under ASan/valgrind this is the regression test; here the
// result is checked against the ONNX arithmetic.
OnnxBuilder qdq_relu_model() {
    OnnxBuilder m("qdq_relu");
    m.input("x", {1, 2, 2, 2});
    m.f32("x_s", {}, {0.1f});
    m.ints("x_z", TP::UINT8, {}, {128});
    m.f32("y_s", {}, {0.05f});
    m.ints("y_z", TP::UINT8, {}, {3});
    m.node("QuantizeLinear", {"x", "x_s", "x_z"}, {"x_q"}, "q1");
    m.node("DequantizeLinear", {"x_q", "x_s", "x_z"}, {"x_dq"}, "dq1");
    m.node("Relu", {"x_dq"}, {"r"}, "relu");
    m.node("QuantizeLinear", {"r", "y_s", "y_z"}, {"r_q"}, "q2");
    m.node("DequantizeLinear", {"r_q", "y_s", "y_z"}, {"y"}, "dq2");
    m.output("y");
    return m;
}

TEST(Reliability, QdqReluChainRunsAndIsExact) {
    Graph g = qdq_relu_model().import();
    auto m = Model::prepare(g, {});
    const std::vector<float> x = {-1.f, -0.25f, 0.f, 0.3f, 0.75f, 2.5f, 10.f, -13.f};
    std::memcpy(m->input(0).raw(), x.data(), x.size() * 4);
    m->execute();
    for (size_t i = 0; i < x.size(); i++) {
        // x layout: NCHW {1,2,2,2} read as NHWC data, elementwise ops do not care.
        const float q = std::clamp(std::nearbyint(x[i] / 0.1f) + 128.f, 0.f, 255.f);
        const float r = std::max(0.f, (q - 128.f) * 0.1f);
        const float q2 = std::clamp(std::nearbyint(r / 0.05f) + 3.f, 0.f, 255.f);
        EXPECT_EQ(m->output(0).data<float>()[i], (q2 - 3.f) * 0.05f) << "element " << i;
    }
}

TEST(Reliability, HalideErrorsBecomeExceptionsNotExits) {
    install_halide_error_handler();
    halide_error(nullptr, "first line\nsecond line\n");  // the default handler would exit(1)
    EXPECT_EQ(take_halide_error(), "first line second line");
    EXPECT_EQ(take_halide_error(), "");
    BoundOp op("conv2d 'layer7'", "conv2d_u8s8u8__generic", [] {
        halide_error(nullptr, "Input buffer x is accessed at 100, which is beyond the max (99) in dimension 1");
        return -1;
    });
    expect_error<std::runtime_error>([&] { op.run(); },
                                     {"conv2d 'layer7': kernel conv2d_u8s8u8__generic failed with Halide error -1: "
                                      "Input buffer x is accessed at 100"});
}

TEST(Reliability, KernelBufferOver2GiBIsRefusedBeforeHalide) {
    static float dummy;  // never touched: the size check comes first
    Tensor x = Tensor::wrap(DType::f32, {1, 1 << 16, 1 << 14, 1}, &dummy, QuantParams::per_tensor(1.f, 0));
    Tensor y = Tensor::wrap(DType::u8, {1, 1 << 16, 1 << 14, 1}, &dummy, QuantParams::per_tensor(1.f, 0));
    expect_error<std::length_error>([&] { bind_quantize(x, y); },
                                    {"tensor f32[1,65536,16384,1] is 4294967296 bytes, more than a kernel buffer's limit"});
}

// x `in` -> Conv "conv" (weights, bias) [-> MaxPool "pool", a pool x pool window, stride pool]:
// the float graph the size and number checks below build.
Graph conv_graph(const std::string &name, std::vector<int64_t> in, Tensor weights, Tensor bias = {}, int pool = 0) {
    using testing_graphs::node;
    Graph g;
    g.name = name;
    int x = g.add_value("x", std::move(in));
    g.inputs = {x};
    GraphNode c = node(OpKind::Conv, "conv", {x});
    c.weights = std::move(weights);
    c.bias = std::move(bias);
    int y = g.add_node(c);
    if (pool > 0) {
        GraphNode p = node(OpKind::MaxPool, "pool", {y});
        p.window.kernel_h = p.window.kernel_w = p.window.stride_h = p.window.stride_w = pool;
        y = g.add_node(p);
    }
    g.outputs = {y};
    return g;
}

// A float model whose one intermediate (1 GiB) exceeds the budget: refused before the arena is
// allocated, naming the budget.
TEST(Reliability, ArenaOverTheMemoryBudgetIsAnError) {
    Graph g = conv_graph("big", {1, 2048, 2048, 3}, Tensor(DType::f32, {64, 3, 1, 1}), {}, 2);
    Budget b(256 << 20);
    PrepareOptions o;
    o.precision = Precision::fp32;
    expect_error<std::length_error>([&] { Model::prepare(g, o); },
                                    {"model 'big': an execution context (arena, inputs, outputs) needs 1.3 GiB",
                                     "more than the memory budget of 256.0 MiB"});
}

// 2^31 elements declared by a few bytes of protobuf: the data is checked against the shape
// before anything is allocated (with a 64 MiB budget an allocation would fail differently).
TEST(Reliability, DeclaredInitializerSizeIsCheckedBeforeAllocation) {
    Budget b(64 << 20);
    OnnxBuilder m("liar");
    m.input("x", {1, 4});
    TP &t = m.init("W", TP::FLOAT, {1 << 16, 1 << 15});
    t.set_raw_data(std::string(4, '\0'));
    m.node("MatMul", {"x", "W"}, {"y"}, "mm");
    m.output("y");
    expect_error<std::runtime_error>([&] { m.import(); },
                                     {"raw_data has 4 bytes, shape [65536,32768] of FLOAT needs 8589934592"});
    OnnxBuilder n("liar2");
    n.input("x", {1, 4});
    n.init("W", TP::FLOAT, {1 << 16, 1 << 15}).add_float_data(1.f);
    n.node("MatMul", {"x", "W"}, {"y"}, "mm");
    n.output("y");
    expect_error<std::runtime_error>([&] { n.import(); }, {"float_data has 1 values for shape [65536,32768]"});
}

TEST(Reliability, HugeDeclaredShapesAreRefused) {
    OnnxBuilder m("huge_input");
    m.input("x", {1, 3, 65536, 65536});
    m.node("Relu", {"x"}, {"y"}, "relu");
    m.output("y");
    expect_error<std::runtime_error>([&] { m.import(); }, {"graph input 'x'", "more than 2147483648 elements"});
    OnnxBuilder d("huge_dim");
    d.input("x", {1, 3, int64_t(1) << 32, 1});
    d.node("Relu", {"x"}, {"y"}, "relu");
    d.output("y");
    expect_error<std::runtime_error>([&] { d.import(); }, {"dimension 4294967296", "does not fit in int32"});
    // A shape that is fine at batch 1 and too large at the prepared batch.
    Graph g = build_resnet({18, 10, 224});
    PrepareOptions o;
    o.batch = 100000;
    o.precision = Precision::fp32;
    expect_error<std::length_error>([&] { Model::prepare(g, o); }, {"at batch 100000", "more than 2147483648 elements"});
    // Pads that would overflow the window arithmetic.
    OnnxBuilder p("huge_pads");
    p.input("x", {1, 1, 4, 4});
    auto &mp = p.node("MaxPool", {"x"}, {"y"}, "pool");
    attr(mp, "kernel_shape", {2, 2});
    attr(mp, "pads", {0, 0, int64_t(1) << 40, 0});
    p.output("y");
    expect_error<std::runtime_error>([&] { p.import(); }, {"node 'pool' (MaxPool)", "out of range 0..65535"});
}

TEST(Reliability, EmptyWeightsAreAnError) {
    Graph g = conv_graph("empty", {1, 4, 4, 3}, Tensor(DType::f32, {0, 3, 1, 1}));
    expect_error<std::runtime_error>([&] { Model::prepare(g, {}); },
                                     {"node 'conv' (Conv): weights f32[0,3,1,1] have an empty dimension"});
}

TEST(Reliability, NamesWithNewlinesStayOnOneLine) {
    OnnxBuilder m("two\nlines");
    m.input("x", {1, 4});
    m.node("Erf", {"x"}, {"y"}, "bad\nnode");
    m.output("y");
    expect_error<std::runtime_error>([&] { m.import(); }, {"bad\\nnode"});
}

TEST(Reliability, ThreadCountIsBounded) {
    Graph g = qdq_relu_model().import();
    PrepareOptions o;
    o.threads = 100000;
    expect_error<std::invalid_argument>([&] { Model::prepare(g, o); },
                                        {"PrepareOptions::threads: 100000 threads, expected 0 (all cores) to"});
    o.threads = -1;
    expect_error<std::invalid_argument>([&] { Model::prepare(g, o); }, {"-1 threads"});
}

// Import and prepare are linear in the graph size (Graph::add_value and plan() were quadratic:
// 128k nodes took > 20 s). The ctest TIMEOUT of this test (60 s) is the check; linear takes ~1 s.
TEST(Reliability, LongChainImportsAndPreparesInLinearTime) {
    const int n = 128 * 1024;
    OnnxBuilder m("chain");
    m.input("v0", {1, 4});
    for (int i = 0; i < n; i++) m.node("Relu", {"v" + std::to_string(i)}, {"v" + std::to_string(i + 1)}, "r" + std::to_string(i));
    m.output("v" + std::to_string(n));
    Graph g = m.import();
    ASSERT_EQ(g.nodes.size(), size_t(n));
    PrepareOptions o;
    o.precision = Precision::fp32;
    auto model = Model::prepare(g, o);
    const float x[4] = {-1.f, 2.f, -3.f, 4.f};
    std::memcpy(model->input(0).raw(), x, sizeof x);
    model->execute();
    EXPECT_EQ(model->output(0).data<float>()[1], 2.f);
    EXPECT_EQ(model->output(0).data<float>()[2], 0.f);
    EXPECT_LE(model->arena_bytes(), 2u * 64u) << "a chain needs two live slots";
}

// Non-finite numbers from a file never reach a float -> integer conversion: weights, bias, scales
// and calibration ranges are checked where they are quantized.
TEST(Reliability, NonFiniteWeightsScalesAndRangesAreErrors) {
    auto quantized = [](float w0, float bias0) {
        Tensor w(DType::f32, {2, 3, 1, 1}), b(DType::f32, {2});
        for (int k = 0; k < 6; k++) w.data<float>()[k] = 0.5f;
        w.data<float>()[0] = w0;
        b.data<float>()[0] = bias0;
        Graph g = conv_graph("nan", {1, 4, 4, 3}, w, b, 1);
        g.values[g.find_value("x")].quant = QuantParams::per_tensor(0.1f, 0);
        g.values[g.find_value("conv")].quant = QuantParams::per_tensor(0.2f, 0);
        return g;
    };
    EXPECT_NO_THROW(Model::prepare(quantized(0.25f, 1.f), {}));
    expect_error<std::runtime_error>([&] { Model::prepare(quantized(NAN, 1.f), {}); },
                                     {"node 'conv' (Conv): weights f32[2,3,1,1] hold a NaN or infinity at element 0"});
    expect_error<std::runtime_error>([&] { Model::prepare(quantized(INFINITY, 1.f), {}); }, {"NaN or infinity"});
    expect_error<std::runtime_error>([&] { Model::prepare(quantized(0.25f, NAN), {}); },
                                     {"node 'conv' (Conv): bias nan of output channel 0 cannot be quantized"});
    Graph bad_scale = quantized(0.25f, 1.f);
    bad_scale.values[bad_scale.inputs[0]].quant = QuantParams::per_tensor(-1.f, 0);
    expect_error<std::runtime_error>([&] { Model::prepare(bad_scale, {}); },
                                     {"value 'x' has scale -1.000000 (must be finite and positive)"});
    expect_error<std::invalid_argument>([] { quant_from_range(-INFINITY, 1.f); }, {"is not finite"});
    const QuantParams wide = quant_from_range(-3e38f, 3e38f);  // (hi - lo) overflows float
    EXPECT_EQ(wide.scale[0], 1.f);
    EXPECT_EQ(wide.zero_point[0], 255);
}

// ---- concurrency ---------------------------------------------------------------------------

class Concurrency : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        g_ = new Graph(build_resnet({18, 10, 64}));
        calibrate(*g_, {random_input({1, 64, 64, 3}, 1)}, {});
        for (int i = 0; i < kInputs; i++) inputs_.push_back(random_input({1, 64, 64, 3}, 100 + i));
    }
    static void TearDownTestSuite() {
        delete g_;
        g_ = nullptr;
        inputs_.clear();
    }
    // One thread, default context: the reference logits of every input.
    static std::vector<std::vector<float>> reference(Model &m) {
        std::vector<std::vector<float>> r;
        for (const Tensor &x : inputs_) {
            std::memcpy(m.input(0).raw(), x.raw(), x.nbytes());
            m.execute();
            const Tensor &y = m.output(0);
            r.emplace_back(y.data<float>(), y.data<float>() + y.numel());
        }
        return r;
    }
    static constexpr int kInputs = 4, kThreads = 4, kRuns = 12;
    static Graph *g_;
    static std::vector<Tensor> inputs_;
};
Graph *Concurrency::g_ = nullptr;
std::vector<Tensor> Concurrency::inputs_;

// One context per thread (TensorRT's model), kThreads x kRuns runs, every output bit-exact.
TEST_F(Concurrency, ContextsPerThreadAreBitExact) {
    for (Precision p : {Precision::int8, Precision::fp32}) {
        PrepareOptions o;
        o.precision = p;
        o.threads = 2;
        auto m = Model::prepare(*g_, o);
        const auto ref = reference(*m);
        std::atomic<int> mismatches{0}, runs{0};
        std::vector<std::thread> ts;
        for (int t = 0; t < kThreads; t++)
            ts.emplace_back([&, t] {
                auto ctx = m->create_context();
                for (int r = 0; r < kRuns; r++) {
                    const int k = (t + r) % kInputs;
                    std::memcpy(ctx->input(0).raw(), inputs_[k].raw(), inputs_[k].nbytes());
                    ctx->execute();
                    const Tensor &y = ctx->output(0);
                    if (std::memcmp(y.raw(), ref[k].data(), y.nbytes()) != 0) mismatches++;
                    runs++;
                }
            });
        for (auto &t : ts) t.join();
        EXPECT_EQ(runs.load(), kThreads * kRuns);
        EXPECT_EQ(mismatches.load(), 0) << precision_name(p);
    }
}

// Model::run from many threads at once (ONNX Runtime's Session::Run), also while the default
// context runs on another thread.
TEST_F(Concurrency, RunIsReentrantAndBitExact) {
    PrepareOptions o;
    o.threads = 2;
    auto m = Model::prepare(*g_, o);
    const auto ref = reference(*m);
    std::atomic<int> mismatches{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < kThreads; t++)
        ts.emplace_back([&, t] {
            for (int r = 0; r < kRuns; r++) {
                const int k = (t * 3 + r) % kInputs;
                std::vector<Tensor> out = m->run({inputs_[k]});
                if (out.size() != 1 || std::memcmp(out[0].raw(), ref[k].data(), out[0].nbytes()) != 0) mismatches++;
            }
        });
    ts.emplace_back([&] {  // the default context, concurrently with run()
        for (int r = 0; r < kRuns; r++) {
            const int k = r % kInputs;
            std::memcpy(m->input(0).raw(), inputs_[k].raw(), inputs_[k].nbytes());
            m->execute();
            if (std::memcmp(m->output(0).raw(), ref[k].data(), m->output(0).nbytes()) != 0) mismatches++;
        }
    });
    for (auto &t : ts) t.join();
    EXPECT_EQ(mismatches.load(), 0);
    expect_error<std::invalid_argument>([&] { m->run({}); }, {"run() got 0 inputs, the model has 1"});
    expect_error<std::invalid_argument>([&] { m->run({random_input({1, 32, 32, 3}, 0)}); },
                                        {"input 0 ('input') is f32[1,32,32,3], expected f32[1,64,64,3]"});
}

}  // namespace
}  // namespace qh::test
