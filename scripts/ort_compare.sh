#!/usr/bin/env bash
# The ONNX Runtime comparison (bench/ort_compare.py) with everything it needs: builds qhalide
# (scripts/setup.sh), installs the pinned Python packages it uses into .venv (idempotent), runs.
#   scripts/ort_compare.sh --depth 50 --threads 2 [--images 50]      (arguments go to the script)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup.sh"
BENCH_PINS=("onnx==1.23.2" "onnxruntime==1.31.1" "numpy==2.4.6")
source "$ROOT/scripts/venv_pins.sh"
venv_pins ort_compare "${BENCH_PINS[@]}"
cd "$ROOT"
exec "$VENV/bin/python" bench/ort_compare.py "$@"
