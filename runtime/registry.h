// The implementation registry of the GEMM-shaped ops (conv2d, conv2d_add, dense), as data (TVM's
// op strategy: every implementation one entry with a priority). ops.cpp validates a call, then asks
// the registry; it names no backend. An entry says for which op and device it is, its priority,
// and how it binds a validated call (returning an empty BoundOp where it does not apply: a shape
// or dtype it does not take; whether its BoundOp can be replayed in a device graph is on the
// BoundOp). The op family's Halide kernels (every CPU variant of the kernel list, cuda_dp4a on a
// GPU) are the implicit last entry, "halide", which applies everywhere.
//
// Choice: entries of the call's (op, device) by descending priority, the first that binds wins;
// KernelOptions::implementation (runtime/options.h) restricts the choice to one name. Within an
// entry the implementation may choose further by measurement (cuda_mma: formulation and tile).
//
// Backends register their entries in register_backends() (runtime/device.cpp), the one place
// that knows which backends this library was built with.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "ops.h"

namespace qh {

// A validated conv2d / conv2d_add / dense call (dense: a 1x1 conv over {N, K} with conv == nullptr).
struct GemmCall {
    const char *op;  // "conv2d", "conv2d_add", "dense"
    const Tensor &x;
    const PackedWeights &w;
    const Conv2dParams *conv;  // conv2d, conv2d_add
    Activation act;
    // conv2d_add: the residual and its arguments in output units.
    const Tensor *residual = nullptr;
    int32_t conv_zp = 0, res_zp = 0;
    float conv_mult = 0.f, res_mult = 0.f;
    Tensor &y;
    std::string name;  // the layer, for messages and kernel names
};

struct Implementation {
    std::string name;  // "cuda_mma"
    std::string op;    // "conv2d", "conv2d_add", "dense"
    Device device;
    int priority = 0;  // higher first; the implicit "halide" entry is below every entry
    std::function<BoundOp(const GemmCall &)> bind;  // empty BoundOp: not for this call
};

void register_implementation(Implementation impl);
// Entries for (op, device), highest priority first (after register_backends()).
std::vector<Implementation> implementations(const std::string &op, Device d);
// Binds `call` with the first registered entry that applies under kernel_options(); an empty
// BoundOp when none does (or the options name "halide"): the caller binds the Halide kernels.
// Throws when KernelOptions::implementation names no implementation of this op and device.
BoundOp bind_registered(const GemmCall &call);

}  // namespace qh
