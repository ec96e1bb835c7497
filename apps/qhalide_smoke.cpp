// qhalide-smoke: the smoke run of scripts/demo.sh until the ResNet app exists. Shows the CPU
// features and kernel dispatch, then runs one ResNet-50 convolution through every kernel
// variant this CPU can run, checks that all variants agree bit for bit, and times each.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <vector>

#include "kernels.h"
#include "ops.h"
#include "resource_limits.h"

int main(int argc, char **argv) {
    CLI::App app{"qhalide smoke run: CPU features, kernel dispatch, one ResNet-50 conv on every "
                 "runnable kernel variant (bit-exact agreement + time)"};
    int hw = 56, c = 64, oc = 64, k = 3, iters = 20, threads = 1;
    bool list = false;
    app.add_option("--hw", hw, "input height = width")->check(CLI::Range(1, 4096));
    app.add_option("--channels", c, "input channels")->check(CLI::Range(1, 8192));
    app.add_option("--out-channels", oc, "output channels")->check(CLI::Range(1, 8192));
    app.add_option("--kernel", k, "kernel size (k x k, stride 1, same padding)")->check(CLI::Range(1, 15));
    app.add_option("--iters", iters, "timed iterations per variant (median reported)")->check(CLI::Range(1, 100000));
    app.add_option("--threads", threads, "Halide thread-pool size (0 = all cores)");
    app.add_flag("--list-kernels", list, "print every kernel in the library and exit");
    CLI11_PARSE(app, argc, argv);
    try {
        qh::check_threads(threads, "--threads");
        // The input, weights and output, before they are allocated.
        const int64_t bytes = qh::checked_numel({1, hw, hw, c}, "--hw/--channels input") +
                              qh::checked_numel({oc, c, k, k}, "--channels/--out-channels/--kernel weights") +
                              qh::checked_numel({1, hw, hw, oc}, "--hw/--out-channels output");
        qh::check_budget(size_t(bytes) * 2, "the smoke conv");
    } catch (const std::exception &e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 2;
    }

    if (list) {
        for (auto &n : qh::all_kernel_names()) std::printf("%s\n", n.c_str());
        return 0;
    }
    const auto &f = qh::cpu_features();
    std::printf("cpu: %s\n", f.brand.c_str());
    for (auto &t : qh::target_tags())
        std::printf("  target %-15s %s\n", t.c_str(), qh::cpu_supports(t) ? "runnable" : "not supported");
    qh::set_num_threads(threads);

    std::mt19937 g(1);
    std::uniform_int_distribution<int> d(0, 255);
    qh::Tensor x(qh::DType::u8, {1, hw, hw, c}, qh::QuantParams::per_tensor(0.02f, 128));
    for (int64_t i = 0; i < x.numel(); i++) x.data<uint8_t>()[i] = uint8_t(d(g));
    std::vector<int8_t> w(size_t(oc) * c * k * k);
    for (auto &v : w) v = int8_t(d(g) - 128);
    qh::WeightsDesc wd;
    wd.name = "smoke.conv"; wd.data = w.data(); wd.oc = oc; wd.ic = c; wd.kh = wd.kw = k;
    wd.scale = {0.001f};
    try {
        qh::PackedWeights pw = qh::pack_weights(wd, 0.02f, 128, 0.05f);
        qh::Conv2dParams p;
        p.name = "smoke.conv";
        p.pad_top = p.pad_left = p.pad_bottom = p.pad_right = k / 2;
        p.act = qh::Activation::relu(0);
        auto shape = qh::conv2d_output_shape(x, pw, p);
        std::vector<uint8_t> first;
        double macs = double(shape[1]) * shape[2] * oc * c * k * k;
        std::printf("conv2d %dx%d, %d -> %d channels, %dx%d input, %d thread(s)\n", k, k, c, oc,
                    hw, hw, threads);
        bool agree = true;
        for (auto &t : qh::target_tags()) {
            if (!qh::cpu_supports(t)) continue;
            qh::force_target(t);
            qh::Tensor y(qh::DType::u8, shape, qh::QuantParams::per_tensor(0.05f, 0));
            std::vector<double> ms;
            for (int i = 0; i < iters + 1; i++) {
                auto t0 = std::chrono::steady_clock::now();
                qh::conv2d(x, pw, p, y);
                ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
            }
            ms.erase(ms.begin());  // warm-up
            std::sort(ms.begin(), ms.end());
            std::vector<uint8_t> out(y.data<uint8_t>(), y.data<uint8_t>() + y.numel());
            bool same = first.empty() || out == first;
            if (first.empty()) first = out;
            agree &= same;
            std::printf("  %-38s median %8.3f ms  %7.1f GOP/s  %s\n",
                        qh::last_kernel("conv2d_u8s8u8").c_str(), ms[ms.size() / 2],
                        2 * macs / (ms[ms.size() / 2] * 1e6), same ? "bit-exact" : "MISMATCH");
        }
        qh::force_target("");
        std::printf("%s\n", agree ? "all variants agree" : "VARIANTS DISAGREE");
        return agree ? 0 : 1;
    } catch (const std::exception &e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 2;
    }
}
