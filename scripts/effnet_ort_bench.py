#!/usr/bin/env python3
"""ONNX Runtime batch-1 latency of a float and an int8 model on one input, for the device runs:
    effnet_ort_bench.py FP32.onnx INT8.onnx X.npy THREADS RUNS
Three rounds each, interleaved; median ms per round."""
import sys
import time

import numpy as np
import onnxruntime as ort


def session(path, threads):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def median_ms(s, x, runs):
    feed = {s.get_inputs()[0].name: x}
    for _ in range(10):
        s.run(None, feed)
    t = []
    for _ in range(runs):
        t0 = time.perf_counter()
        s.run(None, feed)
        t.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(t))


def main():
    fp32, int8, xp, threads, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    x = np.load(xp).astype(np.float32)
    s32, s8 = session(fp32, threads), session(int8, threads)
    print(f"onnxruntime {ort.__version__}, {threads} threads")
    for r in range(3):
        print(f"effnet ORT fp32 round {r + 1} median {median_ms(s32, x, runs):.3f} ms")
        print(f"effnet ORT int8 round {r + 1} median {median_ms(s8, x, runs):.3f} ms")


if __name__ == "__main__":
    main()
