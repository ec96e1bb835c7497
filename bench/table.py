#!/usr/bin/env python3
"""Markdown table from qhalide-bench-ops JSON (--benchmark_format=json with repetitions):
median GOP/s and median fraction of the VNNI peak per layer and variant, plus the MAC-weighted
ResNet-50 totals for the 3x3 and 1x1 layers. Usage: table.py results.json"""
import json
import re
import sys

sys.path.insert(0, __file__.rsplit("/", 1)[0])


def main(path):
    data = json.load(open(path))
    rows = {}
    for b in data["benchmarks"]:
        if b.get("aggregate_name") != "median" or "/" not in b["run_name"]:
            continue
        kernel, layer = b["run_name"].split("/")[:2]
        rows[(kernel, layer)] = (b.get("GOPS", 0.0), b.get("peak_frac", 0.0), b["real_time"])
    ctx = data["context"]
    print(f"| kernel | layer | time (ms) | GOP/s | % of VNNI peak |")
    print("|---|---|---|---|---|")
    for (kernel, layer), (g, f, t) in rows.items():
        print(f"| {kernel} | {layer} | {t:.3f} | {g:.0f} | {100 * f:.0f}% |")
    print()
    shapes = resnet50_shapes()
    print("| variant | 3x3 layers | 1x1 layers |")
    print("|---|---|---|")
    for kernel in dict.fromkeys(k for k, _ in rows):
        cells = []
        for ksize in (3, 1):
            ops = secs = 0.0
            for name, (macs, k, count) in shapes.items():
                if k != ksize or (kernel, name) not in rows:
                    continue
                ops += 2 * macs * count
                secs += rows[(kernel, name)][2] * 1e-3 * count
            frac = sum(rows[(kernel, n)][1] * 2 * m * c for n, (m, k, c) in shapes.items()
                       if k == ksize and (kernel, n) in rows) / ops if ops else 0
            cells.append(f"{ops / secs * 1e-9:.0f} GOP/s, {100 * frac:.0f}%" if secs else "-")
        if kernel != "vnni_peak":
            print(f"| {kernel} | {cells[0]} | {cells[1]} |")
    print()
    print(f"host: {ctx.get('host_name', '?')}, {ctx.get('num_cpus')} CPUs, date {ctx.get('date')}")


def resnet50_shapes():
    """{layer: (MACs, kernel size, occurrences)} from bench/resnet_shapes.h (the one list)."""
    text = open(__file__.rsplit("/", 1)[0] + "/resnet_shapes.h").read()
    out = {}
    for m in re.finditer(r'\{"(\w+)", (\d+), (\d+), (\d+), (\d+), (\d+), (\d+), (\d+)\}', text):
        name, hw, c, oc, k, st, pad, count = m.group(1), *map(int, m.groups()[1:])
        o = (hw + 2 * pad - k) // st + 1
        out[name] = (o * o * oc * c * k * k, k, count)
    return out


if __name__ == "__main__":
    main(sys.argv[1])
