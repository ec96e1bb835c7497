// Class labels and top-k selection for classifier outputs.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "tensor.h"

namespace qh::io {

// Largest labels file load_labels() reads.
inline constexpr size_t kMaxLabelsBytes = size_t(16) << 20;

// One label per line ('\n' or "\r\n"); a final line without '\n' counts, a trailing newline does
// not add an empty label, empty lines in between are kept (they hold an index). Throws
// std::runtime_error naming the file if it is not a regular file of at most kMaxLabelsBytes,
// cannot be read or holds no labels.
std::vector<std::string> load_labels(const std::string &path);

// The k largest of logits[0..n) as (index, value), sorted by value descending; ties keep the
// lower index first; NaN ranks below every number (-inf included). k is clamped to n.
// Throws std::invalid_argument if n < 0, k < 0, or logits is null while n > 0.
std::vector<std::pair<int, float>> top_k(const float *logits, int n, int k);

// The first row (image 0) of a classifier output {N, ...} (any rank >= 1; the row is the
// numel / N values after the batch dimension) as floats: f32 as stored, u8/s8/s32 dequantized
// with their per-tensor quantization (the integers themselves when there is none). Throws
// std::invalid_argument naming `what` for a rank-0 tensor, a zero batch, no host data, a row of
// more than INT_MAX values, packed u4/s4 data or per-axis quantization.
std::vector<float> first_row_as_float(const Tensor &logits, const std::string &what);

}  // namespace qh::io
