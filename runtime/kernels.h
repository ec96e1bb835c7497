// The dispatch table: every AOT kernel of cmake/qhalide_kernels.cmake, grouped by family, in
// target preference order (most specific first, generic last), plus the selection policy:
//  - by default the first variant whose CPU predicate holds (runtime/cpu_features.h);
//  - KernelOptions::cpu_target (runtime/options.h: per model, or process-wide with
//    force_target("x86_avx2"), or env QHALIDE_TARGET) forces one variant (an error if this CPU
//    cannot run it: a kernel never runs an instruction the CPU lacks);
//  - KernelOptions::log (set_kernel_log(true), env QHALIDE_LOG_KERNELS=1) prints each choice.
#pragma once
#include <stdexcept>
#include <string>
#include <typeinfo>
#include <vector>

#include "cpu_features.h"
#include "shape_key.h"
#include "qh_kernel_headers.h"

namespace qh {

template <typename Fn>
struct KernelVariant {
    const char *family;
    const char *tag;
    Fn fn;
    std::string name() const { return std::string(family) + "__" + tag; }
};
template <typename Fn>
using KernelVariants = std::vector<KernelVariant<Fn>>;

namespace kernels {
#define QH_FAMILY_BEGIN(f)                                       \
    using f##_fn = decltype(&qh_##f##__generic);                 \
    inline const KernelVariants<f##_fn> &f() {                   \
        static const KernelVariants<f##_fn> v = {
#define QH_VARIANT(f, t) {#f, #t, &qh_##f##__##t},
#define QH_FAMILY_END(f) \
    };                   \
    return v;            \
    }
#include "qh_kernel_table.inc"
#undef QH_FAMILY_BEGIN
#undef QH_VARIANT
#undef QH_FAMILY_END
}  // namespace kernels

// A family's variants by name, for ops that choose the family from the call's types
// (conv2d_<src><wei><dst> ...): nullptr if this library has no such family; throws if Fn is not
// the family's function type.
namespace detail {
struct FamilyRef {
    const void *variants = nullptr;
    const std::type_info *type = nullptr;
};
inline FamilyRef find_family_ref(const std::string &name) {
#define QH_FAMILY_BEGIN(f) \
    if (name == #f) return {&kernels::f(), &typeid(kernels::f##_fn)};
#define QH_VARIANT(f, t)
#define QH_FAMILY_END(f)
#include "qh_kernel_table.inc"
#undef QH_FAMILY_BEGIN
#undef QH_VARIANT
#undef QH_FAMILY_END
    return {};
}
}  // namespace detail
template <typename Fn>
const KernelVariants<Fn> *find_family(const std::string &name) {
    const detail::FamilyRef r = detail::find_family_ref(name);
    if (!r.variants) return nullptr;
    if (*r.type != typeid(Fn)) throw std::logic_error("kernel family " + name + ": signature differs from the caller's");
    return static_cast<const KernelVariants<Fn> *>(r.variants);
}
// Names of every kernel in the library ("conv2d_u8s8u8__x86_avx512vnni", ...).
std::vector<std::string> all_kernel_names();

// Tuned kernels (tuning/db.json -> cmake/qhalide_tuned.cmake): a family's generator built with
// tuned knobs for one exact shape and tag; same signature as the family's kernels.
struct TunedKernel {
    const char *family, *tag, *shape, *knobs;
    void (*fn)();  // cast back to the family's function type
    std::string name() const { return std::string(family) + "__" + tag + "__" + shape; }
};
const std::vector<TunedKernel> &tuned_kernels();
// Tuned kernels on (default) / off (process default of KernelOptions::tuned; env QHALIDE_NO_TUNED=1).
void set_tuned_kernels(bool on);
bool tuned_kernels_enabled();

void force_target(const std::string &tag);  // "" restores automatic choice
std::string forced_target();
void set_kernel_log(bool on);
bool kernel_log_enabled();
// The tag chosen for a family under the current policy; throws if forced to an unusable tag.
std::string choose_target(const std::string &family, const std::vector<std::string> &tags);

template <typename Fn>
const KernelVariant<Fn> &choose(const KernelVariants<Fn> &v) {
    std::vector<std::string> tags;
    for (auto &k : v) tags.push_back(k.tag);
    std::string t = choose_target(v.front().family, tags);
    for (auto &k : v)
        if (t == k.tag) return k;
    return v.back();
}

// A variant plus, when tuned_kernels() has one for (family, its tag, shape_key), the tuned kernel.
template <typename Fn>
struct ChosenKernel {
    Fn fn;
    std::string name;
};
const TunedKernel *find_tuned(const char *family, const char *tag, const std::string &shape_key);
template <typename Fn>
ChosenKernel<Fn> choose(const KernelVariants<Fn> &v, const std::string &shape_key) {
    const auto &k = choose(v);
    if (const TunedKernel *t = find_tuned(k.family, k.tag, shape_key))
        return {reinterpret_cast<Fn>(t->fn), t->name()};
    return {k.fn, k.name()};
}

// Threads used by the Halide thread pool (0 = one per core).
void set_num_threads(int n);

// Halide errors become exceptions, never an exit(): install_halide_error_handler() (idempotent,
// thread-safe; every bind_<op> and Model::prepare call it) routes halide_error to a handler that
// keeps the message, and take_halide_error() returns the message of the last Halide error on this
// thread (else the last on any thread, e.g. from a worker of Halide's thread pool) and clears it.
// BoundOp::run and throw_halide_error put it in their std::runtime_error.
void install_halide_error_handler();
std::string take_halide_error();

}  // namespace qh
