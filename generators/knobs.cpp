#include <sstream>
#include <stdexcept>

#include "stages.h"

namespace qh {

Knobs::Knobs(const std::string &text) {
    std::stringstream ss(text);
    std::string item;
    while (std::getline(ss, item, ',')) {
        if (item.empty()) continue;
        // name=value, or name:value (Halide's GenGen command line rejects '=' inside a value,
        // so the AOT build passes tuned knobs as "knobs=tile_x:2,tile_y:3").
        auto eq = item.find_first_of("=:");
        if (eq == std::string::npos || eq == 0 || eq + 1 == item.size())
            throw std::runtime_error("knob '" + item + "': expected name=integer");
        std::string name = item.substr(0, eq), val = item.substr(eq + 1);
        size_t used = 0;
        int v = 0;
        try {
            v = std::stoi(val, &used);
        } catch (...) { used = 0; }
        if (used != val.size())
            throw std::runtime_error("knob '" + name + "': value '" + val + "' is not an integer");
        values_[name] = v;
    }
}

int Knobs::get(const KnobSpec &spec) const {
    auto it = values_.find(spec.name);
    int v = it == values_.end() ? spec.def : it->second;
    if (v < spec.lo || v > spec.hi)
        throw std::runtime_error("knob '" + spec.name + "'=" + std::to_string(v) +
                                 " out of range [" + std::to_string(spec.lo) + ", " +
                                 std::to_string(spec.hi) + "]");
    return v;
}

void Knobs::check_known(const std::vector<KnobSpec> &specs, const std::string &where) const {
    for (auto &[name, v] : values_) {
        bool found = false;
        for (auto &s : specs) found |= s.name == name;
        if (!found) {
            std::string valid;
            for (auto &s : specs) valid += (valid.empty() ? "" : ", ") + s.name;
            throw std::runtime_error("unknown knob '" + name + "' for schedule " + where +
                                     " (valid: " + (valid.empty() ? "none" : valid) + ")");
        }
        (void)v;
    }
}

}  // namespace qh
