// libFuzzer target: qhalide-explore's shape parser (apps/explore/problem.h, parse_shape). The first
// byte picks the op (conv2d, dense, maxpool), the rest is the shape string. A problem that parses
// must print a key that parses back to the same problem; small problems also get their test data
// and reference result (make_workload). std::exception is the expected way to refuse.
#include <exception>
#include <string>

#include "fuzz_util.h"
#include "resource_limits.h"
#include "problem.h"

extern "C" int LLVMFuzzerInitialize(int *, char ***) {
    qh::set_memory_budget(size_t(256) << 20);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1 || size > 256) return 0;
    static const char *kOps[] = {"conv2d", "dense", "maxpool"};
    const std::string op = kOps[data[0] % 3];
    const std::string text(reinterpret_cast<const char *>(data) + 1, size - 1);
    qh::explore::Problem p;
    try {
        p = qh::explore::parse_shape(op, text);
    } catch (const std::exception &) {
        return 0;
    }
    const std::string key = p.key();
    volatile double sink = p.ops() + p.min_bytes() + p.pad_bottom() + p.pad_right();
    (void)sink;
    try {
        qh::explore::Problem q = qh::explore::parse_shape(op, key);
        if (q.key() != key) qh::fuzz::fail(op + " '" + text + "': key '" + key + "' parses back as '" + q.key() + "'");
    } catch (const std::exception &e) {
        qh::fuzz::fail(op + " '" + text + "': its key '" + key + "' does not parse: " + e.what());
    }
    if (p.ops() <= 2e6 && p.min_bytes() <= 1e6) {
        try {
            qh::explore::Workload wl = qh::explore::make_workload(p, qh::explore::default_dtypes(op));
            (void)wl;
        } catch (const std::exception &) {
        }
    }
    return 0;
}
