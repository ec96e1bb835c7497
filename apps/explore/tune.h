// Knob search (random, then local refinement around the best) and the tuning database.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "jit.h"
#include "json.h"

namespace qh::explore {

struct TuneOptions {
    int budget = 20;       // trials, the default schedule not counted
    uint32_t seed = 1;
    bool progress = true;  // progress bar on stderr
};

struct TuneResult {
    TrialResult default_trial;
    std::vector<TrialResult> trials;  // in search order; failed ones kept (never selected)
    int best = -1;                    // index into trials of the fastest correct one
    // Re-timed back to back after the search (median of interleaved rounds), so that the
    // comparison is not skewed by load changes during the search.
    double default_ms = 0, best_ms = 0;
    bool improved = false;  // best beats the default by more than 2%
};

// Knob sets (text) to try: random samples from the declared ranges, constraints of the
// dot-tile schedules applied (tile_oc in {1,2,4}, at most 32 accumulator registers).
bool knobs_plausible(const std::vector<KnobSpec> &specs, const std::map<std::string, int> &v);
TuneResult tune(const Workload &wl, const RunOptions &base, const TuneOptions &t);

// Tuning database (tuning/db.json): {"schema": 1, "entries": [{op, family, shape, target,
// knobs, gops, peak_frac, default_gops, date, machine, ...}]}, keyed by (family, shape, target).
Json load_db(const std::string &path);  // empty database if the file is missing
// Replaces the entry with the same key or appends; writes the file back.
void upsert_db(const std::string &path, const Json &entry);
const Json *find_db_entry(const Json &db, const std::string &family, const std::string &shape,
                          const std::string &target);

}  // namespace qh::explore
