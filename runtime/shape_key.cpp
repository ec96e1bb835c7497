#include "shape_key.h"

#include <cstdio>

namespace qh {

std::string conv2d_shape_key(int mb, int ic, int ih, int iw, int oc, int oh, int ow, int kh,
                             int kw, int sh, int sw, int ph, int pw) {
    char b[256];
    std::snprintf(b, sizeof b, "mb%dic%dih%diw%doc%doh%dow%dkh%dkw%dsh%dsw%dph%dpw%d", mb, ic, ih,
                  iw, oc, oh, ow, kh, kw, sh, sw, ph, pw);
    return b;
}

std::string dense_shape_key(int mb, int ic, int oc) {
    return "mb" + std::to_string(mb) + "ic" + std::to_string(ic) + "oc" + std::to_string(oc);
}

}  // namespace qh
