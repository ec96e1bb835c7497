#include "kernels.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <set>
#include <stdexcept>

#include "HalideRuntime.h"
#include "options.h"

namespace qh {

namespace {
std::mutex g_mu;  // the logged-choice sets
}  // namespace

std::vector<std::string> all_kernel_names() {
    std::vector<std::string> names;
#define QH_FAMILY_BEGIN(f)
#define QH_VARIANT(f, t) names.push_back(#f "__" #t);
#define QH_FAMILY_END(f)
#include "qh_kernel_table.inc"
#undef QH_FAMILY_BEGIN
#undef QH_VARIANT
#undef QH_FAMILY_END
    return names;
}

const std::vector<TunedKernel> &tuned_kernels() {
    static const std::vector<TunedKernel> v = {
#define QH_TUNED(f, t, s, k) {#f, #t, #s, k, reinterpret_cast<void (*)()>(&qh_##f##__##t##__##s)},
#include "qh_tuned_table.inc"
#undef QH_TUNED
    };
    return v;
}

void set_tuned_kernels(bool on) {
    KernelOptions o;
    o.tuned = on;
    set_default_kernel_options(o);
}

bool tuned_kernels_enabled() { return kernel_options().tuned; }

const TunedKernel *find_tuned(const char *family, const char *tag, const std::string &shape_key) {
    if (shape_key.empty() || !tuned_kernels_enabled()) return nullptr;
    for (auto &t : tuned_kernels()) {
        if (std::strcmp(t.family, family) || std::strcmp(t.tag, tag) || shape_key != t.shape)
            continue;
        if (kernel_log_enabled()) {
            static std::set<std::string> logged;
            std::lock_guard<std::mutex> l(g_mu);
            if (logged.insert(t.name()).second)
                std::fprintf(stderr, "[qhalide] %s shape %s -> tuned %s (knobs: %s)\n", family,
                             t.shape, t.name().c_str(), t.knobs);
        }
        return &t;
    }
    return nullptr;
}

void force_target(const std::string &tag) {
    if (!tag.empty() && !cpu_supports(tag))  // throws for unknown tags
        throw std::runtime_error("cannot force target '" + tag + "': this CPU (" +
                                 cpu_features().brand + ") lacks some of: " +
                                 target_requirements(tag));
    KernelOptions o;
    o.cpu_target = tag;
    set_default_kernel_options(o);
}

std::string forced_target() { return kernel_options().cpu_target; }

void set_kernel_log(bool on) {
    KernelOptions o;
    o.log = on;
    set_default_kernel_options(o);
}

bool kernel_log_enabled() { return kernel_options().log; }

std::string choose_target(const std::string &family, const std::vector<std::string> &tags) {
    std::string forced = forced_target(), chosen;
    if (!forced.empty()) {
        if (!cpu_supports(forced))
            throw std::runtime_error("forced target " + forced + " (KernelOptions::cpu_target / QHALIDE_TARGET) cannot run on this CPU (" +
                                     cpu_features().brand + "); it needs " +
                                     target_requirements(forced));
        for (auto &t : tags)
            if (t == forced) chosen = t;
        if (chosen.empty())
            throw std::runtime_error("kernel family " + family + " has no variant for target " +
                                     forced);
    } else {
        for (auto &t : tags)
            if (chosen.empty() && cpu_supports(t)) chosen = t;
        if (chosen.empty()) throw std::runtime_error("no runnable variant of " + family);
    }
    if (kernel_log_enabled()) {  // once per (family, choice), not per call
        static std::set<std::string> logged;
        std::lock_guard<std::mutex> l(g_mu);
        if (logged.insert(family + "__" + chosen).second)
            std::fprintf(stderr, "[qhalide] %s -> %s__%s%s\n", family.c_str(), family.c_str(),
                         chosen.c_str(), forced.empty() ? "" : " (forced)");
    }
    return chosen;
}

void set_num_threads(int n) { halide_set_num_threads(n); }

namespace {

// Fixed buffers: the handler runs inside kernels and must not allocate or throw.
constexpr size_t kMsg = 1024;
thread_local char t_msg[kMsg];
char g_msg[kMsg];
std::mutex g_msg_mu;

void copy_msg(char *dst, const char *msg) {
    size_t n = 0;
    for (; msg[n] && n + 1 < kMsg; n++) dst[n] = msg[n] == '\n' ? ' ' : msg[n];
    while (n > 0 && dst[n - 1] == ' ') n--;
    dst[n] = 0;
}

void on_halide_error(void *, const char *msg) {
    copy_msg(t_msg, msg);
    std::lock_guard<std::mutex> l(g_msg_mu);
    copy_msg(g_msg, msg);
}

}  // namespace

void install_halide_error_handler() {
    static std::once_flag once;
    std::call_once(once, [] { halide_set_error_handler(on_halide_error); });
}

std::string take_halide_error() {
    std::string m = t_msg;
    t_msg[0] = 0;
    std::lock_guard<std::mutex> l(g_msg_mu);
    if (m.empty()) m = g_msg;
    g_msg[0] = 0;
    return m;
}

}  // namespace qh
