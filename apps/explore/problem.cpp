#include "problem.h"

#include <algorithm>
#include <cctype>
#include <climits>
#include <cstdint>
#include <random>
#include <stdexcept>

#include "graph.h"
#include "reference_ops.h"
#include "resource_limits.h"
#include "resnet_shapes.h"
#include "shape_key.h"

namespace qh::explore {

namespace {

[[noreturn]] void bad(const std::string &msg) { throw std::invalid_argument(msg); }

const char *const kConvFields[] = {"mb", "ic", "ih", "iw", "oc", "oh", "ow", "kh",
                                   "kw", "sh", "sw", "ph", "pw", "g",  "dh", "dw"};
// Fields that may be 0 (pads; dilation counts from 0 in benchdnn; g is checked to be 1).
const char *const kZeroOkFields[] = {"ph", "pw", "dh", "dw", "g"};

// The bottom/right pad that output size `out` implies: (out - 1) * s + k - in - pad_begin, at
// least 0. In int64: exact for any int fields (each product is below 2^62).
int64_t implied_end_pad(int64_t out, int64_t in, int64_t k, int64_t s, int64_t pad_begin) {
    return std::max<int64_t>(0, (out - 1) * s + k - in - pad_begin);
}

}  // namespace

std::string Problem::key() const {
    if (op == "dense") return dense_shape_key(mb, ic, oc);
    return conv2d_shape_key(mb, ic, ih, iw, oc, oh, ow, kh, kw, sh, sw, ph, pw);
}

int Problem::pad_bottom() const { return int(std::min<int64_t>(implied_end_pad(oh, ih, kh, sh, ph), INT_MAX)); }
int Problem::pad_right() const { return int(std::min<int64_t>(implied_end_pad(ow, iw, kw, sw, pw), INT_MAX)); }

double Problem::ops() const {
    if (op == "dense") return 2.0 * mb * ic * oc;
    if (op == "maxpool") return double(mb) * oh * ow * oc * kh * kw;
    return 2.0 * mb * oh * ow * oc * ic * kh * kw;
}

double Problem::min_bytes() const {
    if (op == "dense") return double(mb) * ic + double(ic) * oc + double(mb) * oc;
    if (op == "maxpool") return double(mb) * ih * iw * ic + double(mb) * oh * ow * oc;
    return double(mb) * ih * iw * ic + double(oc) * ic * kh * kw + double(mb) * oh * ow * oc;
}

Problem parse_shape(const std::string &op, const std::string &text) {
    if (op != "conv2d" && op != "dense" && op != "maxpool")
        bad("unknown op '" + op + "' (known: conv2d, dense, maxpool)");
    std::map<std::string, int> v;
    size_t i = 0;
    while (i < text.size()) {
        if (text[i] == '_') { i++; continue; }
        size_t j = i;
        while (j < text.size() && std::islower((unsigned char)text[j])) j++;
        std::string name = text.substr(i, j - i);
        size_t k = j;
        while (k < text.size() && std::isdigit((unsigned char)text[k])) k++;
        if (name.empty())
            bad("shape '" + text + "': expected a field name at '" + text.substr(i) + "'");
        if (k == j) bad("shape '" + text + "': field '" + name + "' has no integer value");
        bool known = false;
        for (auto *f : kConvFields) known |= name == f;
        if (!known) {
            std::string list;
            for (auto *f : kConvFields) list += std::string(list.empty() ? "" : " ") + f;
            bad("shape '" + text + "': unknown field '" + name + "' (fields: " + list + ")");
        }
        if (v.count(name)) bad("shape '" + text + "': field '" + name + "' given twice");
        std::string digits = text.substr(j, k - j);
        if (digits.size() > 7) bad("shape '" + text + "': " + name + "=" + digits + " is too large");
        v[name] = std::stoi(digits);
        i = k;
    }
    // Every field is range-checked before any arithmetic on it (a stride of 0 would divide).
    for (const auto &[name, val] : v) {
        bool zero_ok = false;
        for (auto *f : kZeroOkFields) zero_ok |= name == f;
        if (val < 1 && !zero_ok) bad("shape '" + text + "': " + name + " must be >= 1");
    }
    auto has = [&](const char *f) { return v.count(f) > 0; };
    auto get = [&](const char *f, int def) { return has(f) ? v[f] : def; };
    Problem p;
    p.op = op;
    p.mb = get("mb", 1);
    if (get("g", 1) != 1) bad("shape '" + text + "': groups (g) other than 1 are not supported");
    if (get("dh", 0) != 0 || get("dw", 0) != 0)
        bad("shape '" + text + "': dilation (dh/dw, benchdnn counts from 0) is not supported");
    if (!has("ic")) bad("shape '" + text + "': 'ic' is required");
    p.ic = v["ic"];
    if (op == "dense") {
        for (const char *f : {"ih", "iw", "oh", "ow", "kh", "kw", "sh", "sw", "ph", "pw"})
            if (has(f)) bad("shape '" + text + "': dense takes mb, ic, oc only (got " + f + ")");
        if (!has("oc")) bad("shape '" + text + "': 'oc' is required");
        p.oc = v["oc"];
    } else {
        if (!has("ih")) bad("shape '" + text + "': 'ih' is required");
        p.ih = v["ih"];
        p.iw = get("iw", p.ih);
        if (op == "maxpool") {
            if (has("oc") && v["oc"] != p.ic)
                bad("shape '" + text + "': maxpool keeps the channels (oc must equal ic)");
            p.oc = p.ic;
        } else {
            if (!has("oc")) bad("shape '" + text + "': 'oc' is required");
            p.oc = v["oc"];
        }
        p.kh = get("kh", 1);
        p.kw = get("kw", p.kh);
        p.sh = get("sh", 1);
        p.sw = get("sw", p.sh);
        // Derived sizes in int64 (fields are < 10^7, so nothing here overflows), then checked to
        // fit the int fields.
        auto fit = [&](const char *f, int64_t x) {
            if (x > INT32_MAX) bad("shape '" + text + "': implied " + f + "=" + std::to_string(x) + " is too large");
            return int(x);
        };
        auto out_of = [](int64_t in, int64_t k, int64_t s, int64_t pb, int64_t pe) {
            return window_output_extent(in, k, s, pb, pe);  // the IR's rule (graph.h)
        };
        // benchdnn: a given output size without a pad implies "same"-style padding.
        auto same = [](int64_t out, int64_t in, int64_t k, int64_t s) {
            return std::max<int64_t>(0, ((out - 1) * s + k - in) / 2);
        };
        p.ph = has("ph") ? v["ph"] : has("oh") ? fit("ph", same(v["oh"], p.ih, p.kh, p.sh)) : 0;
        p.pw = has("pw") ? v["pw"] : has("ow") ? fit("pw", same(v["ow"], p.iw, p.kw, p.sw)) : p.ph;
        const int64_t oh = has("oh") ? v["oh"] : out_of(p.ih, p.kh, p.sh, p.ph, p.ph);
        const int64_t ow = has("ow") ? v["ow"] : out_of(p.iw, p.kw, p.sw, p.pw, p.pw);
        if (oh < 1 || ow < 1)
            bad("shape '" + text + "': kernel " + std::to_string(p.kh) + "x" +
                std::to_string(p.kw) + " does not fit the padded input");
        p.oh = fit("oh", oh);
        p.ow = fit("ow", ow);
        const int64_t pb = implied_end_pad(p.oh, p.ih, p.kh, p.sh, p.ph);
        const int64_t pr = implied_end_pad(p.ow, p.iw, p.kw, p.sw, p.pw);
        if (out_of(p.ih, p.kh, p.sh, p.ph, pb) != p.oh || pb >= p.kh)
            bad("shape '" + text + "': oh=" + std::to_string(p.oh) + " is inconsistent with ih=" +
                std::to_string(p.ih) + " kh=" + std::to_string(p.kh) + " sh=" +
                std::to_string(p.sh) + " ph=" + std::to_string(p.ph));
        if (out_of(p.iw, p.kw, p.sw, p.pw, pr) != p.ow || pr >= p.kw)
            bad("shape '" + text + "': ow=" + std::to_string(p.ow) + " is inconsistent with iw=" +
                std::to_string(p.iw) + " kw=" + std::to_string(p.kw) + " sw=" +
                std::to_string(p.sw) + " pw=" + std::to_string(p.pw));
        if (op == "maxpool" && (p.ph >= p.kh || p.pw >= p.kw || pb >= p.kh || pr >= p.kw))
            bad("shape '" + text + "': maxpool pads must be smaller than the kernel");
    }
    // The input, weights and output must be tensors the runtime could hold.
    const std::string where = "shape '" + text + "'";
    if (op == "dense") {
        checked_numel({p.mb, p.ic}, where + " input");
        checked_numel({p.oc, p.ic}, where + " weights");
        checked_numel({p.mb, p.oc}, where + " output");
    } else {
        checked_numel({p.mb, p.ih, p.iw, p.ic}, where + " input");
        if (op == "conv2d") checked_numel({p.oc, p.ic, p.kh, p.kw}, where + " weights");
        checked_numel({p.mb, p.oh, p.ow, p.oc}, where + " output");
    }
    return p;
}

std::vector<std::string> preset_names() {
    std::vector<std::string> v;
    for (auto &s : bench::resnet50_convs()) v.push_back(std::string("resnet50:") + s.name);
    return v;
}

Problem preset_problem(const std::string &op, const std::string &spec) {
    auto colon = spec.find(':');
    std::string net = spec.substr(0, colon), name = colon == std::string::npos ? "" : spec.substr(colon + 1);
    std::string list;
    for (auto &n : preset_names()) list += "\n  " + n;
    if (net != "resnet50" || name.empty()) bad("unknown layer preset '" + spec + "'; presets:" + list);
    for (auto &s : bench::resnet50_convs()) {
        if (name != s.name) continue;
        std::string shape = "mb1ic" + std::to_string(s.c) + "ih" + std::to_string(s.hw) + "oc" +
                            std::to_string(s.oc) + "kh" + std::to_string(s.k) + "sh" +
                            std::to_string(s.stride) + "ph" + std::to_string(s.pad);
        if (op != "conv2d") bad("preset '" + spec + "' is a conv2d layer (use --op conv2d)");
        Problem p = parse_shape(op, shape);
        p.preset = spec;
        return p;
    }
    bad("unknown layer preset '" + spec + "'; presets:" + list);
}

const std::vector<TargetInfo> &build_targets() {
    static const std::vector<TargetInfo> v = {
#define QH_TARGET_INFO(tag, str) {#tag, str},
#define QH_FAMILY_INFO(f, g, p)
#include "qh_build_info.inc"
#undef QH_TARGET_INFO
#undef QH_FAMILY_INFO
    };
    return v;
}

std::string halide_target_of(const std::string &tag) {
    std::string known;
    for (auto &t : build_targets()) {
        if (t.tag == tag) return t.halide_target;
        known += (known.empty() ? "" : ", ") + t.tag;
    }
    std::string msg = "target tag '" + tag + "' is not known to this build (tags: " + known + ")";
    if (tag.rfind("cuda", 0) == 0 || tag.rfind("arm", 0) == 0)
        msg += "; this build has no schedules for it yet, so neither a JIT run nor a "
               "standalone device artifact can be made";
    bad(msg);
}

const std::vector<FamilyInfo> &build_families() {
    static const std::vector<FamilyInfo> v = [] {
        std::vector<FamilyInfo> r;
        auto add = [&](const char *f, const char *g, const std::string &params) {
            FamilyInfo fi{f, g, {}};
            size_t i = 0;
            while (i < params.size()) {
                size_t j = params.find(' ', i);
                if (j == std::string::npos) j = params.size();
                std::string kv = params.substr(i, j - i);
                auto eq = kv.find('=');
                if (eq != std::string::npos) fi.params[kv.substr(0, eq)] = kv.substr(eq + 1);
                i = j + 1;
            }
            r.push_back(fi);
        };
#define QH_TARGET_INFO(tag, str)
#define QH_FAMILY_INFO(f, g, p) add(#f, g, p);
#include "qh_build_info.inc"
#undef QH_TARGET_INFO
#undef QH_FAMILY_INFO
        return r;
    }();
    return v;
}

std::string default_dtypes(const std::string &op) { return op == "maxpool" ? "u8u8" : "u8s8u8"; }

const FamilyInfo &family_of(const std::string &op, const std::string &dtypes) {
    std::string want = op + "_" + dtypes, valid;
    for (auto &f : build_families()) {
        if (f.family == want) return f;
        if (f.family.rfind(op + "_", 0) == 0 && f.generator == op)
            valid += (valid.empty() ? "" : ", ") + f.family.substr(op.size() + 1);
    }
    bad("no kernel family " + want + " in this build (dtypes for " + op + ": " +
        (valid.empty() ? "none" : valid) + ")");
}

Workload make_workload(const Problem &p, const std::string &dtypes, uint32_t seed) {
    Workload wl;
    wl.prob = p;
    wl.fam = family_of(p.op, dtypes);
    std::mt19937 g(seed);
    std::uniform_int_distribution<int> d8(0, 255);
    const bool pool = p.op == "maxpool";
    const int H = p.op == "dense" ? 1 : p.ih, W = p.op == "dense" ? 1 : p.iw;
    {
        // Held at once, at most: the u8 input (and its int32 copy for maxpool), the weights (int32,
        // u8 and s8 copies and the packed form), the int32 accumulators and expected outputs.
        const std::string what = "workload " + p.label();
        const int64_t in = checked_numel({p.mb, H, W, p.ic}, what + " input");
        const int64_t wts = pool ? 0 : checked_numel({p.oc, p.ic, p.kh, p.kw}, what + " weights");
        const int64_t out = checked_numel({p.mb, p.op == "dense" ? 1 : p.oh, p.op == "dense" ? 1 : p.ow, p.oc},
                                          what + " output");
        check_budget(size_t(in) * (pool ? 5 : 1) + size_t(wts) * 10 + size_t(out) * 8, what);
    }
    wl.x.resize(size_t(p.mb) * H * W * p.ic);
    for (auto &e : wl.x) e = uint8_t(d8(g));
    // int4 families (<src><wei><dst> with u4 / s4 fields): 4-bit activations are u4 storage.
    wl.src4 = dtypes.substr(0, 2) == "u4";
    wl.dst4 = dtypes.size() >= 6 && dtypes.substr(4, 2) == "u4";
    const bool w4 = dtypes.substr(2, 2) == "s4";
    if ((wl.src4 || wl.dst4) && p.op != "conv2d") bad("u4 activations: conv2d only");
    if ((wl.src4 && p.ic % 2) || (wl.dst4 && p.oc % 2))
        bad("u4 storage needs even channel counts (pixels are whole bytes), got ic=" + std::to_string(p.ic) +
            " oc=" + std::to_string(p.oc));
    if (wl.src4)
        for (auto &e : wl.x) e &= 15;
    if (pool) {
        bool s8 = dtypes == "s8s8";
        std::vector<int32_t> xv(wl.x.size());
        for (size_t i = 0; i < xv.size(); i++) xv[i] = s8 ? int32_t(int8_t(wl.x[i])) : wl.x[i];
        wl.out_signed = s8;
        wl.expected = ref::maxpool(xv, p.mb, p.ih, p.iw, p.ic, p.kh, p.kw, p.sh, p.sw, p.ph, p.pw,
                                   p.oh, p.ow);
        return wl;
    }
    // conv2d / dense: dtypes <src><wei><dst>, e.g. u8s8u8, u8z8s32.
    const bool zp_weights = dtypes.substr(2, 2) == "z8";
    const std::string dst = dtypes.substr(4);
    wl.x_zp = 128;
    const float xs = 0.02f, ys = 0.05f;  // small output scale: saturates at both ends
    ref::ConvProblem cp;
    cp.n = p.mb; cp.h = H; cp.w = W; cp.c = p.ic; cp.oc = p.oc; cp.kh = p.kh; cp.kw = p.kw;
    cp.stride_h = p.sh; cp.stride_w = p.sw; cp.pad_top = p.ph; cp.pad_left = p.pw;
    cp.pad_bottom = p.pad_bottom(); cp.pad_right = p.pad_right();
    const size_t nw = size_t(p.oc) * p.ic * p.kh * p.kw;
    std::vector<int32_t> wv(nw), zw(p.oc, 0), bias(p.oc);
    std::vector<uint8_t> wu8(nw);
    std::vector<int8_t> ws8(nw);
    std::uniform_int_distribution<int> db(-20000, 20000);
    for (auto &b : bias) b = db(g);
    WeightsDesc wd;
    wd.name = p.label();
    wd.oc = p.oc; wd.ic = p.ic; wd.kh = p.kh; wd.kw = p.kw;
    std::vector<float> wscale(p.oc);
    for (int o = 0; o < p.oc; o++) wscale[o] = 0.002f + 0.0005f * (o % 7);
    wd.scale = wscale;
    wd.bias = bias.data();
    if (zp_weights) {  // ONNX-style u8 weights with zero points near 255: not symmetric in s8
        std::uniform_int_distribution<int> dz(200, 255);
        for (auto &z : zw) z = dz(g);
        for (size_t i = 0; i < nw; i++) wv[i] = wu8[i] = uint8_t(d8(g));
        wd.dtype = DType::u8;
        wd.data = wu8.data();
        wd.zero_point = zw;
    } else {
        for (size_t i = 0; i < nw; i++) wv[i] = ws8[i] = int8_t(w4 ? d8(g) % 16 - 8 : d8(g) - 128);
        wd.dtype = DType::s8;
        wd.data = ws8.data();
        wd.bits = w4 ? 4 : 8;
    }
    if (wl.src4) wl.x_zp = 8;
    auto acc = ref::conv2d_acc(cp, wl.x, wl.x_zp, wv, zw, bias);
    if (wl.src4) {  // the kernel reads the packed form
        std::vector<int32_t> v(wl.x.begin(), wl.x.end());
        wl.x = ref::int4_pack(v);
    }
    if (dst == "s32") {
        wl.out_bytes = 4;
        wl.out_signed = true;
        wl.act_min = INT32_MIN; wl.act_max = INT32_MAX;
        wl.w = pack_weights(wd, xs, wl.x_zp, 0.f);
        wl.expected.assign(acc.begin(), acc.end());
    } else {
        wl.out_signed = dst == "s8";
        wl.y_zp = wl.out_signed ? -10 : wl.dst4 ? 3 : 10;
        wl.act_min = wl.out_signed ? -128 : 0;
        wl.act_max = wl.out_signed ? 127 : wl.dst4 ? 15 : 255;
        wl.w = pack_weights(wd, xs, wl.x_zp, ys);
        std::vector<float> mult(p.oc);
        for (int o = 0; o < p.oc; o++) mult[o] = (xs * wscale[o]) / ys;
        wl.expected = ref::requantize_all(acc, p.oc, mult, wl.y_zp, wl.act_min, wl.act_max);
    }
    if (wl.w.weight_bits != (w4 ? 4 : 8))
        bad("internal: packer chose " + std::to_string(wl.w.weight_bits) + "-bit weights for dtypes " + dtypes);
    if (wl.w.has_zero_point != zp_weights)
        bad("internal: packer chose " + std::string(wl.w.has_zero_point ? "z8" : "s8") +
            " weights for dtypes " + dtypes);
    return wl;
}

std::string compare_output(const Workload &wl, const void *out) {
    size_t bad_n = 0, first = 0;
    int32_t got0 = 0;
    for (size_t i = 0; i < wl.expected.size(); i++) {
        int32_t v = wl.dst4 ? (static_cast<const uint8_t *>(out)[i / 2] >> (4 * (i % 2))) & 15
                    : wl.out_bytes == 4 ? static_cast<const int32_t *>(out)[i]
                    : wl.out_signed   ? int32_t(static_cast<const int8_t *>(out)[i])
                                      : int32_t(static_cast<const uint8_t *>(out)[i]);
        if (v != wl.expected[i] && bad_n++ == 0) { first = i; got0 = v; }
    }
    if (!bad_n) return "";
    return std::to_string(bad_n) + " of " + std::to_string(wl.expected.size()) +
           " outputs differ, first at flat index " + std::to_string(first) + ": got " +
           std::to_string(got0) + ", want " + std::to_string(wl.expected[first]);
}

}  // namespace qh::explore
