#!/usr/bin/env python3
"""qhalide against ONNX Runtime on quantize_dynamic's output (DynamicQuantizeLinear -> ConvInteger /
MatMulInteger -> Cast -> Mul -> Add), in every combination of weight type (QUInt8 / QInt8),
per-channel and reduce_range, on:

  single layers  a 3x3 conv (pads, stride 2), a depthwise 3x3 conv, a 5x5 depthwise conv with
                 channel multiplier 2, a Gemm on the flattened input: the dynamic chain alone
                 (after a float conv stem or a Flatten, which are exact), expected bit-exact
  whole nets     bench/ort_quant_matrix.py's four CNNs (ResNet block, plain, MobileNetV2- and
                 EfficientNet-style): every Conv / Gemm dynamic, the ops between them float

Outputs are float. "bit-exact" means every output value is the same float; otherwise the maximum
absolute difference is given relative to the largest |output|, with the top-1 agreement: "float
rounding" up to 1e-6 of max |y| (a few ulps), "differs" above. In whole nets the float ops between
dynamic layers (GlobalAveragePool's sum, Sigmoid, ...) may round differently in the last bit; the
next DynamicQuantizeLinear's scale then moves by an ulp, or (rarely) a value moves by one
quantization step of its input. Such differences are reported, not hidden.

  .venv/bin/python bench/ort_dynamic_matrix.py [--qhalide build/bin/qhalide-run] [--markdown F]
"""
import argparse
import datetime
import logging
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import onnx.numpy_helper
import onnxruntime as ort
from onnxruntime.quantization import QuantType, quantize_dynamic

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ort_quant_matrix as oqm  # noqa: E402  (its nets, inputs and runners)

ROOT = oqm.ROOT


def layer_model(n, name, out):
    """n's nodes as a model whose output is the rank-4 `out` (onnx_net's model() declares logits)."""
    g = onnx.helper.make_graph(n.nodes, name, [onnx.helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, n.shape)],
                               [onnx.helper.make_tensor_value_info(out, onnx.TensorProto.FLOAT, None)], n.inits)
    m = onnx.helper.make_model(g, opset_imports=[onnx.helper.make_opsetid("", n.opset)], producer_name="qhalide-bench")
    m.ir_version = n.ir_version
    return m


def layer_conv(seed=3031):
    n = oqm.Net(seed)
    return layer_model(n, "layer_conv", n.conv("input", "conv", 3, 24, stride=2, relu=False))


def layer_dwconv(seed=3032):
    n = oqm.Net(seed)
    x = n.conv("input", "stem", 3, 16, relu=True)
    return layer_model(n, "layer_dwconv", n.dwconv(x, "dw", 16, act="none"))


def layer_dwconv_mult(seed=3033):
    n = oqm.Net(seed)
    x = n.conv("input", "stem", 3, 8, relu=True)
    return layer_model(n, "layer_dwconv_mult", n.dwconv(x, "dw", 8, k=5, stride=2, mult=2, act="none"))


def layer_gemm(seed=3034):
    n = oqm.Net(seed)  # Flatten (NCHW order, no arithmetic) -> Gemm
    k = int(np.prod(oqm.SHAPE[1:]))
    w = (n.rng.uniform(-1, 1, (oqm.CLASSES, k)) / np.sqrt(k)).astype(np.float32)
    b = n.rng.uniform(-0.1, 0.1, oqm.CLASSES).astype(np.float32)
    n.inits += [onnx.numpy_helper.from_array(w, "fc.w"), onnx.numpy_helper.from_array(b, "fc.b")]
    x = n.op("Flatten", ["input"], "flatten", axis=1)
    n.nodes.append(onnx.helper.make_node("Gemm", [x, "fc.w", "fc.b"], ["logits"], name="fc", transB=1))
    return n.model("layer_gemm", "logits")


LAYERS = {"layer_conv": layer_conv, "layer_dwconv": layer_dwconv, "layer_dwconv_mult": layer_dwconv_mult,
          "layer_gemm": layer_gemm}


def combos():
    for wt in ("u8", "s8"):
        for pc in (False, True):
            for rr in (False, True):
                yield {"weight": wt, "per_channel": pc, "reduce_range": rr}


def combo_name(c):
    return f"w{c['weight']}_{'pc' if c['per_channel'] else 'pt'}_{'rr' if c['reduce_range'] else 'fr'}"


# Differences up to this fraction of max |y| are float rounding (a few ulps: a float op between
# dynamic layers summed in another order moves the next layer's x_scale by an ulp), not a
# quantization step (about 1/255 of the input range).
FLOAT_ROUNDING = 1e-6


def compare(q, o, n_inputs):
    if np.array_equal(q, o):
        return "bit-exact", 0.0, n_inputs
    rel = float(np.abs(q.astype(np.float64) - o).max() / max(float(np.abs(o).max()), 1e-30))
    top1 = int(np.sum(q.reshape(n_inputs, -1).argmax(1) == o.reshape(n_inputs, -1).argmax(1)))
    return ("float rounding" if rel <= FLOAT_ROUNDING else "differs"), rel, top1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--qhalide", default=os.path.join(ROOT, "build", "bin", "qhalide-run"))
    ap.add_argument("--markdown", help="write the markdown table here")
    ap.add_argument("--timeout", type=float, default=120.0)
    a = ap.parse_args()
    logging.getLogger().setLevel(logging.ERROR)
    exe = os.path.abspath(a.qhalide)
    xs = oqm.random_inputs(oqm.N_TEST, seed=11)
    rows, counts = [], {}
    with tempfile.TemporaryDirectory(prefix="ort_dynamic_") as work:
        for mname, make in list(LAYERS.items()) + list(oqm.MODELS.items()):
            fp32 = os.path.join(work, mname + "_fp32.onnx")
            onnx.save(make(), fp32)
            for c in combos():
                name = f"{mname}_{combo_name(c)}"
                path = os.path.join(work, name + ".onnx")
                quantize_dynamic(fp32, path, weight_type=oqm.QT[c["weight"]], per_channel=c["per_channel"],
                                 reduce_range=c["reduce_range"])
                out = onnx.load(path).graph.output[0].name
                ops = sorted({n.op_type for n in onnx.load(path).graph.node if n.op_type in
                              ("ConvInteger", "MatMulInteger", "DynamicQuantizeLinear")})
                o, oerr = oqm.run_ort(path, xs, True, [out])
                on, _ = oqm.run_ort(path, xs, False, [out])
                q, qerr = oqm.run_qhalide(exe, path, xs, work, a.timeout, [out])
                if qerr is not None:
                    cat, detail = ("qhalide refuses" if qerr[0] == "refuse" else "qhalide crashes"), qerr[1]
                elif oerr is not None:
                    cat, detail = "ORT refuses", oerr
                else:
                    cat, rel, top1 = compare(q[out], o[out], len(xs))
                    detail = "" if cat == "bit-exact" else f"max |diff| {rel:.2e} of max |y|, top-1 {top1}/{len(xs)}"
                    if on is not None and cat != "bit-exact" and np.array_equal(q[out], on[out]):
                        cat, detail = "bit-exact", "with ORT unoptimized (" + detail + " vs optimized)"
                counts[cat] = counts.get(cat, 0) + 1
                rows.append((mname, combo_name(c), ", ".join(ops), cat, detail))
                print(f"{name}: {cat} {detail}", flush=True)
    print("\nsummary: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) + f" (total {len(rows)})")
    if a.markdown:
        git = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True).stdout.strip()
        L = [f"# ONNX Runtime quantize_dynamic matrix vs qhalide ({datetime.date.today().isoformat()})", "",
             f"ONNX Runtime {ort.__version__}, onnx {onnx.__version__}, qhalide {git}; {len(xs)} inputs of shape "
             f"{oqm.SHAPE}; command `bench/ort_dynamic_matrix.py {' '.join(sys.argv[1:])}`.", "",
             "Summary: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) + f" of {len(rows)}.", "",
             "| model | weights / channels / range | dynamic ops | result | detail |", "|---|---|---|---|---|"]
        L += [f"| {m} | {c} | {ops} | {cat} | {d} |" for m, c, ops, cat, d in rows]
        with open(a.markdown, "w") as f:
            f.write("\n".join(L) + "\n")


if __name__ == "__main__":
    main()
