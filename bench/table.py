#!/usr/bin/env python3
"""Markdown table from qhalide-bench-ops JSON (--benchmark_format=json with repetitions):
median GOP/s and median fraction of the VNNI peak per layer and variant, plus the MAC-weighted
ResNet-50 totals for the 3x3 and 1x1 layers. Usage: table.py results.json"""
import json
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
    print(f"host: {ctx.get('host_name', '?')}, {ctx.get('num_cpus')} CPUs, date {ctx.get('date')}")


if __name__ == "__main__":
    main(sys.argv[1])
