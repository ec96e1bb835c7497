#include "passes.h"

#include <algorithm>
#include <functional>
#include <map>
#include <cmath>
#include <stdexcept>

#include "op_def.h"
#include "resource_limits.h"

namespace qh {

// ---------------------------------------------------------------------------------------------
// Helpers shared with the op definitions (program.h)

void node_error(const Graph &g, const GraphNode &n, const std::string &what) {
    throw std::runtime_error("model '" + printable(g.name) + "', node '" + printable(n.name) + "' (" + op_name(n.op) +
                             "): " + what);
}

bool same_quant(const QuantParams &a, const QuantParams &b) {
    return !a.empty() && !b.empty() && a.scale_at(0) == b.scale_at(0) && a.zp_at(0) == b.zp_at(0);
}

std::vector<bool> output_flags(const Graph &g) {
    std::vector<bool> f(g.values.size(), false);
    for (int o : g.outputs) f.at(o) = true;
    return f;
}

QuantParams u8_quant(const GraphValue &gv) {
    QuantParams q = gv.quant;
    if (gv.qtype == DType::s8 || gv.qtype == DType::s4)
        for (int32_t &z : q.zero_point) z += gv.qtype == DType::s8 ? 128 : 8;
    return q;
}

bool is_4bit(DType t) { return t == DType::u4 || t == DType::s4; }

// Every activation quantization is checked here once, where lowering first reads it: a scale
// that is not finite and positive, or a zero point outside u8 (after the s8 shift), has no
// meaning in the kernels' float -> integer steps.
const QuantParams &need_quant(const Program &p, const GraphNode &n, int id) {
    if (p.v[id].quant.empty())
        node_error(p.g, n, "value '" + p.v[id].name + "' has no quantization parameters (calibrate a float model "
                           "first, or give a QDQ/QOperator model)");
    const QuantParams &q = p.v[id].quant;
    for (float sc : q.scale)
        if (!(std::isfinite(sc) && sc > 0.f))
            node_error(p.g, n, "value '" + printable(p.v[id].name) + "' has scale " + std::to_string(sc) +
                                   " (must be finite and positive)");
    for (int32_t z : q.zero_point)
        if (z < 0 || z > p.v[id].qmax)
            node_error(p.g, n, "value '" + printable(p.v[id].name) + "' has zero point " + std::to_string(z) +
                                   (p.v[id].qmax == 15 ? " (u4 range 0..15)" : " (u8 range 0..255)"));
    return q;
}

int Program::add_internal(std::string name, std::vector<int64_t> shape, DType dt, QuantParams q) {
    ValueInfo vi;
    vi.name = std::move(name);
    vi.shape = std::move(shape);
    vi.dtype = dt;
    vi.quant = std::move(q);
    v.push_back(std::move(vi));
    return int(v.size()) - 1;
}

// ---------------------------------------------------------------------------------------------
// Removes the nodes flagged in `drop` (folded into others), keeping the order of the rest.
static void drop_nodes(Graph &g, const std::vector<bool> &drop) {
    std::vector<GraphNode> kept;
    for (size_t i = 0; i < g.nodes.size(); i++)
        if (!drop[i]) kept.push_back(std::move(g.nodes[i]));
    g.nodes = std::move(kept);
}

Graph fold_pad(const Graph &src) {
    Graph g = src;
    const auto cons = g.consumers();
    const std::vector<bool> is_output = output_flags(g);
    std::vector<bool> drop(g.nodes.size(), false);
    std::vector<int> reader(g.values.size(), -1);
    for (size_t i = 0; i < g.nodes.size(); i++) {
        const GraphNode &p = g.nodes[i];
        const int v = p.output;
        if (p.op != OpKind::Pad || p.pad_mode != GraphNode::PadMode::constant || p.pad_value != 0.f ||
            p.pad_begin.size() != 4 || cons[v].size() != 1 || is_output[v])
            continue;
        bool spatial_only = p.pad_begin[0] == 0 && p.pad_end[0] == 0 && p.pad_begin[3] == 0 && p.pad_end[3] == 0;
        for (int d : {1, 2}) spatial_only = spatial_only && p.pad_begin[size_t(d)] >= 0 && p.pad_end[size_t(d)] >= 0;
        const QuantParams &qi = g.values[p.inputs[0]].quant, &qo = g.values[v].quant;
        const bool same_quant = qo.empty() || (!qi.empty() && qi.scale == qo.scale && qi.zp_at(0) == qo.zp_at(0) &&
                                               g.values[v].qtype == g.values[p.inputs[0]].qtype);
        GraphNode &c = g.nodes[size_t(cons[v][0])];
        if (!spatial_only || !same_quant || c.op != OpKind::Conv || c.inputs[0] != v ||
            c.window.auto_pad != AutoPad::none)
            continue;
        WindowAttrs w = c.window;
        w.pad_top += int(p.pad_begin[1]);
        w.pad_bottom += int(p.pad_end[1]);
        w.pad_left += int(p.pad_begin[2]);
        w.pad_right += int(p.pad_end[2]);
        if (std::max({w.pad_top, w.pad_bottom, w.pad_left, w.pad_right}) > kMaxWindowAttr) continue;
        c.window = w;
        c.inputs[0] = p.inputs[0];
        drop[i] = true;
    }
    drop_nodes(g, drop);
    return g;
}

// fold_batchnorm, infer_shapes (declared in model.h)

Graph fold_batchnorm(const Graph &src) {
    Graph g = src;
    auto cons = g.consumers();
    std::vector<bool> drop(g.nodes.size(), false);
    std::vector<int> producer(g.values.size(), -1);
    for (size_t i = 0; i < g.nodes.size(); i++) producer[g.nodes[i].output] = int(i);
    const std::vector<bool> is_output = output_flags(g);
    for (size_t i = 0; i < g.nodes.size(); i++) {
        GraphNode &bn = g.nodes[i];
        if (bn.op != OpKind::BatchNorm) continue;
        int v = bn.inputs[0], p = producer[v];
        if (p < 0 || g.nodes[p].op != OpKind::Conv || cons[v].size() != 1) continue;
        if (is_output[v]) continue;
        GraphNode &conv = g.nodes[p];
        if (conv.weights.dtype() != DType::f32 || conv.bias.dtype() == DType::s32) continue;
        const int64_t oc = conv.weights.dim(0);
        if (int64_t(bn.bn_scale.size()) != oc)
            node_error(g, bn, std::to_string(bn.bn_scale.size()) + " channels after a conv with " + std::to_string(oc));
        // w'[o] = w[o] * scale[o], b'[o] = b[o] * scale[o] + shift[o]
        Tensor w(DType::f32, conv.weights.shape());
        const int64_t per = conv.weights.numel() / oc;
        for (int64_t o = 0; o < oc; o++)
            for (int64_t k = 0; k < per; k++)
                w.data<float>()[o * per + k] = conv.weights.data<float>()[o * per + k] * bn.bn_scale[o];
        Tensor b(DType::f32, {oc});
        for (int64_t o = 0; o < oc; o++) {
            float b0 = conv.bias.rank() > 0 ? conv.bias.data<float>()[o] : 0.f;
            b.data<float>()[o] = b0 * bn.bn_scale[o] + bn.bn_shift[o];
        }
        conv.weights = w;
        conv.bias = b;
        conv.output = bn.output;
        drop[i] = true;
    }
    drop_nodes(g, drop);
    return g;
}

std::vector<std::vector<int64_t>> infer_shapes(Graph &g, int batch) {
    if (batch < 1) throw std::runtime_error("model '" + g.name + "': batch must be >= 1");
    std::vector<std::vector<int64_t>> s(g.values.size());
    // The batch is the first input's dim 0; another input takes it where it declares the same dim
    // 0 as the first (else it keeps its own: an operand broadcast against the batch).
    const int64_t declared = g.inputs.empty() || g.values[g.inputs[0]].shape.empty() ? 0 : g.values[g.inputs[0]].shape[0];
    for (int i : g.inputs) {
        s[i] = g.values[i].shape;
        if (i == g.inputs[0] || s[i][0] == declared) s[i][0] = batch;
        checked_numel(s[i], "model '" + printable(g.name) + "', input '" + printable(g.values[i].name) + "' at batch " +
                                std::to_string(batch));
    }
    ShapeInputs in;
    for (GraphNode &n : g.nodes) {
        in.shapes.clear();
        in.names.clear();
        for (int x : n.inputs) {
            in.shapes.push_back(s[x]);
            in.names.push_back(g.values[x].name);
        }
        if (n.window.auto_pad != AutoPad::none && !in.shapes.empty() && in.shapes[0].size() == 4)
            n.window.resolve_auto_pad(in.shapes[0][1], in.shapes[0][2]);  // NHWC
        std::vector<int64_t> y;
        try {
            y = output_shape(n, in);
            // every value's size is checked once here, before anything is allocated for it
            checked_numel(y, "value '" + printable(g.values[n.output].name) + "'");
        } catch (const ShapeError &e) {
            node_error(g, n, e.what());
        } catch (const std::length_error &e) {
            node_error(g, n, e.what());
        }
        for (int64_t d : y)
            if (d < 1) node_error(g, n, "output " + shape_str(y) + " has an empty dimension (empty tensors are not supported)");
        s[n.output] = y;
    }
    return s;
}

// ---------------------------------------------------------------------------------------------
// make_program, fuse, assign_quantization, lower

Program make_program(const Graph &g, const std::vector<std::vector<int64_t>> &shapes, const PrepareOptions &opt) {
    Program p;
    p.g = g;
    p.opt = opt;
    for (size_t i = 0; i < g.values.size(); i++) {
        ValueInfo vi;
        vi.name = g.values[i].name;
        vi.shape = shapes.at(i);
        vi.dtype = DType::f32;
        vi.quant = opt.precision == Precision::int8 ? g.values[i].quant : QuantParams{};
        if (!vi.quant.empty() && is_4bit(g.values[i].qtype)) vi.qmax = 15;
        p.v.push_back(vi);
    }
    for (int id : g.inputs) p.v[id].external = true;
    for (int id : g.outputs) p.v[id].external = true;
    p.in_ids = g.inputs;
    p.out_ids = g.outputs;
    return p;
}

std::vector<FusedGroup> fuse(const Graph &g) {
    const auto cons = g.consumers();
    const std::vector<bool> is_output = output_flags(g);
    std::vector<int> producer(g.values.size(), -1);
    for (size_t i = 0; i < g.nodes.size(); i++) producer[g.nodes[i].output] = int(i);
    std::vector<bool> fused(g.nodes.size(), false);
    // The single consumer of `id` if it is a Relu or Clip that can be fused exactly, else -1.
    auto act_after = [&](int id) {
        if (cons[id].size() != 1 || is_output[id]) return -1;
        int c = cons[id][0];
        if (g.nodes[c].op != OpKind::Relu && g.nodes[c].op != OpKind::Clip) return -1;
        if (g.nodes[c].precision == LayerPrecision::fp32) return -1;  // a float island stays a step
        const QuantParams a = u8_quant(g.values[id]), b = u8_quant(g.values[g.nodes[c].output]);
        return a.empty() || same_quant(a, b) ? c : -1;
    };
    std::vector<FusedGroup> groups;
    for (size_t i = 0; i < g.nodes.size(); i++) {
        if (fused[i]) continue;
        const GraphNode &n = g.nodes[i];
        FusedGroup gr;
        gr.node = int(i);
        gr.output = n.output;
        if (n.precision == LayerPrecision::fp32) {  // a float island: a group of its own
            groups.push_back(gr);
            continue;
        }
        if (n.op == OpKind::Conv) {  // Conv -> Add (other operand already computed)
            const int out = n.output;
            // (conv2d_add requantizes the conv's own result to 8 bits: a 4-bit one stays a step)
            if (cons[out].size() == 1 && !is_output[out] && g.nodes[cons[out][0]].op == OpKind::Add &&
                g.nodes[cons[out][0]].precision != LayerPrecision::fp32 &&
                !(is_4bit(g.values[out].qtype) && !g.values[out].quant.empty())) {
                const GraphNode &a = g.nodes[cons[out][0]];
                int other = a.inputs[0] == out ? a.inputs[1] : a.inputs[0];
                if (other != out && producer[other] < int(i)) {
                    gr.add = cons[out][0];
                    gr.residual = other;
                    gr.output = a.output;
                    fused[gr.add] = true;
                }
            }
        }
        if (n.op == OpKind::Conv || n.op == OpKind::Dense || n.op == OpKind::Add || n.op == OpKind::BatchNorm) {
            gr.act = act_after(gr.output);
            if (gr.act >= 0) {
                fused[gr.act] = true;
                gr.output = g.nodes[gr.act].output;
            }
        }
        groups.push_back(gr);
    }
    return groups;
}

// Whether node n's weights will be packed as s4 (runtime/pack.h: symmetric nibbles), as
// pack_node decides: float weights of a w4a8/w4a4 layer, or 4-bit weights whose w - z_w fit.
bool packs_4bit(const GraphNode &n) {
    if (n.op != OpKind::Conv && n.op != OpKind::Dense) return false;
    if (n.op == OpKind::Conv && (n.group > 1 || n.window.dilation_h > 1 || n.window.dilation_w > 1))
        return false;  // conv2d_grouped has 8-bit weights only
    const Tensor &w = n.weights;
    if (w.dtype() == DType::f32)
        return n.precision == LayerPrecision::w4a8 || n.precision == LayerPrecision::w4a4;
    const bool ask = is_4bit(w.dtype()) || n.precision == LayerPrecision::w4a8 || n.precision == LayerPrecision::w4a4;
    if (!ask || w.dtype() == DType::s32 || w.dtype() == DType::f32) return false;
    const int64_t oc = w.dim(0), per = w.numel() / oc;
    for (int64_t o = 0; o < oc; o++) {
        const int32_t z = w.quant.zp_at(size_t(w.quant.zero_point.size() > 1 ? o : 0));
        for (int64_t k = 0; k < per; k++) {
            const int32_t v = weight_element(w.dtype(), w.raw(), o * per + k) - z;
            if (v < -8 || v > 7) return false;
        }
    }
    return true;
}

// A 4-bit value is stored packed (u4: two channels per byte) where a kernel family exists for
// its producer and every consumer: produced by a Conv group with s4 weights, read only as the
// input of Conv groups with s4 weights or as the residual of a conv2d_add with s4 weights (its
// families take either storage for the residual, independently of the output's); an even
// channel count (whole-byte pixels); not a graph input
// or output. Everything else keeps u8 storage with the 4-bit range [0, 15]: the same values, so
// the choice never changes a result, only bytes.
void choose_u4_storage(Program &p) {
    if (!p.opt.pack_4bit) return;
    const Graph &g = p.g;
    auto &v = p.v;
    std::vector<int> producer(v.size(), -1);  // group index
    for (size_t k = 0; k < p.groups.size(); k++) producer[p.groups[k].output] = int(k);
    struct Use {
        int group;
        bool residual;
    };
    std::vector<std::vector<Use>> uses(v.size());
    for (size_t k = 0; k < p.groups.size(); k++) {
        const FusedGroup &gr = p.groups[k];
        for (int in : g.nodes[gr.node].inputs) uses[in].push_back({int(k), false});
        if (gr.add >= 0) uses[gr.residual].push_back({int(k), true});
    }
    auto conv4 = [&](int k) {
        const GraphNode &n = g.nodes[p.groups[k].node];
        return n.op == OpKind::Conv && packs_4bit(n);
    };
    std::vector<bool> u4(v.size(), false);
    for (size_t id = 0; id < g.values.size(); id++) {
        if (v[id].qmax != 15 || v[id].external || v[id].dtype != DType::u8 || v[id].alias >= 0) continue;
        if (v[id].shape.size() != 4 || v[id].shape[3] % 2 != 0) continue;
        if (producer[id] < 0 || !conv4(producer[id]) || uses[id].empty()) continue;
        bool ok = true;
        for (const Use &u : uses[id]) ok = ok && conv4(u.group);
        u4[id] = ok;
    }
    for (size_t id = 0; id < u4.size(); id++)
        if (u4[id]) v[id].dtype = DType::u4;
}

void assign_quantization(Program &p) {
    const Graph &g = p.g;
    auto &v = p.v;
    // s8 activations (ONNX Runtime's default QInt8) are stored as u8 with zero point + 128: the
    // same real values, and QuantizeLinear's round / saturate commute with the shift, so a float
    // graph input's quantize step and a float output's dequantize step stay exact. Only integers
    // that cross the API (a graph input or output declared as an integer tensor) cannot shift.
    for (size_t id = 0; id < g.values.size(); id++) {
        if ((g.values[id].qtype != DType::s8 && g.values[id].qtype != DType::s4) || v[id].quant.empty()) continue;
        if (v[id].quant.zero_point.size() > 1 || (v[id].external && g.values[id].dtype != DType::f32))
            throw std::runtime_error("model '" + g.name + "', value '" + v[id].name + "': " +
                                     dtype_name(g.values[id].qtype) +
                                     " quantization is supported per tensor, on values the caller reads or "
                                     "writes as float");
        v[id].quant = u8_quant(g.values[id]);
    }
    // Graph inputs: u8 as given, or f32 written by the caller into an external tensor and quantized.
    for (size_t k = 0; k < g.inputs.size(); k++) {
        int id = g.inputs[k];
        if (g.values[id].dtype == DType::u8) {
            v[id].external = true;
            v[id].dtype = DType::u8;
            p.in_ids[k] = id;
            continue;
        }
        need_quant(p, GraphNode{OpKind::Relu, "input " + v[id].name}, id);
        int ext = p.add_internal(v[id].name + ":f32", v[id].shape, DType::f32);
        v[ext].external = true;
        p.in_ids[k] = ext;
        v[id].dtype = DType::u8;
        p.quantize_in.push_back({ext, id});
    }
    // Float islands (LayerPrecision::fp32): the output is f32, or u8 (quantized from an f32
    // intermediate at lowering) where a quantized group reads it or its quantization is given.
    std::vector<bool> island(g.nodes.size(), false);
    for (const FusedGroup &gr : p.groups) island[gr.node] = g.nodes[gr.node].precision == LayerPrecision::fp32;
    const auto cons = g.consumers();
    for (FusedGroup &gr : p.groups) {
        if (!island[gr.node]) {
            op_def(g.nodes[gr.node].op).quantize(p, gr);
            continue;
        }
        const int out = gr.output;
        bool quantized_reader = false;
        for (int c : cons[out]) quantized_reader = quantized_reader || !island[c];
        v[out].dtype = quantized_reader && !v[out].quant.empty() ? DType::u8 : DType::f32;
        if (quantized_reader && v[out].quant.empty())
            node_error(g, g.nodes[gr.node], "float island output '" + printable(v[out].name) +
                                                "' is read by quantized layers but has no quantization (calibrate)");
    }
    choose_u4_storage(p);
    // Graph outputs are f32 for the caller: the quantized ones are dequantized into an external
    // tensor (unless the graph declares them u8).
    for (size_t k = 0; k < g.outputs.size(); k++) {
        int id = g.outputs[k];
        if (v[id].dtype == DType::f32 || g.values[id].dtype == v[id].dtype) {
            p.out_ids[k] = id;
            continue;
        }
        v[id].external = false;
        int ext = p.add_internal(v[id].name + ":f32", v[id].shape, DType::f32);
        v[ext].external = true;
        p.out_ids[k] = ext;
        p.dequantize_out.push_back({id, ext});
    }
}

void lower(Program &p) {
    if (p.opt.precision == Precision::fp32) {
        for (const GraphNode &n : p.g.nodes) op_def(n.op).lower_fp32(p, n);
        return;
    }
    // A quantize / dequantize step from value `from` to value `to`, named after `named`.
    using Bind = std::function<BoundOp(const Tensor &, Tensor &)>;
    auto convert = [&p](const char *op, int from, int to, int named, Bind bind) {
        Step s;
        s.info.name = s.info.layer = p.v[named].name;
        s.info.op = op;
        s.reads = {from};
        s.writes = {to};
        s.bind = [from, to, bind](Exec &e) { return bind(e.T(from), e.T(to)); };
        p.steps.push_back(std::move(s));
    };
    for (const auto &q : p.quantize_in) {  // saturating to a 4-bit input's range where it is one
        const int qmax = p.v[q.second].qmax;
        convert("quantize", q.first, q.second, q.second,
                [qmax](const Tensor &x, Tensor &y) { return bind_quantize(x, y, qmax); });
    }
    // f32 versions of quantized values that float islands read: the graph input's own f32 tensor,
    // else a dequantize step (named after the value) the first time an island needs it.
    std::map<int, int> f32_of;
    for (const auto &q : p.quantize_in) f32_of[q.second] = q.first;
    for (const FusedGroup &gr : p.groups) {
        const GraphNode &n = p.g.nodes[gr.node];
        if (n.precision != LayerPrecision::fp32) {
            op_def(n.op).lower_int8(p, gr);
            continue;
        }
        GraphNode f = n;  // the island on f32 values
        for (int &in : f.inputs) {
            if (p.v[in].dtype == DType::f32) continue;
            auto it = f32_of.find(in);
            if (it == f32_of.end()) {
                const int t = p.add_internal(p.v[in].name + ":f32", p.v[in].shape, DType::f32);
                convert("dequantize", in, t, in, bind_dequantize);
                it = f32_of.emplace(in, t).first;
            }
            in = it->second;
        }
        const int out = n.output;
        if (p.v[out].dtype != DType::f32) f.output = p.add_internal(p.v[out].name + ":f32", p.v[out].shape, DType::f32);
        op_def(n.op).lower_fp32(p, f);
        if (f.output != out) {
            const int qmax = p.v[out].qmax, from = f.output;
            convert("quantize", from, out, out, [qmax](const Tensor &x, Tensor &y) { return bind_quantize(x, y, qmax); });
        }
    }
    for (const auto &d : p.dequantize_out) convert("dequantize", d.first, d.second, d.first, bind_dequantize);
}

void add_layout_steps(Program &p) {
    p.in_nchw.assign(p.in_ids.size(), false);
    p.out_nchw.assign(p.out_ids.size(), false);
    if (p.g.io_layout != Layout::nchw) return;
    // For external value ids[k] (rank 4): an external NCHW tensor and the step converting between
    // the two, or (no kernel: 4-bit) the host flag.
    auto edge = [&p](std::vector<int> &ids, std::vector<bool> &host, bool input, std::vector<Step> &steps) {
        for (size_t k = 0; k < ids.size(); k++) {
            const int id = ids[k];
            const ValueInfo &v = p.v[id];
            if (v.shape.size() != 4) continue;
            if (v.dtype != DType::f32 && v.dtype != DType::u8 && v.dtype != DType::s8) {
                host[k] = true;
                continue;
            }
            const int ext = p.add_internal(v.name + ":nchw", nchw_shape(v.shape), v.dtype, v.quant);
            p.v[ext].external = true;
            p.v[id].external = false;
            Step s;
            s.info.name = s.info.layer = p.v[id].name;
            s.info.op = input ? "nchw_to_nhwc" : "nhwc_to_nchw";
            s.reads = {input ? ext : id};
            s.writes = {input ? id : ext};
            s.bind = [ext, id, input](Exec &e) {
                return input ? bind_change_layout(e.T(ext), e.T(id), true) : bind_change_layout(e.T(id), e.T(ext), false);
            };
            steps.push_back(std::move(s));
            ids[k] = ext;
        }
    };
    std::vector<Step> first, last;
    edge(p.in_ids, p.in_nchw, true, first);
    edge(p.out_ids, p.out_nchw, false, last);
    p.steps.insert(p.steps.begin(), std::make_move_iterator(first.begin()), std::make_move_iterator(first.end()));
    p.steps.insert(p.steps.end(), std::make_move_iterator(last.begin()), std::make_move_iterator(last.end()));
}

// ---------------------------------------------------------------------------------------------
// Memory planning: every non-external root value gets an arena slot alive from the step that
// first writes it to the step that last reads it; slots are placed largest first at the lowest
// offset that overlaps no live slot (greedy by size, as TFLite's arena planner does). Only slots
// alive at some step of the new slot's interval are compared (found through per-step lists), so
// a chain of n layers plans in O(n log n), not O(n^2). keep_all_values: every slot is alive
// throughout, so slots are simply laid out one after another. Offsets only: each context
// allocates its own arena of arena_size bytes.
void plan_memory(Program &p) {
    auto &v = p.v;
    for (auto &vi : v) vi.first = vi.last = -1;
    for (size_t si = 0; si < p.steps.size(); si++) {
        for (int w : p.steps[si].writes) {
            int r = p.root(w);
            if (v[r].first < 0) v[r].first = int(si);
            v[r].last = std::max(v[r].last, int(si));
        }
        for (int rd : p.steps[si].reads) v[p.root(rd)].last = std::max(v[p.root(rd)].last, int(si));
    }
    const size_t kAlign = 64;
    std::vector<int> order;
    for (size_t i = 0; i < v.size(); i++)
        if (v[i].alias < 0 && !v[i].external && v[i].first >= 0) order.push_back(int(i));
    std::vector<size_t> bytes(v.size(), 0);
    for (int i : order) {
        const int64_t n = checked_numel(v[i].shape, "model '" + p.g.name + "', value '" + printable(v[i].name) + "'");
        bytes[i] = (dtype_storage_bytes(v[i].dtype, n) + kAlign - 1) / kAlign * kAlign;
    }
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return bytes[a] > bytes[b]; });
    p.arena_size = 0;
    if (p.opt.keep_all_values) {
        for (int i : order) {
            v[i].offset = p.arena_size;
            p.arena_size = size_t(checked_add(int64_t(p.arena_size), int64_t(bytes[i]), "model '" + p.g.name + "': arena"));
        }
        return;
    }
    std::vector<std::vector<int>> live_at(p.steps.size());  // placed slots alive at each step
    std::vector<int> seen(v.size(), -1);
    std::vector<std::pair<size_t, size_t>> busy;
    for (int i : order) {
        busy.clear();
        for (int st = v[i].first; st <= v[i].last; st++)
            for (int j : live_at[st])
                if (seen[j] != i) {
                    seen[j] = i;
                    busy.push_back({v[j].offset, bytes[j]});
                }
        std::sort(busy.begin(), busy.end());
        size_t off = 0;
        for (auto [o, sz] : busy) {
            if (off + bytes[i] <= o) break;
            off = std::max(off, o + sz);
        }
        v[i].offset = off;
        p.arena_size = std::max(p.arena_size, off + bytes[i]);
        for (int st = v[i].first; st <= v[i].last; st++) live_at[st].push_back(i);
    }
}

}  // namespace qh
