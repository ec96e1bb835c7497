// qhalide-explore, the part without Halide: problems (shape strings, presets), the build's
// targets and kernel families, test data + the bit-exact reference result of a problem.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "pack.h"

namespace qh::explore {

// One problem, benchdnn style. conv2d: all fields; dense: mb, ic, oc; maxpool: conv fields with
// oc == ic.
struct Problem {
    std::string op;  // conv2d | dense | maxpool
    int mb = 1, ic = 0, ih = 1, iw = 1, oc = 0, oh = 1, ow = 1;
    int kh = 1, kw = 1, sh = 1, sw = 1, ph = 0, pw = 0;
    std::string preset;  // e.g. "resnet50:res2_3x3_64_64" when it came from --layer
    // Canonical shape string (every field spelled out; the tuned-kernel key of runtime/shape_key.h).
    std::string key() const;
    int pad_bottom() const;  // implied by oh (>= 0)
    int pad_right() const;
    double ops() const;        // integer ops: 2 per MAC (conv2d, dense), 1 per compare (maxpool)
    double min_bytes() const;  // compulsory traffic: input + weights + output, once
    std::string label() const { return preset.empty() ? key() : preset; }
};

// Parses "mb1ic64ih56oc64oh56kh3sh1ph1" (benchdnn: letters + integer pairs, '_' ignored).
// Defaults as in benchdnn: iw = ih, kw = kh, sw = sh, pw = ph, mb = 1, oh/ow computed; a given
// oh/ow must be reachable with a bottom/right pad >= 0. Throws std::invalid_argument naming the
// offending field.
Problem parse_shape(const std::string &op, const std::string &text);
// "resnet50:<name>" (bench/resnet_shapes.h), or "resnet50:list" to throw the list of names.
Problem preset_problem(const std::string &op, const std::string &spec);
std::vector<std::string> preset_names();

// The build's target tags and kernel families (generated from cmake/qhalide_targets.cmake and
// cmake/qhalide_kernels.cmake: one source of truth).
struct TargetInfo {
    std::string tag, halide_target;
};
const std::vector<TargetInfo> &build_targets();
// GPU tags (cuda_dp4a): the explorer compiles them and summarizes the PTX, it cannot run them.
inline bool is_gpu_tag(const std::string &tag) { return tag.rfind("cuda", 0) == 0; }
// Halide target string of a tag; throws std::invalid_argument for a tag this build lacks.
std::string halide_target_of(const std::string &tag);

struct FamilyInfo {
    std::string family, generator;
    std::map<std::string, std::string> params;  // generator params besides schedule/knobs
};
const std::vector<FamilyInfo> &build_families();
// The family of (op, dtypes), e.g. ("conv2d", "u8s8u8") -> conv2d_u8s8u8. Throws listing the
// valid dtypes of the op.
const FamilyInfo &family_of(const std::string &op, const std::string &dtypes);
std::string default_dtypes(const std::string &op);

// Inputs of one problem, packed exactly as the runtime packs them, and the expected output.
// Data: full-range random inputs/weights, a small output scale so that many results saturate
// at both ends of the output type.
struct Workload {
    Problem prob;
    FamilyInfo fam;
    std::vector<uint8_t> x;  // NHWC (dense: [mb][ic])
    int32_t x_zp = 0, y_zp = 0, act_min = 0, act_max = 0;
    PackedWeights w;         // conv2d / dense
    int out_bytes = 1;       // 1 (u8/s8) or 4 (s32)
    bool out_signed = false;
    bool src4 = false, dst4 = false;  // u4 storage (two channels per byte): x packed / output packed
    std::vector<int32_t> expected;  // NHWC output
    size_t out_elems() const { return expected.size(); }
};
Workload make_workload(const Problem &p, const std::string &dtypes, uint32_t seed = 1);
// First mismatch between a kernel's raw output buffer and the expected values ("" if equal).
std::string compare_output(const Workload &wl, const void *out);

}  // namespace qh::explore
