# Target tags -> Halide target strings. Order = dispatch preference, most specific first; the
# run-time CPU-feature predicate of each tag lives in runtime/cpu_features.cpp (same tags).
# x86_avx512vnni uses Halide's avx512_zen4 feature (the only v21 feature that emits vpdpbusd);
# it implies -mcpu=znver4, so the runtime demands every AVX-512 extension Zen 4 has.
# A cache variable so that a build can have fewer kernels (the sanitizer build: -DQH_TARGET_TAGS=generic;
# dispatch then picks generic everywhere). Every tag listed must be one of the three below.
set(QH_TARGET_TAGS x86_avx512vnni x86_avx2 generic CACHE STRING
    "CPU target tags to build kernels for, in dispatch preference order (must include generic)")
foreach (tag IN LISTS QH_TARGET_TAGS)
  if (NOT tag MATCHES "^(x86_avx512vnni|x86_avx2|generic)$")
    message(FATAL_ERROR "QH_TARGET_TAGS: unknown tag '${tag}' (known: x86_avx512vnni x86_avx2 generic)")
  endif ()
endforeach ()
if (NOT "generic" IN_LIST QH_TARGET_TAGS)
  message(FATAL_ERROR "QH_TARGET_TAGS must include generic (the fallback of every op and of runtime/kernels.h)")
endif ()
set(QH_HALIDE_TARGET_x86_avx512vnni
    "x86-64-linux-sse41-avx-avx2-fma-f16c-avx512-avx512_skylake-avx512_cannonlake-avx512_zen4")
set(QH_HALIDE_TARGET_x86_avx2 "x86-64-linux-sse41-avx-avx2-fma-f16c")
set(QH_HALIDE_TARGET_generic "x86-64-linux")
# The one Halide runtime of libqhalide. add_halide_runtime also adds every kernel's target to
# it (USE_RUNTIME), and GenRT builds the runtime for their common target, the union of the
# runtime features: with cuda_dp4a kernels it has the CUDA module (libcuda.so is dlopen'ed at
# the first GPU call, so nothing links against CUDA and CPU-only machines are unaffected).
set(QH_HALIDE_RUNTIME_TARGET "x86-64-linux")

# GPU tags: built into the same static library as a separate list (build/generated/
# qh_gpu_kernel_table.inc, runtime/gpu_kernels.h), never into the CPU dispatch table.
# cuda_dp4a: Halide's CUDA backend at sm_61 (the first with dp4a); the driver JIT-compiles the
# PTX for newer GPUs (sm_90 on H100/H200). The host part is plain x86-64 (it only launches).
# QHALIDE_BUILD_CUDA=OFF leaves them out (and the runtime without CUDA support).
option(QHALIDE_BUILD_CUDA "Build the CUDA kernels: cuda_dp4a (Halide) into libqhalide, and the tensor-core microkernel qhalide_cuda when nvcc is found" ON)
set(QH_GPU_TARGET_TAGS "")
if (QHALIDE_BUILD_CUDA)
  set(QH_GPU_TARGET_TAGS cuda_dp4a)
endif ()
set(QH_HALIDE_TARGET_cuda_dp4a "x86-64-linux-cuda-cuda_capability_61")

# Opt-in GPU tags: built only for the families of qhalide_kernels.cmake that name them (TAGS),
# never for every family. cuda_mma: Halide stages (im2col packing, requantize / residual-add
# epilogue) around the tensor-core microkernel, reached through define_extern
# (cuda/mma_extern.cpp), so only when nvcc builds that microkernel into libqhalide.
# The Halide target is cuda_dp4a's: the Halide stages need nothing newer.
set(QH_OPT_IN_GPU_TAGS "")
if (QHALIDE_BUILD_CUDA)
  include(CheckLanguage)
  check_language(CUDA)
  if (CMAKE_CUDA_COMPILER)
    set(QH_OPT_IN_GPU_TAGS cuda_mma)
  endif ()
endif ()
set(QH_HALIDE_TARGET_cuda_mma "x86-64-linux-cuda-cuda_capability_61")
