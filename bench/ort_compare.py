#!/usr/bin/env python3
"""qhalide against ONNX Runtime on the same ResNet QDQ model (made by make_resnet_onnx.py):

accuracy: top-1 of both runtimes on N synthetic images (identical expected), dequantized logits
  within 2 output quantization steps; and qhalide int8 vs qhalide's fp32 path on the float model
  (top-1 agreement, logit cosine similarity).
speed: batch 1 and 16, same machine, same thread count, same run: qhalide-resnet --json against
  ONNX Runtime (int8 QDQ model and fp32 model), median of repeated runs.

usage: bench/ort_compare.py --depth 50 --threads 2 [--images 50] [--build build]
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_resnet_onnx import build, quantize_qdq, synthetic_images  # noqa: E402


def ort_session(path, threads):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def ort_latency(sess, batch, iters, warmup=2):
    x = synthetic_images(1, seed=99).repeat(batch, axis=0)
    for _ in range(warmup):
        sess.run(None, {"input": x})
    t = []
    for _ in range(iters):
        t0 = time.perf_counter()
        sess.run(None, {"input": x})
        t.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(t))


def qhalide_latency(build_dir, model, batch, threads, iters, image, precision="int8"):
    out = subprocess.run([os.path.join(build_dir, "bin", "qhalide-resnet"), "--model", model, "--image", image,
                          "--batch", str(batch), "--threads", str(threads), "--iters", str(iters),
                          "--precision", precision, "--json"], check=True, capture_output=True, text=True).stdout
    return json.loads(out)["latency_ms"]["median"]


def qhalide_run(build_dir, model, x, workdir, precision, calib=None):
    inp = os.path.join(workdir, "x.npy")
    np.save(inp, x)
    cmd = [os.path.join(build_dir, "bin", "qhalide-run"), model, "--input", f"input={inp}",
           "--output-dir", workdir, "--precision", precision]
    if calib is not None:
        cp = os.path.join(workdir, "calib.npy")
        np.save(cp, calib)
        cmd += ["--calib", cp]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return np.load(os.path.join(workdir, "logits.npy"))


def output_step(qdq_path):
    m = onnx.load(qdq_path)
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in m.graph.initializer}
    for n in m.graph.node:
        if n.op_type == "DequantizeLinear" and n.output[0] == m.graph.output[0].name:
            return float(inits[n.input[1]])
    raise RuntimeError("no DequantizeLinear on the graph output")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--depth", type=int, choices=[18, 50], default=50)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--images", type=int, default=50)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--build", default="build")
    ap.add_argument("--work", default="build/bench")
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    fp32 = os.path.join(a.work, f"resnet{a.depth}_fp32.onnx")
    qdq = os.path.join(a.work, f"resnet{a.depth}_qdq.onnx")
    if not (os.path.exists(fp32) and os.path.exists(qdq)):
        onnx.save(build(a.depth), fp32)
        quantize_qdq(fp32, qdq, synthetic_images(8, seed=1))

    x = synthetic_images(a.images, seed=7)
    sess_q, sess_f = ort_session(qdq, a.threads), ort_session(fp32, a.threads)
    ort_q = np.concatenate([sess_q.run(None, {"input": x[i:i + 1]})[0] for i in range(len(x))])
    ours_q = qhalide_run(a.build, qdq, x, a.work, "int8")
    ours_f = qhalide_run(a.build, fp32, x, a.work, "fp32")
    ours_fq = qhalide_run(a.build, fp32, x, a.work, "int8", calib=synthetic_images(8, seed=1))
    step = output_step(qdq)
    diff_steps = np.abs(ours_q - ort_q) / step
    top1_same = int(np.sum(np.argmax(ours_q, 1) == np.argmax(ort_q, 1)))
    cos = float(np.mean(np.sum(ours_fq * ours_f, 1) / (np.linalg.norm(ours_fq, axis=1) * np.linalg.norm(ours_f, axis=1))))
    agree = int(np.sum(np.argmax(ours_fq, 1) == np.argmax(ours_f, 1)))
    res = {
        "model": f"resnet{a.depth} (synthetic weights)", "images": len(x), "threads": a.threads,
        "accuracy_vs_ort_qdq": {"top1_identical": f"{top1_same}/{len(x)}",
                                "max_logit_diff_steps": float(diff_steps.max()),
                                "mean_logit_diff_steps": float(diff_steps.mean()),
                                "pass": bool(top1_same == len(x) and diff_steps.max() <= 2.0)},
        "int8_vs_our_fp32": {"top1_agreement": f"{agree}/{len(x)}", "mean_cosine": cos},
        "speed_ms": {},
    }
    img = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "assets", "sample.jpg")
    for batch in (1, 16):
        iters = a.iters if batch == 1 else max(3, a.iters // 4)
        r = {"qhalide_int8": qhalide_latency(a.build, qdq, batch, a.threads, iters, img),
             "ort_int8": ort_latency(sess_q, batch, iters), "ort_fp32": ort_latency(sess_f, batch, iters)}
        r["ratio_vs_ort_int8"] = r["qhalide_int8"] / r["ort_int8"]
        r["ratio_vs_ort_fp32"] = r["qhalide_int8"] / r["ort_fp32"]
        res["speed_ms"][f"batch{batch}"] = r
    res["ort_version"] = ort.__version__
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
