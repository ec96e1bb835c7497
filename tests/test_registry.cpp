// The implementation registry (runtime/registry.h) and kernel options (runtime/options.h):
// entries chosen by priority, restricted by KernelOptions::implementation, options per model
// through PrepareOptions::kernels, explicit options over process defaults.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "kernels.h"
#include "model.h"
#include "options.h"
#include "pack.h"
#include "registry.h"
#include "models/resnet.h"
#include "test_util.h"

namespace qh::test {
namespace {

// A dense layer {1, 8} -> {1, OC} with u8 output, packed symmetric.
struct Dense {
    std::vector<int8_t> w;
    PackedWeights pw;
    Tensor x, y;
    explicit Dense(int oc) : w(size_t(oc) * 8, 1) {
        WeightsDesc d;
        d.name = "probe.weights";
        d.oc = oc;
        d.ic = 8;
        d.dtype = DType::s8;
        d.data = w.data();
        d.scale = {0.01f};
        pw = pack_weights(d, 0.02f, 3, 0.1f);
        x = Tensor(DType::u8, {1, 8}, QuantParams::per_tensor(0.02f, 3));
        y = Tensor(DType::u8, {1, oc}, QuantParams::per_tensor(0.1f, 0));
    }
};

// A fake implementation of dense on the CPU that applies only to layers named "probe" with OC 24.
void register_probe_once() {
    static bool done = [] {
        register_implementation({"probe_impl", "dense", Device::cpu, 100, [](const GemmCall &c) {
                                     if (c.name != "probe" || c.w.oc != 24) return BoundOp();
                                     return BoundOp(c.name, "dense_probe", [] { return 0; });
                                 }});
        return true;
    }();
    (void)done;
}

TEST(Registry, HighestPriorityEntryThatAppliesBinds) {
    register_probe_once();
    Dense a(24), b(16);
    EXPECT_EQ(bind_dense(a.x, a.pw, {}, a.y, "probe").kernel(), "dense_probe");
    EXPECT_EQ(bind_dense(b.x, b.pw, {}, b.y, "probe").kernel().rfind("dense_u8s8u8__", 0), 0u)
        << "the probe does not apply to OC 16: the Halide kernels bind";
    EXPECT_EQ(bind_dense(a.x, a.pw, {}, a.y, "other").kernel().rfind("dense_u8s8u8__", 0), 0u);
    const auto impls = implementations("dense", Device::cpu);
    ASSERT_FALSE(impls.empty());
    EXPECT_EQ(impls.front().name, "probe_impl");
}

TEST(Registry, ImplementationOptionRestrictsTheChoice) {
    register_probe_once();
    Dense a(24);
    {
        KernelOptions o;
        o.implementation = "halide";
        KernelOptionsScope s(o);
        EXPECT_EQ(bind_dense(a.x, a.pw, {}, a.y, "probe").kernel().rfind("dense_u8s8u8__", 0), 0u);
    }
    {
        KernelOptions o;
        o.implementation = "probe_impl";
        KernelOptionsScope s(o);
        EXPECT_EQ(bind_dense(a.x, a.pw, {}, a.y, "probe").kernel(), "dense_probe");
    }
    KernelOptions o;
    o.implementation = "no_such_impl";
    KernelOptionsScope s(o);
    try {
        bind_dense(a.x, a.pw, {}, a.y, "probe");
        ADD_FAILURE() << "no error";
    } catch (const std::invalid_argument &e) {
        EXPECT_NE(std::string(e.what()).find("probe: implementation 'no_such_impl' (KernelOptions::implementation / "
                                             "QHALIDE_IMPL) is not one of: halide, probe_impl"),
                  std::string::npos)
            << e.what();
    }
}

TEST(KernelOptions, ScopesNestAndOverrideProcessDefaults) {
    EXPECT_EQ(kernel_options().cpu_target, forced_target());
    KernelOptions a;
    a.cpu_target = "generic";
    a.cuda_tune = false;
    KernelOptionsScope sa(a);
    EXPECT_EQ(kernel_options().cpu_target, "generic");
    {
        KernelOptions b;
        b.cuda_formulation = "fused";
        KernelOptionsScope sb(b);
        EXPECT_EQ(kernel_options().cpu_target, "generic") << "unset fields keep the enclosing scope's";
        EXPECT_EQ(kernel_options().cuda_formulation, "fused");
        EXPECT_FALSE(kernel_options().cuda_tune);
    }
    EXPECT_EQ(kernel_options().cuda_formulation, "");
}

// Two models in one process, one with a forced variant: each keeps its own choice.
TEST(KernelOptions, PerModelCpuTarget) {
    Graph g = build_resnet({18, 10, 32});
    std::mt19937 r(1);
    Tensor s(DType::f32, {1, 32, 32, 3});
    for (int64_t i = 0; i < s.numel(); i++) s.data<float>()[i] = float(r() % 100) / 50.f - 1.f;
    calibrate(g, {s}, {});
    PrepareOptions o;
    o.kernels.cpu_target = "generic";
    auto generic = Model::prepare(g, o);
    auto automatic = Model::prepare(g, {});
    for (const auto &l : generic->layers())
        if (l.kernel.find("__") != std::string::npos && l.kernel.find("host") == std::string::npos)
            EXPECT_NE(l.kernel.find("__generic"), std::string::npos) << l.name << ": " << l.kernel;
    const std::string best = runnable_targets().front();  // the first built variant this CPU runs
    bool any_best = false;
    for (const auto &l : automatic->layers()) any_best |= l.kernel.find("__" + best) != std::string::npos;
    EXPECT_TRUE(any_best) << "the default model uses this CPU's first variant, " << best;
    // Same logits either way (every variant is bit-exact).
    std::memcpy(generic->input(0).raw(), s.raw(), s.nbytes());
    std::memcpy(automatic->input(0).raw(), s.raw(), s.nbytes());
    generic->execute();
    automatic->execute();
    EXPECT_EQ(std::memcmp(generic->output(0).raw(), automatic->output(0).raw(), generic->output(0).nbytes()), 0);
}

}  // namespace
}  // namespace qh::test
