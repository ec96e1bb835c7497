// The contract between algorithms (generators/) and schedules (schedules/<target>/).
//
// A generator defines its Funcs, fills one of the *Stages structs below and hands it to the
// schedule registered for (op, target tag); it never schedules anything itself. A schedule sees
// only these Funcs/Vars, the Halide target and its knobs. An op without a schedule file for a
// target falls back to the `generic` one, which exists for every op.
#pragma once
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "Halide.h"

namespace qh {

// Named integer schedule knobs ("tile_x=6,tile_oc=4"). Each schedule declares the knobs it reads
// with a default and a range; unknown names or out-of-range values are an error.
struct KnobSpec {
    std::string name;
    int def, lo, hi;
    std::string doc;
};

class Knobs {
public:
    Knobs() = default;
    // Parses "a=1,b=2" (or "a:1,b:2"); throws std::runtime_error on malformed text.
    explicit Knobs(const std::string &text);
    // Value of a declared knob: given value or the spec default. Validates range.
    int get(const KnobSpec &spec) const;
    // Throws if a given knob is not in `specs` (names the valid ones).
    void check_known(const std::vector<KnobSpec> &specs, const std::string &where) const;
    const std::map<std::string, int> &values() const { return values_; }

private:
    std::map<std::string, int> values_;
};

struct ScheduleContext {
    Halide::Target target;
    Knobs knobs;
    bool auto_schedule = false;  // an autoscheduler will schedule the pipeline: set estimates only
};

// conv2d: output(oc, x, y, n) = epilogue(acc(oc % 16, oc / 16, x, y, n))
struct Conv2dStages {
    Halide::Func padded;  // (c, x, y, n) u8 input, zero-point outside the image, c up to 4*CIO
    Halide::Func acc;     // (oci, oco, x, y, n) int32: bias + sum u8*s8 over r
    Halide::Func xsum;    // (x, y, n) int32 window sum of inputs (only with weight zero points)
    Halide::Func output;  // (oc, x, y, n)
    Halide::Var c, x, y, n, oci, oco;
    Halide::RDom r;       // r.x: ic within block of 4, r.y: ic block, r.z: kx, r.w: ky
    Halide::Expr padded_channels;  // 4 * CIO, the extent of padded's c
    bool has_xsum = false;
    int out_pack = 1;  // output elements per byte of `output`'s c (2: u4 storage, dst_bits=4)
};

// conv2d_grouped: output(c, x, y, n) = epilogue(acc(c, x, y, n)), acc a plain (not blocked)
// per-channel reduction over the group's input channels and the dilated window.
struct GroupedConvStages {
    Halide::Func padded;  // (c, x, y, n) u8 input, zero point outside the image
    Halide::Func acc;     // (c, x, y, n) int32
    Halide::Func xsum;    // (c, x, y, n) int32 window sum of the group's inputs (weight_zp only)
    Halide::Func output;  // (c, x, y, n)
    Halide::Var c, x, y, n;
    Halide::RDom r;          // r.x: input channel within the group, r.y: kx, r.z: ky
    Halide::Expr depthwise;  // one input and one output channel per group: input channel = c
    bool has_xsum = false;
};

// conv2d_extern: output(oc, x, y, n) = epilogue(acc(oc, x, y, n) + bias(oc)), where acc is a
// define_extern stage (the tensor-core microkernel on the GPU, no schedule of its own beyond its
// compute level) and col the optional im2col packing stage it reads.
struct Conv2dExternStages {
    Halide::Func ktab;    // (k) -> Tuple(ic, kx, ky): the tap table of col (im2col only)
    Halide::Func col;     // (k, x, y, n) u8 im2col matrix [N*OH*OW][Kp] (im2col only)
    Halide::Func acc;     // (c, x, y, n) int32, the extern stage
    Halide::Func output;  // (c, x, y, n) u8
    Halide::Var c, x, y, n, k;
    bool has_col = false;
};

// dense: output(oc, b) = epilogue(acc(oc % 16, oc / 16, b))
struct DenseStages {
    Halide::Func padded;  // (k, b) u8 input, zero point past K
    Halide::Func acc;     // (oci, oco, b) int32
    Halide::Func xsum;    // (b) with weight zero points only
    Halide::Func output;  // (c, b)
    Halide::Var c, k, b, oci, oco;
    Halide::RDom r;       // r.x: k within block of 4, r.y: k block
    bool has_xsum = false;
};

// Pools over (c, x, y, n): max pool windows or a global average.
struct PoolStages {
    Halide::Func padded;  // maxpool only
    Halide::Func sum;     // global average pool only: (c, n) int32 (avgpool sums inline)
    Halide::Func output;
    Halide::Var c, x, y, n;
    Halide::RDom r;
    Halide::Expr kernel_x, kernel_y, stride_x, stride_y;  // maxpool's window (for specializations)
};

// Elementwise ops (quantize, dequantize, requantize, add, int4 pack/unpack). `output` is 1-D
// or 3-D (inner, channel, outer) with the innermost dimension dense.
struct EltwiseStages {
    Halide::Func output;
    std::vector<Halide::Var> vars;  // output's vars, innermost first
    std::vector<Halide::Func> intermediates;
};

template <typename Stages>
using ScheduleFn = std::function<void(Stages &, const ScheduleContext &)>;

// Registry keyed by (op, target tag); fills from static initializers in schedules/<tag>/*.cpp.
template <typename Stages>
class ScheduleRegistry {
public:
    static ScheduleRegistry &get() {
        static ScheduleRegistry r;
        return r;
    }
    bool add(const std::string &op, const std::string &tag, ScheduleFn<Stages> fn,
             std::vector<KnobSpec> knobs) {
        entries_[op + "@" + tag] = {std::move(fn), std::move(knobs)};
        return true;
    }
    // The schedule for (op, tag), or the generic one. Validates knob names.
    void apply(const std::string &op, const std::string &tag, Stages &s,
               const ScheduleContext &ctx) const {
        auto it = entries_.find(op + "@" + tag);
        if (it == entries_.end()) it = entries_.find(op + "@generic");
        if (it == entries_.end()) throw std::runtime_error("no schedule registered for op " + op);
        ctx.knobs.check_known(it->second.knobs, op + "@" + tag);
        it->second.fn(s, ctx);
    }
    const std::vector<KnobSpec> *knobs(const std::string &op, const std::string &tag) const {
        auto it = entries_.find(op + "@" + tag);
        if (it == entries_.end()) it = entries_.find(op + "@generic");
        return it == entries_.end() ? nullptr : &it->second.knobs;
    }

private:
    struct Entry {
        ScheduleFn<Stages> fn;
        std::vector<KnobSpec> knobs;
    };
    std::map<std::string, Entry> entries_;
};

#define QH_CAT2(a, b) a##b
#define QH_CAT(a, b) QH_CAT2(a, b)
// QH_REGISTER_SCHEDULE(Conv2dStages, "conv2d", "x86_avx512vnni", fn, {knob specs...})
#define QH_REGISTER_SCHEDULE(Stages, op, tag, fn, ...)                                  \
    static const bool QH_CAT(qh_sched_reg_, __LINE__) =                                \
        ::qh::ScheduleRegistry<Stages>::get().add(op, tag, fn, __VA_ARGS__)

}  // namespace qh
