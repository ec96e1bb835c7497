// Every setting of kernel choice, as data, and the one place where the library reads the
// environment.
//
// A KernelOptions field that is unset means "the process default": what force_target() /
// set_kernel_log() / set_tuned_kernels() / set_default_kernel_options() set, else the
// environment variable named beside the field (read once, here), else the built-in default.
// PrepareOptions::kernels carries one per model: Model::prepare binds every step inside a
// KernelOptionsScope, so two models in one process may choose differently, and an explicit
// option beats the environment.
#pragma once
#include <optional>
#include <string>

namespace qh {

struct KernelOptions {
    // CPU: force one variant tag of the kernel list ("x86_avx2"); an error if this CPU cannot
    // run it. Env QHALIDE_TARGET.
    std::optional<std::string> cpu_target;
    // Print each kernel choice to stderr once. Env QHALIDE_LOG_KERNELS=1.
    std::optional<bool> log;
    // Use tuned kernels (tuning/db.json) for the shapes that have one. Env QHALIDE_NO_TUNED=1: off.
    std::optional<bool> tuned;
    // Restrict the implementation registry (runtime/registry.h) to one implementation wherever it
    // applies ("cuda_mma"), or to the op family's Halide kernels ("halide"). Env QHALIDE_IMPL;
    // the older QHALIDE_CUDA_CONV=dp4a means "halide".
    std::optional<std::string> implementation;
    // cuda_mma: fused | extern | extern_im2col | widened (W4A8 layers) forces that formulation where
    // the layer allows it.
    // Env QHALIDE_CUDA_FORMULATION.
    std::optional<std::string> cuda_formulation;
    // cuda_mma: choose formulation and tile by measurement at prepare (else the size heuristic).
    // Env QHALIDE_CUDA_TUNE=0: off.
    std::optional<bool> cuda_tune;
    // cuda_mma: print every measured candidate and the winner per layer. Env QHALIDE_CUDA_TUNE_LOG=1.
    std::optional<bool> cuda_tune_log;
    // Only implementations whose BoundOp a device graph can replay (Model's device graph binds a
    // second plan with this set). Not from the environment.
    std::optional<bool> replayable_only;
};

// KernelOptions with every field decided.
struct ResolvedKernelOptions {
    std::string cpu_target;  // "" = automatic
    bool log = false;
    bool tuned = true;
    std::string implementation;  // "" = by priority
    std::string cuda_formulation;  // "" = by measurement
    bool cuda_tune = true;
    bool cuda_tune_log = false;
    bool replayable_only = false;
};

// The options in force on this thread: the innermost KernelOptionsScope's set fields over the
// process defaults.
ResolvedKernelOptions kernel_options();
// Process defaults (fields left unset keep their current default).
void set_default_kernel_options(const KernelOptions &o);

// Options for the binds made on this thread while it lives (nests; set fields override the
// enclosing scope's).
class KernelOptionsScope {
public:
    explicit KernelOptionsScope(const KernelOptions &o);
    ~KernelOptionsScope();
    KernelOptionsScope(const KernelOptionsScope &) = delete;
    KernelOptionsScope &operator=(const KernelOptionsScope &) = delete;

private:
    const void *prev_;
    KernelOptions merged_;
};

// QHALIDE_MEMORY_BUDGET in bytes (K/M/G suffixes), 0 when unset or invalid (a warning is
// printed for an invalid value). runtime/resource_limits.cpp uses it.
size_t env_memory_budget();

}  // namespace qh
