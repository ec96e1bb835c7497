// Built-in ResNet-18 / ResNet-50 v1 (torchvision layout: stride on the 3x3 of the bottleneck,
// "v1.5") as float graphs with deterministic synthetic weights: no file needed. They exist to
// exercise and time the whole stack; their classes mean nothing, and every tool that prints
// their predictions says "synthetic weights".
//
// Values are named like torchvision modules: "conv1", "layer1.0.conv1", "layer1.0.relu1",
// "layer1.0.add", "layer1.0.out", "avgpool", "flatten", "fc". BatchNorm nodes follow every conv
// ("<conv>.bn"); prepare() folds them.
#pragma once
#include <cstdint>

#include "graph.h"

namespace qh {

struct ResNetOptions {
    int depth = 50;          // 18 or 50
    int num_classes = 1000;
    int image_size = 224;    // input {N, image_size, image_size, 3} (NHWC, ImageNet-normalized)
    uint32_t seed = 2026;
};

Graph build_resnet(const ResNetOptions &opt);

}  // namespace qh
