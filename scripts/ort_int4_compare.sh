#!/usr/bin/env bash
# qhalide's int4 QDQ path against ONNX Runtime and onnx.reference (bench/ort_int4_compare.py): small
# CNNs quantized by ONNX Runtime's quantize_static (W4A8, W4A4; QInt4/QUInt4 weights; per channel
# and per tensor), a constructed rounding-tie test and scripts/make_int4_qdq_models.py's models, each
# run in all three on the same inputs. Builds qhalide (scripts/setup.sh) unless QHALIDE_NO_BUILD=1
# (then build/bin/qhalide-run and .venv must exist), installs the pinned Python packages into .venv
# (idempotent), runs.
#   scripts/ort_int4_compare.sh [--inputs 64] [--json OUT.json] [--md OUT.md]   (arguments go to the script)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -z "${QHALIDE_NO_BUILD:-}" ]; then
  source "$ROOT/scripts/setup.sh"
else
  VENV="$ROOT/.venv"
  [ -x "$ROOT/build/bin/qhalide-run" ] || { echo "[ort_int4_compare] no build/bin/qhalide-run (QHALIDE_NO_BUILD=1)" >&2; exit 1; }
fi
# ONNX Runtime 1.32.0: its quantize_static writes the W4A4 MaxPool graphs ../shared/notes/int4.md describes
# (scripts/ort_compare.sh pins 1.31.1 for the ResNet numbers; each script reinstalls its own pin).
BENCH_PINS=("onnx==1.23.2" "onnxruntime==1.32.0" "numpy==2.4.6")
source "$ROOT/scripts/venv_pins.sh"
venv_pins ort_int4_compare "${BENCH_PINS[@]}"
cd "$ROOT"
exec "$VENV/bin/python" bench/ort_int4_compare.py "$@"
