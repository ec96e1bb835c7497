#!/usr/bin/env bash
# Tensor-core int8 conv microkernel (cuda/mma_conv2d.cu): build here, check + time there.
#   scripts/device_cuda_bench.sh build        # here: nvcc -> .devcuda/ (git-ignored: /.devcuda/ in
#                                             #   .git/info/exclude), with the ptxas resource report
#   scripts/device_cuda_bench.sh run [args]   # on the device (carry .devcuda): mma_rate first (the
#                                             #   int8 mma.sync peak), then the bench with --peak;
#                                             #   JSON + logs land in $OUT
# Device call (run tool): command "scripts/device_cuda_bench.sh run", carry [".devcuda"].
set -euo pipefail
D="${DEVCUDA:-.devcuda}"
NVCC="${NVCC:-/usr/local/cuda/bin/nvcc}"
case "${1:-}" in
build)
  mkdir -p "$D"
  ARCH="-gencode=arch=compute_90,code=sm_90"
  HOSTF="-Xcompiler -O3,-march=x86-64-v3"
  "$NVCC" -O3 -std=c++17 $ARCH $HOSTF -Xptxas -v -c cuda/mma_conv2d.cu -o "$D/mma_conv2d.o" \
    2>"$D/ptxas.txt"
  grep -E "registers|spill" "$D/ptxas.txt" | sort | uniq -c | head -20
  # the wgmma variants (cuda/wgmma_conv2d.cu) need the arch-specific sm_90a target
  "$NVCC" -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a $HOSTF -Xptxas -v -c cuda/wgmma_conv2d.cu \
    -o "$D/wgmma_conv2d.o" 2>>"$D/ptxas.txt"
  "$NVCC" -O3 -std=c++17 $ARCH $HOSTF bench/cuda/mma_conv_bench.cu "$D/mma_conv2d.o" "$D/wgmma_conv2d.o" \
    -o "$D/mma_conv_bench"
  # the peak probe, copied unmodified from ../shared/tools (int8 m16n8k32 mma.sync, registers only)
  cp /work/shared/tools/mma_rate.cu "$D/mma_rate.cu"
  "$NVCC" -O3 -gencode=arch=compute_90a,code=sm_90a -o "$D/mma_rate" "$D/mma_rate.cu"
  ;;
run)
  shift
  OUT="${OUT:-/tmp/qh_cuda_out}"
  mkdir -p "$OUT"
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader || true
  date -u +%FT%TZ
  # SASS census (no cuobjdump on the build machine): tensor-core and ldmatrix instructions
  for o in mma_conv2d wgmma_conv2d; do cuobjdump --dump-sass "$D/$o.o" >>"$OUT/sass.txt" 2>&1 || true; done
  echo "SASS: IMMA $(grep -c IMMA "$OUT/sass.txt") IGMMA $(grep -c IGMMA "$OUT/sass.txt") LDSM $(grep -c LDSM "$OUT/sass.txt") LDGSTS $(grep -c LDGSTS "$OUT/sass.txt") LDL/STL $(grep -cE 'LDL|STL' "$OUT/sass.txt")"
  rm -f "$OUT/sass.txt"  # the census is enough; full SASS: cuobjdump here (pip nvidia-cuda-cuobjdump + nvdisasm)
  "$D/mma_rate" | tee "$OUT/mma_rate.txt"
  PEAK=$(sed -n 's/^int8 mma.sync m16n8k32: \([0-9.]*\) TOPS/\1/p' "$OUT/mma_rate.txt")
  set -o pipefail
  "$D/mma_conv_bench" --peak "${PEAK:-0}" --out "$OUT/mma_conv_results.json" "$@" 2>"$OUT/bench_log.txt" \
    | tee "$OUT/bench_table.txt" || { echo "bench failed"; tail -n 30 "$OUT/bench_log.txt"; exit 1; }
  tail -n 4 "$OUT/bench_log.txt"
  ;;
ncu)
  # one kernel launch profiled (--set full), details page as text into $OUT/ncu_TAG.txt:
  #   device_cuda_bench.sh ncu TAG [bench args, e.g. --only res4_3x3_256_256 --batches 256 --variants 9]
  shift
  TAG="$1"; shift
  OUT="${OUT:-/tmp/qh_cuda_out}"
  mkdir -p "$OUT"
  ncu --set full --clock-control none -k regex:conv_mma -c 1 -f -o "/tmp/ncu_$TAG" "$D/mma_conv_bench" --reps 1 \
    --out /tmp/ncu_bench.json "$@" >"/tmp/ncu_$TAG.log" 2>&1 || { echo "ncu failed"; tail -n 20 "/tmp/ncu_$TAG.log"; }
  ncu --import "/tmp/ncu_$TAG.ncu-rep" --page details >"$OUT/ncu_$TAG.txt" 2>&1 || true
  ncu --import "/tmp/ncu_$TAG.ncu-rep" --page raw | gzip >"$OUT/ncu_${TAG}_raw.txt.gz" || true
  zcat "$OUT/ncu_${TAG}_raw.txt.gz" | grep -E "smsp__average_warp_latency_issue_stalled_[a-z_]+\.ratio|smsp__average_warps_issue_stalled_[a-z_]+_per_issue_active\.ratio" \
    | awk '$NF+0 > 0.05' | head -40
  grep -E "Duration|Compute \(SM\) Throughput|Memory Throughput|L2 Cache Throughput|Registers Per|Achieved Occupancy|Shared Memory|Block Limit|Issue Slots|Executed Ipc A" "$OUT/ncu_$TAG.txt" | head -30
  ;;
*) echo "usage: $0 build | run [bench args] | ncu TAG [bench args]" >&2; exit 1 ;;
esac
