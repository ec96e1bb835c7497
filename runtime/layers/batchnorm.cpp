// BatchNorm: y = x * scale[c] + shift[c] (eps, mean and variance combined by the importer).
// fold_batchnorm folds it into a preceding float Conv; int8 has no standalone version.
#include "layers.h"

namespace qh::layers {
namespace {

std::string check(const GraphNode &n) {
    return n.bn_scale.empty() || n.bn_scale.size() != n.bn_shift.size() ? "scale and shift must be given, one per channel"
                                                                         : "";
}

std::vector<int64_t> shape(const GraphNode &n, const ShapeInputs &in) {
    const auto &x = in.shapes[0];
    if (x.empty() || x.back() != int64_t(n.bn_scale.size()))
        throw ShapeError(in.describe(0) + " vs " + std::to_string(n.bn_scale.size()) + " channels");
    return x;
}

void lower_fp32(Program &p, const GraphNode &n) {
    const int x = n.inputs[0], y = n.output;
    add_fp32_step(p, n, "batchnorm",
                  [x, y, sc = n.bn_scale, sh = n.bn_shift](Exec &e) { f32::batchnorm(e.T(x), sc, sh, e.T(y)); });
}

void quantize(Program &p, FusedGroup &gr) {
    node_error(p.g, p.g.nodes[gr.node], "BatchNorm that could not be folded into a float Conv is not supported in int8");
}

void lower_int8(Program &, const FusedGroup &) {}  // quantize refuses it

}  // namespace

const OpDef batchnorm = {OpKind::BatchNorm, "BatchNorm", 1, check, shape, lower_fp32, quantize, lower_int8};

}  // namespace qh::layers
