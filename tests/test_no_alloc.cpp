// Model::execute() must not allocate: every heap allocation in this process goes through the
// malloc family below (operator new, std::function, Halide's runtime and the kernels' own
// scratch buffers all end in malloc), which counts while `g_counting` is set. A separate
// executable because it replaces the process's malloc.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <functional>
#include <random>

#include "model.h"
#include "models/resnet.h"
#include "test_util.h"

extern "C" {
void *__libc_malloc(size_t);
void *__libc_calloc(size_t, size_t);
void *__libc_realloc(void *, size_t);
void *__libc_memalign(size_t, size_t);
}

namespace {
std::atomic<bool> g_counting{false};
std::atomic<long> g_allocs{0};
void count() {
    if (g_counting.load(std::memory_order_relaxed)) {
        g_allocs.fetch_add(1, std::memory_order_relaxed);
        if (std::getenv("QH_TRAP_ALLOC")) __builtin_trap();
    }
}
}  // namespace

extern "C" {
void *malloc(size_t n) { count(); return __libc_malloc(n); }
void *calloc(size_t n, size_t m) { count(); return __libc_calloc(n, m); }
void *realloc(void *p, size_t n) { count(); return __libc_realloc(p, n); }
void *aligned_alloc(size_t a, size_t n) { count(); return __libc_memalign(a, n); }
void *memalign(size_t a, size_t n) { count(); return __libc_memalign(a, n); }
int posix_memalign(void **p, size_t a, size_t n) {
    count();
    *p = __libc_memalign(a, n);
    return *p ? 0 : 12 /* ENOMEM */;
}
}

namespace qh {
namespace {
using test::random_input;

// Keeps `p` observable so the allocation is not optimized away.
void keep(const void *p) { asm volatile("" : : "g"(p) : "memory"); }

long allocations_in(const std::function<void()> &f) {
    g_allocs = 0;
    g_counting = true;
    f();
    g_counting = false;
    return g_allocs.load();
}

TEST(NoAlloc, CounterSeesAllocations) {  // the test below cannot pass by counting nothing
    EXPECT_GE(allocations_in([] { std::vector<int> v(100); keep(v.data()); }), 1);
    EXPECT_GE(allocations_in([] { void *p = std::malloc(64); keep(p); std::free(p); }), 1);
}

// Built-in ResNet-18 (conv2d, conv2d_add, maxpool, global average pool, dense to s32 plus
// dequantize, input quantize) at batch 1 and 2 and 2 threads: after a warm-up run, which may
// create Halide's thread pool, execute() allocates nothing.
TEST(NoAlloc, ResNet18Execute) {
    for (int batch : {1, 2}) {
        Graph g = build_resnet({18, 1000, 64, 7});
        ASSERT_EQ(g.inputs.size(), 1u);
        std::vector<Tensor> samples = {random_input({2, 64, 64, 3}, 11)};
        calibrate(g, samples, {});
        PrepareOptions po;
        po.batch = batch;
        po.threads = 2;
        auto m = Model::prepare(g, po);
        Tensor x = random_input(m->input(0).shape(), 5);
        std::copy(x.data<float>(), x.data<float>() + x.numel(), m->input(0).data<float>());
        m->execute();
        m->execute();
        EXPECT_EQ(allocations_in([&] { for (int i = 0; i < 3; i++) m->execute(); }), 0)
            << "batch " << batch;
        m->set_profiling(true);
        EXPECT_EQ(allocations_in([&] { m->execute(); }), 0) << "batch " << batch << ", profiling";
    }
}

}  // namespace
}  // namespace qh
