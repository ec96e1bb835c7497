// ResNet-50 v1.5 convolution layers (224x224 input, batch 1): every distinct shape, with the
// number of times it occurs in the network.
#pragma once
#include <vector>

namespace qh::bench {

struct ConvShape {
    const char *name;
    int hw, c, oc, k, stride, pad, count;
    int out_hw() const { return (hw + 2 * pad - k) / stride + 1; }
    double macs() const { return double(out_hw()) * out_hw() * oc * c * k * k; }
};

inline const std::vector<ConvShape> &resnet50_convs() {
    static const std::vector<ConvShape> v = {
        {"conv1_7x7s2_3_64", 224, 3, 64, 7, 2, 3, 1},
        {"res2_1x1_64_64", 56, 64, 64, 1, 1, 0, 1},
        {"res2_3x3_64_64", 56, 64, 64, 3, 1, 1, 3},
        {"res2_1x1_64_256", 56, 64, 256, 1, 1, 0, 4},
        {"res2_1x1_256_64", 56, 256, 64, 1, 1, 0, 2},
        {"res3_1x1_256_128", 56, 256, 128, 1, 1, 0, 1},
        {"res3_3x3s2_128_128", 56, 128, 128, 3, 2, 1, 1},
        {"res3_1x1s2_256_512", 56, 256, 512, 1, 2, 0, 1},
        {"res3_3x3_128_128", 28, 128, 128, 3, 1, 1, 3},
        {"res3_1x1_128_512", 28, 128, 512, 1, 1, 0, 4},
        {"res3_1x1_512_128", 28, 512, 128, 1, 1, 0, 3},
        {"res4_1x1_512_256", 28, 512, 256, 1, 1, 0, 1},
        {"res4_3x3s2_256_256", 28, 256, 256, 3, 2, 1, 1},
        {"res4_1x1s2_512_1024", 28, 512, 1024, 1, 2, 0, 1},
        {"res4_3x3_256_256", 14, 256, 256, 3, 1, 1, 5},
        {"res4_1x1_256_1024", 14, 256, 1024, 1, 1, 0, 6},
        {"res4_1x1_1024_256", 14, 1024, 256, 1, 1, 0, 5},
        {"res5_1x1_1024_512", 14, 1024, 512, 1, 1, 0, 1},
        {"res5_3x3s2_512_512", 14, 512, 512, 3, 2, 1, 1},
        {"res5_1x1s2_1024_2048", 14, 1024, 2048, 1, 2, 0, 1},
        {"res5_3x3_512_512", 7, 512, 512, 3, 1, 1, 2},
        {"res5_1x1_512_2048", 7, 512, 2048, 1, 1, 0, 3},
        {"res5_1x1_2048_512", 7, 2048, 512, 1, 1, 0, 2},
    };
    return v;
}

}  // namespace qh::bench
