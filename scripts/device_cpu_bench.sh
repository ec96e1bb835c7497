#!/usr/bin/env bash
# CPU benchmark on the device machine's host (16-core Xeon, AMX + AVX512-VNNI): int8 ResNet-50/18
# at batch 1 and 16 with 16 threads, and PyTorch's x86 int8 engine (../shared/tools/peers_device.py)
# in the same run. The device has no Halide and no network: build here, run scripts/device_pack.sh
# (binary + shared libraries + peer script into the git-ignored .dev/), carry .dev, and run
#   scripts/device_cpu_bench.sh .dev        (on the device; JSON results also land in $OUT)
set -euo pipefail
D="${1:-.dev}"
OUT="${OUT:-/tmp/qh_out}"
mkdir -p "$OUT"
export LD_LIBRARY_PATH="$D/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
T="${THREADS:-16}"
lscpu | grep -E "Model name|^CPU\(s\)" || true
grep -o -w -E "amx_int8|avx512_vnni|avx512_bf16" /proc/cpuinfo | sort | uniq -c || true
for m in resnet50 resnet18; do
  for b in 1 16; do
    "$D/qhalide-resnet" --model "$m" --batch "$b" --threads "$T" --iters 30 --warmup 5 --json \
      >"$OUT/qhalide_${m}_b${b}.json"
    python3 - "$OUT/qhalide_${m}_b${b}.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
k = sorted({l["kernel"] for l in r["layers"] if l["kernel"].startswith("conv2d")})
print(f'qhalide {r["model"]} b{r["batch"]} threads {r["threads"]}: median {r["latency_ms"]["median"]:.2f} ms, '
      f'min {r["latency_ms"]["min"]:.2f} ms, {r["images_per_s"]:.0f} img/s; conv kernels {k}')
PY
  done
done
THREADS="$T" python3 "$D/peers_device.py" cpu 2>/dev/null >"$OUT/peers_cpu.txt"
tail -n 18 "$OUT/peers_cpu.txt"
