#!/usr/bin/env bash
# Issue 12 on the device machine, in one command: the GPU tests (the grouped / depthwise conv,
# avgpool, lut, mul and concat kernels and the MobileNetV2- / EfficientNet-style graphs bit-exact
# with the CPU, plus every earlier GPU test), then EfficientNet-Lite0 (real weights) there:
#  - ONNX Runtime's int8 QDQ model on the H200 (qhalide-run --target cuda) against the CPU, logits
#    bit for bit, on the bundled photos;
#  - batch-1 latency on the host CPU (16 threads): qhalide fp32 / int8 vs ONNX Runtime fp32 / int8
#    (the device image's onnxruntime), and qhalide int8 on the H200 (qhalide-resnet).
#
#   scripts/device_effnet.sh pack gpu|cpu [BUILD_DIR]   here -> .deveff_gpu/ or .deveff_cpu/ (carry
#       it; one bundle each: both exceed the 64 MiB carry limit together); needs the models and the
#       photos that `scripts/efficientnet_lite0.sh --qhalide BIN --keep-inputs $EFFNET_CACHE/inputs`
#       leaves in $EFFNET_CACHE (default ~/.cache/qhalide/efficientnet_lite0)
#   bash .deveff_gpu/device_effnet.sh run gpu    there (.deveff_cpu: run cpu); results under $OUT
set -uo pipefail
mode="${1:-}"
case "$mode" in
pack)
  set -e
  part="${2:-}"
  [ "$part" = gpu ] || [ "$part" = cpu ] || { echo "usage: $0 pack gpu|cpu [BUILD_DIR]" >&2; exit 2; }
  ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  BUILD="${3:-$ROOT/build}"
  CACHE="${EFFNET_CACHE:-$HOME/.cache/qhalide/efficientnet_lite0}"
  for f in efficientnet_lite0.onnx efficientnet_lite0_int8.onnx inputs/x0.npy; do
    [ -f "$CACHE/$f" ] || { echo "missing $CACHE/$f: run scripts/efficientnet_lite0.sh --qhalide $BUILD/bin --keep-inputs $CACHE/inputs first" >&2; exit 1; }
  done
  source "$ROOT/scripts/device_bundle.sh"
  DEST="$(device_bundle_dir .deveff_$part)"
  mkdir -p "$DEST/inputs"
  cp "$CACHE/efficientnet_lite0_int8.onnx" "$DEST/"
  if [ "$part" = gpu ]; then
    device_bundle_binaries "$DEST" "$BUILD/tests/test_gpu" "$BUILD/bin/qhalide-resnet"
    for f in "$CACHE"/inputs/x*.npy; do if [[ "$(basename "$f")" =~ ^x[0-9]+\.npy$ ]]; then cp "$f" "$DEST/inputs/"; fi; done
  else
    device_bundle_binaries "$DEST" "$BUILD/bin/qhalide-resnet"
    cp "$CACHE/efficientnet_lite0.onnx" "$ROOT/scripts/effnet_ort_bench.py" "$DEST/"
    cp "$CACHE"/inputs/x0.npy "$DEST/inputs/"
  fi
  device_bundle_seal "$DEST" "${BASH_SOURCE[0]}"
  ;;
run)
  what="${2:-all}"
  HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
  [ -f "$HERE/bundle.tar.gz" ] && tar -C "$HERE" -xzf "$HERE/bundle.tar.gz"
  FINAL="${OUT:-$HERE/out}"  # one archive comes back (the device tool returns at most 8 files)
  O="$(mktemp -d)"
  mkdir -p "$FINAL"
  export LD_LIBRARY_PATH="$HERE/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" PYTHONUNBUFFERED=1
  echo "commit $(cat "$HERE/COMMIT" 2>/dev/null)  date $(date -u +%FT%TZ)"
  nvidia-smi --query-gpu=name,driver_version,compute_cap --format=csv,noheader
  lscpu | grep -E 'Model name|^CPU\(s\)'
  rc=0
  M32="$HERE/efficientnet_lite0.onnx" M8="$HERE/efficientnet_lite0_int8.onnx"
  if [ "$what" != cpu ]; then
    timeout 420 "$HERE/test_gpu" --gtest_filter="${GTEST_FILTER:--GpuCodegen.*:GpuBench.*}" >"$O/test_gpu.log" 2>&1 || rc=$?
    grep -E '^\[  (PASSED|FAILED|SKIPPED) |tests ran|Failure|differ' "$O/test_gpu.log" | head -40
    # EfficientNet-Lite0 int8 (ONNX Runtime's QDQ model) on the GPU against the CPU, bit for bit.
    same=0 total=0
    for x in "$HERE"/inputs/x[0-9]*.npy; do
      b=$(basename "$x" .npy)
      "$HERE/qhalide-resnet" --model "$M8" --image "$x" --iters 1 --warmup 0 --dump-logits "$O/cpu_$b.npy" >/dev/null || rc=1
      "$HERE/qhalide-resnet" --model "$M8" --image "$x" --iters 1 --warmup 0 --target cuda --dump-logits "$O/gpu_$b.npy" >/dev/null || rc=1
      total=$((total + 1))
      cmp -s "$O/cpu_$b.npy" "$O/gpu_$b.npy" && same=$((same + 1))
    done
    echo "effnet int8 GPU vs CPU: $same of $total photos with bit-identical logits"
    rm -f "$O"/cpu_x*.npy "$O"/gpu_x*.npy
    for bs in 1 8; do
      "$HERE/qhalide-resnet" --model "$M8" --image "$HERE/inputs/x0.npy" --batch $bs --iters 200 --warmup 20 \
        --target cuda --json >"$O/gpu_int8_b$bs.json" 2>"$O/gpu_int8_b$bs.err" || rc=1
      python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print('effnet int8 H200 batch', d['batch'], 'median', d['latency_ms']['median'], 'ms,', d['images_per_s'], 'img/s')" "$O/gpu_int8_b$bs.json"
    done
    "$HERE/qhalide-resnet" --model "$M8" --image "$HERE/inputs/x0.npy" --iters 100 --target cuda --profile >"$O/gpu_int8_b1_profile.txt" 2>&1 || true
  fi
  if [ "$what" != gpu ] && [ -f "$M32" ]; then
    for p in fp32 int8; do
      m=$M32; [ $p = int8 ] && m=$M8
      for r in 1 2 3; do
        "$HERE/qhalide-resnet" --model "$m" --precision $p --image "$HERE/inputs/x0.npy" --iters 200 --warmup 20 \
          --threads 16 --json >"$O/cpu_${p}_r$r.json" 2>/dev/null || rc=1
        python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print('effnet qhalide $p host 16 threads round $r median', d['latency_ms']['median'], 'ms')" "$O/cpu_${p}_r$r.json"
      done
    done
    "$HERE/qhalide-resnet" --model "$M8" --image "$HERE/inputs/x0.npy" --iters 200 --threads 16 --profile >"$O/cpu_int8_profile.txt" 2>&1 || true
    python3 "$HERE/effnet_ort_bench.py" "$M32" "$M8" "$HERE/inputs/x0.npy" 16 200 | tee "$O/ort.txt" || rc=1
  fi
  tar -C "$O" -czf "$FINAL/effnet_$what.tgz" . && rm -rf "$O"
  exit $rc
  ;;
*)
  echo "usage: $0 pack [BUILD_DIR] | run [gpu|cpu|all]" >&2
  exit 2
  ;;
esac
