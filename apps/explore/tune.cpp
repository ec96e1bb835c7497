#include "tune.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>

#include "resource_limits.h"

namespace qh::explore {

namespace {

std::string knob_text(const std::map<std::string, int> &v) {
    std::string r;
    for (auto &[k, x] : v) r += (r.empty() ? "" : ",") + k + "=" + std::to_string(x);
    return r;
}

void progress(int done, int total, const TuneResult &r, const std::string &current) {
    const int width = 30;
    int filled = total ? done * width / total : width;
    std::string bar(size_t(filled), '#');
    bar.append(size_t(width - filled), '.');
    std::string best = r.best >= 0 ? std::to_string(int(r.trials[r.best].gops + 0.5)) + " GOP/s"
                                   : std::string("-");
    std::fprintf(stderr, "\r[%s] %d/%d best %s (default %d GOP/s) %-44.44s", bar.c_str(), done,
                 total, best.c_str(), int(r.default_trial.gops + 0.5), current.c_str());
    std::fflush(stderr);
}

}  // namespace

bool knobs_plausible(const std::vector<KnobSpec> &specs, const std::map<std::string, int> &v) {
    auto get = [&](const char *n, int def) {
        auto it = v.find(n);
        return it == v.end() ? def : it->second;
    };
    for (auto &s : specs) {
        int x = get(s.name.c_str(), s.def);
        if (x < s.lo || x > s.hi) return false;
    }
    bool dot = false;
    for (auto &s : specs) dot |= s.name == "tile_oc";
    if (dot) {
        int oc = get("tile_oc", 1);
        if (oc == 3) return false;
        if (get("tile_x", 1) * get("tile_y", 1) * oc > 32) return false;  // accumulators in registers
    }
    return true;
}

TuneResult tune(const Workload &wl, const RunOptions &base, const TuneOptions &t) {
    TuneResult r;
    const std::string tag = base.schedule_tag.empty() ? base.target_tag : base.schedule_tag;
    const auto specs = knob_specs(wl.prob.op, tag);
    std::mt19937 g(t.seed);
    std::set<std::string> tried;

    RunOptions o = base;
    o.inspect = false;
    // The default schedule (knobs as given on the command line, defaults otherwise).
    std::map<std::string, int> start = validate_knobs(wl.prob.op, tag, base.knobs).values();
    std::map<std::string, int> full;
    for (auto &s : specs) full[s.name] = start.count(s.name) ? start[s.name] : s.def;
    o.knobs = knob_text(full);
    tried.insert(o.knobs);
    if (t.progress) progress(0, t.budget, r, "default: " + o.knobs);
    r.default_trial = run_trial(wl, o);
    if (!r.default_trial.correct)
        throw std::runtime_error("the default schedule fails: " + r.default_trial.error);

    // Single-threaded tuning cannot judge `parallel`; keep it as given (the library runs threaded).
    std::set<std::string> frozen;
    if (base.threads <= 1) frozen.insert("parallel");
    auto attempt = [&](const std::map<std::string, int> &v) {
        o.knobs = knob_text(v);
        if (t.progress) progress(int(r.trials.size()), t.budget, r, o.knobs);
        r.trials.push_back(run_trial(wl, o));
        const TrialResult &tr = r.trials.back();
        if (tr.correct && (r.best < 0 || tr.ms < r.trials[r.best].ms)) r.best = int(r.trials.size()) - 1;
    };
    auto random_point = [&]() {
        for (int tries = 0; tries < 10000; tries++) {
            std::map<std::string, int> v;
            for (auto &s : specs)
                v[s.name] = frozen.count(s.name) ? full[s.name]
                                                 : std::uniform_int_distribution<int>(s.lo, s.hi)(g);
            if (knobs_plausible(specs, v) && !tried.count(knob_text(v))) return v;
        }
        return std::map<std::string, int>{};
    };
    const int n_random = specs.empty() ? 0 : std::max(1, t.budget / 2);
    while ((int)r.trials.size() < std::min(n_random, t.budget)) {
        auto v = random_point();
        if (v.empty()) break;
        tried.insert(knob_text(v));
        attempt(v);
    }
    // Local refinement: untried neighbours (one knob +-1; tile_oc over 1, 2, 4) of the best.
    while (!specs.empty() && (int)r.trials.size() < t.budget) {
        std::map<std::string, int> centre = r.best >= 0 ? Knobs(r.trials[r.best].knobs).values() : full;
        std::vector<std::map<std::string, int>> nb;
        for (auto &s : specs)
            for (int d : {-1, 1}) {
                if (frozen.count(s.name)) continue;
                auto v = centre;
                if (s.name == "tile_oc") v[s.name] = d < 0 ? std::max(1, centre[s.name] / 2) : std::min(4, centre[s.name] * 2);
                else v[s.name] += d;
                if (knobs_plausible(specs, v) && !tried.count(knob_text(v))) nb.push_back(v);
            }
        if (nb.empty()) {  // local optimum: jump somewhere new
            auto v = random_point();
            if (v.empty()) break;
            nb.push_back(v);
        }
        auto v = nb[std::uniform_int_distribution<size_t>(0, nb.size() - 1)(g)];
        tried.insert(knob_text(v));
        attempt(v);
    }
    if (t.progress) {
        progress(int(r.trials.size()), t.budget, r, "re-timing default and best");
        std::fprintf(stderr, "\n");
    }
    // Re-time default and best back to back, interleaved, to compare like with like.
    r.default_ms = r.default_trial.ms;
    r.best_ms = r.best >= 0 ? r.trials[r.best].ms : 0;
    if (r.best >= 0) {
        RunOptions od = o, ob = o;
        od.knobs = r.default_trial.knobs;
        ob.knobs = r.trials[r.best].knobs;
        auto kd = Kernel::build(wl, od, nullptr), kb = Kernel::build(wl, ob, nullptr);
        std::vector<double> td, tb;
        for (int round = 0; round < 7; round++) {
            td.push_back(kd->time_ms(base.repeats));
            tb.push_back(kb->time_ms(base.repeats));
            r.rounds_won += tb.back() < td.back();
        }
        std::sort(td.begin(), td.end());
        std::sort(tb.begin(), tb.end());
        r.default_ms = td[td.size() / 2];
        r.best_ms = tb[tb.size() / 2];
        // On a shared machine: a clear margin, and faster in (nearly) every round.
        r.improved = r.best_ms < r.default_ms * 0.97 && r.rounds_won >= 6;
    }
    return r;
}

Json load_db(const std::string &path) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) {
        Json db = Json::object();
        db["schema"] = Json(1);
        db["entries"] = Json::array();
        return db;
    }
    const std::string text = read_regular_file(path, size_t(64) << 20, "a tuning database");
    Json db;
    try {
        db = Json::parse(text);
    } catch (const std::exception &e) {
        throw std::runtime_error(printable(path) + ": " + e.what());
    }
    if (!db.is_object() || !db.find("entries") || !db.find("entries")->is_array())
        throw std::runtime_error(printable(path) + ": not a tuning database (no \"entries\" array)");
    return db;
}

const Json *find_db_entry(const Json &db, const std::string &family, const std::string &shape,
                          const std::string &target) {
    const Json *e = db.find("entries");
    if (!e) return nullptr;
    for (auto &x : e->elems())
        if (x.get_str("family") == family && x.get_str("shape") == shape &&
            x.get_str("target") == target)
            return &x;
    return nullptr;
}

void upsert_db(const std::string &path, const Json &entry) {
    Json db = load_db(path);
    auto &v = db["entries"].elems();
    bool replaced = false;
    for (auto &x : v)
        if (x.get_str("family") == entry.get_str("family") &&
            x.get_str("shape") == entry.get_str("shape") &&
            x.get_str("target") == entry.get_str("target")) {
            x = entry;
            replaced = true;
        }
    if (!replaced) v.push_back(entry);
    std::string tmp = path + ".tmp";
    {
        std::ofstream f(tmp);
        if (!f) throw std::runtime_error("cannot write " + tmp);
        f << db.dump(2) << "\n";
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) throw std::runtime_error("cannot write " + path);
}

}  // namespace qh::explore
