#!/usr/bin/env python3
"""Float ResNet-18/50 v1 (torchvision layout) as ONNX with deterministic synthetic weights, and its
QDQ int8 version made by ONNX Runtime's quantize_static (per-channel s8 weights, u8 activations),
calibrated on synthetic images. Input "input" {N,3,224,224} (ImageNet-normalized), output "logits".

usage: make_resnet_onnx.py --depth 50 --out-dir DIR   -> DIR/resnet50_fp32.onnx, resnet50_qdq.onnx
"""
import argparse
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def synthetic_images(n, seed, size=224):
    """Smooth random pictures in [0,1], ImageNet-normalized, NCHW float32."""
    rng = np.random.default_rng(seed)
    mean = np.array([0.485, 0.456, 0.406], np.float32).reshape(3, 1, 1)
    std = np.array([0.229, 0.224, 0.225], np.float32).reshape(3, 1, 1)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    out = []
    for _ in range(n):
        base = rng.uniform(0, 1, 3).astype(np.float32)
        fx, fy = rng.uniform(0.02, 0.12, 2)
        img = np.stack([base[c] + 0.3 * np.sin(fx * x * (c + 1) + fy * y) for c in range(3)])
        img += 0.15 * (rng.uniform(0, 1, img.shape).astype(np.float32) - 0.5)
        img = np.round(np.clip(img, 0, 1) * 255) / 255
        out.append(((img - mean) / std).astype(np.float32))
    return np.stack(out)


class Net:
    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits = [], []

    def const(self, name, arr):
        self.inits.append(numpy_helper.from_array(arr.astype(np.float32), name))
        return name

    def conv_bn(self, x, name, ic, oc, k, stride, gain):
        bound = np.sqrt(6.0 / (ic * k * k))
        w = self.const(name + ".weight", self.rng.uniform(-bound, bound, (oc, ic, k, k)))
        self.nodes.append(helper.make_node("Conv", [x, w], [name], name=name, kernel_shape=[k, k],
                                           strides=[stride, stride], pads=[k // 2] * 4))
        bn = name + ".bn"
        ins = [name,
               self.const(bn + ".scale", self.rng.uniform(0.7 * gain, 1.1 * gain, oc)),
               self.const(bn + ".bias", self.rng.uniform(-0.1, 0.1, oc)),
               self.const(bn + ".mean", self.rng.uniform(-0.05, 0.05, oc)),
               self.const(bn + ".var", self.rng.uniform(0.9, 1.1, oc))]
        self.nodes.append(helper.make_node("BatchNormalization", ins, [bn], name=bn, epsilon=1e-5))
        return bn

    def op(self, op, ins, name, **attrs):
        self.nodes.append(helper.make_node(op, ins, [name], name=name, **attrs))
        return name


def build(depth, seed=2026, classes=1000):
    bottleneck = depth == 50
    blocks = [3, 4, 6, 3] if bottleneck else [2, 2, 2, 2]
    exp = 4 if bottleneck else 1
    n = Net(seed)
    x = n.op("Relu", [n.conv_bn("input", "conv1", 3, 64, 7, 2, 1.0)], "relu")
    x = n.op("MaxPool", [x], "maxpool", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    cin = 64
    for s in range(4):
        width = 64 << s
        for b in range(blocks[s]):
            p = f"layer{s + 1}.{b}."
            stride = 2 if (b == 0 and s > 0) else 1
            cout = width * exp
            if bottleneck:
                y = n.op("Relu", [n.conv_bn(x, p + "conv1", cin, width, 1, 1, 1.0)], p + "relu1")
                y = n.op("Relu", [n.conv_bn(y, p + "conv2", width, width, 3, stride, 1.0)], p + "relu2")
                y = n.conv_bn(y, p + "conv3", width, cout, 1, 1, 0.3)
            else:
                y = n.op("Relu", [n.conv_bn(x, p + "conv1", cin, width, 3, stride, 1.0)], p + "relu1")
                y = n.conv_bn(y, p + "conv2", width, width, 3, 1, 0.3)
            sc = x
            if stride != 1 or cin != cout:
                sc = n.conv_bn(x, p + "downsample", cin, cout, 1, stride, 1.0)
            x = n.op("Relu", [n.op("Add", [y, sc], p + "add")], p + "out")
            cin = cout
    x = n.op("GlobalAveragePool", [x], "avgpool")
    x = n.op("Flatten", [x], "flatten", axis=1)
    bound = np.sqrt(6.0 / cin)
    w = n.const("fc.weight", n.rng.uniform(-bound, bound, (classes, cin)))
    b = n.const("fc.bias", n.rng.uniform(-0.1, 0.1, classes))
    n.nodes.append(helper.make_node("Gemm", [x, w, b], ["logits"], name="fc", transB=1))
    graph = helper.make_graph(
        n.nodes, f"resnet{depth}",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 224, 224])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", classes])], n.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def quantize_qdq(fp32_path, qdq_path, calib):
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    # ONNX Runtime's recommended pre-processing (BatchNorm folded into Conv, shapes inferred).
    pre = qdq_path.replace(".onnx", "_pre.onnx")
    quant_pre_process(fp32_path, pre, skip_symbolic_shape=True)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"input": calib[i:i + 1]} for i in range(len(calib))])

        def get_next(self):
            return next(self.it, None)

    quantize_static(pre, qdq_path, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    os.remove(pre)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--depth", type=int, choices=[18, 50], default=50)
    ap.add_argument("--out-dir", default="build/bench")
    ap.add_argument("--calib", type=int, default=8, help="synthetic calibration images")
    a = ap.parse_args()
    os.makedirs(a.out_dir, exist_ok=True)
    fp32 = os.path.join(a.out_dir, f"resnet{a.depth}_fp32.onnx")
    qdq = os.path.join(a.out_dir, f"resnet{a.depth}_qdq.onnx")
    onnx.save(build(a.depth), fp32)
    quantize_qdq(fp32, qdq, synthetic_images(a.calib, seed=1))
    print(fp32)
    print(qdq)


if __name__ == "__main__":
    main()
