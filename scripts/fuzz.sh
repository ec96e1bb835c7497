#!/usr/bin/env bash
# The sanitizer + fuzz job (fuzz/README.md): builds build-asan (clang, ASan+UBSan on the host
# code, libFuzzer targets, generic kernels only, no CUDA, no benchmarks) if needed, runs the unit
# tests that fit under the sanitizers, then every fuzz target for QHALIDE_FUZZ_SECONDS (default
# 60) each. Fails on any test failure, sanitizer report, crash, timeout or out-of-memory.
#
#   scripts/fuzz.sh                          # what scripts/test.sh runs after ctest
#   QHALIDE_FUZZ_SECONDS=3600 scripts/fuzz.sh   # the long run before a release
#   scripts/fuzz.sh fuzz_onnx fuzz_npy      # only these targets (the unit tests still run)
#   QHALIDE_FUZZ_SKIP_TESTS=1 scripts/fuzz.sh   # fuzz only
#
# Environment: QHALIDE_FUZZ_SECONDS (per target), QHALIDE_FUZZ_JOBS (targets run at once, default
# nproc), QHALIDE_JOBS (build), QHALIDE_ASAN_BUILD_DIR (default build-asan). New inputs go into
# build-asan/fuzz-work/<target>/corpus (fuzz/corpus/<target> is read, never written); a finding
# is saved as build-asan/fuzz-work/<target>/crash-*, timeout-*, oom-* or leak-*.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [ -z "${QHALIDE_SETUP_DONE:-}" ]; then
  QHALIDE_SETUP_ONLY=1 "$ROOT/scripts/setup.sh"  # Debian packages (clang, libFuzzer) + .venv
fi
export PATH="$ROOT/.venv/bin:$PATH"
HALIDE_ROOT="$("$ROOT/.venv/bin/python" -c 'import halide; print(halide.install_dir())')"
BUILD="${QHALIDE_ASAN_BUILD_DIR:-$ROOT/build-asan}"
SECS="${QHALIDE_FUZZ_SECONDS:-60}"
JOBS="${QHALIDE_JOBS:-$(nproc)}"
FUZZ_JOBS="${QHALIDE_FUZZ_JOBS:-$(nproc)}"
ALL_TARGETS=(fuzz_onnx fuzz_npy fuzz_image fuzz_shape)
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=("${ALL_TARGETS[@]}")
# The unit tests run under the sanitizers: everything but the heavy ResNet-50 cases, the JIT
# explorer, the install test and test_no_alloc (it replaces malloc, as ASan does). build-asan has
# only the generic kernels; the tests that force each CPU tag run the tags that were built
# (tests/test_util.h runnable_targets()). test_reliability includes the concurrency stress test
# (4 threads x 12 runs, bit-exact), so it runs under ASan here.
TEST_BINARIES=(test_io test_model test_onnx_import test_reliability test_registry test_passes test_eltwise test_conv2d)
declare -A TEST_FILTER=(
  [test_io]='*'
  [test_model]='*'
  [test_onnx_import]='*'
  [test_reliability]='*'
  [test_registry]='*'
  [test_passes]='*'
  [test_eltwise]='EltwiseErrors.*'
  [test_conv2d]='Conv2dErrors.*'
)
HEAVY='*ResNet50*:*Resnet50*:*resnet50*'

t0=$(date +%s)
if [ ! -f "$BUILD/build.ninja" ]; then
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHalide_ROOT="$HALIDE_ROOT" \
    -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
    -DQHALIDE_SANITIZE=ON -DQHALIDE_FUZZ=ON -DQH_TARGET_TAGS=generic \
    -DQHALIDE_BUILD_CUDA=OFF -DQHALIDE_BUILD_BENCH=OFF -DQHALIDE_TUNING_DB=
fi
cmake --build "$BUILD" -j "$JOBS" --target "${TEST_BINARIES[@]}" "${TARGETS[@]}"
t1=$(date +%s)
echo "[fuzz] build-asan ready in $((t1 - t0)) s"

# Sanitizer reports are fatal everywhere; llvm-symbolizer (Debian: llvm) gives file:line stacks.
export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
command -v llvm-symbolizer >/dev/null && export ASAN_SYMBOLIZER_PATH="$(command -v llvm-symbolizer)"

if [ -z "${QHALIDE_FUZZ_SKIP_TESTS:-}" ]; then
  for t in "${TEST_BINARIES[@]}"; do
    echo "[fuzz] $t under ASan+UBSan"
    filter="${TEST_FILTER[$t]}"
    [ -n "${QHALIDE_ASAN_ALL_TESTS:-}" ] && filter='*'
    case "$filter" in *:-*) filter="$filter:$HEAVY" ;; *) filter="$filter:-$HEAVY" ;; esac
    (cd "$BUILD/tests" && "./$t" --gtest_brief=1 --gtest_filter="$filter") > "$BUILD/$t.asan.log" 2>&1 || {
      tail -n 80 "$BUILD/$t.asan.log"
      echo "[fuzz] FAILED: $t under ASan+UBSan (log: $BUILD/$t.asan.log)"
      exit 1
    }
    grep -E "^\[  (PASSED|SKIPPED) " "$BUILD/$t.asan.log" | sed "s/^/[fuzz]   /" || true
  done
fi
t2=$(date +%s)
echo "[fuzz] sanitized unit tests: $((t2 - t1)) s"

# Per target: seed corpus, extra options. -timeout: seconds for one input; -rss_limit_mb: the
# whole process; -malloc_limit_mb: one allocation. The targets set the library's memory budget to
# 256 MiB, and resource_limits.h promises no allocation above it: one over 300 MiB is a finding.
LIMITS="-rss_limit_mb=2560 -malloc_limit_mb=300"
opts_for() {
  case "$1" in
    fuzz_onnx) echo "-timeout=20 $LIMITS -max_len=65536 -dict=$ROOT/fuzz/onnx.dict" ;;
    fuzz_npy) echo "-timeout=10 $LIMITS -max_len=4096 -dict=$ROOT/fuzz/npy.dict" ;;
    fuzz_image) echo "-timeout=10 $LIMITS -max_len=65536" ;;
    fuzz_shape) echo "-timeout=10 $LIMITS -max_len=256 -dict=$ROOT/fuzz/shape.dict" ;;
  esac
}
run_target() {
  local t="$1" work="$BUILD/fuzz-work/$1"
  mkdir -p "$work/corpus"
  # shellcheck disable=SC2046
  "$BUILD/fuzz/$t" $(opts_for "$t") -max_total_time="$SECS" -print_final_stats=1 \
    -artifact_prefix="$work/" "$work/corpus" "$ROOT/fuzz/corpus/$t" > "$work/log" 2>&1
}
declare -A PIDS=()
status=0
for t in "${TARGETS[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$FUZZ_JOBS" ]; do wait -n || true; done
  echo "[fuzz] $t for ${SECS} s"
  run_target "$t" &
  PIDS[$t]=$!
done
for t in "${TARGETS[@]}"; do
  work="$BUILD/fuzz-work/$t"
  if wait "${PIDS[$t]}"; then
    execs=$(grep -o "stat::number_of_executed_units: *[0-9]*" "$work/log" | grep -o "[0-9]*$" || echo "?")
    cov=$(grep -o "cov: [0-9]*" "$work/log" | tail -n 1 || true)
    echo "[fuzz] $t: ok, $execs inputs, $cov"
  else
    status=1
    tail -n 60 "$work/log"
    echo "[fuzz] FINDING in $t: $(ls "$work" | grep -E '^(crash|timeout|oom|leak|slow-unit)-' | sed "s|^|$work/|" | tr '\n' ' ')"
    echo "[fuzz]   reproduce: $BUILD/fuzz/$t FILE   (log: $work/log)"
  fi
done
t3=$(date +%s)
echo "[fuzz] fuzzing: $((t3 - t2)) s; total $((t3 - t0)) s"
exit $status
