#!/usr/bin/env bash
# INT4 on the device machine, in one command: the GPU tests (int4 kernels and whole W4A8 / W4A4 /
# mixed ResNets bit-exact with the CPU, and every int8 test), then ResNet-50 int8 vs W4A8 vs
# W4A4 vs mixed on the H200 (device work alone, batch 1, 8, 256) and on the host Xeon (16
# threads, batch 1 and 16), each through scripts/int4_bench.sh (interleaved rounds, ratios to
# int8 in the same run, weight bytes).
#
#   scripts/device_int4.sh pack [BUILD_DIR] [BITS_FILE]   here -> .devint4/ (carry it); BITS_FILE:
#       the mixed configuration to measure (default: int4_bench.sh chooses one on the machine)
#   bash .devint4/device_int4.sh run [gpu|cpu|all]       there; results under $OUT
set -uo pipefail
mode="${1:-}"
case "$mode" in
pack)
  set -e
  ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  BUILD="${2:-$ROOT/build}"
  source "$ROOT/scripts/device_bundle.sh"
  DEST="$(device_bundle_dir .devint4)"
  device_bundle_binaries "$DEST" "$BUILD/tests/test_gpu" "$BUILD/bin/qhalide-resnet"
  cp "$ROOT/assets/sample.jpg" "$ROOT/assets/imagenet_labels.txt" "$ROOT/scripts/int4_bench.sh" "$DEST/"
  [ -n "${3:-}" ] && cp "$3" "$DEST/mixed_bits.txt"
  device_bundle_seal "$DEST" "${BASH_SOURCE[0]}"
  ;;
run)
  what="${2:-all}"
  HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
  [ -f "$HERE/bundle.tar.gz" ] && tar -C "$HERE" -xzf "$HERE/bundle.tar.gz"
  O="${OUT:-$HERE/out}"
  mkdir -p "$O"
  export LD_LIBRARY_PATH="$HERE/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" PYTHONUNBUFFERED=1
  export IMAGE="$HERE/sample.jpg" LABELS="$HERE/imagenet_labels.txt"
  echo "commit $(cat "$HERE/COMMIT" 2>/dev/null)  date $(date -u +%FT%TZ)"
  nvidia-smi --query-gpu=name,driver_version,compute_cap --format=csv,noheader
  rc=0
  if [ "$what" != cpu ]; then
    timeout 400 "$HERE/test_gpu" --gtest_filter="${GTEST_FILTER:--GpuCodegen.*:GpuBench.*}" >"$O/test_gpu.log" 2>&1 || rc=$?
    grep -E '^\[  (PASSED|FAILED|SKIPPED) |tests ran|Failure|differ|resnet(18|50) (w4|mixed)' "$O/test_gpu.log" | head -60
    mkdir -p "$O/gpu"
    [ -f "$HERE/mixed_bits.txt" ] && cp "$HERE/mixed_bits.txt" "$O/gpu/"
    OUT="$O/gpu" TARGET=cuda BATCHES="${GPU_BATCHES:-1 8 256}" ROUNDS="${ROUNDS:-1}" \
      timeout 420 bash "$HERE/int4_bench.sh" "$HERE" 2>&1 | tail -20 || rc=1
  fi
  if [ "$what" != gpu ]; then
    mkdir -p "$O/cpu"
    [ -f "$HERE/mixed_bits.txt" ] && cp "$HERE/mixed_bits.txt" "$O/cpu/"
    OUT="$O/cpu" THREADS=16 BATCHES="1 16" ROUNDS="${ROUNDS:-2}" timeout 480 bash "$HERE/int4_bench.sh" "$HERE" 2>&1 | tail -14 || rc=1
  fi
  exit $rc
  ;;
*)
  echo "usage: $0 pack [BUILD_DIR] [BITS_FILE] | run [gpu|cpu|all]" >&2
  exit 2
  ;;
esac
