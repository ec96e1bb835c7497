"""Small float ONNX conv nets with seeded synthetic weights, for the ONNX Runtime comparisons
(bench/ort_int4_compare.py, bench/ort_quant_matrix.py). NCHW input "input" of `shape`, logits
{N, classes}. Weight draws happen in node order, so a seed gives the same model every time."""
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


class Net:
    def __init__(self, seed, shape, classes, opset, ir_version):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits = [], []
        self.shape, self.classes, self.opset, self.ir_version = shape, classes, opset, ir_version

    def conv(self, x, name, ic, oc, k=3, stride=1, relu=True, act=None):
        """Conv k x k (pads k // 2) with a bias, He-uniform weights, then Relu unless relu=False
        (or `act`: see act())."""
        bound = np.sqrt(6.0 / (ic * k * k))
        w = self.rng.uniform(-bound, bound, (oc, ic, k, k)).astype(np.float32)
        # channels of different magnitude, so per-channel and per-tensor scales differ
        w *= self.rng.uniform(0.3, 1.5, (oc, 1, 1, 1)).astype(np.float32)
        b = self.rng.uniform(-0.1, 0.1, oc).astype(np.float32)
        self.inits += [numpy_helper.from_array(w, name + ".w"), numpy_helper.from_array(b, name + ".b")]
        self.nodes.append(helper.make_node("Conv", [x, name + ".w", name + ".b"], [name], name=name,
                                           kernel_shape=[k, k], strides=[stride, stride], pads=[k // 2] * 4))
        if act is not None:
            return self.act(name, act)
        return self.op("Relu", [name], name + ".relu") if relu else name

    def dwconv(self, x, name, c, k=3, stride=1, mult=1, pads=None, act="relu6"):
        """Depthwise Conv (group = c, `mult` outputs per channel), k x k, then ReLU6 / SiLU / none."""
        bound = np.sqrt(6.0 / (k * k))
        w = self.rng.uniform(-bound, bound, (c * mult, 1, k, k)).astype(np.float32)
        w *= self.rng.uniform(0.3, 1.5, (c * mult, 1, 1, 1)).astype(np.float32)
        b = self.rng.uniform(-0.1, 0.1, c * mult).astype(np.float32)
        self.inits += [numpy_helper.from_array(w, name + ".w"), numpy_helper.from_array(b, name + ".b")]
        self.nodes.append(helper.make_node("Conv", [x, name + ".w", name + ".b"], [name], name=name, group=c,
                                           kernel_shape=[k, k], strides=[stride, stride],
                                           pads=pads if pads else [k // 2] * 4))
        return self.act(name, act)

    def act(self, x, kind):
        """relu6 (Clip 0..6), silu (x * Sigmoid(x)), hardswish (x * HardSigmoid(x, 1/6, 1/2)), relu, none."""
        if kind == "relu6":
            if "relu6.min" not in [i.name for i in self.inits]:
                self.inits += [numpy_helper.from_array(np.array(0, np.float32), "relu6.min"),
                               numpy_helper.from_array(np.array(6, np.float32), "relu6.max")]
            return self.op("Clip", [x, "relu6.min", "relu6.max"], x + ".relu6")
        if kind == "silu":
            return self.op("Mul", [x, self.op("Sigmoid", [x], x + ".sigmoid")], x + ".silu")
        if kind == "hardswish":
            return self.op("Mul", [x, self.op("HardSigmoid", [x], x + ".hsig", alpha=1.0 / 6, beta=0.5)], x + ".hswish")
        if kind == "relu":
            return self.op("Relu", [x], x + ".relu")
        return x

    def op(self, op, ins, name, **attrs):
        self.nodes.append(helper.make_node(op, ins, [name], name=name, **attrs))
        return name

    def head(self, x, ic):
        """GlobalAveragePool -> Flatten -> Gemm (ic -> classes): the value "logits"."""
        x = self.op("Flatten", [self.op("GlobalAveragePool", [x], "gap")], "flatten", axis=1)
        w = (self.rng.uniform(-1, 1, (self.classes, ic)) / np.sqrt(ic)).astype(np.float32)
        b = self.rng.uniform(-0.1, 0.1, self.classes).astype(np.float32)
        self.inits += [numpy_helper.from_array(w, "fc.w"), numpy_helper.from_array(b, "fc.b")]
        self.nodes.append(helper.make_node("Gemm", [x, "fc.w", "fc.b"], ["logits"], name="fc", transB=1))
        return "logits"

    def model(self, name, out):
        graph = helper.make_graph(self.nodes, name,
                                  [helper.make_tensor_value_info("input", TensorProto.FLOAT, self.shape)],
                                  [helper.make_tensor_value_info(out, TensorProto.FLOAT, [self.shape[0], self.classes])],
                                  self.inits)
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)], producer_name="qhalide-bench")
        m.ir_version = self.ir_version
        onnx.checker.check_model(m, full_check=True)
        return m
