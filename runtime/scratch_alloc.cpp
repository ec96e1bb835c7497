#include "scratch_alloc.h"

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <thread>

#include "HalideRuntime.h"
#include "resource_limits.h"

namespace qh {

namespace {

// Blocks are power-of-two sized (>= 256 bytes) with a 128-byte header in front of the user
// pointer holding the size class; the user pointer is 128-byte aligned (more than
// halide_malloc_alignment() asks for on any x86 target).
constexpr size_t kHeader = 128;
constexpr int kMinClass = 8, kClasses = 48;

// Freed blocks by size class, shared by all threads (a task may run on any thread of Halide's
// pool; one lock per allocation is noise next to a task's work). Blocks are kept for the
// process's lifetime: the pool holds at most what the busiest moment needed.
struct FreeBlock {
    FreeBlock *next;
};
std::mutex g_mu;
FreeBlock *g_free[kClasses] = {};
// Blocks made per miss: enough for every thread of the pool (plus the caller) to hold two of a
// class at once, so the pool reaches its working size on the first miss of a class instead of
// growing whenever a later run happens to be more concurrent than the earlier ones. At most
// 2 * (max_threads() + 1), and a miss never makes more than kMaxBatchBytes of blocks (at least
// one block), so no thread count reserves memory in proportion to itself.
std::atomic<int> g_batch{0};
constexpr size_t kMaxBatchBytes = size_t(256) << 20;

FreeBlock *new_block(int c) {
    void *raw = std::aligned_alloc(kHeader, kHeader + (size_t(1) << c));
    if (!raw) return nullptr;
    *static_cast<int *>(raw) = c;
    return reinterpret_cast<FreeBlock *>(static_cast<uint8_t *>(raw) + kHeader);
}

int size_class(size_t n) {
    int c = kMinClass;
    while (c < kClasses - 1 && (size_t(1) << c) < n) c++;
    return c;
}

void *scratch_malloc(void *, size_t n) {
    const int c = size_class(n);
    if ((size_t(1) << c) < n) return nullptr;  // absurd size: Halide reports the failure
    std::lock_guard<std::mutex> l(g_mu);
    if (!g_free[c]) {
        const int count = int(std::clamp<size_t>(kMaxBatchBytes >> c, 1, size_t(std::max(1, g_batch.load()))));
        for (int i = 0; i < count; i++) {
            FreeBlock *b = new_block(c);
            if (!b) break;
            b->next = g_free[c];
            g_free[c] = b;
        }
    }
    FreeBlock *b = g_free[c];
    if (b) g_free[c] = b->next;
    return b;
}

void scratch_free(void *, void *p) {
    if (!p) return;
    const int c = *reinterpret_cast<int *>(static_cast<uint8_t *>(p) - kHeader);
    auto *b = static_cast<FreeBlock *>(p);
    std::lock_guard<std::mutex> l(g_mu);
    b->next = g_free[c];
    g_free[c] = b;
}

}  // namespace

void install_scratch_allocator(int threads) {
    // Clamped, not rejected: callers validate their thread counts (check_threads); whatever
    // reaches here only sizes a cache.
    const int hw = int(std::min<unsigned>(std::thread::hardware_concurrency(), unsigned(max_threads())));
    const int t = std::clamp(std::max(threads, hw), 1, max_threads());
    const int want = 2 * (t + 1);
    for (int b = g_batch.load(); b < want && !g_batch.compare_exchange_weak(b, want);) {
    }
    static std::once_flag once;
    std::call_once(once, [] {
        halide_set_custom_malloc(scratch_malloc);
        halide_set_custom_free(scratch_free);
    });
}

}  // namespace qh
