#include "jit.h"

#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <regex>
#include <sstream>
#include <stdexcept>

#include "Halide.h"
#include "resource_limits.h"

namespace qh::explore {

using namespace Halide;

std::vector<KnobSpec> knob_specs(const std::string &op, const std::string &tag) {
    const std::vector<KnobSpec> *k = nullptr;
    if (op == "conv2d") k = ScheduleRegistry<Conv2dStages>::get().knobs(op, tag);
    else if (op == "dense") k = ScheduleRegistry<DenseStages>::get().knobs(op, tag);
    else if (op == "maxpool") k = ScheduleRegistry<PoolStages>::get().knobs(op, tag);
    else throw std::invalid_argument("unknown op '" + op + "'");
    return k ? *k : std::vector<KnobSpec>{};
}

namespace {

std::string spec_text(const KnobSpec &s) {
    return s.name + " in [" + std::to_string(s.lo) + ", " + std::to_string(s.hi) + "], default " +
           std::to_string(s.def) + ": " + s.doc;
}

}  // namespace

Knobs validate_knobs(const std::string &op, const std::string &tag, const std::string &text) {
    Knobs k;
    try {
        k = Knobs(text);
    } catch (const std::exception &e) {
        throw std::invalid_argument(e.what());
    }
    auto specs = knob_specs(op, tag);
    for (auto &[name, v] : k.values()) {
        const KnobSpec *spec = nullptr;
        for (auto &s : specs)
            if (s.name == name) spec = &s;
        if (!spec) {
            std::string valid;
            for (auto &s : specs) valid += "\n  " + spec_text(s);
            throw std::invalid_argument("unknown knob '" + name + "' for " + op + " on " + tag +
                                        "; valid knobs:" + (valid.empty() ? " none" : valid));
        }
        if (v < spec->lo || v > spec->hi)
            throw std::invalid_argument("knob '" + name + "'=" + std::to_string(v) +
                                        " is out of range for " + op + " on " + tag + ": " +
                                        spec_text(*spec));
    }
    return k;
}

std::string effective_knobs(const std::string &op, const std::string &tag, const Knobs &k) {
    std::string r;
    for (auto &s : knob_specs(op, tag)) {
        auto it = k.values().find(s.name);
        r += (r.empty() ? "" : ",") + s.name + "=" +
             std::to_string(it == k.values().end() ? s.def : it->second);
    }
    return r;
}

std::string Inspection::summary() const {
    std::string r;
    for (auto &[m, n] : dot_counts) {
        if (m.find('(') != std::string::npos) continue;  // width breakdowns follow their mnemonic
        r += (r.empty() ? "" : ", ") + m + " x" + std::to_string(n);
        std::string widths;
        for (const char *w : {"zmm", "ymm", "xmm"}) {
            auto it = dot_counts.find(m + "(" + w + ")");
            if (it != dot_counts.end())
                widths += (widths.empty() ? "" : " ") + std::string(w) + " x" + std::to_string(it->second);
        }
        if (!widths.empty()) r += " (" + widths + ")";
    }
    if (r.empty()) r = "none";
    return "dot-product instructions: " + r +
           "; reduction vectorized: " + (reduction_vectorized ? "yes" : "no");
}

Inspection inspect_code(const std::string &asm_text, const std::string &stmt_text) {
    Inspection in;
    static const std::regex re(
        "\\b(vpdpbusds?|vpdpwssds?|vpmaddwd|vpmaddubsw|tdpbusd|tdpbssd|tdpbuud|tdpbsud|dp4a|"
        "sdot|udot|usdot)\\b([^\\n]*)");
    for (auto it = std::sregex_iterator(asm_text.begin(), asm_text.end(), re);
         it != std::sregex_iterator(); ++it) {
        std::string m = (*it)[1], rest = (*it)[2];
        in.dot_counts[m]++;
        for (const char *w : {"zmm", "ymm", "xmm"})
            if (rest.find(w) != std::string::npos) {
                in.dot_counts[m + "(" + w + ")"]++;
                break;
            }
    }
    in.reduction_vectorized = stmt_text.find("vector_reduce_add") != std::string::npos ||
                              !in.dot_counts.empty();
    return in;
}

std::string halide_lib_dir() {
    Dl_info info{};
    if (dladdr(reinterpret_cast<void *>(&Halide::load_plugin), &info) && info.dli_fname) {
        std::string p = info.dli_fname;
        return p.substr(0, p.rfind('/'));
    }
    return ".";
}

struct Kernel::Impl {
    const Workload *wl = nullptr;
    Callable fn;
    Runtime::Buffer<uint8_t> in, res;
    Runtime::Buffer<void> in_any;  // maxpool input (u8 or s8)
    Runtime::Buffer<int8_t> wts;
    Runtime::Buffer<int32_t> bias, wzp;
    Runtime::Buffer<float> mult;
    Runtime::Buffer<void> out;
    int call() {
        const Workload &w = *wl;
        const Problem &p = w.prob;
        if (p.op == "conv2d")
            return fn(in, w.x_zp, wts, bias, wzp, mult, w.y_zp, w.act_min, w.act_max, p.sw, p.sh,
                      p.pw, p.ph, res, 0, 0, 0.f, 0.f, out);
        if (p.op == "dense")
            return fn(in, w.x_zp, wts, bias, wzp, mult, w.y_zp, w.act_min, w.act_max, out);
        return fn(in_any, p.kw, p.kh, p.sw, p.sh, p.pw, p.ph, out);
    }
};

Kernel::~Kernel() = default;

namespace {

// Halide's assembly / stmt output for one kernel (a few MiB at most).
std::string read_generated(const std::string &path) {
    return read_regular_file(path, size_t(1) << 30, "generated code");
}

void write_file(const std::string &path, const std::string &text) {
    std::ofstream t(path, std::ios::binary);
    if (!t || !t.write(text.data(), std::streamsize(text.size())))
        throw std::runtime_error("cannot write '" + printable(path) + "'");
}

Type out_type_of(const Workload &wl) {
    if (wl.out_bytes == 4) return Int(32);
    return wl.out_signed ? Int(8) : UInt(8);
}

}  // namespace

std::unique_ptr<Kernel> Kernel::build(const Workload &wl, const RunOptions &o, Inspection *insp) {
    const Problem &p = wl.prob;
    auto k = std::unique_ptr<Kernel>(new Kernel);
    k->impl_ = std::make_unique<Impl>();
    Impl &im = *k->impl_;
    im.wl = &wl;
    // Buffers (Halide dims innermost first), laid out as runtime/ops.cpp lays them out.
    uint8_t *x = const_cast<uint8_t *>(wl.x.data());
    std::vector<int> osz;
    if (p.op == "conv2d" || p.op == "dense") {
        const PackedWeights &w = wl.w;
        if (p.op == "conv2d") {
            // u4 storage: the channel dimension counts bytes; s4 weights pair 16-channel blocks.
            im.in = Runtime::Buffer<uint8_t>(x, {wl.src4 ? p.ic / 2 : p.ic, p.iw, p.ih, p.mb});
            im.wts = Runtime::Buffer<int8_t>(const_cast<int8_t *>(w.blocked()),
                                             {4, 16, w.ic_pad / 4, w.kw, w.kh, w.oc_pad / (w.weight_bits == 4 ? 32 : 16)});
            static uint8_t dummy[1] = {0};
            im.res = Runtime::Buffer<uint8_t>(dummy, {1, 1, 1, 1});
            osz = {wl.dst4 ? p.oc / 2 : p.oc, p.ow, p.oh, p.mb};
        } else {
            im.in = Runtime::Buffer<uint8_t>(x, {p.ic, p.mb});
            im.wts = Runtime::Buffer<int8_t>(const_cast<int8_t *>(w.blocked()),
                                             {4, 16, w.ic_pad / 4, w.oc_pad / (w.weight_bits == 4 ? 32 : 16)});
            osz = {p.oc, p.mb};
        }
        im.bias = Runtime::Buffer<int32_t>(const_cast<int32_t *>(w.bias.data()), w.oc_pad);
        im.wzp = Runtime::Buffer<int32_t>(const_cast<int32_t *>(w.wzp.data()), w.oc_pad);
        im.mult = Runtime::Buffer<float>(const_cast<float *>(w.mult.data()), w.oc_pad);
    } else {
        halide_type_t t = wl.out_signed ? halide_type_t(halide_type_int, 8) : halide_type_t(halide_type_uint, 8);
        im.in_any = Runtime::Buffer<void>(t, x, {p.ic, p.iw, p.ih, p.mb});
        osz = {p.oc, p.ow, p.oh, p.mb};
    }
    im.out = Runtime::Buffer<void>(out_type_of(wl), osz);

    Target target(halide_target_of(o.target_tag));
    const std::string tag = o.schedule_tag.empty() ? o.target_tag : o.schedule_tag;
    AutoschedulerParams asp;
    if (!o.autoscheduler.empty()) {
        std::string lib = o.autoscheduler;
        std::transform(lib.begin(), lib.end(), lib.begin(), ::tolower);
        std::string path = halide_lib_dir() + "/libautoschedule_" + lib + ".so";
        if (access(path.c_str(), R_OK) != 0)
            throw std::runtime_error("autoscheduler plugin " + path + " not found");
        static std::map<std::string, bool> loaded;
        if (!loaded[path]) {
            load_plugin(path);
            loaded[path] = true;
        }
        // Greedy search (beam_size=1): the default beam search takes many minutes on these pipelines.
        std::map<std::string, std::string> extra = {{"parallelism", std::to_string(o.threads)}};
        if (lib == "adams2019" || lib == "anderson2021") extra["beam_size"] = "1";
        asp = AutoschedulerParams(o.autoscheduler, extra);
    }
    GeneratorContext ctx = o.autoscheduler.empty() ? GeneratorContext(target)
                                                   : GeneratorContext(target, asp);
    auto gen = Internal::GeneratorRegistry::create(wl.fam.generator, ctx);
    GeneratorParamsMap gp;
    gp["schedule"] = tag;
    gp["knobs"] = o.knobs;
    for (auto &[kk, v] : wl.fam.params) gp[kk] = v;
    gen->set_generatorparam_values(gp);
    Pipeline pipe = gen->build_pipeline();

    std::vector<Argument> args;
    std::map<std::string, std::vector<int>> extents;  // estimates for the autoscheduler
    if (!o.autoscheduler.empty()) {
        auto dims = [](const halide_buffer_t *b) {
            std::vector<int> e;
            for (int d = 0; d < b->dimensions; d++) e.push_back(b->dim[d].extent);
            return e;
        };
        if (p.op == "maxpool") {
            extents["input"] = dims(im.in_any.raw_buffer());
        } else {
            extents["input"] = dims(im.in.raw_buffer());
            extents["weights"] = dims(im.wts.raw_buffer());
            extents["bias"] = extents["wzp"] = extents["mult"] = dims(im.bias.raw_buffer());
            extents["res"] = osz;
        }
        std::map<std::string, int> scalars = {
            {"input_zp", wl.x_zp}, {"output_zp", wl.y_zp}, {"act_min", wl.act_min},
            {"act_max", wl.act_max}, {"stride_x", p.sw}, {"stride_y", p.sh}, {"pad_x", p.pw},
            {"pad_y", p.ph}, {"kernel_x", p.kw}, {"kernel_y", p.kh}, {"conv_zp", 0}, {"res_zp", 0}};
        for (auto &a : gen->arginfos()) {
            if (a.dir != Internal::ArgInfoDirection::Input) continue;
            for (auto prm : gen->input_parameter(a.name)) {
                if (prm.is_buffer()) {
                    auto e = extents[a.name];
                    for (int d = 0; d < prm.dimensions(); d++) {
                        prm.set_min_constraint_estimate(d, 0);
                        prm.set_extent_constraint_estimate(d, d < (int)e.size() ? e[d] : 1);
                    }
                } else if (prm.type().is_float()) {
                    prm.set_estimate(Expr(0.5f));
                } else {
                    prm.set_estimate(Expr(scalars.count(a.name) ? scalars[a.name] : 0));
                }
            }
        }
        Region r;
        for (int e : osz) r.push_back(Range(0, e));
        gen->output_func("output")[0].set_estimates(r);
        pipe.apply_autoscheduler(target, asp);
    }
    for (auto &a : gen->arginfos()) {
        if (a.dir != Internal::ArgInfoDirection::Input) continue;
        for (const auto &prm : gen->input_parameter(a.name))
            args.emplace_back(prm.name(),
                              prm.is_buffer() ? Argument::InputBuffer : Argument::InputScalar,
                              prm.type(), prm.dimensions(), prm.get_argument_estimates());
    }
    const bool gpu = target.has_gpu_feature();
    if (insp || !o.emit_asm.empty() || !o.emit_stmt.empty() || !o.emit_ptx.empty()) {
        char dir[] = "/tmp/qh_explore_XXXXXX";
        if (!mkdtemp(dir)) throw std::runtime_error("mkdtemp failed");
        std::string base = std::string(dir) + "/kernel";
        std::map<OutputFileType, std::string> outs = {{OutputFileType::assembly, base + ".s"},
                                                      {OutputFileType::stmt, base + ".stmt"}};
        if (gpu) outs[OutputFileType::device_code] = base + ".ptx";  // the GPU kernels' PTX
        pipe.compile_to(outs, args, "qh_explore_kernel", target);
        std::string s = read_generated(base + ".s"), st = read_generated(base + ".stmt");
        const std::string ptx = gpu ? read_generated(base + ".ptx") : "";
        if (insp) *insp = inspect_code(gpu ? ptx : s, st);
        if (!o.emit_asm.empty()) write_file(o.emit_asm, s);
        if (!o.emit_stmt.empty()) write_file(o.emit_stmt, st);
        if (!o.emit_ptx.empty()) write_file(o.emit_ptx, ptx);
        for (const auto &[kind, f] : outs) std::remove(f.c_str());
        rmdir(dir);
    }
    if (gpu) return k;  // compiled only: no device here (and no Halide runtime for one in this tool)
    im.fn = pipe.compile_to_callable(args, target);
    return k;
}

std::string Kernel::run_and_check() {
    std::memset(impl_->out.data(), 0xA5, impl_->out.size_in_bytes());  // no stale results
    int rc = impl_->call();
    if (rc != 0) return "kernel returned Halide error " + std::to_string(rc);
    return compare_output(*impl_->wl, impl_->out.data());
}

double Kernel::time_ms(int repeats) {
    impl_->call();  // warm-up
    std::vector<double> t;
    for (int i = 0; i < std::max(1, repeats); i++) {
        auto t0 = std::chrono::steady_clock::now();
        impl_->call();
        t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
}

TrialResult run_trial(const Workload &wl, const RunOptions &o) {
    TrialResult r;
    r.knobs = o.knobs;
    std::unique_ptr<Kernel> k;
    auto t0 = std::chrono::steady_clock::now();
    try {
        k = Kernel::build(wl, o, o.inspect ? &r.insp : nullptr);
        r.inspected = o.inspect;
    } catch (const Halide::Error &e) {
        r.error = e.what();
    } catch (const std::exception &e) {
        r.error = e.what();
    }
    r.compile_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!k) {
        while (!r.error.empty() && (r.error.back() == '\n' || r.error.back() == ' ')) r.error.pop_back();
        return r;
    }
    r.compiled = true;
    try {
        r.error = k->run_and_check();
        r.correct = r.error.empty();
        if (r.correct) {
            r.ms = k->time_ms(o.repeats);
            r.gops = wl.prob.ops() / (r.ms * 1e-3) * 1e-9;
        }
    } catch (const std::exception &e) {
        r.error = e.what();
        r.correct = false;
    }
    return r;
}

}  // namespace qh::explore
