#include "io/labels.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <numeric>
#include <stdexcept>

namespace qh::io {

std::vector<std::string> load_labels(const std::string &path) {
    std::ifstream f(path);
    if (!f) throw std::runtime_error(path + ": cannot open labels file (" + std::strerror(errno) + ")");
    std::vector<std::string> labels;
    std::string line;
    while (std::getline(f, line)) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        labels.push_back(line);
    }
    if (f.bad()) throw std::runtime_error(path + ": read error");
    if (labels.empty()) throw std::runtime_error(path + ": no labels (expected one label per line)");
    return labels;
}

std::vector<std::pair<int, float>> top_k(const float *logits, int n, int k) {
    if (n < 0 || k < 0 || (n > 0 && !logits))
        throw std::invalid_argument("top_k: bad arguments (n=" + std::to_string(n) + ", k=" + std::to_string(k) + ")");
    k = std::min(k, n);
    std::vector<int> idx(static_cast<size_t>(n));
    std::iota(idx.begin(), idx.end(), 0);
    // A strict total order: numbers before NaN, larger first, then lower index first.
    auto better = [logits](int a, int b) {
        float va = logits[a], vb = logits[b];
        bool na = std::isnan(va), nb = std::isnan(vb);
        if (na != nb) return nb;
        if (!na && va != vb) return va > vb;
        return a < b;
    };
    std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), better);
    std::vector<std::pair<int, float>> r;
    r.reserve(size_t(k));
    for (int i = 0; i < k; i++) r.emplace_back(idx[i], logits[idx[i]]);
    return r;
}

}  // namespace qh::io
