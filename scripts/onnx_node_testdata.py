#!/usr/bin/env python3
"""Writes ONNX backend node tests (model.onnx + test_data_set_0/{input,output}_N.pb, the layout
of Debian's libonnx-testdata) from the test cases in the onnx package, for tests that Debian's
data (onnx 1.12) lacks, such as the INT4 / UINT4 QuantizeLinear / DequantizeLinear vectors. The
onnx wheel (1.23.2, pinned in scripts/setup.sh) ships no data/node folder, only the cases that
generate it (onnx.backend.test.case.node).

    .venv/bin/python scripts/onnx_node_testdata.py OUT_DIR test_quantizelinear_int4 ...

Each test comes from the module onnx.backend.test.case.node.<second word of its name>
(test_dequantizelinear_uint4 -> dequantizelinear); importing that module runs its cases.
Exit 77 (skip) when onnx is not installed.
"""
import importlib
import os
import sys


def write_case(case, out):
    """Writes one onnx node test case (one data set) as OUT/<name>/model.onnx + test_data_set_0/."""
    import onnx
    from onnx import numpy_helper
    d = os.path.join(out, case.name, "test_data_set_0")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(out, case.name, "model.onnx"), "wb") as f:
        f.write(case.model.SerializeToString())
    (inputs, outputs), = case.data_sets
    for kind, values, infos in (("input", inputs, case.model.graph.input),
                                ("output", outputs, case.model.graph.output)):
        for j, v in enumerate(values):
            t = v if isinstance(v, onnx.TensorProto) else numpy_helper.from_array(v, infos[j].name)
            if not t.name:
                t.name = infos[j].name
            with open(os.path.join(d, f"{kind}_{j}.pb"), "wb") as f:
                f.write(t.SerializeToString())


def main() -> int:
    if len(sys.argv) < 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    out, names = sys.argv[1], sys.argv[2:]
    try:
        import onnx
        from onnx.backend.test.case import node as cases
    except ImportError as e:
        print(f"SKIP: the Python package onnx is not installed ({e}); scripts/setup.sh installs it into .venv")
        return 77
    for mod in sorted({n.split("_")[1] for n in names}):
        importlib.import_module("onnx.backend.test.case.node." + mod)
    found = {c.name: c for c in cases._NodeTestCases}
    missing = [n for n in names if n not in found]
    if missing:
        print(f"error: onnx {onnx.__version__} has no node test {', '.join(missing)}", file=sys.stderr)
        return 1
    for name in names:
        write_case(found[name], out)
    print(f"wrote {len(names)} node tests of onnx {onnx.__version__} to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
