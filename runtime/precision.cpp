#include "precision.h"

#include <sstream>
#include <stdexcept>

#include "passes.h"
#include "resource_limits.h"

namespace qh {

LayerPrecision parse_precision(const std::string &s) {
    if (s == "int8") return LayerPrecision::int8;
    if (s == "w4a8") return LayerPrecision::w4a8;
    if (s == "w4a4") return LayerPrecision::w4a4;
    if (s == "fp32") return LayerPrecision::fp32;
    if (s == "auto") return LayerPrecision::automatic;
    throw std::invalid_argument("precision '" + printable(s) + "': expected int8, w4a8, w4a4, fp32 or auto");
}

BitConfig read_bit_config(const std::string &path) {
    std::istringstream f(read_regular_file(path, 16 << 20, "a bit configuration"));
    BitConfig c;
    std::string line;
    int no = 0;
    while (std::getline(f, line)) {
        no++;
        if (auto h = line.find('#'); h != std::string::npos) line.resize(h);
        std::istringstream is(line);
        std::string name, prec, extra;
        if (!(is >> name)) continue;
        const std::string where = "bit configuration '" + printable(path) + "', line " + std::to_string(no);
        if (!(is >> prec) || (is >> extra))
            throw std::invalid_argument(where + ": expected '<layer> <int8|w4a8|w4a4|fp32>'");
        LayerPrecision p;
        try {
            p = parse_precision(prec);
        } catch (const std::invalid_argument &e) {
            throw std::invalid_argument(where + ": " + e.what());
        }
        if (name == "*") c.all = p;
        else c.layers.push_back({name, p});
    }
    return c;
}

std::vector<int> quantizable_layers(const Graph &g) {
    std::vector<int> r;
    for (size_t i = 0; i < g.nodes.size(); i++)
        if (g.nodes[i].op == OpKind::Conv || g.nodes[i].op == OpKind::Dense) r.push_back(int(i));
    return r;
}

void apply_bit_config(Graph &g, const BitConfig &c) {
    const std::vector<int> layers = quantizable_layers(g);
    if (c.all != LayerPrecision::automatic)
        for (int i : layers) g.nodes[i].precision = c.all;
    for (const auto &[name, p] : c.layers) {
        bool found = false;
        const bool any_op = p == LayerPrecision::fp32 || p == LayerPrecision::int8;  // 4-bit: Conv / Dense only
        for (size_t i = 0; i < g.nodes.size(); i++) {
            GraphNode &n = g.nodes[i];
            if (n.name != name || !(any_op || n.op == OpKind::Conv || n.op == OpKind::Dense)) continue;
            n.precision = p;
            found = true;
        }
        if (!found)
            throw std::invalid_argument("bit configuration: model '" + printable(g.name) + "' has no " +
                                        (any_op ? "node '" : "Conv or Dense layer '") + printable(name) + "'");
    }
}

std::string bit_config_text(const Graph &g) {
    std::string s = "# layer precision (int8 | w4a8 | w4a4 | fp32)\n";
    for (int i : quantizable_layers(g))
        s += g.nodes[i].name + " " + precision_name(effective_precision(g, g.nodes[i])) + "\n";
    for (const GraphNode &n : g.nodes)
        if (n.precision == LayerPrecision::fp32 && n.op != OpKind::Conv && n.op != OpKind::Dense)
            s += n.name + " fp32\n";
    return s;
}

void set_uniform_precision(Graph &g, LayerPrecision p, bool keep_edges) {
    const std::vector<int> layers = quantizable_layers(g);
    int first_conv = -1, last_dense = -1;
    for (int i : layers) {
        if (g.nodes[i].op == OpKind::Conv && first_conv < 0) first_conv = i;
        if (g.nodes[i].op == OpKind::Dense) last_dense = i;
    }
    for (int i : layers)
        g.nodes[i].precision = keep_edges && (i == first_conv || i == last_dense) ? LayerPrecision::int8 : p;
}

LayerPrecision effective_precision(const Graph &g, const GraphNode &n) {
    if (n.precision == LayerPrecision::fp32) return LayerPrecision::fp32;
    if (n.op != OpKind::Conv && n.op != OpKind::Dense) return LayerPrecision::automatic;
    const bool w4 = packs_4bit(n);
    const GraphValue &x = g.values[n.inputs[0]];
    const bool a4 = !x.quant.empty() && is_4bit(x.qtype);
    if (!w4) return LayerPrecision::int8;  // (8-bit weights on a 4-bit input: int8 kernels, 4-bit range)
    return a4 ? LayerPrecision::w4a4 : LayerPrecision::w4a8;
}

}  // namespace qh
