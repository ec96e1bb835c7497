#!/usr/bin/env python3
"""Every ONNX node conformance test of the ops qhalide's issue 12 lists, through qhalide-run.

Sources: Debian's libonnx-testdata (/usr/share/libonnx-testdata/data/node, onnx 1.12) and the
onnx wheel's node test cases (onnx.backend.test.case.node.<op>, written out with
scripts/onnx_node_testdata.py's layout). Each test runs as tests/run_onnx_conformance.sh runs it
(all input_N.pb as --input, all output_N.pb as --expect: integers bit-exact, floats within 1e-5)
and ends in one of:
  pass     every output bit-exact (or within 1e-5 for a float output)
  refused  qhalide-run exits 1 with "qhalide-run: error: ..." (the reason is recorded)
  MISMATCH an output differs                       (must never happen)
  CRASH    any other exit (signal, abort, timeout) (must never happen)

    .venv/bin/python bench/onnx_conformance_sweep.py --qhalide build/bin/qhalide-run \\
        --markdown docs/CONFORMANCE.md
    .venv/bin/python bench/onnx_conformance_sweep.py --qhalide build/bin/qhalide-run --expect docs/CONFORMANCE.md

--expect: exit 1 unless every test has the status and refusal reason the given Markdown file
(written by --markdown) records, and there is no MISMATCH or CRASH (the ctest
onnx_conformance_sweep). Exit 77 (skip) without the Debian data and the onnx package.
"""
import argparse
import datetime
import importlib
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
DEBIAN = "/usr/share/libonnx-testdata/data/node"
# The ops issue 12 names (and the ones its models need), as ONNX node test name prefixes.
OPS = ["add", "averagepool", "batchnorm", "clip", "concat", "conv", "convinteger", "dequantizelinear",
       "dynamicquantizelinear", "flatten", "gemm", "globalaveragepool", "globalmaxpool", "hardsigmoid",
       "hardswish", "matmul", "matmulinteger", "maxpool", "mul", "pad", "constant_pad", "edge_pad", "reflect_pad",
       "wrap_pad", "qlinearconv", "qlinearmatmul", "quantizelinear", "relu", "reshape", "sigmoid", "softmax"]
# onnx wheel modules (onnx.backend.test.case.node.<module>) holding those tests.
WHEEL_MODULES = ["add", "averagepool", "batch_normalization", "clip", "concat", "conv", "convinteger", "dequantizelinear",
                 "dynamicquantizelinear", "flatten", "gemm", "globalaveragepool", "globalmaxpool", "hardsigmoid",
                 "hardswish", "matmul", "matmulinteger", "maxpool", "mul", "pad", "qlinearconv", "qlinearmatmul",
                 "quantizelinear", "relu", "reshape", "sigmoid", "softmax"]


# Tests whose expected outputs onnx writes rounded (so 1e-5 cannot hold for any exact result):
# compared within this tolerance instead, as the table says.
TOLERANCE = {"test_averagepool_2d_ceil_last_window_starts_on_pad": 1e-4}  # written with 4 decimals


def op_of(test):
    """The listed op a test name belongs to (longest matching prefix), or None."""
    best = None
    for op in OPS:
        if test == "test_" + op or test.startswith("test_" + op + "_"):
            if best is None or len(op) > len(best):
                best = op
    return best


def debian_tests():
    if not os.path.isdir(DEBIAN):
        return []
    return sorted((t, DEBIAN) for t in os.listdir(DEBIAN) if op_of(t))


def wheel_tests(out):
    """Writes the onnx package's node tests of the listed ops to `out`; [(name, out)]."""
    try:
        from onnx.backend.test.case import node as cases
    except ImportError:
        return []
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    from onnx_node_testdata import write_case  # scripts/onnx_node_testdata.py: the same layout
    for m in WHEEL_MODULES:
        importlib.import_module("onnx.backend.test.case.node." + m)
    names = []
    for case in cases._NodeTestCases:
        if not op_of(case.name) or len(case.data_sets) != 1:
            continue
        write_case(case, out)
        names.append((case.name, out))
    return sorted(set(names))


def run(exe, data, test, work, timeout):
    out = os.path.join(work, "out", os.path.basename(data.rstrip("/")) + "_" + test)
    cmd = ["bash", os.path.join(ROOT, "tests", "run_onnx_conformance.sh"), exe, data, test, out]
    env = dict(os.environ, QH_TOLERANCE=str(TOLERANCE.get(test, 1e-5)))
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return "CRASH", f"timeout after {timeout:g} s"
    log = p.stdout + p.stderr
    if p.returncode == 0 and "PASS:" in log:
        return "pass", f"expected values rounded by onnx: within {TOLERANCE[test]:g}" if test in TOLERANCE else ""
    if ": MISMATCH (" in log:
        return "MISMATCH", next((l for l in log.splitlines() if "MISMATCH" in l), "")
    m = re.search(r"qhalide-run: error: (.*)", log)
    if m and "FAIL: exit 1," in log:
        return "refused", normalize(m.group(1))
    return "CRASH", log.strip().splitlines()[-1] if log.strip() else f"exit {p.returncode}"


def normalize(msg):
    """The reason without file paths (the same on every machine)."""
    msg = re.sub(r"/\S*/(test_[A-Za-z0-9_]+)/", r"\1/", msg)
    return re.sub(r"'/[^']*/([^/']+)'", r"'\1'", msg).strip()


def markdown(rows, meta):
    cnt = {}
    for r in rows:
        cnt[r["status"]] = cnt.get(r["status"], 0) + 1
    lines = ["# ONNX node conformance of the ops issue 12 lists", "",
             f"Written by `{meta['command']}` on {meta['date']} (qhalide {meta['commit']}, onnx {meta['onnx']}).",
             "Every test runs through `qhalide-run` exactly as `tests/run_onnx_conformance.sh` runs it: integer",
             "outputs bit-exact, float outputs within 1e-5 (`|got - want| <= 1e-5 (1 + |want|)`). A refused test",
             "ends with `qhalide-run: error:` and the reason below; this table is the documented list of those",
             "reasons, and the ctest `onnx_conformance_sweep` fails when any test's status or reason differs from",
             "it, or when any test mismatches or crashes.", "",
             "Totals: " + ", ".join(f"{k} {v}" for k, v in sorted(cnt.items())) + f" (of {len(rows)}).", "",
             "| source | test | status | reason |", "|---|---|---|---|"]
    for r in rows:
        reason = r["reason"].replace("|", "\\|")
        lines.append(f"| {r['source']} | `{r['test']}` | {r['status']} | {reason} |")
    return "\n".join(lines) + "\n"


def parse_expect(path):
    exp = {}
    for line in open(path):
        m = re.match(r"\| (\S+) \| `([^`]+)` \| (\S+) \| (.*) \|\s*$", line)
        if m:
            exp[(m.group(1), m.group(2))] = (m.group(3), m.group(4).replace("\\|", "|"))
    return exp


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--qhalide", default=os.path.join(ROOT, "build", "bin", "qhalide-run"))
    ap.add_argument("--markdown", help="write the results table here")
    ap.add_argument("--expect", help="compare with a table written by --markdown; exit 1 on any difference")
    ap.add_argument("--timeout", type=float, default=60.0)
    a = ap.parse_args()
    exe = os.path.abspath(a.qhalide)
    if not os.access(exe, os.X_OK):
        ap.error(f"--qhalide {a.qhalide}: not an executable (build qhalide-run first)")
    if a.expect and not os.path.isfile(a.expect):
        ap.error(f"--expect {a.expect}: no such file (write one with --markdown)")
    work = tempfile.mkdtemp(prefix="onnx_sweep_")
    try:
        wheel_dir = os.path.join(work, "onnx_wheel")
        tests = [("debian", t, d) for t, d in debian_tests()] + [("onnx-wheel", t, d) for t, d in wheel_tests(wheel_dir)]
        if not tests:
            print("SKIP: neither Debian's libonnx-testdata nor the onnx package is installed")
            return 77
        rows = []
        for src, t, d in tests:
            status, reason = run(exe, d, t, work, a.timeout)
            rows.append({"source": src, "test": t, "status": status, "reason": reason})
            if status in ("MISMATCH", "CRASH"):
                print(f"{src} {t}: {status} {reason}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    cnt = {}
    for r in rows:
        cnt[r["status"]] = cnt.get(r["status"], 0) + 1
    print("summary: " + ", ".join(f"{k} {v}" for k, v in sorted(cnt.items())) + f" (of {len(rows)})")
    if a.markdown:
        import onnx
        git = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        meta = {"command": "bench/onnx_conformance_sweep.py --markdown " + os.path.relpath(a.markdown, ROOT),
                "date": datetime.date.today().isoformat(), "commit": git, "onnx": onnx.__version__}
        with open(a.markdown, "w") as f:
            f.write(markdown(rows, meta))
    bad = [r for r in rows if r["status"] in ("MISMATCH", "CRASH")]
    if a.expect:
        exp = parse_expect(a.expect)
        for r in rows:
            key = (r["source"], r["test"])
            got = (r["status"], r["reason"])
            if key not in exp:
                print(f"{key[0]} {key[1]}: not in {a.expect} (now {got[0]}: {got[1]})")
                bad.append(r)
            elif exp[key] != got:
                print(f"{key[0]} {key[1]}: {a.expect} says {exp[key][0]}: {exp[key][1]!r}; now {got[0]}: {got[1]!r}")
                bad.append(r)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
