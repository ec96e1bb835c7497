// qhalide-explore: the schedule experimentation loop (issue 4). Pick a problem, change a knob,
// see whether it is still bit-exact, how fast it is against the measured peak, and which
// dot-product instructions it produced; --tune searches the knobs and records the winner in the
// tuning database that the AOT build reads (cmake/qhalide_tuned.cmake).
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <iostream>
#include <unistd.h>

#include "cpu_features.h"
#include "jit.h"
#include "json.h"
#include "peak.h"
#include "plot.h"
#include "problem.h"
#include "resource_limits.h"
#include "tune.h"

using namespace qh::explore;

namespace {

std::string default_target() {
    for (auto &t : build_targets())
        if (!is_gpu_tag(t.tag) && qh::cpu_supports(t.tag)) return t.tag;
    return "generic";
}

std::string today() {
    char b[32];
    std::time_t t = std::time(nullptr);
    std::strftime(b, sizeof b, "%Y-%m-%d", std::localtime(&t));
    return b;
}

std::string machine() {
    char host[256] = {0};
    gethostname(host, sizeof host - 1);
    return qh::cpu_features().brand;
}

struct Peak {
    double gops = 0;  // of the threads used
    std::string text;
};

std::string pct(double f) {
    char b[32];
    std::snprintf(b, sizeof b, "%.0f%%", f * 100);
    return b;
}

std::string summary_line(const Workload &wl, const std::string &target, const TrialResult &r,
                         const Peak &peak, const std::string &what) {
    char b[512];
    std::string s = what + " " + wl.fam.family + " " + wl.prob.label() + " @" + target + " [" +
                    r.knobs + "]: ";
    if (!r.compiled) return s + "FAILED TO BUILD: " + r.error;
    if (!r.correct) return s + "WRONG (not bit-exact): " + r.error;
    std::snprintf(b, sizeof b, "bit-exact (%zu outputs) | %.4f ms | %.1f GOP/s", wl.out_elems(),
                  r.ms, r.gops);
    s += b;
    if (peak.gops > 0 && wl.prob.op != "maxpool")
        s += " | " + pct(r.gops / peak.gops) + " of " + peak.text;
    if (r.inspected && wl.prob.op != "maxpool") s += " | " + r.insp.summary();  // no dot product in a pool
    std::snprintf(b, sizeof b, " | build %.1f s", r.compile_s);
    return s + b;
}

Json trial_json(const TrialResult &r, Peak peak, const Workload &wl) {
    if (wl.prob.op == "maxpool") peak.gops = 0;  // compares, not dot products
    Json j = Json::object();
    j["knobs"] = r.knobs;
    j["compiled"] = r.compiled;
    j["bit_exact"] = r.correct;
    if (!r.error.empty()) j["error"] = r.error;
    j["ms"] = r.ms;
    j["gops"] = r.gops;
    if (peak.gops > 0) j["peak_frac"] = r.gops / peak.gops;
    j["build_s"] = r.compile_s;
    if (r.inspected) {
        Json d = Json::object();
        for (auto &[m, n] : r.insp.dot_counts) d[m] = Json(n);
        j["dot_instructions"] = d;
        j["reduction_vectorized"] = r.insp.reduction_vectorized;
    }
    return j;
}

}  // namespace

int main(int argc, char **argv) {
    CLI::App app{"qhalide-explore: JIT a qhalide generator with its schedule and knobs, check it "
                 "bit-exactly against the reference, time it against the measured peak, inspect "
                 "its instructions, tune its knobs into tuning/db.json"};
    std::string op = "conv2d", shape, dtypes, target, sched_tag, json_out, plot, db_path = QH_DEFAULT_DB;
    std::vector<std::string> layers, knob_args;
    std::vector<std::pair<std::string, std::string>> emits;
    int repeats = 10, threads = 1, budget = 20;
    unsigned seed = 1;
    bool do_tune = false, compare_as = false, list_knobs = false, list_layers = false, no_db = false;
    app.add_option("--op", op, "operation: conv2d, dense, maxpool")->capture_default_str();
    app.add_option("--shape", shape, "problem, benchdnn style: conv2d mb1ic64ih56oc64oh56kh3sh1ph1, "
                   "dense mb1ic2048oc1000, maxpool mb1ic64ih112oh56kh3sh2ph1");
    app.add_option("--layer", layers, "preset problem(s), e.g. resnet50:res2_3x3_64_64 (repeatable; "
                   "resnet50:all = every ResNet-50 conv); see --list-layers");
    app.add_option("--dtypes", dtypes, "<src><wei><dst>: conv2d/dense u8s8u8 (default), u8s8s8, "
                   "u8s8s32, u8z8u8, u8z8s32; int4: u8s4u8 (W4A8), u4s4u4 (W4A4, u4 storage), u8s4u4, "
                   "u4s4u8 (conv2d), dense u8s4u8, u8s4s32; maxpool u8u8 (default), s8s8");
    app.add_option("--target", target, "target tag of the build (default: the best this CPU runs); cuda = cuda_dp4a");
    app.add_option("--schedule-tag", sched_tag, "schedule registry tag (default: the target tag)");
    app.add_option("--knob", knob_args, "schedule knob name=value (repeatable, or comma-separated); "
                   "see --list-knobs");
    app.add_option("--repeats", repeats, "timed runs; the median is reported")->check(CLI::Range(1, 100000))->capture_default_str();
    app.add_option("--threads", threads, "Halide threads (the peak is scaled by it)")->check(CLI::PositiveNumber)->capture_default_str();
    app.add_option("--emit", emits, "write the generated code: --emit asm FILE, --emit stmt FILE, --emit ptx FILE (--target cuda_dp4a) "
                   "(ptx needs a CUDA target)")->allow_extra_args(false);
    app.add_option("--json", json_out, "write the report as JSON to FILE ('-' = stdout)");
    app.add_flag("--tune", do_tune, "search the knob space (random, then local refinement)");
    app.add_option("--budget", budget, "trials for --tune")->check(CLI::Range(1, 100000))->capture_default_str();
    app.add_option("--seed", seed, "random seed for --tune")->capture_default_str();
    app.add_option("--db", db_path, "tuning database")->capture_default_str();
    app.add_flag("--no-db-write", no_db, "with --tune: do not update the database");
    app.add_flag("--compare-autoscheduler", compare_as, "also run Halide's Adams2019 autoscheduler "
                 "on the same algorithm as a baseline");
    app.add_option("--plot", plot, "SVG: time per trial (--tune) or a roofline of the problems");
    app.add_flag("--list-knobs", list_knobs, "print the knobs of --op on --target and exit");
    app.add_flag("--list-layers", list_layers, "print the layer presets and exit");
    CLI11_PARSE(app, argc, argv);

    try {
        qh::check_threads(threads, "--threads");
        if (list_layers) {
            for (auto &n : preset_names()) std::printf("%s\n", n.c_str());
            return 0;
        }
        if (target.empty()) target = default_target();
        if (target == "cuda") target = "cuda_dp4a";  // as qhalide-resnet --target cuda: the Halide GPU kernels
        const std::string tag = sched_tag.empty() ? target : sched_tag;
        halide_target_of(target);  // unknown tags: a clear error
        if (list_knobs) {
            std::printf("knobs of %s on %s (schedule tag %s):\n", op.c_str(), target.c_str(), tag.c_str());
            for (auto &s : knob_specs(op, tag))
                std::printf("  %-10s default %-3d range [%d, %d]  %s\n", s.name.c_str(), s.def, s.lo, s.hi, s.doc.c_str());
            return 0;
        }
        std::string knobs;
        for (auto &k : knob_args) knobs += (knobs.empty() ? "" : ",") + k;
        validate_knobs(op, tag, knobs);
        if (dtypes.empty()) dtypes = default_dtypes(op);
        family_of(op, dtypes);

        std::vector<Problem> probs;
        if (!shape.empty()) probs.push_back(parse_shape(op, shape));
        for (auto &l : layers) {
            if (l == "resnet50:all") {
                for (auto &n : preset_names()) probs.push_back(preset_problem(op, n));
            } else {
                probs.push_back(preset_problem(op, l));
            }
        }
        if (probs.empty()) throw std::invalid_argument("give a problem: --shape STR or --layer PRESET");
        if (do_tune && probs.size() != 1) throw std::invalid_argument("--tune takes exactly one problem");

        const std::string where = target + (tag == target ? "" : " schedule=" + tag);
        const bool gpu = is_gpu_tag(target);
        const bool runnable = !gpu && qh::cpu_supports(target);
        RunOptions o;
        o.target_tag = target;
        o.schedule_tag = sched_tag;
        o.knobs = knobs;
        o.repeats = repeats;
        o.threads = threads;
        for (auto &[kind, file] : emits) {
            if (kind == "asm") o.emit_asm = file;
            else if (kind == "stmt") o.emit_stmt = file;
            else if (kind == "ptx" && gpu) o.emit_ptx = file;
            else if (kind == "ptx")
                throw std::invalid_argument("--emit ptx needs a CUDA target (--target cuda_dp4a)");
            else throw std::invalid_argument("--emit " + kind + ": expected asm, stmt or ptx");
        }
        if (!runnable) {
            // Cannot run here: still show what the schedule generates.
            if (emits.empty() && !gpu)
                throw std::runtime_error("target " + target + " cannot run on this CPU (" +
                                         qh::cpu_features().brand + "; it needs " +
                                         qh::target_requirements(target) +
                                         "); --emit asm|stmt FILE still shows its code");
            for (auto &p : probs) {
                Workload wl = make_workload(p, dtypes);
                Inspection insp;
                Kernel::build(wl, o, &insp);
                const std::string why = gpu ? "a GPU kernel: the explorer compiles it, test_gpu and qhalide-resnet "
                                              "--target cuda run it on a device"
                                            : "this CPU lacks " + qh::target_requirements(target);
                std::printf("compiled %s %s @%s (not run: %s) | %s\n", wl.fam.family.c_str(), p.label().c_str(),
                            target.c_str(), why.c_str(), insp.summary().c_str());
            }
            return 0;
        }
        // The JIT runtime sizes its thread pool from HL_NUM_THREADS on first use (default: cores).
        setenv("HL_NUM_THREADS", std::to_string(threads).c_str(), 1);

        Peak peak;
        // Best of three medians: on a shared machine a disturbed measurement only ever lowers it.
        double core_peak = 0;
        for (int i = 0; i < 3; i++) core_peak = std::max(core_peak, qh::bench::vnni_peak_gops(5));
        auto set_peak_text = [&] {
            peak.gops = core_peak * threads;
            char b[128];
            std::snprintf(b, sizeof b, "VNNI peak %.1f GOP/s (%d thread%s, measured now)", peak.gops,
                          threads, threads > 1 ? "s" : "");
            peak.text = b;
            if (target != "x86_avx512vnni") peak.text += " [the VNNI peak, although " + target + " cannot use VNNI]";
        };
        if (core_peak > 0) set_peak_text();

        Json report = Json::object();
        report["cpu"] = qh::cpu_features().brand;
        report["target"] = target;
        report["threads"] = Json(threads);
        report["vnni_peak_gops"] = peak.gops;
        report["runs"] = Json::array();
        std::vector<RooflinePoint> roof;
        int failures = 0;

        for (auto &p : probs) {
            Workload wl = make_workload(p, dtypes);
            if (core_peak > 0 && &p != &probs.front()) {  // re-measure: keep the least disturbed
                double again = qh::bench::vnni_peak_gops(5);
                if (again > core_peak) {
                    core_peak = again;
                    set_peak_text();
                }
            }
            Json run = Json::object();
            run["op"] = p.op;
            run["family"] = wl.fam.family;
            run["shape"] = p.key();
            if (!p.preset.empty()) run["layer"] = p.preset;
            run["dtypes"] = dtypes;
            run["ops"] = p.ops();

            if (!do_tune) {
                TrialResult r = run_trial(wl, o);
                r.knobs = r.compiled ? effective_knobs(op, tag, validate_knobs(op, tag, knobs)) : knobs;
                std::printf("%s\n", summary_line(wl, where, r, peak, "run").c_str());
                run["result"] = trial_json(r, peak, wl);
                if (!r.correct) failures++;
                else roof.push_back({p.label(), p.ops() / p.min_bytes(), r.gops});
            } else {
                TuneOptions t;
                t.budget = budget;
                t.seed = seed;
                t.progress = isatty(2);
                TuneResult tr = tune(wl, o, t);
                // The default, inspected.
                RunOptions od = o;
                od.knobs = tr.default_trial.knobs;
                TrialResult d = run_trial(wl, od);
                d.knobs = tr.default_trial.knobs;
                std::printf("%s\n", summary_line(wl, where, d, peak, "default").c_str());
                int rejected = 0;
                for (auto &x : tr.trials) rejected += !x.correct;
                std::printf("tune: %zu trials, %d rejected (failed to build or not bit-exact)\n",
                            tr.trials.size(), rejected);
                Json trials = Json::array();
                for (auto &x : tr.trials) trials.push(trial_json(x, peak, wl));
                run["default"] = trial_json(d, peak, wl);
                run["trials"] = trials;
                if (tr.best >= 0) {
                    RunOptions ob = o;
                    ob.knobs = tr.trials[tr.best].knobs;
                    TrialResult b = run_trial(wl, ob);
                    b.knobs = ob.knobs;
                    std::printf("%s\n", summary_line(wl, where, b, peak, "best").c_str());
                    run["best"] = trial_json(b, peak, wl);
                }
                double dg = p.ops() / (tr.default_ms * 1e-3) * 1e-9;
                double bg = tr.best_ms > 0 ? p.ops() / (tr.best_ms * 1e-3) * 1e-9 : 0;
                run["retimed_default_ms"] = tr.default_ms;
                run["retimed_best_ms"] = tr.best_ms;
                run["improved"] = tr.improved;
                run["rounds_won"] = Json(tr.rounds_won);
                if (tr.improved) {
                    std::printf("tune: best beats the default: %.4f ms vs %.4f ms re-timed back to back "
                                "(%.1f vs %.1f GOP/s, %.2fx; faster in %d of 7 rounds)\n", tr.best_ms, tr.default_ms, bg, dg,
                                tr.default_ms / tr.best_ms, tr.rounds_won);
                    if (!no_db) {
                        Json e = Json::object();
                        e["op"] = p.op;
                        e["family"] = wl.fam.family;
                        e["shape"] = p.key();
                        if (!p.preset.empty()) e["layer"] = p.preset;
                        e["dtypes"] = dtypes;
                        e["target"] = target;
                        e["knobs"] = tr.trials[tr.best].knobs;
                        e["gops"] = std::round(bg * 10) / 10;
                        e["default_gops"] = std::round(dg * 10) / 10;
                        e["default_knobs"] = tr.default_trial.knobs;
                        if (peak.gops > 0) e["peak_frac"] = std::round(bg / peak.gops * 1000) / 1000;
                        e["threads"] = Json(threads);
                        e["date"] = today();
                        e["machine"] = machine();
                        upsert_db(db_path, e);
                        std::printf("tune: recorded in %s (rebuild to ship it as kernel qh_%s__%s__%s)\n",
                                    db_path.c_str(), wl.fam.family.c_str(), target.c_str(), p.key().c_str());
                    }
                } else {
                    std::printf("tune: could not beat the default schedule (best %.4f ms vs default %.4f ms "
                                "re-timed back to back, faster in %d of 7 rounds; needs > 3%% and >= 6); database unchanged\n",
                                tr.best_ms, tr.default_ms, tr.rounds_won);
                }
                if (!plot.empty()) {
                    plot_trials_svg(plot, tr, wl.fam.family + " " + p.label() + " @" + target + ": time per trial");
                    std::printf("plot: %s\n", plot.c_str());
                }
            }
            if (compare_as) {
                RunOptions oa = o;
                oa.autoscheduler = "Adams2019";
                oa.knobs = "";
                oa.emit_asm = oa.emit_stmt = "";
                TrialResult a = run_trial(wl, oa);
                a.knobs = "Adams2019 autoscheduler";
                std::printf("%s\n", summary_line(wl, where, a, peak, "autosched").c_str());
                run["autoscheduler"] = trial_json(a, peak, wl);
            }
            report["runs"].push(run);
        }
        report["vnni_peak_gops"] = peak.gops;
        if (!plot.empty() && !do_tune) {
            double bw = measure_read_bandwidth_gbps() * threads;
            plot_roofline_svg(plot, roof, peak.gops, bw, "roofline @" + target + " (" + std::to_string(threads) + " thread(s))");
            std::printf("plot: %s (roofline: peak %.1f GOP/s, read bandwidth %.1f GB/s measured now)\n",
                        plot.c_str(), peak.gops, bw);
        }
        if (!json_out.empty()) {
            if (json_out == "-") {
                std::printf("%s\n", report.dump(2).c_str());
            } else {
                std::ofstream f(json_out);
                f << report.dump(2) << "\n";
            }
        }
        return failures ? 1 : 0;
    } catch (const std::exception &e) {
        std::fprintf(stderr, "qhalide-explore: error: %s\n", e.what());
        return 2;
    }
}
