// Exact-shape keys in the style of oneDNN's benchdnn ("mb1ic64ih56iw56oc64oh56ow56kh3kw3..."):
// the key of a tuned kernel (tuning/db.json) and the canonical shape string of qhalide-explore.
#pragma once
#include <string>

namespace qh {

std::string conv2d_shape_key(int mb, int ic, int ih, int iw, int oc, int oh, int ow, int kh,
                             int kw, int sh, int sw, int ph, int pw);
std::string dense_shape_key(int mb, int ic, int oc);

}  // namespace qh
