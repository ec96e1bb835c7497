#include "peak.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <vector>

#include "cpu_features.h"

namespace qh::bench {

namespace {

// 16 independent accumulator chains hide the instruction's latency; the loop body issues 16
// vpdpbusd per iteration, each 128 integer ops.
__attribute__((target("avx512f,avx512vnni"), noinline)) void vnni_loop(int64_t iters) {
    __asm__ volatile(
        "vpxord %%zmm0, %%zmm0, %%zmm0\n"
        "vpternlogd $0xff, %%zmm30, %%zmm30, %%zmm30\n"
        "vpternlogd $0xff, %%zmm31, %%zmm31, %%zmm31\n"
        "vmovdqa64 %%zmm0, %%zmm1\n vmovdqa64 %%zmm0, %%zmm2\n vmovdqa64 %%zmm0, %%zmm3\n"
        "vmovdqa64 %%zmm0, %%zmm4\n vmovdqa64 %%zmm0, %%zmm5\n vmovdqa64 %%zmm0, %%zmm6\n"
        "vmovdqa64 %%zmm0, %%zmm7\n vmovdqa64 %%zmm0, %%zmm8\n vmovdqa64 %%zmm0, %%zmm9\n"
        "vmovdqa64 %%zmm0, %%zmm10\n vmovdqa64 %%zmm0, %%zmm11\n vmovdqa64 %%zmm0, %%zmm12\n"
        "vmovdqa64 %%zmm0, %%zmm13\n vmovdqa64 %%zmm0, %%zmm14\n vmovdqa64 %%zmm0, %%zmm15\n"
        "1:\n"
        "vpdpbusd %%zmm30, %%zmm31, %%zmm0\n vpdpbusd %%zmm30, %%zmm31, %%zmm1\n"
        "vpdpbusd %%zmm30, %%zmm31, %%zmm2\n vpdpbusd %%zmm30, %%zmm31, %%zmm3\n"
        "vpdpbusd %%zmm30, %%zmm31, %%zmm4\n vpdpbusd %%zmm30, %%zmm31, %%zmm5\n"
        "vpdpbusd %%zmm30, %%zmm31, %%zmm6\n vpdpbusd %%zmm30, %%zmm31, %%zmm7\n"
        "vpdpbusd %%zmm30, %%zmm31, %%zmm8\n vpdpbusd %%zmm30, %%zmm31, %%zmm9\n"
        "vpdpbusd %%zmm30, %%zmm31, %%zmm10\n vpdpbusd %%zmm30, %%zmm31, %%zmm11\n"
        "vpdpbusd %%zmm30, %%zmm31, %%zmm12\n vpdpbusd %%zmm30, %%zmm31, %%zmm13\n"
        "vpdpbusd %%zmm30, %%zmm31, %%zmm14\n vpdpbusd %%zmm30, %%zmm31, %%zmm15\n"
        "dec %0\n"
        "jnz 1b\n"
        "vzeroupper\n"
        : "+r"(iters)
        :
        : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",
          "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "xmm30", "xmm31", "cc");
}

}  // namespace

double vnni_peak_gops(int reps) {
    const auto &f = cpu_features();
    if (!(f.avx512f && f.avx512vnni)) return 0.0;
    const int64_t iters = 20'000'000;
    vnni_loop(iters / 10);  // warm up (clock ramp, AVX-512 license)
    std::vector<double> gops;
    for (int r = 0; r < reps; r++) {
        auto t0 = std::chrono::steady_clock::now();
        vnni_loop(iters);
        double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        gops.push_back(double(iters) * 16 * 128 / s * 1e-9);
    }
    std::sort(gops.begin(), gops.end());
    return gops[gops.size() / 2];
}

}  // namespace qh::bench
