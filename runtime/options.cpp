#include "options.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <mutex>
#include <stdexcept>

namespace qh {

namespace {

// The environment, read once (the only getenv calls of the library).
struct Env {
    KernelOptions k;
    size_t memory_budget = 0;
};

bool env_flag(const char *name, bool *out) {
    const char *e = std::getenv(name);
    if (!e || !*e) return false;
    *out = std::string(e) != "0";
    return true;
}

size_t parse_bytes(const char *s) {
    char *end = nullptr;
    errno = 0;
    unsigned long long v = std::strtoull(s, &end, 10);
    if (errno || end == s) return 0;
    unsigned long long mul = 1;
    switch (*end) {
    case 'k': case 'K': mul = 1ull << 10; end++; break;
    case 'm': case 'M': mul = 1ull << 20; end++; break;
    case 'g': case 'G': mul = 1ull << 30; end++; break;
    default: break;
    }
    if (*end == 'i') end++;
    if (*end == 'B') end++;
    if (*end) return 0;
    if (v > std::numeric_limits<size_t>::max() / mul) return 0;
    return size_t(v * mul);
}

const Env &env() {
    static const Env e = [] {
        Env r;
        if (const char *t = std::getenv("QHALIDE_TARGET"); t && *t) r.k.cpu_target = t;
        bool b;
        if (env_flag("QHALIDE_LOG_KERNELS", &b)) r.k.log = b;
        if (env_flag("QHALIDE_NO_TUNED", &b)) r.k.tuned = !b;
        if (const char *c = std::getenv("QHALIDE_CUDA_CONV"); c && std::string(c) == "dp4a") r.k.implementation = "halide";
        if (const char *i = std::getenv("QHALIDE_IMPL"); i && *i) r.k.implementation = i;
        if (const char *f = std::getenv("QHALIDE_CUDA_FORMULATION"); f && *f) r.k.cuda_formulation = f;
        if (env_flag("QHALIDE_CUDA_TUNE", &b)) r.k.cuda_tune = b;
        if (env_flag("QHALIDE_CUDA_TUNE_LOG", &b)) r.k.cuda_tune_log = b;
        if (const char *m = std::getenv("QHALIDE_MEMORY_BUDGET")) {
            r.memory_budget = parse_bytes(m);
            if (!r.memory_budget)
                std::fprintf(stderr, "qhalide: ignoring QHALIDE_MEMORY_BUDGET='%s' (expected bytes, e.g. 4G)\n", m);
        }
        return r;
    }();
    return e;
}

std::mutex g_mu;
KernelOptions g_defaults;  // set through the process-wide setters
thread_local const KernelOptions *t_scope = nullptr;

// Fields set in `over` replace those of `base`.
KernelOptions overlay(KernelOptions base, const KernelOptions &over) {
    if (over.cpu_target) base.cpu_target = over.cpu_target;
    if (over.log) base.log = over.log;
    if (over.tuned) base.tuned = over.tuned;
    if (over.implementation) base.implementation = over.implementation;
    if (over.cuda_formulation) base.cuda_formulation = over.cuda_formulation;
    if (over.cuda_tune) base.cuda_tune = over.cuda_tune;
    if (over.cuda_tune_log) base.cuda_tune_log = over.cuda_tune_log;
    if (over.replayable_only) base.replayable_only = over.replayable_only;
    return base;
}

}  // namespace

ResolvedKernelOptions kernel_options() {
    KernelOptions k = env().k;
    {
        std::lock_guard<std::mutex> l(g_mu);
        k = overlay(k, g_defaults);
    }
    if (t_scope) k = overlay(k, *t_scope);
    ResolvedKernelOptions r;
    r.cpu_target = k.cpu_target.value_or("");
    r.log = k.log.value_or(false);
    r.tuned = k.tuned.value_or(true);
    r.implementation = k.implementation.value_or("");
    r.cuda_formulation = k.cuda_formulation.value_or("");
    r.cuda_tune = k.cuda_tune.value_or(true);
    r.cuda_tune_log = k.cuda_tune_log.value_or(false);
    r.replayable_only = k.replayable_only.value_or(false);
    return r;
}

void set_default_kernel_options(const KernelOptions &o) {
    std::lock_guard<std::mutex> l(g_mu);
    g_defaults = overlay(g_defaults, o);
}

KernelOptionsScope::KernelOptionsScope(const KernelOptions &o)
    : prev_(t_scope), merged_(t_scope ? overlay(*t_scope, o) : o) {
    t_scope = &merged_;
}

KernelOptionsScope::~KernelOptionsScope() { t_scope = static_cast<const KernelOptions *>(prev_); }

size_t env_memory_budget() { return env().memory_budget; }

}  // namespace qh
