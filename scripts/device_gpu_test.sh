#!/usr/bin/env bash
# GPU tests on the device machine (it has the GPU; CI and the build machine have none).
#
#   scripts/device_gpu_test.sh pack [BUILD_DIR]   here, after building test_gpu: copies the test
#       binary, the shared libraries it links that a bare machine may lack, and this script into
#       .devgpu/ of the MAIN checkout (the device tool sends the main checkout's tree, also from a
#       worktree) and git-ignores it through .git/info/exclude.
#   bash .devgpu/device_gpu_test.sh run            there (device `run` with carry [".devgpu"]):
#       every GPU test bit-exact against the generic CPU kernels, then the ResNet-50 timings;
#       logs, JSON and CSV go to $OUT (or .devgpu/out). GPU_TEST_FILTER=<gtest filter> runs a
#       subset (default: everything but the PTX checks, GpuCodegen.*).
# DEVGPU=NAME picks another folder than .devgpu (e.g. one per worktree); carry that name.
set -euo pipefail
mode="${1:-}"
case "$mode" in
pack)
  ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  BUILD="${2:-$ROOT/build}"
  source "$ROOT/scripts/device_bundle.sh"
  DEST="$(device_bundle_dir "${DEVGPU:-.devgpu}")"
  device_bundle_binaries "$DEST" "$BUILD/tests/test_gpu"
  cp "${BASH_SOURCE[0]}" "$DEST/device_gpu_test.sh"
  git -C "$ROOT" rev-parse HEAD >"$DEST/COMMIT"
  du -sh "$DEST"
  ;;
run)
  HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
  OUTDIR="${OUT:-$HERE/out}"
  mkdir -p "$OUTDIR"
  export LD_LIBRARY_PATH="$HERE/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  echo "commit $(cat "$HERE/COMMIT" 2>/dev/null)"
  nvidia-smi --query-gpu=name,driver_version,compute_cap --format=csv,noheader || true
  # PTX checks read the build tree of the build machine: they run there (ctest), not here.
  rc=0
  QHALIDE_GPU_BENCH=1 QHALIDE_GPU_BENCH_OUT="$OUTDIR/gpu_bench_resnet50.csv" \
    "$HERE/test_gpu" --gtest_filter="${GPU_TEST_FILTER:--GpuCodegen.*}" --gtest_output="json:$OUTDIR/test_gpu.json" \
    2>&1 | tee "$OUTDIR/test_gpu.log" || rc=$?
  grep -E '^\[  (PASSED|FAILED|SKIPPED) |tests ran' "$OUTDIR/test_gpu.log" || true
  exit "$rc"
  ;;
*)
  echo "usage: $0 pack [BUILD_DIR] | run" >&2
  exit 2
  ;;
esac
