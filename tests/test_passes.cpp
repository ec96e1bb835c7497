// prepare()'s passes one by one (runtime/passes.h) and the op definitions (runtime/op_def.h):
// each on a small graph, without running a kernel.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>

#include "model.h"
#include "op_def.h"
#include "passes.h"
#include "models/resnet.h"
#include "resource_limits.h"
#include "small_quant_graph.h"
#include "test_util.h"

using namespace qh;
using qh::testing_graphs::node;
using qh::testing_graphs::SmallQuantGraph;

namespace {

using qh::test::error_of;
Program program(const Graph &g, int batch = 1, Precision precision = Precision::int8) {
    PrepareOptions opt;
    opt.batch = batch;
    opt.precision = precision;
    Graph f = fold_batchnorm(g);
    return make_program(f, infer_shapes(f, batch), opt);
}

std::vector<std::string> step_ops(const Program &p) {
    std::vector<std::string> ops;
    for (const Step &s : p.steps) ops.push_back(s.info.op);
    return ops;
}

}  // namespace

TEST(Window, OneOutputSizeRule) {
    EXPECT_EQ(window_output_extent(224, 7, 2, 3, 3), 112);
    EXPECT_EQ(window_output_extent(112, 3, 2, 1, 1), 56);
    EXPECT_EQ(window_output_extent(5, 5, 1, 0, 0), 1);
    EXPECT_EQ(window_output_extent(4, 5, 1, 0, 0), 0);
    EXPECT_EQ(window_output_extent(4, 6, 3, 0, 0), 0);  // floor, not truncation toward zero
    WindowAttrs a{3, 2, 2, 1, 1, 0, 0, 1};
    EXPECT_EQ(a.out_h(9), 4);  // (9 + 1 + 0 - 3) / 2 + 1
    EXPECT_EQ(a.out_w(9), 9);  // (9 + 0 + 1 - 2) / 1 + 1
}

TEST(OpDefs, EveryOpHasOneDefinition) {
    for (OpKind k : {OpKind::Conv, OpKind::Dense, OpKind::BatchNorm, OpKind::Relu, OpKind::Add, OpKind::MaxPool,
                     OpKind::GlobalAvgPool, OpKind::Flatten}) {
        const OpDef &d = op_def(k);
        EXPECT_EQ(d.kind, k);
        EXPECT_STREQ(op_name(k), d.name);
        EXPECT_EQ(d.arity, k == OpKind::Add ? 2 : 1);
        EXPECT_TRUE(d.check && d.shape && d.lower_fp32 && d.quantize && d.lower_int8) << d.name;
    }
    EXPECT_STREQ(op_name(OpKind(99)), "?");
}

TEST(OpDefs, ShapeRules) {
    SmallQuantGraph sg;
    // nodes: conv1 relu1 conv2 add relu2 pool gap flatten fc
    const GraphNode &conv1 = sg.g.nodes[0], &pool = sg.g.nodes[5], &fc = sg.g.nodes[8];
    EXPECT_EQ(output_shape(conv1, {{{2, 9, 9, 8}}, {"x"}}), (std::vector<int64_t>{2, 9, 9, 8}));
    EXPECT_EQ(output_shape(pool, {{{2, 9, 9, 8}}, {"r"}}), (std::vector<int64_t>{2, 5, 5, 8}));
    EXPECT_EQ(output_shape(fc, {{{2, 8}}, {"f"}}), (std::vector<int64_t>{2, 5}));
    GraphNode gap = node(OpKind::GlobalAvgPool, "gap", {0}), flat = node(OpKind::Flatten, "flat", {0});
    EXPECT_EQ(output_shape(gap, {{{2, 5, 5, 8}}, {"p"}}), (std::vector<int64_t>{2, 1, 1, 8}));
    EXPECT_EQ(output_shape(flat, {{{2, 1, 1, 8}}, {"g"}}), (std::vector<int64_t>{2, 8}));
    GraphNode add = node(OpKind::Add, "add", {0, 1});
    EXPECT_EQ(output_shape(add, {{{1, 2, 2, 3}, {1, 2, 2, 3}}, {"a", "b"}}), (std::vector<int64_t>{1, 2, 2, 3}));

    auto refused = [](const GraphNode &n, const ShapeInputs &in) {
        try {
            output_shape(n, in);
        } catch (const ShapeError &e) {
            return std::string(e.what());
        }
        return std::string("no error");
    };
    EXPECT_NE(refused(conv1, {{{1, 9, 9, 6}}, {"x"}}).find("input 'x' [1,9,9,6] has 6 channels"), std::string::npos);
    GraphNode unpadded = pool;
    unpadded.window = {3, 3, 2, 2, 0, 0, 0, 0};
    EXPECT_NE(refused(unpadded, {{{1, 2, 9, 8}}, {"r"}}).find("input 'r' [1,2,9,8] is smaller than the window 3x3"),
              std::string::npos);
    EXPECT_NE(refused(fc, {{{1, 9}}, {"f"}}).find("expected [N,8]"), std::string::npos);
    EXPECT_EQ(output_shape(flat, {{{1, 4, 5, 8}}, {"g"}}), (std::vector<int64_t>{1, 160}));  // NCHW order, a copy
    EXPECT_NE(refused(add, {{{1, 2, 2, 3}, {1, 2, 2, 4}}, {"a", "b"}}).find("shapes do not broadcast"),
              std::string::npos);
    EXPECT_NE(refused(add, {{{1, 2, 2, 3}}, {"a"}}).find("expects 2 input shape(s)"), std::string::npos);
}

TEST(OpDefs, ChecksAreGraphValidation) {
    SmallQuantGraph sg;
    sg.g.nodes[5].window.stride_h = 0;
    EXPECT_NE(error_of([&] { sg.g.validate(); }).find("node 'pool' (MaxPool): kernel and stride must be >= 1"),
              std::string::npos);
    SmallQuantGraph s2;
    s2.g.nodes[0].window.kernel_h = 5;
    EXPECT_NE(error_of([&] { s2.g.validate(); }).find("node 'conv1' (Conv): weights s8[8,8,3,3] disagree with kernel 5x3"),
              std::string::npos);
}

TEST(Passes, FoldBatchnorm) {
    Graph g;
    g.name = "bn";
    int x = g.add_value("x", {1, 4, 4, 2});
    g.inputs = {x};
    GraphNode c = node(OpKind::Conv, "conv", {x});
    c.weights = Tensor(DType::f32, {2, 2, 1, 1});
    for (int i = 0; i < 4; i++) c.weights.data<float>()[i] = float(i + 1);
    int cv = g.add_node(std::move(c));
    GraphNode bn = node(OpKind::BatchNorm, "bn", {cv});
    bn.bn_scale = {2.f, 0.5f};
    bn.bn_shift = {1.f, -1.f};
    g.outputs = {g.add_node(std::move(bn))};
    Graph f = fold_batchnorm(g);
    ASSERT_EQ(f.nodes.size(), 1u);
    EXPECT_EQ(f.nodes[0].output, g.outputs[0]);
    const float *w = f.nodes[0].weights.data<float>();
    EXPECT_EQ(std::vector<float>(w, w + 4), (std::vector<float>{2, 4, 1.5f, 2}));
    const float *b = f.nodes[0].bias.data<float>();
    EXPECT_EQ(std::vector<float>(b, b + 2), (std::vector<float>{1, -1}));
}

// A constant zero Pad on H/W whose one reader is a Conv becomes the Conv's pads; other Pads
// (a non-zero value, a channel pad, reflect, a second reader) stay, and run as their own step
// with the same values as padding by hand.
TEST(Passes, FoldPadIntoConv) {
    auto graph = [](float value, GraphNode::PadMode mode, bool channel_pad, bool second_reader) {
        Graph g;
        g.name = "pad";
        int x = g.add_value("x", {1, 4, 5, 2});
        g.inputs = {x};
        GraphNode p = node(OpKind::Pad, "pad", {x});
        p.pad_begin = {0, 1, 2, 0};
        p.pad_end = {0, 2, 0, channel_pad ? 1 : 0};
        p.pad_mode = mode;
        p.pad_value = value;
        int pv = g.add_node(std::move(p));
        GraphNode c = node(OpKind::Conv, "conv", {pv});
        c.window.kernel_h = c.window.kernel_w = 3;
        c.window.pad_top = c.window.pad_left = 1;
        c.weights = Tensor(DType::f32, {3, channel_pad ? 3 : 2, 3, 3});
        for (int64_t i = 0; i < c.weights.numel(); i++) c.weights.data<float>()[i] = 0.1f * float(i % 7) - 0.3f;
        g.outputs = {g.add_node(std::move(c))};
        if (second_reader) g.outputs.push_back(g.add_node(node(OpKind::Relu, "relu", {pv})));
        return g;
    };
    Graph f = fold_pad(graph(0.f, GraphNode::PadMode::constant, false, false));
    ASSERT_EQ(f.nodes.size(), 1u);
    const WindowAttrs &w = f.nodes[0].window;
    EXPECT_EQ((std::vector<int>{w.pad_top, w.pad_left, w.pad_bottom, w.pad_right}), (std::vector<int>{2, 3, 2, 0}));
    EXPECT_EQ(f.nodes[0].inputs[0], f.inputs[0]);
    EXPECT_EQ(fold_pad(graph(0.5f, GraphNode::PadMode::constant, false, false)).nodes.size(), 2u);
    EXPECT_EQ(fold_pad(graph(0.f, GraphNode::PadMode::reflect, false, false)).nodes.size(), 2u);
    EXPECT_EQ(fold_pad(graph(0.f, GraphNode::PadMode::constant, true, false)).nodes.size(), 2u);
    EXPECT_EQ(fold_pad(graph(0.f, GraphNode::PadMode::constant, false, true)).nodes.size(), 3u);
    // Folded or not, the same conv output (fp32 path).
    Tensor x(DType::f32, {1, 4, 5, 2});
    for (int64_t i = 0; i < x.numel(); i++) x.data<float>()[i] = std::sin(0.3f * float(i));
    PrepareOptions po;
    po.precision = Precision::fp32;
    auto folded = Model::prepare(graph(0.f, GraphNode::PadMode::constant, false, false), po);
    auto kept = Model::prepare(graph(0.f, GraphNode::PadMode::constant, false, true), po);
    EXPECT_EQ(folded->layers().size(), 1u);  // no pad step
    for (auto *m : {folded.get(), kept.get()}) {
        std::memcpy(m->input(0).raw(), x.raw(), x.nbytes());
        m->execute();
    }
    ASSERT_EQ(folded->output(0).shape(), kept->output(0).shape());
    EXPECT_EQ(std::memcmp(folded->output(0).raw(), kept->output(0).raw(), kept->output(0).nbytes()), 0);
}

TEST(Passes, InferShapes) {
    SmallQuantGraph sg;
    auto s = infer_shapes(sg.g, 3);
    auto at = [&](const char *n) { return s[sg.g.find_value(n)]; };
    EXPECT_EQ(at("x"), (std::vector<int64_t>{3, 9, 9, 8}));
    EXPECT_EQ(at("add"), (std::vector<int64_t>{3, 9, 9, 8}));
    EXPECT_EQ(at("pool"), (std::vector<int64_t>{3, 5, 5, 8}));
    EXPECT_EQ(at("gap"), (std::vector<int64_t>{3, 1, 1, 8}));
    EXPECT_EQ(at("fc"), (std::vector<int64_t>{3, 5}));
    sg.g.values[0].shape = {1, 9, 9, 6};
    std::string e = error_of([&] { infer_shapes(sg.g, 1); });
    EXPECT_NE(e.find("model 'small', node 'conv1' (Conv): input 'x' [1,9,9,6] has 6 channels"), std::string::npos) << e;
}

TEST(Passes, FuseConvAddReluAndKeepInexactRelu) {
    SmallQuantGraph sg;  // nodes: conv1 relu1 conv2 add relu2 pool gap flatten fc
    auto groups = fuse(sg.g);
    ASSERT_EQ(groups.size(), 6u);
    EXPECT_EQ(groups[0].node, 0);
    EXPECT_EQ(groups[0].act, 1);
    EXPECT_EQ(groups[0].add, -1);
    EXPECT_EQ(groups[0].output, sg.g.find_value("relu1"));
    EXPECT_EQ(groups[1].node, 2);
    EXPECT_EQ(groups[1].add, 3);
    EXPECT_EQ(groups[1].residual, sg.g.find_value("relu1"));
    EXPECT_EQ(groups[1].act, 4);
    EXPECT_EQ(groups[1].output, sg.g.find_value("relu2"));
    for (int k = 2; k < 6; k++) {
        EXPECT_EQ(groups[k].node, k + 3);
        EXPECT_EQ(groups[k].add, -1);
        EXPECT_EQ(groups[k].act, -1);
    }

    // QDQ: the Relu's input has its own quant, different from the output's: not exact to fuse.
    SmallQuantGraph q;
    q.g.values[q.g.find_value("conv1")].quant = QuantParams::per_tensor(0.2f, 100);
    groups = fuse(q.g);
    ASSERT_EQ(groups.size(), 7u);
    EXPECT_EQ(groups[0].act, -1);
    EXPECT_EQ(groups[1].node, 1);  // relu1 on its own

    // The same quant as s8 (zero point - 128) is the same u8 quant: fused.
    SmallQuantGraph s8;
    GraphValue &c1 = s8.g.values[s8.g.find_value("conv1")];
    c1.quant = QuantParams::per_tensor(0.1f, 3 - 128);
    c1.qtype = DType::s8;
    EXPECT_EQ(fuse(s8.g)[0].act, 1);

    // A Conv output that is also a graph output is not fused away.
    SmallQuantGraph o;
    o.g.outputs.push_back(o.g.find_value("conv2"));
    groups = fuse(o.g);
    EXPECT_EQ(groups[1].add, -1);
    EXPECT_EQ(groups[2].node, 3);  // add+relu2
    EXPECT_EQ(groups[2].act, 4);
}

TEST(Passes, AssignQuantization) {
    SmallQuantGraph sg;
    Program p = program(sg.g);
    p.groups = fuse(p.g);
    assign_quantization(p);
    const int x = p.g.find_value("x"), fc = p.g.find_value("fc");
    // The f32 graph input is quantized from an external f32 tensor.
    ASSERT_EQ(p.quantize_in.size(), 1u);
    EXPECT_EQ(p.quantize_in[0].second, x);
    EXPECT_EQ(p.in_ids[0], p.quantize_in[0].first);
    EXPECT_TRUE(p.v[p.in_ids[0]].external);
    EXPECT_EQ(p.v[p.in_ids[0]].dtype, DType::f32);
    EXPECT_EQ(p.v[x].dtype, DType::u8);
    for (const char *n : {"relu1", "relu2", "pool", "gap", "flatten"})
        EXPECT_EQ(p.v[p.g.find_value(n)].dtype, DType::u8) << n;
    EXPECT_TRUE(same_quant(p.v[p.g.find_value("pool")].quant, p.v[p.g.find_value("relu2")].quant));
    // The float logits: an s32 accumulator with scales s_x * s_w[oc], dequantized into the output.
    const int acc = p.groups[5].aux;
    ASSERT_GE(acc, 0);
    EXPECT_EQ(p.v[acc].dtype, DType::s32);
    EXPECT_FLOAT_EQ(p.v[acc].quant.scale_at(2), 0.07f * sg.s3[2]);
    EXPECT_EQ(p.v[fc].dtype, DType::f32);
    EXPECT_TRUE(p.dequantize_out.empty());
    EXPECT_EQ(p.out_ids[0], fc);

    // s8 quant runs as u8 with the zero point shifted by 128.
    SmallQuantGraph s8;
    GraphValue &r1 = s8.g.values[s8.g.find_value("relu1")];
    r1.quant = QuantParams::per_tensor(0.1f, -125);
    r1.qtype = DType::s8;
    Program q = program(s8.g);
    q.groups = fuse(q.g);
    assign_quantization(q);
    EXPECT_EQ(q.v[q.g.find_value("relu1")].quant.zp_at(0), 3);
    // A float graph input quantized to int8 (ONNX Runtime's QInt8) runs shifted too: its quantize
    // step writes u8 with zero point + 128.
    s8.g.values[0].qtype = DType::s8;
    s8.g.values[0].quant.zero_point = {-3};
    const int32_t zx = -3;
    Program in = program(s8.g);
    in.groups = fuse(in.g);
    assign_quantization(in);
    EXPECT_EQ(in.v[0].quant.zp_at(0), zx + 128);
    // Integers the caller hands over (a u8 graph input declared int8-quantized) cannot shift.
    s8.g.values[0].dtype = DType::u8;
    Program bad = program(s8.g);
    bad.groups = fuse(bad.g);
    EXPECT_NE(error_of([&] { assign_quantization(bad); }).find("value 'x': s8 quantization is supported per tensor, "
                                                              "on values the caller reads or writes as float"),
              std::string::npos);

    // A value without quant: the node that needs it is named.
    SmallQuantGraph u;
    u.g.values[u.g.find_value("gap")].quant = {};
    Program up = program(u.g);
    up.groups = fuse(up.g);
    EXPECT_NE(error_of([&] { assign_quantization(up); }).find("node 'gap' (GlobalAvgPool): value 'gap' has no quantization"),
              std::string::npos);
}

TEST(Passes, LowerInt8AndFp32) {
    SmallQuantGraph sg;
    Program p = program(sg.g);
    p.groups = fuse(p.g);
    assign_quantization(p);
    lower(p);
    EXPECT_EQ(step_ops(p), (std::vector<std::string>{"quantize", "conv2d+relu", "conv2d_add+relu", "maxpool",
                                                     "global_avgpool", "dense", "dequantize"}));
    EXPECT_EQ(p.steps[2].info.name, "relu2");  // a fused step is named after its last node
    EXPECT_EQ(p.steps[2].reads, (std::vector<int>{p.g.find_value("relu1"), p.g.find_value("relu1")}));
    EXPECT_EQ(p.v[p.g.find_value("flatten")].alias, p.g.find_value("gap"));  // a view, no step
    EXPECT_EQ(p.packed.size(), 3u);
    for (const Step &s : p.steps) EXPECT_TRUE(bool(s.bind)) << s.info.op;  // all kernels

    // fp32: one step per node (no fusion), host code, weights kept as float.
    Graph fg = build_resnet({18, 10, 32});
    Program f = program(fg, 1, Precision::fp32);
    lower(f);
    EXPECT_EQ(f.fweights.size(), 21u);  // 20 convs + fc
    EXPECT_GT(f.scratch_floats, 0u);
    for (const Step &s : f.steps) {
        EXPECT_EQ(s.info.kernel, "fp32 reference");
        EXPECT_TRUE(bool(s.run));
    }
}

TEST(Passes, PlanMemory) {
    SmallQuantGraph sg;
    Program p = program(sg.g);
    p.groups = fuse(p.g);
    assign_quantization(p);
    lower(p);
    plan_memory(p);
    // Slots of values alive at the same step do not overlap; external values have no slot.
    size_t need = 0;
    for (size_t i = 0; i < p.v.size(); i++) {
        const ValueInfo &a = p.v[i];
        if (a.alias >= 0 || a.external || a.first < 0) continue;
        const size_t abytes = dtype_storage_bytes(a.dtype, checked_numel(a.shape, "a"));
        need = std::max(need, a.offset + abytes);
        EXPECT_EQ(a.offset % 64, 0u);
        for (size_t j = i + 1; j < p.v.size(); j++) {
            const ValueInfo &b = p.v[j];
            if (b.alias >= 0 || b.external || b.first < 0) continue;
            if (a.last < b.first || b.last < a.first) continue;
            const size_t bbytes = dtype_storage_bytes(b.dtype, checked_numel(b.shape, "b"));
            EXPECT_TRUE(a.offset + abytes <= b.offset || b.offset + bbytes <= a.offset) << a.name << " / " << b.name;
        }
    }
    EXPECT_GE(p.arena_size, need);
    // relu1 (9x9x8 u8) is read by the conv2d_add step: alive from step 1 to 2.
    const ValueInfo &r1 = p.v[p.g.find_value("relu1")];
    EXPECT_EQ(r1.first, 1);
    EXPECT_EQ(r1.last, 2);

    PrepareOptions keep;
    keep.keep_all_values = true;
    Program k = make_program(p.g, infer_shapes(p.g, 1), keep);
    k.groups = fuse(k.g);
    assign_quantization(k);
    lower(k);
    plan_memory(k);
    EXPECT_GT(k.arena_size, p.arena_size);  // every value its own memory
}

TEST(Passes, PrepareIsThePasses) {
    // Model::prepare runs exactly these passes: its steps are the lowered ones.
    SmallQuantGraph sg;
    auto m = Model::prepare(sg.g, {});
    Program p = program(sg.g);
    p.groups = fuse(p.g);
    assign_quantization(p);
    lower(p);
    plan_memory(p);
    ASSERT_EQ(m->layers().size(), p.steps.size());
    for (size_t i = 0; i < p.steps.size(); i++) {
        EXPECT_EQ(m->layers()[i].op, p.steps[i].info.op);
        EXPECT_EQ(m->layers()[i].name, p.steps[i].info.name);
    }
    EXPECT_EQ(m->arena_bytes(), p.arena_size);
}

// ONNX auto_pad SAME_*: out = ceil(in / stride), total padding split, the odd pixel at the end
// (UPPER) or the beginning (LOWER); resolved by infer_shapes from the input extent.
TEST(Passes, AutoPadSameSplitsThePadding) {
    auto pads = [](AutoPad mode, int k, int s, int64_t in) {
        WindowAttrs w;
        w.kernel_h = w.kernel_w = k;
        w.stride_h = w.stride_w = s;
        w.auto_pad = mode;
        w.resolve_auto_pad(in, in);
        EXPECT_EQ(w.auto_pad, AutoPad::none);
        EXPECT_EQ(w.out_h(in), (in + s - 1) / s);
        return std::vector<int>{w.pad_top, w.pad_bottom};
    };
    EXPECT_EQ(pads(AutoPad::same_upper, 3, 2, 8), (std::vector<int>{0, 1}));
    EXPECT_EQ(pads(AutoPad::same_lower, 3, 2, 8), (std::vector<int>{1, 0}));
    EXPECT_EQ(pads(AutoPad::same_upper, 3, 2, 7), (std::vector<int>{1, 1}));
    EXPECT_EQ(pads(AutoPad::same_lower, 5, 1, 7), (std::vector<int>{2, 2}));
    EXPECT_EQ(pads(AutoPad::same_upper, 2, 1, 5), (std::vector<int>{0, 1}));
    EXPECT_EQ(pads(AutoPad::same_lower, 2, 1, 5), (std::vector<int>{1, 0}));
    EXPECT_EQ(pads(AutoPad::same_upper, 1, 3, 5), (std::vector<int>{0, 0}));  // no padding needed
}
