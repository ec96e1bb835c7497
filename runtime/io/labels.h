// Class labels and top-k selection for classifier outputs.
#pragma once
#include <string>
#include <utility>
#include <vector>

namespace qh::io {

// One label per line ('\n' or "\r\n"); a final line without '\n' counts, a trailing newline does
// not add an empty label, empty lines in between are kept (they hold an index). Throws
// std::runtime_error naming the file if it cannot be read or holds no labels.
std::vector<std::string> load_labels(const std::string &path);

// The k largest of logits[0..n) as (index, value), sorted by value descending; ties keep the
// lower index first; NaN ranks below every number (-inf included). k is clamped to n.
// Throws std::invalid_argument if n < 0, k < 0, or logits is null while n > 0.
std::vector<std::pair<int, float>> top_k(const float *logits, int n, int k);

}  // namespace qh::io
