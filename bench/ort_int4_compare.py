#!/usr/bin/env python3
"""qhalide's int4 QDQ path against ONNX Runtime and onnx.reference on the same models and inputs.

Small float CNNs made with onnx.helper (Conv+Relu, a residual Add, MaxPool, GlobalAveragePool,
Flatten, Gemm; NCHW, opset 21, deterministic synthetic weights) are quantized by ONNX Runtime's
quantize_static (QDQ; weights QInt4 / QUInt4; activations QUInt8 / QInt8 (W4A8) or QUInt4 / QInt4
(W4A4); per channel and per tensor; MinMax calibration on random inputs), then each model runs on
the same random inputs (batch 1) in

  - ONNX Runtime, CPU EP, graph optimizations on (ORT_ENABLE_ALL, what a user gets) and off
    (ORT_DISABLE_ALL: every QDQ layer as DequantizeLinear -> float op -> QuantizeLinear),
  - onnx.reference.ReferenceEvaluator (the arbiter: the ONNX definition in numpy),
  - qhalide (build/bin/qhalide-run, one process per input, --threads 1).

Differences are counted in output quantization steps (the scale of the DequantizeLinear that
writes the graph output): max / mean |diff| / step, bit-exact outputs, top-1 agreement. Where a
runtime refuses a model its first error line is recorded. scripts/make_int4_qdq_models.py's
hand-made models go through the same three runtimes.

W4A4 and MaxPool: ONNX Runtime's QDQ optimizer drops the DQ -> MaxPool -> Q pair (same scale and
zero point) and leaves a MaxPool on uint4 that it has no kernel for, so those models also come in a
"fmaxpool" form (MaxPool excluded from quantization: DQ -> float MaxPool -> Q with its own scale,
which the optimizer keeps), and ORT's optimizations-off run covers the original.

A constructed rounding-tie test (tie_conv_*: x_s * w_s / y_s = 1/2 in exact arithmetic, so every
odd accumulator is a tie) shows where an integer implementation and the float DQ -> conv -> Q
definition part: qhalide rounds acc * fl(x_s * w_s / y_s) (one float multiply of the exact integer
accumulator), ORT and onnx.reference round the float sum of dequantized products.

usage: bench/ort_int4_compare.py [--inputs 8] [--build build] [--work build/bench/ort_int4]
                                 [--json OUT.json] [--md OUT.md] [--only SUBSTRING] [--save-outputs]
"""
import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator
import onnxruntime as ort
from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType, quantize_static)

import onnx_net  # bench/onnx_net.py: the seeded conv nets both ORT comparisons build

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
SHAPE = [1, 3, 16, 16]
CLASSES = 10


# ---- float models -------------------------------------------------------------------------------

def Net(seed):
    return onnx_net.Net(seed, SHAPE, CLASSES, opset=21, ir_version=10)


def cnn(maxpool, seed=2026):
    """input {1,3,16,16} -> Conv3x3(16)+Relu -> [MaxPool 2x2 | Conv3x3 s2 (16)+Relu] -> Conv3x3+Relu
    -> Conv3x3 -> Add(residual) -> Relu -> Conv3x3 s2 (32)+Relu -> GlobalAveragePool -> Flatten
    -> Gemm(10) -> logits."""
    n = Net(seed)
    x = n.conv("input", "conv1", 3, 16)
    if maxpool:
        x = n.op("MaxPool", [x], "maxpool", kernel_shape=[2, 2], strides=[2, 2])
    else:
        x = n.conv(x, "conv1s", 16, 16, stride=2)
    y = n.conv(x, "conv2", 16, 16)
    y = n.conv(y, "conv3", 16, 16, relu=False)
    x = n.op("Relu", [n.op("Add", [y, x], "add")], "add.relu")
    x = n.conv(x, "conv4", 16, 32, stride=2)
    return n.model("cnn_maxpool" if maxpool else "cnn_stride", n.head(x, 32))


def tie_model(four_bit_act):
    """A constructed rounding-tie stress test (not from quantize_static): x -Q/DQ (scale 0.1)-> Conv
    3x3, 8 -> 16 channels, INT4 weights (per tensor, scale 0.3) and a zero int32 bias -Q/DQ (scale
    0.06)-> y. In exact arithmetic y_q = acc * 0.1 * 0.3 / 0.06 = acc / 2, a tie at every odd
    integer accumulator acc; in float32 neither 0.1 * 0.3 / 0.06 nor ORT's / onnx.reference's
    DQ -> float conv -> Q is exactly 1/2, so each runtime's float rounding decides the tie.
    Activations UINT8 (zero point 128 at the output) or UINT4 (zero point 8)."""
    rng = np.random.default_rng(5)
    at = TensorProto.UINT4 if four_bit_act else TensorProto.UINT8
    sx, sw, sy = np.float32(0.1), np.float32(0.3), np.float32(0.06)
    w = rng.integers(-1 if four_bit_act else -2, 2 if four_bit_act else 3, (16, 8, 3, 3))
    inits = [numpy_helper.from_array(np.array(sx), "sx"), helper.make_tensor("zx", at, [], [0]),
             numpy_helper.from_array(np.array(sy), "sy"), helper.make_tensor("zy", at, [], [8 if four_bit_act else 128]),
             helper.make_tensor("wq", TensorProto.INT4, list(w.shape), w.flatten().tolist()),
             numpy_helper.from_array(np.array(sw), "sw"), helper.make_tensor("zw", TensorProto.INT4, [], [0]),
             numpy_helper.from_array(np.zeros(16, np.int32), "bq"), numpy_helper.from_array(np.array(sx * sw), "sb")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "sx", "zx"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "sx", "zx"], ["xd"]),
             helper.make_node("DequantizeLinear", ["wq", "sw", "zw"], ["wd"]),
             helper.make_node("DequantizeLinear", ["bq", "sb"], ["bd"]),
             helper.make_node("Conv", ["xd", "wd", "bd"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("QuantizeLinear", ["c", "sy", "zy"], ["cq"]),
             helper.make_node("DequantizeLinear", ["cq", "sy", "zy"], ["y"])]
    graph = helper.make_graph(nodes, "tie_conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16, 8, 8])], inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], producer_name="qhalide-bench")
    m.ir_version = 10
    onnx.checker.check_model(m, full_check=True)
    return m


def tie_inputs(n, four_bit_act):
    """Inputs on the x grid (multiples of 0.1, integers 0..1 or 0..3), so QuantizeLinear is exact."""
    rng = np.random.default_rng(13)
    return [(rng.integers(0, 2 if four_bit_act else 4, (1, 8, 8, 8)) * np.float32(0.1)).astype(np.float32)
            for _ in range(n)]


def tie_analysis(m, xs, outs, four_bit_act):
    """Per runtime: how the exact ties (odd integer accumulators) were rounded, and differences from
    onnx.reference at ties and elsewhere."""
    w = numpy_helper.to_array(next(i for i in m.graph.initializer if i.name == "wq")).astype(np.int64)
    accs = []
    for x in xs:
        q = np.pad(np.rint(x[0] / np.float32(0.1)).astype(np.int64), ((0, 0), (1, 1), (1, 1)))
        acc = np.zeros((16, 8, 8), np.int64)
        for ky in range(3):
            for kx in range(3):
                acc += np.einsum("oc,chw->ohw", w[:, :, ky, kx], q[:, ky:ky + 8, kx:kx + 8])
        accs.append(acc[None])
    acc = np.stack(accs)
    zy, qmax = (8, 15) if four_bit_act else (128, 255)
    tie = (acc % 2 != 0) & (np.floor(acc / 2) + zy >= 0) & (np.ceil(acc / 2) + zy <= qmax)
    out = {"accumulators": int(acc.size), "ties_in_range": int(tie.sum())}
    ref = np.rint(outs["reference"] / np.float32(0.06)).astype(np.int64)
    for k, o in outs.items():
        if o is None:
            continue
        yq = np.rint(o / np.float32(0.06)).astype(np.int64)
        away = yq[tie] == np.where(acc[tie] > 0, np.ceil(acc[tie] / 2), np.floor(acc[tie] / 2))
        out[k] = {"ties_rounded_away_from_zero": int(away.sum()), "ties_rounded_toward_zero": int((~away).sum()),
                  "differs_from_reference_at_ties": int((yq != ref)[tie].sum()),
                  "differs_from_reference_elsewhere": int((yq != ref)[~tie].sum())}
    return out


def random_inputs(n, seed):
    rng = np.random.default_rng(seed)
    return [rng.normal(0, 1, SHAPE).astype(np.float32) for _ in range(n)]


class Reader(CalibrationDataReader):
    def __init__(self, xs):
        self.it = iter([{"input": x} for x in xs])

    def get_next(self):
        return next(self.it, None)


QT = {"s4": QuantType.QInt4, "u4": QuantType.QUInt4, "s8": QuantType.QInt8, "u8": QuantType.QUInt8}
# (weights, activations): W4A8 and W4A4
COMBOS = [("s4", "u8"), ("s4", "s8"), ("u4", "u8"), ("u4", "s8"), ("s4", "u4"), ("u4", "u4"), ("s4", "s4")]


def quantize(fp32_path, out_path, wt, at, per_channel, calib, exclude=None, overrides=None):
    quantize_static(fp32_path, out_path, Reader(calib), quant_format=QuantFormat.QDQ, per_channel=per_channel,
                    weight_type=QT[wt], activation_type=QT[at], nodes_to_exclude=exclude,
                    extra_options={"TensorQuantOverrides": overrides} if overrides else None)


def act_range(path, tensor):
    """(rmin, rmax) that the QuantizeLinear of `tensor` in the QDQ model at `path` covers."""
    m = onnx.load(path)
    inits = {i.name: i for i in m.graph.initializer}
    limits = {TensorProto.UINT8: (0, 255), TensorProto.INT8: (-128, 127), TensorProto.UINT4: (0, 15),
              TensorProto.INT4: (-8, 7)}
    for n in m.graph.node:
        if n.op_type == "QuantizeLinear" and n.input[0] == tensor:
            s = float(numpy_helper.to_array(inits[n.input[1]]))
            zt = inits[n.input[2]]
            z = int(numpy_helper.to_array(zt).astype(np.int32))
            lo, hi = limits[zt.data_type]
            return (lo - z) * s, (hi - z) * s
    raise RuntimeError(f"no QuantizeLinear of {tensor}")


def tail8(at):
    """TensorQuantOverrides: the GlobalAveragePool -> Flatten -> Gemm tail at 8 bits (qhalide's
    global_avgpool kernel writes only the u8 range), the convs and the Add at 4 bits."""
    t = QuantType.QInt8 if at == "s4" else QuantType.QUInt8
    return {k: [{"quant_type": t}] for k in ("gap", "flatten", "logits")}


def variants(arch, wt, at):
    """(suffix, exclude, overrides-or-callable) per model; a callable gets the base model's path."""
    if at not in ("u4", "s4"):
        return [("", None, None)]
    out = [("", None, None), ("_tail8", None, tail8(at))]
    if arch == "cnn_maxpool":
        def fmax(base):  # MaxPool in float: its output quantized over a 1.25x wider range than its input
            lo, hi = act_range(base, "conv1.relu")
            return {**tail8(at), "maxpool": [{"rmin": np.float32(lo), "rmax": np.float32(hi * 1.25)}]}
        out.append(("_tail8_fmaxpool", ["maxpool"], fmax))
    return out


# ---- runtimes -----------------------------------------------------------------------------------

def first_line(e):
    s = str(e).strip()
    return s.splitlines()[0] if s else type(e).__name__


def run_ort(path, xs, optimize):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize else \
        ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        return np.stack([sess.run(None, {name: x})[0] for x in xs]), None
    except Exception as e:  # noqa: BLE001 -- recorded, not fatal
        return None, first_line(e)


def run_reference(path, xs):
    try:
        m = onnx.load(path)
        ev = ReferenceEvaluator(m)
        name = m.graph.input[0].name
        return np.stack([ev.run(None, {name: x})[0] for x in xs]), None
    except Exception as e:  # noqa: BLE001
        return None, first_line(e)


def run_qhalide(build, path, xs, work):
    exe = os.path.join(build, "bin", "qhalide-run")
    m = onnx.load(path)
    iname, oname = m.graph.input[0].name, m.graph.output[0].name
    outs = []
    with tempfile.TemporaryDirectory(dir=work) as d:
        for i, x in enumerate(xs):
            inp = os.path.join(d, f"x{i}.npy")
            np.save(inp, x)
            r = subprocess.run([exe, path, "--input", f"{iname}={inp}", "--output-dir", d, "--threads", "1"],
                               capture_output=True, text=True)
            if r.returncode != 0:
                msg = (r.stderr.strip() or r.stdout.strip() or f"exit {r.returncode}").splitlines()
                return None, (msg[-1] if msg else f"exit {r.returncode}").replace(os.path.dirname(path) + "/", "")
            outs.append(np.load(os.path.join(d, oname + ".npy")))
    return np.stack(outs), None


# ---- comparison ---------------------------------------------------------------------------------

def output_step(m):
    """Scale of the DequantizeLinear that writes the graph output (through Identity nodes), None if
    the output is not dequantized (then differences are absolute)."""
    inits = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    producer = {o: n for n in m.graph.node for o in n.output}
    n = producer.get(m.graph.output[0].name)
    while n is not None and n.op_type == "Identity":
        n = producer.get(n.input[0])
    if n is not None and n.op_type == "DequantizeLinear":
        return float(inits[n.input[1]].reshape(-1)[0])
    return None


def compare(a, b, step):
    if a is None or b is None:
        return None
    d = np.abs(a.astype(np.float64) - b.astype(np.float64))
    s = d / step if step else d
    flat_a, flat_b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    return {"max_steps" if step else "max_abs": float(s.max()),
            "mean_steps" if step else "mean_abs": float(s.mean()),
            "outputs_bit_exact": f"{int(np.sum(d.reshape(len(d), -1).max(1) == 0))}/{len(a)}",
            "values_differing": f"{int(np.sum(d > 0))}/{d.size}",
            "top1_same": f"{int(np.sum(flat_a.argmax(1) == flat_b.argmax(1)))}/{len(a)}"}


def describe(m):
    """Which integer types the QDQ model carries: weights / activations / bias, per channel or not."""
    inits = {i.name: i for i in m.graph.initializer}
    wtypes, atypes, per_axis = set(), set(), False
    for n in m.graph.node:
        if n.op_type == "DequantizeLinear" and n.input[0] in inits:
            t = inits[n.input[0]]
            if t.data_type != TensorProto.INT32:
                wtypes.add(TensorProto.DataType.Name(t.data_type))
                per_axis |= len(numpy_helper.to_array(inits[n.input[1]]).reshape(-1)) > 1
        if n.op_type == "QuantizeLinear" and len(n.input) > 2 and n.input[2] in inits:
            atypes.add(TensorProto.DataType.Name(inits[n.input[2]].data_type))
    ops = sorted({n.op_type for n in m.graph.node} - {"QuantizeLinear", "DequantizeLinear"})
    return {"weight_types": sorted(wtypes), "activation_types": sorted(atypes), "per_axis_weights": per_axis,
            "float_ops": ops}


def evaluate(name, path, xs, a, extra=None, analyse=None):
    m = onnx.load(path)
    step = output_step(m)
    rec = {"model": name, "path": os.path.relpath(path, ROOT), "output_step": step, **describe(m), **(extra or {})}
    outs, errs = {}, {}
    outs["ort_opt"], errs["ort_opt"] = run_ort(path, xs, True)
    outs["ort_noopt"], errs["ort_noopt"] = run_ort(path, xs, False)
    outs["reference"], errs["reference"] = run_reference(path, xs)
    outs["qhalide"], errs["qhalide"] = run_qhalide(a.build, path, xs, a.work)
    rec["errors"] = {k: v for k, v in errs.items() if v}
    rec["qhalide_vs_reference"] = compare(outs["qhalide"], outs["reference"], step)
    rec["qhalide_vs_ort_opt"] = compare(outs["qhalide"], outs["ort_opt"], step)
    rec["qhalide_vs_ort_noopt"] = compare(outs["qhalide"], outs["ort_noopt"], step)
    rec["ort_opt_vs_reference"] = compare(outs["ort_opt"], outs["reference"], step)
    rec["ort_noopt_vs_reference"] = compare(outs["ort_noopt"], outs["reference"], step)
    if analyse is not None:
        rec["tie_analysis"] = analyse(m, xs, outs)
    if a.save_outputs:
        np.savez(os.path.join(a.work, name + "_outputs.npz"), **{k: v for k, v in outs.items() if v is not None})
    return rec


def short(c):
    if c is None:
        return "-"
    k = "max_steps" if "max_steps" in c else "max_abs"
    km = "mean_steps" if "mean_steps" in c else "mean_abs"
    return f"{c[k]:g} / {c[km]:.3g} / {c['outputs_bit_exact']} / {c['top1_same']}"


def cell(c):
    if c is None:
        return "-"
    if "max_steps" not in c:
        return f"{c['max_abs']:g} / {c['mean_abs']:.3g} (abs) / {c['outputs_bit_exact']} / {c['top1_same']}"
    return f"{c['max_steps']:g} / {c['mean_steps']:.3g} / {c['outputs_bit_exact']} / {c['top1_same']}"


TYPE = {"INT4": "s4", "UINT4": "u4", "INT8": "s8", "UINT8": "u8"}


def markdown(res, command):
    """The summary table (one row per model) as markdown, refusals as numbered notes."""
    notes = []

    def note(msg):
        if msg not in notes:
            notes.append(msg)
        return f"[{notes.index(msg) + 1}]"

    lines = [f"ONNX Runtime {res['onnxruntime']}, onnx {res['onnx']}, numpy {res['numpy']}, qhalide {res['qhalide_commit']}, "
             f"{res['inputs']} random inputs (batch 1) per model, {res['date']}. Command:", "", "```sh", command, "```", "",
             "Cells: max / mean |diff| in output quantization steps (the final DequantizeLinear's scale) / outputs "
             "bit-exact / top-1 same. ORT opt = ORT_ENABLE_ALL, noopt = ORT_DISABLE_ALL. Weights: pc per channel, pt "
             "per tensor. `-`: a runtime refused the model (last column, messages below). `_tail8`: "
             "GlobalAveragePool/Flatten/Gemm kept at 8 bits (TensorQuantOverrides); `_fmaxpool`: MaxPool not "
             "quantized, its output quantized over a wider range than its input.", "",
             "| model | weights | activations | qhalide vs onnx.reference | qhalide vs ORT opt | qhalide vs ORT noopt "
             "| ORT opt vs onnx.reference | refused by |",
             "|---|---|---|---|---|---|---|---|"]
    for r in res["models"]:
        w = ",".join(TYPE.get(t, t) for t in r.get("weight_types", [])) + (" pc" if r.get("per_axis_weights") else " pt")
        acts = ",".join(TYPE.get(t, t) for t in r.get("activation_types", []))
        errs = ", ".join(f"{k} {note(v)}" for k, v in r.get("errors", {}).items())
        lines.append(f"| {r['model']} | {w if 'weight_types' in r else '-'} | {acts or '-'} | "
                     f"{cell(r.get('qhalide_vs_reference'))} | {cell(r.get('qhalide_vs_ort_opt'))} | "
                     f"{cell(r.get('qhalide_vs_ort_noopt'))} | {cell(r.get('ort_opt_vs_reference'))} | {errs} |")
    lines += ["", "Refusals:", ""] + [f"{i + 1}. `{m}`" for i, m in enumerate(notes)]
    for r in res["models"]:
        if "tie_analysis" in r:
            t = r["tie_analysis"]
            lines += ["", f"{r['model']}: {t['ties_in_range']} of {t['accumulators']} outputs are exact ties; "
                      "rounded away from zero / toward zero, differing from onnx.reference at ties / elsewhere:", ""]
            for k in ("qhalide", "ort_opt", "ort_noopt", "reference"):
                if k in t:
                    v = t[k]
                    lines.append(f"- {k}: {v['ties_rounded_away_from_zero']} / {v['ties_rounded_toward_zero']}, "
                                 f"{v['differs_from_reference_at_ties']} / {v['differs_from_reference_elsewhere']}")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--inputs", type=int, default=8)
    ap.add_argument("--calib", type=int, default=16)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--work", default=os.path.join(ROOT, "build", "bench", "ort_int4"))
    ap.add_argument("--json", help="write the results here too")
    ap.add_argument("--md", help="write the summary table (markdown) here")
    ap.add_argument("--save-outputs", action="store_true", help="keep every runtime's outputs (.npz in --work)")
    ap.add_argument("--only", help="substring filter on model names")
    a = ap.parse_args()
    a.work = os.path.abspath(a.work)
    os.makedirs(a.work, exist_ok=True)
    xs = random_inputs(a.inputs, seed=7)
    calib = random_inputs(a.calib, seed=1)
    results = []

    for maxpool in (True, False):
        fm = cnn(maxpool)
        arch = fm.graph.name
        fp32 = os.path.join(a.work, arch + "_fp32.onnx")
        onnx.save(fm, fp32)
        for wt, at in COMBOS:
            for pc in (True, False):
                base = None
                for suffix, exclude, overrides in variants(arch, wt, at):
                    name = f"{arch}_w{wt}a{at}_{'pc' if pc else 'pt'}{suffix}"
                    path = os.path.join(a.work, name + ".onnx")
                    if suffix == "":
                        base = path
                    if a.only and a.only not in name and suffix != "":
                        continue
                    extra = {"arch": arch, "weight_type": wt, "activation_type": at, "per_channel": pc,
                             "tail_8bit": "tail8" in suffix, "maxpool_in_float": bool(exclude)}
                    try:
                        quantize(fp32, path, wt, at, pc, calib, exclude,
                                 overrides(base) if callable(overrides) else overrides)
                        if a.only and a.only not in name:
                            continue
                    except Exception as e:  # noqa: BLE001
                        results.append({"model": name, **extra, "errors": {"quantize_static": first_line(e)}})
                        print(f"{name}: quantize_static failed: {first_line(e)}", flush=True)
                        continue
                    rec = evaluate(name, path, xs, a, extra)
                    results.append(rec)
                    print(f"{name}: q-vs-ref {short(rec['qhalide_vs_reference'])} | q-vs-ort {short(rec['qhalide_vs_ort_opt'])}"
                          f" | errors {rec['errors']}", flush=True)

    # constructed rounding-tie stress tests
    for fb in (False, True):
        name = "tie_conv_w4a4" if fb else "tie_conv_w4a8"
        if a.only and a.only not in name:
            continue
        path = os.path.join(a.work, name + ".onnx")
        onnx.save(tie_model(fb), path)
        rec = evaluate(name, path, tie_inputs(a.inputs, fb), a, {"arch": "constructed rounding-tie test"},
                       analyse=lambda m, xs, outs, fb=fb: tie_analysis(m, xs, outs, fb))
        results.append(rec)
        print(f"{name}: q-vs-ref {short(rec['qhalide_vs_reference'])} | q-vs-ort {short(rec['qhalide_vs_ort_opt'])}"
              f" | ort-vs-ref {short(rec['ort_opt_vs_reference'])} | errors {rec['errors']}", flush=True)

    # scripts/make_int4_qdq_models.py's hand-made models (input "x", their own shapes)
    hand = os.path.join(a.work, "hand")
    subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "make_int4_qdq_models.py"), hand], check=True,
                   capture_output=True)
    for name in sorted(os.listdir(hand)):
        if a.only and a.only not in name:
            continue
        path = os.path.join(hand, name, "model.onnx")
        shape = [d.dim_value for d in onnx.load(path).graph.input[0].type.tensor_type.shape.dim]
        rng = np.random.default_rng(11)
        hx = [rng.uniform(-0.8, 0.8, shape).astype(np.float32) for _ in range(a.inputs)]
        rec = evaluate("hand_" + name, path, hx, a, {"arch": "make_int4_qdq_models.py"})
        results.append(rec)
        print(f"hand_{name}: q-vs-ref {short(rec['qhalide_vs_reference'])} | q-vs-ort {short(rec['qhalide_vs_ort_opt'])}"
              f" | errors {rec['errors']}", flush=True)

    git = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    res = {"date": datetime.date.today().isoformat(), "qhalide_commit": git, "command": " ".join(sys.argv), "onnxruntime": ort.__version__,
           "onnx": onnx.__version__, "numpy": np.__version__, "inputs": a.inputs, "calibration_inputs": a.calib,
           "input_shape": SHAPE, "qhalide_binary": os.path.join(a.build, "bin", "qhalide-run"),
           "legend": "compare: max / mean |diff| in output steps (the final DequantizeLinear's scale), outputs "
                     "bit-exact, values differing, top-1 same; ort_opt = ORT_ENABLE_ALL, ort_noopt = ORT_DISABLE_ALL",
           "models": results}
    txt = json.dumps(res, indent=2)
    if a.md:
        with open(a.md, "w") as f:
            f.write(markdown(res, "scripts/ort_int4_compare.sh " + " ".join(sys.argv[1:])))
    if a.json:
        with open(a.json, "w") as f:
            f.write(txt + "\n")
    print(txt)


if __name__ == "__main__":
    main()
