#!/usr/bin/env bash
# Whole int8 ResNets on the GPU (Model prepared with device = cuda) on the device machine:
# the GPU tests (every cuda_dp4a kernel and whole models bit-exact against the CPU), then
# qhalide-resnet --target cuda ResNet-50 at batch 1, 8, 256, then cuDNN fp16/bf16 at the same
# batches (../shared/tools/peers_device.py gpu), all in one command.
#
#   scripts/device_gpu_resnet.sh pack [BUILD_DIR]   here: test_gpu, qhalide-resnet, the shared
#       libraries a bare machine may lack, the sample image + labels, peers_device.py and this
#       script -> .devgpu/ of the MAIN checkout (the device tool sends the main checkout's tree).
#   bash .devgpu/device_gpu_resnet.sh run            there (device `run`, carry [".devgpu"]);
#       logs and JSON go to $OUT (or .devgpu/out; 8 files, the device tool's limit; a per-layer
#       profile at batch 256, whose total is the device time with the input already there); a summary
#       table is printed last.
# DEVGPU=NAME picks another folder than .devgpu (e.g. one per worktree); carry that name.
set -uo pipefail
mode="${1:-}"
case "$mode" in
pack)
  set -e
  ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  BUILD="${2:-$ROOT/build}"
  source "$ROOT/scripts/device_bundle.sh"
  DEST="$(device_bundle_dir "${DEVGPU:-.devgpu}")"
  device_bundle_binaries "$DEST" "$BUILD/tests/test_gpu" "$BUILD/bin/qhalide-resnet" "$BUILD/bin/qhalide-run"
  # ONNX conformance models for qhalide-run --target cuda (the device has no libonnx-testdata)
  for t in test_qlinearconv test_qlinearmatmul_2D test_maxpool_2d_uint8; do
    cp -r "/usr/share/libonnx-testdata/data/node/$t" "$DEST/"
  done
  cp "$ROOT/assets/sample.jpg" "$ROOT/assets/imagenet_labels.txt" "$DEST/"
  cp "$ROOT/../shared/tools/peers_device.py" "$DEST/"
  device_bundle_seal "$DEST" "${BASH_SOURCE[0]}"
  ;;
run)
  HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
  [ -f "$HERE/bundle.tar.gz" ] && tar -C "$HERE" -xzf "$HERE/bundle.tar.gz"
  O="${OUT:-$HERE/out}"
  mkdir -p "$O"
  export LD_LIBRARY_PATH="$HERE/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" PYTHONUNBUFFERED=1
  echo "commit $(cat "$HERE/COMMIT" 2>/dev/null)  date $(date -u +%FT%TZ)"
  nvidia-smi --query-gpu=name,driver_version,compute_cap --format=csv,noheader | tee "$O/gpu.txt"
  rc=0
  # 1. correctness: kernels and whole models against the CPU (the PTX checks run on the build machine)
  timeout 300 "$HERE/test_gpu" --gtest_filter="${GTEST_FILTER:--GpuCodegen.*:GpuBench.*}" \
    >"$O/test_gpu.log" 2>&1 || rc=$?
  grep -E '^\[  (PASSED|FAILED|SKIPPED) |tests ran|Failure|differ' "$O/test_gpu.log" | head -40
  # 2. qhalide int8 ResNet-50 on the GPU (each run: f32 input to the device, every layer, logits
  #    back, sync); medians
  R=(--model resnet50 --image "$HERE/sample.jpg" --labels "$HERE/imagenet_labels.txt" --calib-samples 2 --target cuda)
  for b in 1 8 256; do
    it=50; [ "$b" = 256 ] && it=10
    timeout 180 "$HERE/qhalide-resnet" "${R[@]}" --batch "$b" --iters "$it" --warmup 3 --json \
      >"$O/qhalide_cuda_resnet50_b$b.json" 2>>"$O/qhalide.err" || { rc=1; tail -3 "$O/qhalide.err"; }
  done
  timeout 120 "$HERE/qhalide-resnet" "${R[@]}" --batch 256 --iters 3 --warmup 1 --profile >"$O/qhalide_cuda_resnet50_b256_profile.txt" 2>&1 || rc=1
  # the same without the CUDA graph (every layer's kernels launched one by one)
  for b in 1 8 256; do
    it=50; [ "$b" = 256 ] && it=10
    timeout 180 "$HERE/qhalide-resnet" "${R[@]}" --batch "$b" --iters "$it" --warmup 3 --no-graph \
      2>>"$O/qhalide.err" | grep -E "^latency|^device work" | sed "s/^/no graph, batch $b: /"
  done
  # the same with every conv on the cuda_dp4a kernels instead of cuda_mma (for the comparison)
  for b in 1 256; do
    it=30; [ "$b" = 256 ] && it=5
    QHALIDE_CUDA_CONV=dp4a timeout 180 "$HERE/qhalide-resnet" "${R[@]}" --batch "$b" --iters "$it" --warmup 2 \
      2>>"$O/qhalide.err" | grep latency | sed "s/^/convs on cuda_dp4a, batch $b: /"
  done
  # qhalide-run on the GPU: ONNX conformance models as shipped, compared bit for bit
  for t in test_qlinearconv test_qlinearmatmul_2D test_maxpool_2d_uint8; do
    d="$HERE/$t/test_data_set_0"
    in=(); for f in "$d"/input_*.pb; do in+=(--input "$f"); done
    timeout 60 "$HERE/qhalide-run" "$HERE/$t/model.onnx" --target cuda "${in[@]}" --expect "$d/output_0.pb" \
      --output-dir "/tmp/qh_run_$t" 2>&1 | grep -E "bit-exact|MISMATCH|error" | sed "s/^/qhalide-run --target cuda $t: /"
  done
  # 3. cuDNN fp16/bf16 (PyTorch, channels_last), same batches
  timeout 300 python3 "$HERE/peers_device.py" gpu >"$O/peers_gpu.txt" 2>&1 || { rc=1; tail -5 "$O/peers_gpu.txt"; }
  python3 - "$O" <<'PY'
import json, sys, os
o = sys.argv[1]
peers = {}
try:
    txt = open(os.path.join(o, "peers_gpu.txt")).read()
    peers = json.loads(txt[txt.rindex("\n{") + 1:]) if "\n{" in txt else json.loads(txt[txt.index("{"):])
except Exception as e:
    print("peers: no JSON", e)
print("gpu:", open(os.path.join(o, "gpu.txt")).read().strip())
print(f"{'ResNet-50':10} {'qhalide int8 ms':>16} {'img/s':>9} {'device-only ms':>15} {'img/s':>9} "
      f"{'cuDNN fp16 ms':>14} {'img/s':>9} {'cuDNN bf16 ms':>14}")
for b in (1, 8, 256):
    try:
        r = json.load(open(os.path.join(o, f"qhalide_cuda_resnet50_b{b}.json")))
        q, qd = r["latency_ms"]["median"], r.get("device_ms", {}).get("median", float("nan"))
    except Exception:
        q = qd = float("nan")
    f = peers.get(f"gpu_cudnn_float16_resnet50_b{b}_ms", float("nan"))
    h = peers.get(f"gpu_cudnn_bfloat16_resnet50_b{b}_ms", float("nan"))
    print(f"batch {b:<4} {q:16.3f} {b*1000/q:9.0f} {qd:15.3f} {b*1000/qd:9.0f} {f:14.3f} {b*1000/f:9.0f} {h:14.3f}")
for b in (1, 8, 256):
    try:
        print(f"batch {b} device graph:", json.load(open(os.path.join(o, f"qhalide_cuda_resnet50_b{b}.json")))["device_graph"])
    except Exception:
        pass
PY
  grep -E "^total" "$O/qhalide_cuda_resnet50_b256_profile.txt" || true
  exit "$rc"
  ;;
*)
  echo "usage: $0 pack [BUILD_DIR] | run" >&2
  exit 2
  ;;
esac
