#!/usr/bin/env python3
"""qhalide against ONNX Runtime on every quantize_static configuration of two small CNNs.

Acceptance check for "Real models beyond ResNet": models quantized by ONNX Runtime's
quantize_static in every combination of

    quant_format  QDQ | QOperator
    per_channel   False | True
    activations   QUInt8 | QInt8
    weights       QUInt8 | QInt8
    reduce_range  False | True
    extra_options ActivationSymmetric False | True

(64 per model) run in qhalide and agree with ONNX Runtime.

Float models (onnx.helper, NCHW, opset 13, batch 1, input "input" [1,3,32,32], seeded weights):

  resnet_block  Conv3x3(3->16,pad1)+Relu -> Conv3x3(16->16)+Relu -> Conv3x3(16->16)
                -> Add(first conv's output) -> Relu -> GlobalAveragePool -> Flatten -> Gemm(16->10)
  plain         Conv3x3(3->16)+Relu -> MaxPool2x2 -> Conv3x3(16->32)+Relu -> GlobalAveragePool
                -> Flatten -> Gemm(32->10)

Calibration: 8 seeded inputs N(0,1) clipped to [-3,3] (MinMax). Test: 4 other seeded inputs.

Per quantized model and input: ONNX Runtime (CPUExecutionProvider, intra_op_num_threads 1, graph
optimizations default = ORT_ENABLE_ALL; the ORT_DISABLE_ALL output is compared with it too) and
qhalide-run (one process per input, --threads 1, timeout). The output is float (dequantized
logits), so differences are counted in output quantization steps: the scale of the
DequantizeLinear that writes the graph output. Outcome per model (worst over the inputs):

  bit-exact          max |diff| = 0
  within 1 step      max |diff| <= 1 step
  differs            max |diff| > 1 step (max reported)
  qhalide refuses    qhalide-run exits non-zero (its error line recorded)
  qhalide crashes    killed by a signal, or timed out
  ORT refuses        ORT cannot load or run its own model (qhalide still run: "runs" / refuses)
  quantize fails     quantize_static raised

usage: bench/ort_quant_matrix.py [--qhalide PATH] [--markdown FILE] [--json FILE] [--only SUBSTRING]
                                 [--keep DIR] [--timeout S] [--trace]
--trace: for every "differs" or "qhalide refuses" model, cut the model after each quantized tensor
(QuantizeLinear / QLinear* output, + DequantizeLinear), run both runtimes on each cut and report the
first quantized tensor that differs (or which cuts qhalide cannot run).
"""
import argparse
import collections
import datetime
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
import onnxruntime as ort
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

import onnx_net  # bench/onnx_net.py: the seeded conv nets both ORT comparisons build

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
SHAPE = [1, 3, 32, 32]
CLASSES = 10
N_CALIB = 8
N_TEST = 4


# ---- float models -------------------------------------------------------------------------------

def Net(seed):
    return onnx_net.Net(seed, SHAPE, CLASSES, opset=13, ir_version=7)


def resnet_block(seed=2026):
    n = Net(seed)
    x = n.conv("input", "conv1", 3, 16)
    y = n.conv(x, "conv2", 16, 16)
    y = n.conv(y, "conv3", 16, 16, relu=False)
    x = n.op("Relu", [n.op("Add", [y, x], "add")], "add.relu")
    return n.model("resnet_block", n.head(x, 16))


def plain(seed=2027):
    n = Net(seed)
    x = n.conv("input", "conv1", 3, 16)
    x = n.op("MaxPool", [x], "maxpool", kernel_shape=[2, 2], strides=[2, 2])
    x = n.conv(x, "conv2", 16, 32)
    return n.model("plain", n.head(x, 32))


def mobilenet_v2(seed=2028):
    """MobileNetV2-style: ReLU6 stem at stride 2, inverted residuals (1x1 expand, 3x3 depthwise,
    1x1 project, residual Add), a stride-2 depthwise block, and an Inception-style Concat of a
    1x1 branch, a depthwise branch and a 3x3 average pool."""
    n = Net(seed)
    x = n.conv("input", "stem", 3, 16, stride=2, act="relu6")
    y = n.conv(x, "b1.expand", 16, 48, k=1, act="relu6")
    y = n.dwconv(y, "b1.dw", 48)
    y = n.conv(y, "b1.project", 48, 16, k=1, act="none")
    x = n.op("Add", [x, y], "b1.add")
    y = n.conv(x, "b2.expand", 16, 64, k=1, act="relu6")
    y = n.dwconv(y, "b2.dw", 64, stride=2)
    x = n.conv(y, "b2.project", 64, 24, k=1, act="none")
    a = n.conv(x, "mix.a", 24, 16, k=1, act="relu6")
    b = n.dwconv(x, "mix.b", 24, k=5, mult=2)
    c = n.op("AveragePool", [x], "mix.pool", kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1])
    x = n.op("Concat", [a, b, c], "mix.concat", axis=1)
    x = n.conv(x, "head.conv", 88, 32, k=1, act="relu6")
    return n.model("mobilenet_v2", n.head(x, 32))


def efficientnet(seed=2029):
    """EfficientNet-style: SiLU everywhere, MBConv with a 5x5 stride-2 depthwise conv and
    squeeze-excitation (GlobalAveragePool, 1x1 reduce + SiLU, 1x1 expand + Sigmoid, Mul broadcast
    over H x W), a residual MBConv, and a HardSwish (MobileNetV3) head conv."""
    n = Net(seed)
    x = n.conv("input", "stem", 3, 16, stride=2, act="silu")
    y = n.conv(x, "b1.expand", 16, 64, k=1, act="silu")
    y = n.dwconv(y, "b1.dw", 64, k=5, stride=2, act="silu")
    s = n.op("GlobalAveragePool", [y], "b1.se.gap")
    s = n.conv(s, "b1.se.reduce", 64, 8, k=1, act="silu")
    s = n.conv(s, "b1.se.expand", 8, 64, k=1, act="none")
    s = n.op("Sigmoid", [s], "b1.se.gate")
    y = n.op("Mul", [y, s], "b1.se.scale")
    x = n.conv(y, "b1.project", 64, 24, k=1, act="none")
    y = n.conv(x, "b2.expand", 24, 72, k=1, act="silu")
    y = n.dwconv(y, "b2.dw", 72, act="silu")
    y = n.conv(y, "b2.project", 72, 24, k=1, act="none")
    x = n.op("Add", [x, y], "b2.add")
    x = n.conv(x, "head.conv", 24, 48, k=1, act="hardswish")
    return n.model("efficientnet", n.head(x, 48))


MODELS = {"resnet_block": resnet_block, "plain": plain, "mobilenet_v2": mobilenet_v2, "efficientnet": efficientnet}


def random_inputs(n, seed):
    rng = np.random.default_rng(seed)
    return [np.clip(rng.normal(0, 1, SHAPE), -3, 3).astype(np.float32) for _ in range(n)]


class Reader(CalibrationDataReader):
    def __init__(self, xs):
        self.it = iter([{"input": x} for x in xs])

    def get_next(self):
        return next(self.it, None)


# ---- the matrix ---------------------------------------------------------------------------------

QT = {"u8": QuantType.QUInt8, "s8": QuantType.QInt8}


def combos():
    for fmt in ("qdq", "qop"):
        for pc in (False, True):
            for at in ("u8", "s8"):
                for wt in ("u8", "s8"):
                    for rr in (False, True):
                        for sym in (False, True):
                            yield {"format": fmt, "per_channel": pc, "act": at, "weight": wt, "reduce_range": rr,
                                   "act_symmetric": sym}


def combo_name(c):
    return (f"{c['format']}_{'pc' if c['per_channel'] else 'pt'}_a{c['act']}_w{c['weight']}"
            f"_{'rr' if c['reduce_range'] else 'fr'}_{'sym' if c['act_symmetric'] else 'asym'}")


def quantize(fp32, out, c, calib):
    quantize_static(fp32, out, Reader(calib),
                    quant_format=QuantFormat.QDQ if c["format"] == "qdq" else QuantFormat.QOperator,
                    per_channel=c["per_channel"], activation_type=QT[c["act"]], weight_type=QT[c["weight"]],
                    reduce_range=c["reduce_range"], extra_options={"ActivationSymmetric": c["act_symmetric"]})


# ---- runtimes -----------------------------------------------------------------------------------

def first_line(s):
    s = str(s).strip()
    return s.splitlines()[0] if s else ""


def ort_session(path, optimize):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    if not optimize:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def run_ort(path, xs, optimize, outputs=None):
    """{output name: stacked outputs over xs}, or (None, error line)."""
    try:
        sess = ort_session(path, optimize)
        names = outputs or [o.name for o in sess.get_outputs()]
        res = [sess.run(names, {"input": x}) for x in xs]
        return {n: np.stack([r[i] for r in res]) for i, n in enumerate(names)}, None
    except Exception as e:  # noqa: BLE001 -- recorded
        return None, first_line(e)


def qhalide_error(stderr, stdout, rc):
    """The line of qhalide-run's output that says why it stopped (first line naming an error, else the
    first non-empty line)."""
    lines = [l.strip() for l in (stderr + "\n" + stdout).splitlines() if l.strip()]
    for l in lines:
        if re.search(r"error|unsupported|not supported|cannot|can't|invalid|expected|only", l, re.I):
            return l
    return lines[0] if lines else f"exit {rc}"


def run_qhalide(exe, path, xs, work, timeout, outputs):
    """({output name: stacked outputs}, None) or (None, (kind, message, full stderr, command))."""
    outs = collections.defaultdict(list)
    with tempfile.TemporaryDirectory(dir=work) as d:
        for i, x in enumerate(xs):
            inp = os.path.join(d, f"x{i}.npy")
            np.save(inp, x)
            od = os.path.join(d, f"out{i}")
            os.makedirs(od)
            cmd = [exe, path, "--input", f"input={inp}", "--output-dir", od, "--threads", "1"]
            try:
                r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
            except subprocess.TimeoutExpired:
                return None, ("crash", f"timeout after {timeout}s", "", cmd)
            if r.returncode < 0:
                sig = signal.Signals(-r.returncode).name
                return None, ("crash", f"signal {sig} (rc {r.returncode})", r.stderr[-4000:], cmd)
            if r.returncode != 0:
                if r.returncode >= 128:  # a shell-style signal exit
                    return None, ("crash", f"rc {r.returncode}", r.stderr[-4000:], cmd)
                msg = qhalide_error(r.stderr, r.stdout, r.returncode).replace(os.path.dirname(path) + "/", "")
                return None, ("refuse", msg, r.stderr[-4000:], cmd)
            for n in outputs:
                f = os.path.join(od, n + ".npy")
                if not os.path.exists(f):
                    return None, ("refuse", f"no output file {n}.npy (rc 0)", r.stderr[-4000:], cmd)
                outs[n].append(np.load(f))
    return {n: np.stack(v) for n, v in outs.items()}, None


# ---- comparison ---------------------------------------------------------------------------------

def output_step(m, out_name):
    """Scale of the DequantizeLinear that writes `out_name` (through Identity nodes); None if the
    output is not dequantized."""
    inits = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    producer = {o: n for n in m.graph.node for o in n.output}
    n = producer.get(out_name)
    while n is not None and n.op_type == "Identity":
        n = producer.get(n.input[0])
    if n is not None and n.op_type == "DequantizeLinear" and n.input[1] in inits:
        return float(inits[n.input[1]].reshape(-1)[0])
    return None


def steps(a, b, step):
    d = np.abs(a.astype(np.float64) - b.astype(np.float64))
    return float((d / step if step else d).max()), int(np.sum(d > 0)), d.size


def categorize(maxd):
    if maxd == 0:
        return "bit-exact"
    # dequantized values (q - z) * s in float32: an integer difference of k gives k steps up to float
    # rounding of the multiply
    if maxd <= 1 + 1e-4:
        return "within 1 step"
    return "differs"


# ---- tracing the first divergent tensor ----------------------------------------------------------

# op -> (scale, zero point) input indices of its quantized output
QUANT_OUT = {"QuantizeLinear": (1, 2), "QLinearConv": (6, 7), "QLinearAdd": (6, 7), "QLinearMul": (6, 7),
             "QLinearGlobalAveragePool": (3, 4), "QLinearAveragePool": (3, 4), "QGemm": (7, 8),
             "QLinearMatMul": (6, 7)}


def cut_model(m, tensor, scale, zp, out_path):
    """The part of `m` that computes the quantized `tensor`, ending in DequantizeLinear(tensor) as the
    only graph output. (qhalide refuses a QDQ model whose QuantizeLinear outputs are themselves graph
    outputs, so intermediates are compared through cut models, each ending like the real output.)"""
    producer = {o: n for n in m.graph.node for o in n.output}
    need, keep, stack = set(), set(), [tensor]
    while stack:
        t = stack.pop()
        if t in need:
            continue
        need.add(t)
        if t in producer:
            keep.add(id(producer[t]))
            stack += [i for i in producer[t].input if i]
    nodes = [n for n in m.graph.node if id(n) in keep]
    nodes.append(helper.make_node("DequantizeLinear", [tensor, scale, zp], ["trace_out"], name="trace_dq"))
    inits = [i for i in m.graph.initializer if i.name in need or i.name in (scale, zp)]
    g = helper.make_graph(nodes, m.graph.name + "_cut", list(m.graph.input),
                          [helper.make_tensor_value_info("trace_out", TensorProto.FLOAT, None)], inits)
    cm = helper.make_model(g, opset_imports=list(m.opset_import), producer_name="qhalide-bench")
    cm.ir_version = m.ir_version
    onnx.save(cm, out_path)


def trace(path, xs, exe, work, timeout):
    """Per quantized tensor (graph order): equal in both runtimes, differing (first one reported, in
    that tensor's steps), or not run by one of them (grouped by that runtime's message)."""
    m = onnx.load(path)
    equal, rows, skipped = [], [], collections.defaultdict(list)
    for k, n in enumerate(m.graph.node):
        if n.op_type not in QUANT_OUT or len(n.input) <= QUANT_OUT[n.op_type][1]:
            continue
        if n.input[0] in {i.name for i in m.graph.input}:  # Q -> DQ of the input alone: no kernel to compare
            continue
        si, zi = QUANT_OUT[n.op_type]
        cp = os.path.join(work, f"{os.path.basename(path)[:-5]}_cut{k}.onnx")
        cut_model(m, n.output[0], n.input[si], n.input[zi], cp)
        o, err = run_ort(cp, xs, True, ["trace_out"])
        q, qerr = run_qhalide(exe, cp, xs, work, timeout, ["trace_out"])
        if o is None or q is None:
            skipped[("ORT: " + err) if o is None else qerr[1]].append(n.output[0])
            continue
        step = float(numpy_helper.to_array(next(i for i in m.graph.initializer if i.name == n.input[si])).reshape(-1)[0])
        md, nd, sz = steps(q["trace_out"], o["trace_out"], step)
        if md > 0:
            rows.append(f"{n.output[0]} ({n.op_type} '{n.name}'): max {md:.3g} steps, {nd}/{sz} values")
        else:
            equal.append(n.output[0])
    out = "trace: " + (f"bit-exact: {', '.join(equal)}" if equal else "nothing bit-exact")
    if rows:
        out += "; first differing: " + rows[0] + ("; then " + "; ".join(rows[1:4]) if len(rows) > 1 else "")
    for msg, ts in skipped.items():
        msg = re.sub(r"model '[^']*_cut', ", "", msg)
        out += f"; not run ({', '.join(ts)}): {msg}"
    return out


def reference_outputs(path, xs, out_name):
    """onnx.reference on a QDQ model (opset raised to 21: its DequantizeLinear starts at 19; the
    ops these models use mean the same at 13 and 21). None where it cannot run the model."""
    from onnx.reference import ReferenceEvaluator
    try:
        m = onnx.load(path)
        for op in m.opset_import:
            if op.domain in ("", "ai.onnx"):
                op.version = max(op.version, 21)
        ev = ReferenceEvaluator(m)
        return np.stack([ev.run([out_name], {"input": x})[0] for x in xs])
    except Exception:  # noqa: BLE001 -- QOperator's com.microsoft ops have no reference
        return None


# ---- main ---------------------------------------------------------------------------------------

def evaluate(path, xs, a, work):
    m = onnx.load(path)
    out_name = m.graph.output[0].name
    step = output_step(m, out_name)
    rec = {"output_step": step, "ops": sorted({n.op_type for n in m.graph.node})}
    o_opt, e_opt = run_ort(path, xs, True, [out_name])
    o_no, e_no = run_ort(path, xs, False, [out_name])
    q, qerr = run_qhalide(a.qhalide, path, xs, work, a.timeout, [out_name])
    rec["ort_error"] = e_opt
    rec["ort_noopt_error"] = e_no
    if o_opt is not None and o_no is not None:
        rec["ort_opt_vs_noopt_steps"] = steps(o_opt[out_name], o_no[out_name], step)[0]
        if rec["ort_opt_vs_noopt_steps"] > 0:  # which of the two ORT runs is right: onnx.reference decides
            ref = reference_outputs(path, xs, out_name)
            if ref is not None:
                rec["ort_opt_vs_reference_steps"] = steps(o_opt[out_name], ref, step)[0]
                rec["ort_noopt_vs_reference_steps"] = steps(o_no[out_name], ref, step)[0]
                if q is not None:
                    rec["qhalide_vs_reference_steps"] = steps(q[out_name], ref, step)[0]
    if qerr is not None:
        kind, msg, stderr, cmd = qerr
        rec["qhalide_error"] = msg
        rec["qhalide_stderr"] = stderr
        rec["qhalide_command"] = " ".join(cmd)
        rec["outcome"] = f"qhalide {'refuses' if kind == 'refuse' else 'crashes'}: {msg}"
        rec["category"] = "qhalide refuses" if kind == "refuse" else "qhalide crashes"
        if e_opt is not None:
            rec["outcome"] += f" (also ORT refuses: {e_opt})"
        elif kind == "refuse" and a.trace:  # how far qhalide gets: the quantized tensors it can compute
            rec["trace"] = trace(path, xs, a.qhalide, work, a.timeout)
        return rec
    if e_opt is not None:
        rec["outcome"] = f"ORT refuses: {e_opt} (qhalide runs)"
        rec["category"] = "ORT refuses"
        if o_no is not None:  # ORT without optimizations ran: compare with that instead
            md, nd, sz = steps(q[out_name], o_no[out_name], step)
            rec["qhalide_vs_ort_noopt_steps"] = md
            rec["outcome"] += f"; vs ORT noopt: {categorize(md)} ({md:.3g} steps)"
        return rec
    md, nd, sz = steps(q[out_name], o_opt[out_name], step)
    rec["max_steps"] = md
    rec["values_differing"] = f"{nd}/{sz}"
    rec["top1_same"] = int(np.sum(q[out_name].reshape(len(xs), -1).argmax(1) ==
                                  o_opt[out_name].reshape(len(xs), -1).argmax(1)))
    if o_no is not None:
        rec["qhalide_vs_ort_noopt_steps"] = steps(q[out_name], o_no[out_name], step)[0]
    rec["category"] = categorize(md)
    rec["outcome"] = rec["category"] + ("" if md == 0 else f" (max {md:.4g} steps, {nd}/{sz} values)")
    if step is None:
        rec["outcome"] += " [abs diff: output not dequantized]"
    if rec["category"] == "differs" and a.trace:
        rec["trace"] = trace(path, xs, a.qhalide, work, a.timeout)
    return rec


def generic(msg):
    return re.sub(r"'[^']*'", "'*'", msg)


def short_bool(c):
    return (f"{c['format'].upper() if c['format'] == 'qdq' else 'QOp'} | {'pc' if c['per_channel'] else 'pt'} | "
            f"{c['act']} | {c['weight']} | {'y' if c['reduce_range'] else 'n'} | {'y' if c['act_symmetric'] else 'n'}")


def markdown(res):
    L = [f"# ONNX Runtime quantize_static matrix vs qhalide ({res['date']})", "",
         f"ONNX Runtime {res['onnxruntime']}, onnx {res['onnx']}, numpy {res['numpy']}, qhalide {res['qhalide_commit']} "
         f"(git HEAD at run time; binary {os.path.relpath(res['qhalide_binary'], ROOT)}, built {res['qhalide_mtime']} UTC), Python {res['python']}. "
         f"{res['calibration_inputs']} calibration inputs, {res['test_inputs']} test inputs, shape {res['input_shape']}.",
         "", "Command:", "", "```sh", res["command"], "```", "",
         "Weight scales: pt per tensor, pc per channel. Outcome: qhalide vs ONNX Runtime (CPU EP, ORT_ENABLE_ALL, 1 thread), worst over the test inputs, in output "
         "quantization steps (scale of the DequantizeLinear writing the logits). `ORT opt/noopt`: max difference "
         "between ORT's ORT_ENABLE_ALL and ORT_DISABLE_ALL outputs in steps (`-` if one of them fails).", "",
         "| model | format | weight scales | activations | weights | reduce_range | ActivationSymmetric | outcome | ORT opt/noopt |",
         "|---|---|---|---|---|---|---|---|---|"]
    for r in res["results"]:
        c = r["combo"]
        on = r.get("ort_opt_vs_noopt_steps")
        L.append(f"| {r['model']} | {short_bool(c)} | {r['outcome'].replace('|', '/')} | "
                 f"{'-' if on is None else f'{on:g}'} |")
    cnt = collections.Counter(r["category"] for r in res["results"])
    L += ["", "## Summary", "", "| outcome | count |", "|---|---|"]
    L += [f"| {k} | {v} |" for k, v in sorted(cnt.items(), key=lambda kv: -kv[1])]
    L += [f"| total | {len(res['results'])} |"]
    groups = collections.defaultdict(list)
    for r in res["results"]:
        if r["category"] in ("qhalide refuses", "qhalide crashes"):
            groups[(r["category"], generic(r["qhalide_error"]))].append(r)
    if groups:
        L += ["", "## qhalide refusals and crashes, grouped by message", "",
              "(Grouped with the model and node names replaced by `*`; each exact message is listed with its combos.)", ""]
        for (cat, key), rs in sorted(groups.items(), key=lambda kv: -len(kv[1])):
            L += [f"### {cat} ({len(rs)}): `{key}`", ""]
            exact = collections.defaultdict(list)
            for r in rs:
                exact[r["qhalide_error"]].append(r["name"])
            for msg, names in exact.items():
                L += [f"- `{msg}`", "", "  " + ", ".join(f"`{n}`" for n in names), ""]
            if cat == "qhalide crashes":
                L += ["  Reproducer: `" + rs[0]["qhalide_command"] + "` (with --keep)", ""]
            names = [r["name"] for r in rs]
            tr = collections.defaultdict(list)
            for r in rs:
                if r.get("trace"):
                    tr[r["trace"]].append(r["name"])
            if tr:
                L += ["  Traces (qhalide vs ORT on the model cut after each quantized tensor):", ""]
                L += [f"  - {', '.join(f'`{n}`' for n in ns)}: {t}" for t, ns in tr.items()] + [""]
    qf = collections.defaultdict(list)
    for r in res["results"]:
        if r["category"] == "quantize fails":
            qf[r["outcome"]].append(r["name"])
    if qf:
        L += ["", "## quantize_static rejections (ORT's quantizer refuses the combination)", ""]
        for msg, names in sorted(qf.items(), key=lambda kv: -len(kv[1])):
            L += [f"- ({len(names)}): `{msg}`", "", "  " + ", ".join(f"`{n}`" for n in names), ""]
    ort_groups = collections.defaultdict(list)
    for r in res["results"]:
        if r.get("ort_error"):
            ort_groups[r["ort_error"]].append(r["name"])
    if ort_groups:
        L += ["", "## ONNX Runtime refusals (its own model), grouped by message", ""]
        for msg, names in sorted(ort_groups.items(), key=lambda kv: -len(kv[1])):
            L += [f"- ({len(names)}): `{msg}`", "", "  " + ", ".join(f"`{n}`" for n in names), ""]
    oo = [r for r in res["results"] if r.get("ort_opt_vs_noopt_steps")]
    if oo:
        L += ["", "## ORT_ENABLE_ALL vs ORT_DISABLE_ALL differences (onnx.reference decides)", ""]
        for r in oo:
            ref = ("" if "ort_opt_vs_reference_steps" not in r else
                   f"; vs onnx.reference: ORT opt {r['ort_opt_vs_reference_steps']:.4g}, ORT noopt "
                   f"{r['ort_noopt_vs_reference_steps']:.4g}, qhalide {r.get('qhalide_vs_reference_steps', float('nan')):.4g} steps")
            L.append(f"- `{r['name']}`: ORT opt vs noopt {r['ort_opt_vs_noopt_steps']:.4g} steps; qhalide vs ORT noopt "
                     f"{r.get('qhalide_vs_ort_noopt_steps', float('nan')):.4g} steps{ref}")
    diffs = [r for r in res["results"] if r["category"] == "differs"]
    if diffs:
        L += ["", "## Differences > 1 step", ""]
        for r in diffs:
            L.append(f"- `{r['name']}`: max {r['max_steps']:.4g} steps, {r['values_differing']} values differ, "
                     f"top-1 same {r['top1_same']}/{res['test_inputs']}; vs ORT noopt "
                     f"{r.get('qhalide_vs_ort_noopt_steps', float('nan')):.4g} steps. {r.get('trace', '')}")
    return "\n".join(L) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--qhalide", default=os.path.join(ROOT, "build", "bin", "qhalide-run"))
    ap.add_argument("--markdown", help="write the markdown table here")
    ap.add_argument("--json", help="write the full results (with qhalide's stderr) here")
    ap.add_argument("--only", help="substring filter on <model>_<combo> names")
    ap.add_argument("--keep", help="keep the float and quantized models here")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds per qhalide-run call")
    ap.add_argument("--trace", action="store_true", help="for 'differs' and 'qhalide refuses' models: compare every quantized intermediate (cut models)")
    a = ap.parse_args()
    logging.getLogger().setLevel(logging.ERROR)  # quantize_static's pre-processing hint
    a.qhalide = os.path.abspath(a.qhalide)
    tmp = None if a.keep else tempfile.mkdtemp(prefix="ort_quant_matrix_")
    work = os.path.abspath(a.keep) if a.keep else tmp
    os.makedirs(work, exist_ok=True)
    calib = random_inputs(N_CALIB, seed=1)
    xs = random_inputs(N_TEST, seed=7)
    results = []
    try:
        for mname, make in MODELS.items():
            fp32 = os.path.join(work, mname + "_fp32.onnx")
            onnx.save(make(), fp32)
            for c in combos():
                name = f"{mname}_{combo_name(c)}"
                if a.only and a.only not in name:
                    continue
                path = os.path.join(work, name + ".onnx")
                rec = {"name": name, "model": mname, "combo": c}
                try:
                    quantize(fp32, path, c, calib)
                except Exception as e:  # noqa: BLE001
                    rec.update(category="quantize fails", outcome=f"quantize_static fails: {first_line(e)}")
                    results.append(rec)
                    print(f"{name}: {rec['outcome']}", flush=True)
                    continue
                rec.update(evaluate(path, xs, a, work))
                results.append(rec)
                print(f"{name}: {rec['outcome']}" + (f" | ORT opt/noopt {rec['ort_opt_vs_noopt_steps']:g}"
                                                     if rec.get("ort_opt_vs_noopt_steps") else ""), flush=True)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)

    git = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    if subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                      text=True).stdout.strip():
        git += " + uncommitted changes"
    mtime = datetime.datetime.fromtimestamp(os.path.getmtime(a.qhalide)).isoformat(timespec="seconds") \
        if os.path.exists(a.qhalide) else "?"
    res = {"date": datetime.date.today().isoformat(), "qhalide_commit": git, "qhalide_binary": a.qhalide,
           "qhalide_mtime": mtime, "command": "bench/ort_quant_matrix.py " + " ".join(sys.argv[1:]),
           "onnxruntime": ort.__version__, "onnx": onnx.__version__, "numpy": np.__version__,
           "python": sys.version.split()[0], "calibration_inputs": N_CALIB, "test_inputs": N_TEST,
           "input_shape": SHAPE, "results": results}
    cnt = collections.Counter(r["category"] for r in results)
    print("\nsummary: " + ", ".join(f"{k} {v}" for k, v in sorted(cnt.items(), key=lambda kv: -kv[1])) +
          f" (total {len(results)})")
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write(markdown(res))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
