# Target tags -> Halide target strings. Order = dispatch preference, most specific first; the
# run-time CPU-feature predicate of each tag lives in runtime/cpu_features.cpp (same tags).
# x86_avx512vnni uses Halide's avx512_zen4 feature (the only v21 feature that emits vpdpbusd);
# it implies -mcpu=znver4, so the runtime demands every AVX-512 extension Zen 4 has.
set(QH_TARGET_TAGS x86_avx512vnni x86_avx2 generic)
set(QH_HALIDE_TARGET_x86_avx512vnni
    "x86-64-linux-sse41-avx-avx2-fma-f16c-avx512-avx512_skylake-avx512_cannonlake-avx512_zen4")
set(QH_HALIDE_TARGET_x86_avx2 "x86-64-linux-sse41-avx-avx2-fma-f16c")
set(QH_HALIDE_TARGET_generic "x86-64-linux")
set(QH_HALIDE_RUNTIME_TARGET "x86-64-linux")
