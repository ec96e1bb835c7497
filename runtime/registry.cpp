#include "registry.h"

#include <algorithm>
#include <mutex>
#include <stdexcept>

#include "device.h"
#include "options.h"

namespace qh {

namespace {
std::mutex g_mu;
std::vector<Implementation> &entries() {
    static std::vector<Implementation> e;
    return e;
}
}  // namespace

void register_implementation(Implementation impl) {
    std::lock_guard<std::mutex> l(g_mu);
    auto &e = entries();
    e.push_back(std::move(impl));
    std::stable_sort(e.begin(), e.end(), [](const Implementation &a, const Implementation &b) { return a.priority > b.priority; });
}

std::vector<Implementation> implementations(const std::string &op, Device d) {
    static std::once_flag once;
    std::call_once(once, register_backends);
    std::lock_guard<std::mutex> l(g_mu);
    std::vector<Implementation> r;
    for (const auto &i : entries())
        if (i.op == op && i.device == d) r.push_back(i);
    return r;
}

BoundOp bind_registered(const GemmCall &call) {
    const std::string want = kernel_options().implementation;
    if (want == "halide") return {};
    const auto impls = implementations(call.op, call.x.device());
    if (!want.empty()) {
        bool known = false;
        {
            std::lock_guard<std::mutex> l(g_mu);
            for (const auto &i : entries()) known |= i.name == want;
        }
        if (!known) {
            std::string have = "halide";
            std::lock_guard<std::mutex> l(g_mu);
            for (const auto &i : entries())
                if (have.find(i.name) == std::string::npos) have += ", " + i.name;
            throw std::invalid_argument(call.name + ": implementation '" + want +
                                        "' (KernelOptions::implementation / QHALIDE_IMPL) is not one of: " + have);
        }
    }
    for (const auto &i : impls) {
        if (!want.empty() && i.name != want) continue;
        if (BoundOp b = i.bind(call)) return b;
    }
    return {};
}

}  // namespace qh
