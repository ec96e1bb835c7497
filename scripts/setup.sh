#!/usr/bin/env bash
# Idempotent setup for a fresh Debian 12 machine: Debian packages, the pinned Python
# toolchain in .venv (halide==21.0.0, cmake>=3.28, ninja, onnx==1.23.2), then configure + build
# into build/.
# Sourced by scripts/test.sh and scripts/demo.sh; can also be run on its own.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

APT_PACKAGES=(build-essential python3 python3-venv python3-pip git pkg-config
  libgtest-dev libgmock-dev libbenchmark-dev libcli11-dev
  libprotobuf-dev protobuf-compiler libonnx-dev libonnx-testdata
  libpng-dev libjpeg-dev libopenblas-dev
  clang libclang-rt-14-dev llvm  # clang + libFuzzer + llvm-symbolizer: scripts/fuzz.sh
  valgrind)  # the valgrind_qdq_relu_model test

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "[setup] installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
fi

VENV="$ROOT/.venv"
# onnx: its test cases write the INT4 / UINT4 conformance vectors Debian's libonnx-testdata lacks
# (scripts/onnx_node_testdata.py, at build time); the same pin as scripts/ort_compare.sh.
PY_PINS=("halide==21.0.0" "cmake>=3.28,<5" "ninja" "onnx==1.23.2")
if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV"
  python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" - <<'PY' 2>/dev/null
import importlib.metadata as m, sys
ok = m.version("halide") == "21.0.0"
v = tuple(int(x) for x in m.version("cmake").split(".")[:2])
ok = ok and v >= (3, 28) and bool(m.version("ninja")) and m.version("onnx") == "1.23.2"
sys.exit(0 if ok else 1)
PY
then
  echo "[setup] installing ${PY_PINS[*]} into .venv"
  "$VENV/bin/pip" install --disable-pip-version-check -q "${PY_PINS[@]}"
fi

export PATH="$VENV/bin:$PATH"
# The CUDA toolkit (nvcc) is not on PATH by default; CMake finds it through CUDACXX.
if [ -z "${CUDACXX:-}" ] && [ -x /usr/local/cuda/bin/nvcc ]; then export CUDACXX=/usr/local/cuda/bin/nvcc; fi
HALIDE_ROOT="$("$VENV/bin/python" -c 'import halide; print(halide.install_dir())')"
[ -n "${QHALIDE_SETUP_ONLY:-}" ] && exit 0  # packages and .venv only (scripts/fuzz.sh)
BUILD_TYPE="${QHALIDE_BUILD_TYPE:-Release}"
if [ ! -f build/build.ninja ]; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE="$BUILD_TYPE" -DHalide_ROOT="$HALIDE_ROOT"
fi
JOBS="${QHALIDE_JOBS:-$(nproc)}"
cmake --build build -j "$JOBS"
