#include "models/resnet.h"

#include <cmath>
#include <random>
#include <stdexcept>
#include <string>

namespace qh {

namespace {

// Synthetic but well-conditioned weights: He-uniform convs (activations keep their variance
// through conv + ReLU), BatchNorm with mild per-channel scales and shifts, and a small scale on
// the last BN of each residual branch so the residual stream grows slowly with depth.
class Builder {
public:
    Builder(Graph &g, uint32_t seed) : g_(g), rng_(seed) {}

    int conv_bn(int x, const std::string &name, int ic, int oc, int k, int stride, float bn_gain) {
        GraphNode c;
        c.op = OpKind::Conv;
        c.name = name;
        c.inputs = {x};
        c.window.kernel_h = c.window.kernel_w = k;
        c.window.stride_h = c.window.stride_w = stride;
        c.window.pad_top = c.window.pad_left = c.window.pad_bottom = c.window.pad_right = k / 2;
        c.weights = Tensor(DType::f32, {oc, ic, k, k});
        float bound = std::sqrt(6.f / float(ic * k * k));
        fill(c.weights, -bound, bound);
        int y = g_.add_node(std::move(c));

        GraphNode bn;
        bn.op = OpKind::BatchNorm;
        bn.name = name + ".bn";
        bn.inputs = {y};
        std::uniform_real_distribution<float> gamma(0.7f * bn_gain, 1.1f * bn_gain), beta(-0.1f, 0.1f);
        for (int i = 0; i < oc; i++) {
            bn.bn_scale.push_back(gamma(rng_));
            bn.bn_shift.push_back(beta(rng_));
        }
        return g_.add_node(std::move(bn));
    }

    int unary(OpKind op, int x, const std::string &name) {
        GraphNode n;
        n.op = op;
        n.name = name;
        n.inputs = {x};
        return g_.add_node(std::move(n));
    }

    int add(int a, int b, const std::string &name) {
        GraphNode n;
        n.op = OpKind::Add;
        n.name = name;
        n.inputs = {a, b};
        return g_.add_node(std::move(n));
    }

    int maxpool(int x, const std::string &name) {
        GraphNode n;
        n.op = OpKind::MaxPool;
        n.name = name;
        n.inputs = {x};
        n.window = {3, 3, 2, 2, 1, 1, 1, 1};
        return g_.add_node(std::move(n));
    }

    int fc(int x, const std::string &name, int ic, int oc) {
        GraphNode n;
        n.op = OpKind::Dense;
        n.name = name;
        n.inputs = {x};
        n.weights = Tensor(DType::f32, {oc, ic});
        float bound = std::sqrt(6.f / float(ic));
        fill(n.weights, -bound, bound);
        n.bias = Tensor(DType::f32, {oc});
        fill(n.bias, -0.1f, 0.1f);
        return g_.add_node(std::move(n));
    }

private:
    void fill(Tensor &t, float lo, float hi) {
        std::uniform_real_distribution<float> d(lo, hi);
        float *p = t.data<float>();
        for (int64_t i = 0; i < t.numel(); i++) p[i] = d(rng_);
    }

    Graph &g_;
    std::mt19937 rng_;
};

}  // namespace

Graph build_resnet(const ResNetOptions &opt) {
    const bool bottleneck = opt.depth == 50;
    if (opt.depth != 18 && opt.depth != 50)
        throw std::runtime_error("build_resnet: depth " + std::to_string(opt.depth) + " not supported (18 or 50)");
    static const int kBlocks18[4] = {2, 2, 2, 2}, kBlocks50[4] = {3, 4, 6, 3};
    const int *blocks = bottleneck ? kBlocks50 : kBlocks18;
    const int expansion = bottleneck ? 4 : 1;

    Graph g;
    g.name = "resnet" + std::to_string(opt.depth);
    int x = g.add_value("input", {1, opt.image_size, opt.image_size, 3});
    g.inputs = {x};
    Builder b(g, opt.seed);

    x = b.conv_bn(x, "conv1", 3, 64, 7, 2, 1.f);
    x = b.unary(OpKind::Relu, x, "relu");
    x = b.maxpool(x, "maxpool");
    int in_ch = 64;
    for (int stage = 0; stage < 4; stage++) {
        const int width = 64 << stage;
        for (int blk = 0; blk < blocks[stage]; blk++) {
            const std::string p = "layer" + std::to_string(stage + 1) + "." + std::to_string(blk) + ".";
            const int stride = (blk == 0 && stage > 0) ? 2 : 1;
            const int out_ch = width * expansion;
            int y;
            if (bottleneck) {
                y = b.unary(OpKind::Relu, b.conv_bn(x, p + "conv1", in_ch, width, 1, 1, 1.f), p + "relu1");
                y = b.unary(OpKind::Relu, b.conv_bn(y, p + "conv2", width, width, 3, stride, 1.f), p + "relu2");
                y = b.conv_bn(y, p + "conv3", width, out_ch, 1, 1, 0.3f);
            } else {
                y = b.unary(OpKind::Relu, b.conv_bn(x, p + "conv1", in_ch, width, 3, stride, 1.f), p + "relu1");
                y = b.conv_bn(y, p + "conv2", width, width, 3, 1, 0.3f);
            }
            int shortcut = x;
            if (stride != 1 || in_ch != out_ch) {
                // The downsample 1x1 conv keeps the stride of the block (torchvision).
                shortcut = b.conv_bn(x, p + "downsample", in_ch, out_ch, 1, stride, 1.f);
            }
            x = b.unary(OpKind::Relu, b.add(y, shortcut, p + "add"), p + "out");
            in_ch = out_ch;
        }
    }
    x = b.unary(OpKind::GlobalAvgPool, x, "avgpool");
    x = b.unary(OpKind::Flatten, x, "flatten");
    x = b.fc(x, "fc", in_ch, opt.num_classes);
    g.outputs = {x};
    g.validate();
    return g;
}

}  // namespace qh
