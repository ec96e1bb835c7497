#!/usr/bin/env bash
# The ONNX Runtime comparison (bench/ort_compare.py) with everything it needs: builds qhalide
# (scripts/setup.sh), installs the pinned Python packages it uses into .venv (idempotent), runs.
#   scripts/ort_compare.sh --depth 50 --threads 2 [--images 50]      (arguments go to the script)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup.sh"
BENCH_PINS=("onnx==1.23.2" "onnxruntime==1.31.1" "numpy==2.4.6")
if ! "$VENV/bin/python" - "${BENCH_PINS[@]}" <<'PY' 2>/dev/null
import importlib.metadata as m, sys
sys.exit(0 if all(m.version(p.split("==")[0]) == p.split("==")[1] for p in sys.argv[1:]) else 1)
PY
then
  echo "[ort_compare] installing ${BENCH_PINS[*]} into .venv"
  "$VENV/bin/pip" install --disable-pip-version-check -q "${BENCH_PINS[@]}"
fi
cd "$ROOT"
exec "$VENV/bin/python" bench/ort_compare.py "$@"
