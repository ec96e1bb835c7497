#!/usr/bin/env python3
"""Small int4 QDQ test models made by hand with onnx.helper (opset 21: INT4 weights per output
channel, UINT4 activations, int32 bias), each with a random input and the outputs of
onnx.reference (and of ONNX Runtime when it is installed: scripts/ort_compare.sh installs it),
for comparing qhalide's int4 path against later.

    .venv/bin/python scripts/make_int4_qdq_models.py OUT_DIR

Writes OUT_DIR/<model>/model.onnx and test_data_set_0/{input_0,output_0}.pb (the layout of the
ONNX node tests, so tests/run_onnx_conformance.sh and qhalide-run --expect read them), plus
output_0_ort.pb when ONNX Runtime ran the model. onnx.reference computes each layer as
DequantizeLinear -> float op -> QuantizeLinear, so an integer implementation may land one
quantization step away where the float result is a rounding tie: compare with that in mind.
Not run by CI (it needs no more than the onnx package, but the comparison is not exact).
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator


def q4(name, values, signed, dims=None):
    values = np.asarray(values)
    return helper.make_tensor(name, TensorProto.INT4 if signed else TensorProto.UINT4,
                              list(values.shape) if dims is None else dims, values.flatten().tolist())


def f32(name, values):
    return numpy_helper.from_array(np.asarray(values, dtype=np.float32), name)


class Net:
    def __init__(self):
        self.nodes, self.inits, self.n = [], [], 0

    def qdq(self, x, scale, zp):
        """UINT4 activation quantization: x -> Q -> DQ."""
        self.n += 1
        s, z = f"a{self.n}_s", f"a{self.n}_z"
        self.inits += [f32(s, scale), q4(z, [zp], False, [])]
        self.nodes += [helper.make_node("QuantizeLinear", [x, s, z], [x + "_q"]),
                       helper.make_node("DequantizeLinear", [x + "_q", s, z], [x + "_dq"])]
        return x + "_dq"

    def weights(self, name, w, x_scale, axis=0):
        """INT4 weights, symmetric per output channel (axis), and an int32 bias of scale x_s * w_s."""
        oc = w.shape[axis]
        other = tuple(i for i in range(w.ndim) if i != axis)
        ws = np.maximum(np.abs(w).max(axis=other), 1e-6) / 7.0
        shape = [1] * w.ndim
        shape[axis] = oc
        wq = np.clip(np.rint(w / ws.reshape(shape)), -8, 7).astype(np.int8)
        self.inits += [q4(name + "_q", wq, True), f32(name + "_s", ws), q4(name + "_z", np.zeros(oc, np.int8), True)]
        self.nodes.append(helper.make_node("DequantizeLinear", [name + "_q", name + "_s", name + "_z"], [name + "_dq"],
                                           axis=axis))
        rng = np.random.default_rng(len(self.inits))
        bq = rng.integers(-50, 50, oc).astype(np.int32)
        self.inits += [numpy_helper.from_array(bq, name + "_bq"), f32(name + "_bs", (x_scale * ws).astype(np.float32))]
        self.nodes.append(helper.make_node("DequantizeLinear", [name + "_bq", name + "_bs"], [name + "_b"], axis=0))
        return name + "_dq", name + "_b"


def conv_model(rng):
    """x -Q/DQ-> Conv 3x3 (INT4 weights) -Q/DQ-> y."""
    net = Net()
    x = net.qdq("x", 0.1, 8)
    w, b = net.weights("w1", rng.normal(0, 0.3, (8, 3, 3, 3)), 0.1)
    net.nodes.append(helper.make_node("Conv", [x, w, b], ["c1"], pads=[1, 1, 1, 1]))
    y = net.qdq("c1", 0.4, 7)
    net.nodes.append(helper.make_node("Identity", [y], ["y"]))
    return net, [1, 3, 8, 8], [1, 8, 8, 8]


def small_net(rng):
    """x -Q/DQ-> Conv (INT4) -> Relu -Q/DQ-> Conv 3x3 stride 2 (INT4) -Q/DQ-> GlobalAveragePool
    -Q/DQ-> Flatten -> Gemm (INT4 weights, transB) -> y (float logits)."""
    net = Net()
    x = net.qdq("x", 0.1, 8)
    w, b = net.weights("w1", rng.normal(0, 0.3, (8, 3, 3, 3)), 0.1)
    net.nodes += [helper.make_node("Conv", [x, w, b], ["c1"], pads=[1, 1, 1, 1]),
                  helper.make_node("Relu", ["c1"], ["r1"])]
    r = net.qdq("r1", 0.2, 0)
    w, b = net.weights("w2", rng.normal(0, 0.2, (16, 8, 3, 3)), 0.2)
    net.nodes.append(helper.make_node("Conv", [r, w, b], ["c2"], pads=[1, 1, 1, 1], strides=[2, 2]))
    c = net.qdq("c2", 0.5, 8)
    net.nodes.append(helper.make_node("GlobalAveragePool", [c], ["g"]))
    g = net.qdq("g", 0.25, 8)
    net.nodes.append(helper.make_node("Flatten", [g], ["f"]))
    w, b = net.weights("fc", rng.normal(0, 0.3, (10, 16)), 0.25)
    net.nodes.append(helper.make_node("Gemm", ["f", w, b], ["y"], transB=1))
    return net, [1, 3, 8, 8], [1, 10]


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    out = sys.argv[1]
    try:
        import onnxruntime as ort
    except ImportError:
        ort = None
    rng = np.random.default_rng(4)
    for name, make in (("int4_qdq_conv", conv_model), ("int4_qdq_small_net", small_net)):
        net, xshape, yshape = make(rng)
        graph = helper.make_graph(net.nodes, name,
                                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, xshape)],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, yshape)], net.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], producer_name="qhalide")
        model.ir_version = 10
        onnx.checker.check_model(model, full_check=True)
        x = rng.uniform(-0.8, 0.8, xshape).astype(np.float32)
        (y,) = ReferenceEvaluator(model).run(None, {"x": x})
        d = os.path.join(out, name, "test_data_set_0")
        os.makedirs(d, exist_ok=True)
        onnx.save(model, os.path.join(out, name, "model.onnx"))
        onnx.save_tensor(numpy_helper.from_array(x, "x"), os.path.join(d, "input_0.pb"))
        onnx.save_tensor(numpy_helper.from_array(y, "y"), os.path.join(d, "output_0.pb"))
        note = ""
        if ort is not None:
            try:
                sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
                (yo,) = sess.run(None, {"x": x})
                onnx.save_tensor(numpy_helper.from_array(yo, "y"), os.path.join(d, "output_0_ort.pb"))
                note = f", ONNX Runtime {ort.__version__}: max |diff| {float(np.abs(yo - y).max()):g}"
            except Exception as e:  # ONNX Runtime refuses some int4 graphs (../shared/notes/int4.md)
                note = f", ONNX Runtime refused it: {str(e).splitlines()[0]}"
        print(f"{name}: y {list(y.shape)} from onnx.reference{note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
