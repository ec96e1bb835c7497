#!/usr/bin/env bash
# Tensor-core int8 conv microkernel (cuda/mma_conv2d.cu): build here, check + time there.
#   scripts/device_cuda_bench.sh build        # here: nvcc -> .devcuda/ (git-ignored: /.devcuda/ in
#                                             #   .git/info/exclude), with the ptxas resource report
#   bash .devcuda/device_cuda_bench.sh int4 [args]  # on the device: mma_rate, then the INT4 bench
#                                             #   (W4A8 vs int8, W4A4; bench/cuda/int4_conv_bench.cu)
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
  # the four objects in parallel: int8 (sm_90), W4A8 (sm_90), W4A4 (sm_75/80/90), wgmma (sm_90a)
  "$NVCC" -O3 -std=c++17 $ARCH $HOSTF -Xptxas -v -c cuda/mma_conv2d.cu -o "$D/mma_conv2d.o" 2>"$D/ptxas.txt" &
  "$NVCC" -O3 -std=c++17 $ARCH $HOSTF -Xptxas -v -c cuda/mma_conv2d_w4.cu -o "$D/mma_conv2d_w4.o" \
    2>"$D/ptxas_w4.txt" &
  "$NVCC" -O3 -std=c++17 -gencode=arch=compute_75,code=sm_75 -gencode=arch=compute_80,code=sm_80 $ARCH $HOSTF \
    -Xptxas -v -c cuda/mma_conv2d_u4.cu -o "$D/mma_conv2d_u4.o" 2>"$D/ptxas_u4.txt" &
  # the wgmma variants (cuda/wgmma_conv2d.cu) need the arch-specific sm_90a target
  "$NVCC" -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a $HOSTF -Xptxas -v -c cuda/wgmma_conv2d.cu \
    -o "$D/wgmma_conv2d.o" 2>"$D/ptxas_wg.txt" &
  wait
  cat "$D/ptxas_w4.txt" "$D/ptxas_u4.txt" "$D/ptxas_wg.txt" >>"$D/ptxas.txt"
  grep -E "registers|spill" "$D/ptxas.txt" | sort | uniq -c | head -20 || true  # head closes the pipe early
  OBJS="$D/mma_conv2d.o $D/mma_conv2d_w4.o $D/mma_conv2d_u4.o $D/wgmma_conv2d.o"
  "$NVCC" -O3 -std=c++17 $ARCH $HOSTF bench/cuda/mma_conv_bench.cu $OBJS -o "$D/mma_conv_bench"
  "$NVCC" -O3 -std=c++17 $ARCH $HOSTF bench/cuda/int4_conv_bench.cu $OBJS -o "$D/int4_conv_bench"
  # the peak probe, copied unmodified from ../shared/tools (int8 m16n8k32 and s4 m16n8k64 mma.sync)
  cp /work/shared/tools/mma_rate.cu "$D/mma_rate.cu"
  "$NVCC" -O3 -gencode=arch=compute_90a,code=sm_90a -o "$D/mma_rate" "$D/mma_rate.cu"
  cp "${BASH_SOURCE[0]}" "$D/device_cuda_bench.sh"
  ;;
int4)
  # W4A8 vs int8 and W4A4 (bench/cuda/int4_conv_bench.cu) with both mma.sync peaks measured first
  shift
  OUT="${OUT:-/tmp/qh_cuda_out}"
  mkdir -p "$OUT"
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader || true
  date -u +%FT%TZ
  for o in mma_conv2d mma_conv2d_w4 mma_conv2d_u4 wgmma_conv2d; do [ -f "$D/$o.o" ] || continue
    cuobjdump --dump-sass "$D/$o.o" >"$OUT/sass_$o.txt" 2>&1 || true
    echo "SASS $o: IMMA $(grep -c IMMA "$OUT/sass_$o.txt") IGMMA $(grep -c IGMMA "$OUT/sass_$o.txt") LDSM $(grep -c LDSM "$OUT/sass_$o.txt") LDL/STL $(grep -cE 'LDL|STL' "$OUT/sass_$o.txt")"
    rm -f "$OUT/sass_$o.txt"; done
  "$D/mma_rate" | tee "$OUT/mma_rate.txt"
  P8=$(sed -n 's/^int8 mma.sync m16n8k32: \([0-9.]*\) TOPS/\1/p' "$OUT/mma_rate.txt")
  P4=$(sed -n 's/^int4 mma.sync m16n8k64: \([0-9.]*\) TOPS/\1/p' "$OUT/mma_rate.txt")
  set -o pipefail
  "$D/int4_conv_bench" --peak8 "${P8:-0}" --peak4 "${P4:-0}" --out "$OUT/int4_conv_results.json" "$@" \
    2>"$OUT/int4_bench_log.txt" >"$OUT/int4_bench_stdout.txt" || { echo "int4 bench failed"; tail -n 30 "$OUT/int4_bench_log.txt"; }
  sed -n '/^==== summary/,$p' "$OUT/int4_bench_stdout.txt"
  grep MISMATCH "$OUT/int4_bench_log.txt" | head -20 || true
  "$D/mma_rate" | tee -a "$OUT/mma_rate.txt"
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
*) echo "usage: $0 build | run [bench args] | int4 [int4 bench args] | ncu TAG [bench args]" >&2; exit 1 ;;
esac
