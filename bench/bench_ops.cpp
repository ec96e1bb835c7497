// Per-op benchmarks on ResNet-50 shapes (batch 1) for every kernel variant this CPU runs.
// Reports GOP/s (2 ops per MAC) and the fraction of the VNNI peak measured at start-up in the
// same process (bench/peak.h). Threads: QHALIDE_BENCH_THREADS (default 1).
//   build/bin/qhalide-bench-ops --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <random>

#include "kernels.h"
#include "ops.h"
#include "peak.h"
#include "resnet_shapes.h"

namespace {

using namespace qh;

double g_peak_gops = 0;

struct ConvSetup {
    Tensor x, y;
    PackedWeights w;
    Conv2dParams p;
};

ConvSetup make_conv(const bench::ConvShape &s) {
    std::mt19937 g(42);
    std::uniform_int_distribution<int> d8(0, 255);
    ConvSetup c;
    c.x = Tensor(DType::u8, {1, s.hw, s.hw, s.c}, QuantParams::per_tensor(0.02f, 128));
    for (int64_t i = 0; i < c.x.numel(); i++) c.x.data<uint8_t>()[i] = uint8_t(d8(g));
    std::vector<int8_t> w(size_t(s.oc) * s.c * s.k * s.k);
    for (auto &v : w) v = int8_t(d8(g) - 128);
    std::vector<int32_t> bias(s.oc, 100);
    WeightsDesc wd;
    wd.name = s.name; wd.dtype = DType::s8; wd.data = w.data();
    wd.oc = s.oc; wd.ic = s.c; wd.kh = wd.kw = s.k;
    wd.scale = {0.001f}; wd.bias = bias.data();
    c.w = pack_weights(wd, 0.02f, 128, 0.05f);
    c.p.name = s.name;
    c.p.stride_h = c.p.stride_w = s.stride;
    c.p.pad_top = c.p.pad_left = c.p.pad_bottom = c.p.pad_right = s.pad;
    c.p.act = Activation::relu(0);
    c.y = Tensor(DType::u8, conv2d_output_shape(c.x, c.w, c.p), QuantParams::per_tensor(0.05f, 0));
    return c;
}

void bm_conv(benchmark::State &state, bench::ConvShape s, std::string tag) {
    force_target(tag);
    ConvSetup c = make_conv(s);
    conv2d(c.x, c.w, c.p, c.y);  // warm-up: thread pool, page faults
    for (auto _ : state) conv2d(c.x, c.w, c.p, c.y);
    force_target("");
    double ops = 2 * s.macs();
    state.counters["GOPS"] = benchmark::Counter(ops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
    if (g_peak_gops > 0)
        state.counters["peak_frac"] = benchmark::Counter(ops * 1e-9 / g_peak_gops,
                                                         benchmark::Counter::kIsIterationInvariantRate);
    state.SetLabel(last_kernel("conv2d_u8s8u8"));
}

void bm_peak(benchmark::State &state) {
    for (auto _ : state) state.counters["GOPS"] = bench::vnni_peak_gops(3);
}

}  // namespace

int main(int argc, char **argv) {
    const char *t = std::getenv("QHALIDE_BENCH_THREADS");
    int threads = t ? std::atoi(t) : 1;
    set_num_threads(threads);
    g_peak_gops = bench::vnni_peak_gops();
    std::printf("cpu: %s\nthreads: %d\nvnni_peak_gops_per_core: %.1f\n", cpu_features().brand.c_str(),
                threads, g_peak_gops);
    if (threads != 1 && g_peak_gops > 0) g_peak_gops *= threads;  // peak of the cores used
    benchmark::RegisterBenchmark("vnni_peak", bm_peak)->Iterations(1)->Unit(benchmark::kMillisecond);
    for (const auto &tag : target_tags()) {
        if (!cpu_supports(tag)) continue;
        for (const auto &s : bench::resnet50_convs())
            benchmark::RegisterBenchmark(("conv2d_u8s8u8__" + tag + "/" + s.name).c_str(), bm_conv, s, tag)
                ->Unit(benchmark::kMillisecond)
                ->UseRealTime();
    }
    benchmark::Initialize(&argc, argv);
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
