#!/usr/bin/env bash
# INT4 benchmark: ResNet-50 at int8, W4A8, W4A4 and a mixed configuration (chosen here by
# qhalide-resnet --precision mixed under a weight-size budget), CPU, batch 1 and 16, in one run
# on one machine: medians of interleaved rounds, each precision as a ratio of int8's time, plus
# weight bytes. Here:      scripts/int4_bench.sh build        [THREADS=2]
# On the device's Xeon:    scripts/int4_bench.sh .dev         (after scripts/device_pack.sh)
# Optional: TARGET=cuda (the GPU: device work alone), BATCHES="1 16", ROUNDS=3, MODEL=resnet50,
# IMAGE=... LABELS=... (default: the source tree's assets), SIZE_BUDGET=0.75; an existing
# $OUT/mixed_bits.txt is used as the mixed configuration.
set -euo pipefail
D="${1:-build}"
OUT="${OUT:-/tmp/qh_int4}"
mkdir -p "$OUT"
[ -d "$D/lib" ] && export LD_LIBRARY_PATH="$D/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
T="${THREADS:-0}" M="${MODEL:-resnet50}" R="${ROUNDS:-3}"
Q="$D/qhalide-resnet"
[ -x "$Q" ] || Q="$D/bin/qhalide-resnet"  # a build directory
EXTRA=()
[ -n "${TARGET:-}" ] && EXTRA+=(--target "$TARGET")
[ -n "${IMAGE:-}" ] && EXTRA+=(--image "$IMAGE" --labels "${LABELS:?LABELS with IMAGE}")  # (no source tree on the device)
lscpu | grep -E "Model name|^CPU\(s\)" || true
# The mixed configuration: least predicted error with weights <= 0.75 x int8's.
if [ ! -s "$OUT/mixed_bits.txt" ]; then
  "$Q" --model "$M" --precision mixed --size-budget "${SIZE_BUDGET:-0.75}" --threads "$T" \
    --iters 1 --warmup 0 --frontier "$OUT/frontier_size" --write-bits "$OUT/mixed_bits.txt" "${EXTRA[@]}" >/dev/null
fi
for b in ${BATCHES:-1 16}; do
  for r in $(seq "$R"); do
    for p in int8 w4a8 w4a4 mixed; do
      args=(--precision "$p")
      [ "$p" = mixed ] && args+=(--bits "$OUT/mixed_bits.txt")
      "$Q" --model "$M" "${args[@]}" --batch "$b" --threads "$T" --iters 10 --warmup 2 --json \
        "${EXTRA[@]}" >"$OUT/${p}_b${b}_r${r}.json"
    done
  done
done
python3 - "$OUT" "$R" ${BATCHES:-1 16} <<'PY'
import json, statistics, sys
out, rounds, batches = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
print("| batch | precision | layers int8/w4a8/w4a4 | median ms | vs int8 | weight MiB | vs int8 |")
print("|---|---|---|---|---|---|---|")
for b in batches:
    rows = {}
    for p in ["int8", "w4a8", "w4a4", "mixed"]:
        rs = [json.load(open(f"{out}/{p}_b{b}_r{r}.json")) for r in range(1, rounds + 1)]
        key = "device_ms" if "device_ms" in rs[0] else "latency_ms"
        rows[p] = (statistics.median(r[key]["median"] for r in rs), rs[0])
    t8, r8 = rows["int8"]
    for p, (t, r) in rows.items():
        print(f'| {b} | {p} | {r["layers_int8"]}/{r["layers_w4a8"]}/{r["layers_w4a4"]} | {t:.2f} | {t / t8:.3f}x | '
              f'{r["weight_bytes"] / 2**20:.2f} | {r["weight_bytes"] / r8["weight_bytes"]:.3f}x |')
PY
