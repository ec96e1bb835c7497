// qhalide-explore, the Halide part: JIT the very generator + schedule the AOT build uses
// (generator params schedule=<tag>, knobs=<text> and the family's params), check it bit-exactly,
// time it, and inspect its code.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "problem.h"
#include "stages.h"

namespace qh::explore {

// Knobs the schedule of (op, schedule tag) declares (the generic one's when the tag has none).
std::vector<KnobSpec> knob_specs(const std::string &op, const std::string &schedule_tag);
// Checks knob text for (op, tag); throws std::invalid_argument: unknown names list the valid
// ones, out-of-range values name the knob, its range, default and doc.
Knobs validate_knobs(const std::string &op, const std::string &schedule_tag, const std::string &text);
// Text of every knob value that takes effect, defaults filled in ("tile_x=7,tile_y=2,...").
std::string effective_knobs(const std::string &op, const std::string &schedule_tag, const Knobs &k);

struct RunOptions {
    std::string target_tag;    // Halide target = the build's mapping of this tag
    std::string schedule_tag;  // schedule registry tag; empty = target_tag
    std::string knobs;         // "name=value,..."
    std::string autoscheduler; // e.g. "Adams2019": skip the manual schedule, autoschedule
    int threads = 1;           // for the autoscheduler's parallelism estimate
    int repeats = 10;
    bool inspect = true;       // compile to assembly + stmt, find the dot-product instructions
    std::string emit_asm, emit_stmt, emit_ptx;  // copies of the inspected files (ptx: GPU targets)
};

struct Inspection {
    std::map<std::string, int> dot_counts;  // mnemonic -> occurrences in the assembly
    bool reduction_vectorized = false;      // vector_reduce_add in the stmt or a dot instruction
    std::string summary() const;            // "vpdpbusd x56 (zmm); reduction vectorized: yes"
};
// Counts dot-product mnemonics in assembly text (vpdpbusd[s], vpdpwssd, vpmaddwd, vpmaddubsw,
// tdpbusd, dp4a, sdot, udot; vpdpbusd as "vpdpbusd(zmm)" etc. by register width).
Inspection inspect_code(const std::string &asm_text, const std::string &stmt_text);

struct TrialResult {
    std::string knobs;       // as given
    bool compiled = false;   // generator + schedule + JIT succeeded
    bool correct = false;    // bit-exact against the reference
    std::string error;       // compile/run error or the first mismatch
    double compile_s = 0, ms = 0, gops = 0;
    Inspection insp;
    bool inspected = false;
};

// One JIT-compiled kernel with its argument buffers bound to a workload.
class Kernel {
public:
    ~Kernel();
    // Builds (throws std::runtime_error with Halide's message on failure).
    static std::unique_ptr<Kernel> build(const Workload &wl, const RunOptions &o, Inspection *insp);
    // Runs once into the output buffer; returns "" or the first mismatch vs the reference.
    std::string run_and_check();
    double time_ms(int repeats);  // median of `repeats` runs (after one warm-up)

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// build + check + time: never throws; a failing schedule is reported in the result.
TrialResult run_trial(const Workload &wl, const RunOptions &o);

// Directory of libHalide.so (autoscheduler plugins live next to it).
std::string halide_lib_dir();

}  // namespace qh::explore
