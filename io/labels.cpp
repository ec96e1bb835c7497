#include "io/labels.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <stdexcept>

#include "resource_limits.h"

namespace qh::io {

std::vector<std::string> load_labels(const std::string &path) {
    const std::string text = read_regular_file(path, kMaxLabelsBytes, "a labels file");
    std::vector<std::string> labels;
    for (size_t pos = 0; pos < text.size();) {
        size_t end = text.find('\n', pos);
        if (end == std::string::npos) end = text.size();
        std::string line = text.substr(pos, end - pos);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        labels.push_back(std::move(line));
        pos = end + 1;
    }
    if (labels.empty()) throw std::runtime_error(printable(path) + ": no labels (expected one label per line)");
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

namespace qh::io {

std::vector<float> first_row_as_float(const Tensor &t, const std::string &what) {
    auto bad = [&](const std::string &why) {
        throw std::invalid_argument(printable(what) + " is " + t.describe() + ": " + why);
    };
    if (t.rank() == 0) bad("expected {N, classes...}, not a scalar");
    if (t.dim(0) <= 0) bad("expected at least one row (batch dimension >= 1)");
    if (dtype_bits(t.dtype()) == 4) bad("packed 4-bit outputs are not supported");
    if (!t.quant.empty() && t.quant.scale.size() != 1) bad("per-axis quantized outputs are not supported");
    const int64_t n = t.numel() / t.dim(0);
    if (n > std::numeric_limits<int>::max()) bad("more than INT_MAX values per row");
    if (n > 0 && !t.raw()) bad("no host data");
    const bool q = !t.quant.empty();
    const float scale = q ? t.quant.scale[0] : 1.f;
    const int32_t zp = q ? t.quant.zp_at(0) : 0;
    // Dequantized in double: an s32 value minus its zero point may not fit in int32.
    auto deq = [&](double v) { return float(q ? double(scale) * (v - zp) : v); };
    std::vector<float> r(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; i++) {
        switch (t.dtype()) {
        case DType::f32: r[i] = t.data<float>()[i]; break;
        case DType::u8: r[i] = deq(t.data<uint8_t>()[i]); break;
        case DType::s8: r[i] = deq(t.data<int8_t>()[i]); break;
        case DType::s32: r[i] = deq(t.data<int32_t>()[i]); break;
        default: bad("unsupported dtype");
        }
    }
    return r;
}

}  // namespace qh::io
