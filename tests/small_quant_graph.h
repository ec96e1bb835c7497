// A small quantized graph in QOperator style shared by the model tests (tests/test_model.cpp,
// tests/test_gpu.cpp): every int8 fusion of prepare(), and its step-by-step reference.
#pragma once
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "graph.h"
#include "reference_ops.h"

namespace qh::testing_graphs {

inline GraphNode node(OpKind op, std::string name, std::vector<int> in) {
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

}  // namespace qh::testing_graphs
