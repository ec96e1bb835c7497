// Per-layer precision (HAWQ-V3's bit configuration): which Conv/Dense layers run int8, W4A8
// (s4 weights, u8 input) or W4A4 (s4 weights, 4-bit input). The IR carries it on each node
// (GraphNode::precision, graph.h); calibrate() then gives 4-bit ranges to the values that only
// w4a4 layers read (four_bit_values, model.h), and prepare() packs s4 weights and binds the s4 /
// u4 kernel families, storing 4-bit values packed where every kernel touching them can
// (passes.h choose_u4_storage). Mixed configurations need nothing else: a value between an int8
// and a w4a4 reader stays 8-bit, and the w4a4 layer runs as w4a8 on it (effective_precision).
//
// Bit-config file (--bits FILE): one "<layer name> <int8|w4a8|w4a4|fp32>" per line, '#' comments;
// "* <precision>" sets every Conv/Dense first. fp32 (a float island) may name any node, the 4-bit
// precisions a Conv or Dense. Unknown names are errors.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "graph.h"

namespace qh {

LayerPrecision parse_precision(const std::string &s);  // int8, w4a8, w4a4, fp32, auto; throws otherwise

struct BitConfig {
    LayerPrecision all = LayerPrecision::automatic;  // "*" line: every layer first
    std::vector<std::pair<std::string, LayerPrecision>> layers;  // in file order
};
BitConfig read_bit_config(const std::string &path);
std::string bit_config_text(const Graph &g);  // the graph's current configuration as a file
void apply_bit_config(Graph &g, const BitConfig &c);

// Conv and Dense nodes, in order (the layers a bit configuration names).
std::vector<int> quantizable_layers(const Graph &g);
// Every Conv/Dense at p, except (keep_edges) the first Conv and the last Dense, which stay int8
// as in HAWQ-V3, TVM's INT4 ResNet and the published 4-bit results.
void set_uniform_precision(Graph &g, LayerPrecision p, bool keep_edges = true);

// The precision a layer of a calibrated graph really runs at: w4a4 needs a 4-bit input value
// (GraphValue::qtype u4/s4); otherwise int8 weights stay int8 and 4-bit weights give w4a8.
// Graph inputs keep their 8 bits (four_bit_values): a w4a4 layer reading one (the stem, when the
// edges are not kept) runs at w4a8, and says so here and in the bit-config text.
LayerPrecision effective_precision(const Graph &g, const GraphNode &n);

}  // namespace qh
