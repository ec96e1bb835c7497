#include "graph.h"

#include <stdexcept>
#include <unordered_set>

namespace qh {

const char *op_name(OpKind k) {
    switch (k) {
    case OpKind::Conv: return "Conv";
    case OpKind::Dense: return "Dense";
    case OpKind::BatchNorm: return "BatchNorm";
    case OpKind::Relu: return "Relu";
    case OpKind::Add: return "Add";
    case OpKind::MaxPool: return "MaxPool";
    case OpKind::GlobalAvgPool: return "GlobalAvgPool";
    case OpKind::Flatten: return "Flatten";
    }
    return "?";
}

int Graph::add_value(std::string name, std::vector<int64_t> shape, DType dtype) {
    if (!added_.emplace(name, int(values.size())).second)
        throw std::runtime_error("graph '" + this->name + "': value '" + name + "' defined twice");
    GraphValue v;
    v.name = std::move(name);
    v.shape = std::move(shape);
    v.dtype = dtype;
    values.push_back(std::move(v));
    return int(values.size()) - 1;
}

int Graph::add_node(GraphNode node, const std::string &out_name) {
    node.output = add_value(out_name.empty() ? node.name : out_name);
    nodes.push_back(std::move(node));
    return nodes.back().output;
}

int Graph::find_value(const std::string &n) const {
    for (size_t i = 0; i < values.size(); i++)
        if (values[i].name == n) return int(i);
    return -1;
}

std::vector<std::vector<int>> Graph::consumers() const {
    std::vector<std::vector<int>> c(values.size());
    for (size_t i = 0; i < nodes.size(); i++)
        for (int v : nodes[i].inputs) c.at(v).push_back(int(i));
    return c;
}

namespace {

int arity(OpKind k) { return k == OpKind::Add ? 2 : 1; }

}  // namespace

void Graph::validate() const {
    auto fail = [&](const GraphNode &n, const std::string &what) {
        throw std::runtime_error("graph '" + name + "', node '" + n.name + "' (" + op_name(n.op) + "): " + what);
    };
    std::vector<bool> defined(values.size(), false);
    {
        std::unordered_set<std::string> names;
        for (const GraphValue &v : values)
            if (!names.insert(v.name).second)
                throw std::runtime_error("graph '" + name + "': two values are named '" + v.name + "'");
    }
    if (inputs.empty()) throw std::runtime_error("graph '" + name + "': no inputs");
    if (outputs.empty()) throw std::runtime_error("graph '" + name + "': no outputs");
    for (int i : inputs) {
        if (i < 0 || size_t(i) >= values.size()) throw std::runtime_error("graph '" + name + "': bad input id");
        const GraphValue &v = values[i];
        if (v.shape.size() != 4 && v.shape.size() != 2)
            throw std::runtime_error("graph '" + name + "', input '" + v.name +
                                     "': needs a shape of rank 4 (NHWC) or 2, has rank " +
                                     std::to_string(v.shape.size()));
        for (size_t d = 1; d < v.shape.size(); d++)
            if (v.shape[d] < 1)
                throw std::runtime_error("graph '" + name + "', input '" + v.name + "': shape " + shape_str(v.shape) +
                                         " has an empty or negative dimension");
        if (v.dtype != DType::f32 && v.dtype != DType::u8)
            throw std::runtime_error("graph '" + name + "', input '" + v.name + "': dtype " +
                                     dtype_name(v.dtype) + " not supported (f32 or u8)");
        if (v.dtype == DType::u8 && v.quant.empty())
            throw std::runtime_error("graph '" + name + "', input '" + v.name + "': u8 input without quantization parameters");
        defined[i] = true;
    }
    for (const GraphNode &n : nodes) {
        if (int(n.inputs.size()) != arity(n.op))
            fail(n, "expects " + std::to_string(arity(n.op)) + " input(s), has " + std::to_string(n.inputs.size()));
        for (int v : n.inputs) {
            if (v < 0 || size_t(v) >= values.size()) fail(n, "input id out of range");
            if (!defined[v]) fail(n, "input '" + values[v].name + "' is not computed before this node");
        }
        if (n.output < 0 || size_t(n.output) >= values.size()) fail(n, "output id out of range");
        if (defined[n.output]) fail(n, "output '" + values[n.output].name + "' is assigned twice");
        defined[n.output] = true;
        if (n.op == OpKind::Conv || n.op == OpKind::Dense) {
            const Tensor &w = n.weights;
            int want = n.op == OpKind::Conv ? 4 : 2;
            if (w.rank() != want) fail(n, "weights must have rank " + std::to_string(want) + ", have " + w.describe());
            for (int d = 0; d < w.rank(); d++)
                if (w.dim(d) < 1) fail(n, "weights " + w.describe() + " have an empty dimension");
            if (w.dtype() != DType::f32 && w.dtype() != DType::u8 && w.dtype() != DType::s8)
                fail(n, std::string("weights dtype ") + dtype_name(w.dtype()) + " not supported (f32, u8, s8)");
            if (w.dtype() != DType::f32 && w.quant.empty()) fail(n, "integer weights without scale/zero point");
            if (n.op == OpKind::Conv && (w.dim(2) != n.window.kernel_h || w.dim(3) != n.window.kernel_w))
                fail(n, "weights " + w.describe() + " disagree with kernel " + std::to_string(n.window.kernel_h) +
                            "x" + std::to_string(n.window.kernel_w));
            if (n.bias.rank() > 0) {
                if (n.bias.rank() != 1 || n.bias.dim(0) != w.dim(0))
                    fail(n, "bias " + n.bias.describe() + " must have one value per output channel (" +
                                std::to_string(w.dim(0)) + ")");
                if (n.bias.dtype() != DType::f32 && n.bias.dtype() != DType::s32)
                    fail(n, std::string("bias dtype ") + dtype_name(n.bias.dtype()) + " not supported (f32, s32)");
                if (n.bias.dtype() == DType::s32 && w.dtype() == DType::f32)
                    fail(n, "s32 bias needs quantized weights");
            }
        }
        if (n.op == OpKind::BatchNorm && (n.bn_scale.empty() || n.bn_scale.size() != n.bn_shift.size()))
            fail(n, "scale and shift must be given, one per channel");
        if (n.op == OpKind::Conv || n.op == OpKind::MaxPool) {
            const WindowAttrs &a = n.window;
            if (a.kernel_h < 1 || a.kernel_w < 1 || a.stride_h < 1 || a.stride_w < 1)
                fail(n, "kernel and stride must be >= 1");
            if (a.pad_top < 0 || a.pad_left < 0 || a.pad_bottom < 0 || a.pad_right < 0)
                fail(n, "pads must be >= 0");
            for (int x : {a.kernel_h, a.kernel_w, a.stride_h, a.stride_w, a.pad_top, a.pad_left, a.pad_bottom, a.pad_right})
                if (x > kMaxWindowAttr)
                    fail(n, "window attribute " + std::to_string(x) + " is over the limit of " + std::to_string(kMaxWindowAttr));
        }
    }
    for (int o : outputs) {
        if (o < 0 || size_t(o) >= values.size() || !defined[o])
            throw std::runtime_error("graph '" + name + "': output is never computed");
    }
}

}  // namespace qh
