// MobileNetV2-style and EfficientNet-style float graphs with seeded synthetic weights, for the
// model tests (tests/test_model.cpp: every CPU variant bit-exact; tests/test_gpu.cpp: the GPU
// bit-exact with the CPU). Built in the IR, calibrated by qhalide (calibrated()).
//  - mobilenet_v2: ReLU6 stem at stride 2, inverted residuals (1x1 expand, 3x3 depthwise, 1x1
//    project, residual Add), a stride-2 depthwise block with a channel multiplier of 2 in a
//    side branch, an Inception-style Concat (1x1 conv, 5x5 depthwise, 3x3 AveragePool).
//  - efficientnet: SiLU (x * Sigmoid(x)) everywhere, MBConv with a 5x5 stride-2 depthwise conv and
//    squeeze-excitation (GlobalAvgPool, 1x1 reduce + SiLU, 1x1 expand + Sigmoid, Mul broadcast
//    over H x W), a residual MBConv, a grouped 3x3 conv, a dilated depthwise conv, a HardSwish
//    (x * HardSigmoid(x)) head.
#pragma once
#include <cmath>
#include <random>
#include <string>

#include "model.h"

namespace qh::testing_graphs {

class MobileBuilder {
public:
    MobileBuilder(Graph &g, uint32_t seed) : g_(g), rng_(seed) {}

    int conv(int x, const std::string &name, int ic, int oc, int k, int stride = 1, int group = 1, int dil = 1) {
        GraphNode c;
        c.op = OpKind::Conv;
        c.name = name;
        c.inputs = {x};
        c.group = group;
        c.window.kernel_h = c.window.kernel_w = k;
        c.window.stride_h = c.window.stride_w = stride;
        c.window.dilation_h = c.window.dilation_w = dil;
        c.window.pad_top = c.window.pad_left = c.window.pad_bottom = c.window.pad_right = (k - 1) * dil / 2;
        const int icg = ic / group;
        c.weights = Tensor(DType::f32, {oc, icg, k, k});
        fill(c.weights, -std::sqrt(6.f / float(icg * k * k)), std::sqrt(6.f / float(icg * k * k)));
        c.bias = Tensor(DType::f32, {oc});
        fill(c.bias, -0.1f, 0.1f);
        return g_.add_node(std::move(c));
    }
    int op(OpKind k, std::vector<int> in, const std::string &name) {
        GraphNode n;
        n.op = k;
        n.name = name;
        n.inputs = std::move(in);
        return g_.add_node(std::move(n));
    }
    int concat(std::vector<int> in, const std::string &name) {  // along the channels (NHWC axis 3)
        GraphNode n;
        n.op = OpKind::Concat;
        n.name = name;
        n.inputs = std::move(in);
        n.axis = 3;
        return g_.add_node(std::move(n));
    }
    int relu6(int x) {
        GraphNode n;
        n.op = OpKind::Clip;
        n.name = g_.values[x].name + ".relu6";
        n.inputs = {x};
        n.clip_min = 0;
        n.clip_max = 6;
        return g_.add_node(std::move(n));
    }
    int silu(int x) {
        const std::string n = g_.values[x].name;
        return op(OpKind::Mul, {x, op(OpKind::Sigmoid, {x}, n + ".sigmoid")}, n + ".silu");
    }
    int hardswish(int x) {
        GraphNode h;
        h.op = OpKind::HardSigmoid;
        h.name = g_.values[x].name + ".hsig";
        h.inputs = {x};
        h.alpha = 1.f / 6;
        h.beta = 0.5f;
        return op(OpKind::Mul, {x, g_.add_node(std::move(h))}, g_.values[x].name + ".hswish");
    }
    int avgpool3(int x, const std::string &name) {
        GraphNode n;
        n.op = OpKind::AvgPool;
        n.name = name;
        n.inputs = {x};
        n.window = {3, 3, 1, 1, 1, 1, 1, 1};
        return g_.add_node(std::move(n));
    }
    int head(int x, int ic, int classes) {
        x = op(OpKind::Flatten, {op(OpKind::GlobalAvgPool, {x}, "gap")}, "flatten");
        GraphNode n;
        n.op = OpKind::Dense;
        n.name = "fc";
        n.inputs = {x};
        n.weights = Tensor(DType::f32, {classes, ic});
        fill(n.weights, -1.f / std::sqrt(float(ic)), 1.f / std::sqrt(float(ic)));
        n.bias = Tensor(DType::f32, {classes});
        fill(n.bias, -0.1f, 0.1f);
        return g_.add_node(std::move(n));
    }

private:
    void fill(Tensor &t, float lo, float hi) {
        std::uniform_real_distribution<float> d(lo, hi);
        for (int64_t i = 0; i < t.numel(); i++) t.data<float>()[i] = d(rng_);
    }
    Graph &g_;
    std::mt19937 rng_;
};

inline Graph mobilenet_v2_graph(int hw = 32) {
    Graph g;
    g.name = "mobilenet_v2_style";
    int x = g.add_value("input", {1, hw, hw, 3});
    g.inputs = {x};
    MobileBuilder b(g, 2028);
    x = b.relu6(b.conv(x, "stem", 3, 16, 3, 2));
    int y = b.relu6(b.conv(x, "b1.expand", 16, 48, 1));
    y = b.relu6(b.conv(y, "b1.dw", 48, 48, 3, 1, 48));
    y = b.conv(y, "b1.project", 48, 16, 1);
    x = b.op(OpKind::Add, {x, y}, "b1.add");
    y = b.relu6(b.conv(x, "b2.expand", 16, 64, 1));
    y = b.relu6(b.conv(y, "b2.dw", 64, 64, 3, 2, 64));
    x = b.conv(y, "b2.project", 64, 24, 1);
    const int a = b.relu6(b.conv(x, "mix.a", 24, 16, 1));
    const int c = b.relu6(b.conv(x, "mix.b", 24, 48, 5, 1, 24));  // depthwise, multiplier 2
    const int d = b.avgpool3(x, "mix.pool");
    x = b.concat({a, c, d}, "mix.concat");
    x = b.relu6(b.conv(x, "head.conv", 88, 32, 1));
    g.outputs = {b.head(x, 32, 10)};
    return g;
}

inline Graph efficientnet_graph(int hw = 32) {
    Graph g;
    g.name = "efficientnet_style";
    int x = g.add_value("input", {1, hw, hw, 3});
    g.inputs = {x};
    MobileBuilder b(g, 2029);
    x = b.silu(b.conv(x, "stem", 3, 16, 3, 2));
    int y = b.silu(b.conv(x, "b1.expand", 16, 64, 1));
    y = b.silu(b.conv(y, "b1.dw", 64, 64, 5, 2, 64));
    int s = b.op(OpKind::GlobalAvgPool, {y}, "b1.se.gap");
    s = b.silu(b.conv(s, "b1.se.reduce", 64, 8, 1));
    s = b.op(OpKind::Sigmoid, {b.conv(s, "b1.se.expand", 8, 64, 1)}, "b1.se.gate");
    y = b.op(OpKind::Mul, {y, s}, "b1.se.scale");
    x = b.conv(y, "b1.project", 64, 24, 1);
    y = b.silu(b.conv(x, "b2.expand", 24, 72, 1));
    y = b.silu(b.conv(y, "b2.dw", 72, 72, 3, 1, 72, 2));  // dilated depthwise
    y = b.silu(b.conv(y, "b2.grouped", 72, 72, 3, 1, 4));  // grouped, 18 channels a group
    y = b.conv(y, "b2.project", 72, 24, 1);
    x = b.op(OpKind::Add, {x, y}, "b2.add");
    x = b.hardswish(b.conv(x, "head.conv", 24, 48, 1));
    g.outputs = {b.head(x, 48, 10)};
    return g;
}

// The graph calibrated by qhalide on `n` seeded normal inputs (clipped to +-3).
inline Graph calibrated(Graph g, int n = 4, uint32_t seed = 5) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> d(0.f, 1.f);
    std::vector<Tensor> samples;
    for (int i = 0; i < n; i++) {
        Tensor t(DType::f32, g.values[g.inputs[0]].shape);
        for (int64_t k = 0; k < t.numel(); k++) t.data<float>()[k] = std::fmax(-3.f, std::fmin(3.f, d(rng)));
        samples.push_back(std::move(t));
    }
    calibrate(g, samples, {});
    return g;
}

}  // namespace qh::testing_graphs
