#include "graph.h"

#include "op_def.h"

#include <algorithm>
#include <stdexcept>
#include <unordered_set>

namespace qh {

const char *precision_name(LayerPrecision p) {
    switch (p) {
    case LayerPrecision::automatic: return "auto";
    case LayerPrecision::int8: return "int8";
    case LayerPrecision::w4a8: return "w4a8";
    case LayerPrecision::w4a4: return "w4a4";
    case LayerPrecision::fp32: return "fp32";
    }
    return "?";
}

const char *op_name(OpKind k) {
    try {
        return op_def(k).name;
    } catch (const std::invalid_argument &) {
        return "?";  // not an OpKind (a corrupted node): the message that names it still goes out
    }
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

std::vector<int64_t> Graph::io_shape(int value) const {
    const auto &s = values.at(value).shape;
    if (io_layout == Layout::nchw && s.size() == 4) return nchw_shape(s);
    return s;
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
    // Graph inputs only DequantizeLinear nodes read may be integers of any of their types, with the node's
    // quantization instead of their own.
    std::vector<bool> only_dq(values.size(), true);
    for (const GraphNode &n : nodes)
        for (int v : n.inputs)
            if (v >= 0 && size_t(v) < values.size()) {
                only_dq[v] = only_dq[v] && n.op == OpKind::DequantizeLinear;
            }
    for (int i : inputs) {
        if (i < 0 || size_t(i) >= values.size()) throw std::runtime_error("graph '" + name + "': bad input id");
        const GraphValue &v = values[i];
        if (v.shape.empty() || v.shape.size() > 6)
            throw std::runtime_error("graph '" + name + "', input '" + v.name +
                                     "': needs a shape of rank 1 to 6 (4: NHWC), has rank " +
                                     std::to_string(v.shape.size()));
        for (size_t d = 1; d < v.shape.size(); d++)
            if (v.shape[d] < 1)
                throw std::runtime_error("graph '" + name + "', input '" + v.name + "': shape " + shape_str(v.shape) +
                                         " has an empty or negative dimension");
        if (v.dtype != DType::f32 && v.dtype != DType::u8 && !only_dq[i])
            throw std::runtime_error("graph '" + name + "', input '" + v.name + "': dtype " + dtype_name(v.dtype) +
                                     " not supported (f32 or u8; integers of other types only through "
                                     "DequantizeLinear)");
        if (v.dtype == DType::s32)
            throw std::runtime_error("graph '" + name + "', input '" + v.name + "': dtype s32 not supported");
        if (v.dtype == DType::u8 && v.quant.empty() && !only_dq[i])
            throw std::runtime_error("graph '" + name + "', input '" + v.name + "': u8 input without quantization parameters");
        defined[i] = true;
    }
    std::vector<int> producer(values.size(), -1);
    for (const GraphNode &n : nodes) {
        const OpDef &def = op_def(n.op);
        if (def.arity >= 0 ? int(n.inputs.size()) != def.arity : n.inputs.empty())
            fail(n, "expects " + std::to_string(def.arity) + " input(s), has " + std::to_string(n.inputs.size()));
        for (int v : n.inputs) {
            if (v < 0 || size_t(v) >= values.size()) fail(n, "input id out of range");
            if (!defined[v]) fail(n, "input '" + values[v].name + "' is not computed before this node");
        }
        if (n.output < 0 || size_t(n.output) >= values.size()) fail(n, "output id out of range");
        if (defined[n.output]) fail(n, "output '" + values[n.output].name + "' is assigned twice");
        defined[n.output] = true;
        const std::string what = def.check(n);
        if (!what.empty()) fail(n, what);
        producer[n.output] = int(&n - nodes.data());
        if (n.op == OpKind::DequantizeLinear) {  // its integers: a graph input or a QuantizeLinear's output
            const int x = n.inputs[0];
            const int p = producer[x];
            const DType t = p < 0 ? values[x].dtype : nodes[p].op == OpKind::QuantizeLinear ? nodes[p].q_type : DType::f32;
            if (t != n.q_type)
                fail(n, "input '" + values[x].name + "' must be " + dtype_name(n.q_type) +
                            " integers: a graph input of that type or a QuantizeLinear's output");
        }
    }
    for (const GraphNode &n : nodes)  // a QuantizeLinear's integers go to the caller or a DequantizeLinear
        if (n.op == OpKind::QuantizeLinear && !only_dq[n.output] &&
            std::find(outputs.begin(), outputs.end(), n.output) == outputs.end())
            fail(n, "its integers '" + values[n.output].name + "' must be a graph output or read by DequantizeLinear only");
    for (int o : outputs) {
        if (o < 0 || size_t(o) >= values.size() || !defined[o])
            throw std::runtime_error("graph '" + name + "': output is never computed");
    }
}

}  // namespace qh
