// The ONNX importer's internals, shared by its translation units (not installed):
// onnx_import.cpp (the pass over the graph: inputs, nodes, outputs), onnx_import_ops.cpp (one
// method per ONNX op), onnx_tensor.cpp (TensorProto decoding, file reading). See onnx_import.cpp
// for how names are classified.
#pragma once
#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "graph.h"
#include "onnx_import.h"
#include "onnx_tensor.h"
#include "op_def.h"
#include "resource_limits.h"

namespace qh::onnx_detail {

using TP = onnx::TensorProto;

using qh::onnx_type_name;  // onnx_tensor.h
// A regular file of at most 2 GiB (protobuf's limit), whole.
std::string read_file(const std::string &path);

inline bool is_std_domain(const std::string &d) { return d.empty() || d == "ai.onnx"; }

// Element i of an integer tensor (u8, s8, s32, or u4 / s4 packed two per byte).
inline int32_t int_at(const Tensor &t, int64_t i) {
    const uint8_t *b = static_cast<const uint8_t *>(t.raw());
    switch (t.dtype()) {
    case DType::s8: return int8_t(b[i]);
    case DType::s32: return static_cast<const int32_t *>(t.raw())[i];
    case DType::u4: return (b[i / 2] >> (4 * (i & 1))) & 15;
    case DType::s4: return int32_t(int8_t(uint8_t(b[i / 2] >> (4 * (i & 1))) << 4) >> 4);
    default: return b[i];
    }
}

// {K, N} -> {N, K} (any dtype, 4-bit ones repacked); per-axis quant along N (axis 1) becomes axis 0.
inline Tensor transpose_kn(const Tensor &s) {
    const int64_t K = s.dim(0), N = s.dim(1);
    Tensor t(s.dtype(), {N, K}, s.quant);
    if (dtype_bits(s.dtype()) == 4) {
        uint8_t *dst = static_cast<uint8_t *>(t.raw());  // zero-filled
        for (int64_t k = 0; k < K; k++)
            for (int64_t j = 0; j < N; j++) {
                const int64_t o = j * K + k;
                dst[o / 2] |= uint8_t((int_at(s, k * N + j) & 15) << (4 * (o & 1)));
            }
    } else {
        const size_t e = size_t(dtype_bits(s.dtype()) / 8);
        const char *src = static_cast<const char *>(s.raw());
        char *dst = static_cast<char *>(t.raw());
        for (int64_t k = 0; k < K; k++)
            for (int64_t j = 0; j < N; j++) std::memcpy(dst + (j * K + k) * e, src + (k * N + j) * e, e);
    }
    if (t.quant.axis >= 0) t.quant.axis = 1 - t.quant.axis;
    return t;
}

inline bool is_4bit(DType t) { return t == DType::u4 || t == DType::s4; }

class Importer {
public:
    Importer(const onnx::ModelProto &m, std::string file, const ImportOptions &opt)
        : m_(m), file_(std::move(file)), opt_(opt) {}
    Graph run();

private:
    struct Act {
        int v = -1;
        DType repr = DType::f32;  // f32: the real value; u8/s8: its quantized integers
    };
    struct QConst {  // DequantizeLinear of a constant
        const onnx::NodeProto *node = nullptr;
        std::string data, scale, zp;
    };
    struct Weights {
        Tensor w;      // {OC, IC, KH, KW} or {OC, K}
        bool quantized = false;
    };

    const onnx::ModelProto &m_;
    std::string file_;
    const ImportOptions &opt_;
    Graph g_;
    std::vector<std::vector<int64_t>> shape_;  // per IR value, NHWC / {N,K} (checks only)
    std::map<std::string, const TP *> consts_;
    std::map<std::string, Tensor> decoded_;
    std::map<std::string, QConst> qconsts_;
    std::map<std::string, Act> acts_;
    std::map<std::string, std::vector<int>> readers_;
    std::set<std::string> graph_outputs_;
    std::map<std::string, int> dense_no_bias_;  // MatMul output name -> IR node index
    std::map<int, std::string> rename_;          // IR value -> final name
    std::set<int> input_values_;
    // Graph inputs that no node has read yet; the first read decides: as data, an IR input
    // (add_graph_input); where only a constant is supported, a constant if a value is given
    // (fold_input), else an error. Those still unread at the end become IR inputs.
    std::map<std::string, int> pending_;  // name -> index in graph().input()
    std::map<std::string, TP> folded_;    // the given values of inputs that became constants
    std::map<int, int> input_order_;      // IR value -> index in graph().input()
    std::set<int> real_q_;                // outputs of QuantizeLinear nodes (not folded)
    const onnx::NodeProto *node_ = nullptr;  // the node being imported
    int node_index_ = 0;

    // ---- errors ----
    [[noreturn]] void fail(const std::string &msg) const {
        throw std::runtime_error("onnx import '" + file_ + "': " + msg);
    }
    std::string node_desc() const {
        const onnx::NodeProto &n = *node_;
        std::string s = n.name().empty() ? "node #" + std::to_string(node_index_) : "node '" + n.name() + "'";
        s += " (" + (is_std_domain(n.domain()) ? "" : n.domain() + ":") + n.op_type() + ")";
        if (n.name().empty() && n.output_size() > 0) s += " -> '" + n.output(0) + "'";
        return s;
    }
    [[noreturn]] void nfail(const std::string &msg) const { fail(node_desc() + ": " + msg); }

    // ---- attributes ----
    void allow_attrs(std::initializer_list<const char *> names) const {
        for (const auto &a : node_->attribute()) {
            bool ok = false;
            for (const char *n : names) ok = ok || a.name() == n;
            if (!ok) {
                std::string known;
                for (const char *n : names) known += std::string(known.empty() ? "" : ", ") + n;
                nfail("attribute '" + a.name() + "' not supported" +
                      (known.empty() ? " (this op takes none)" : " (supported: " + known + ")"));
            }
        }
    }
    const onnx::AttributeProto *attr(const char *name) const {
        for (const auto &a : node_->attribute())
            if (a.name() == name) return &a;
        return nullptr;
    }
    int64_t attr_int(const char *name, int64_t dflt) const {
        const auto *a = attr(name);
        if (!a) return dflt;
        if (a->type() != onnx::AttributeProto::INT) nfail(std::string("attribute '") + name + "' must be an int");
        return a->i();
    }
    float attr_float(const char *name, float dflt) const {
        const auto *a = attr(name);
        if (!a) return dflt;
        if (a->type() != onnx::AttributeProto::FLOAT) nfail(std::string("attribute '") + name + "' must be a float");
        return a->f();
    }
    std::string attr_string(const char *name, const std::string &dflt) const {
        const auto *a = attr(name);
        if (!a) return dflt;
        if (a->type() != onnx::AttributeProto::STRING) nfail(std::string("attribute '") + name + "' must be a string");
        return a->s();
    }
    std::vector<int64_t> attr_ints(const char *name, std::vector<int64_t> dflt) const {
        const auto *a = attr(name);
        if (!a) return dflt;
        if (a->type() != onnx::AttributeProto::INTS) nfail(std::string("attribute '") + name + "' must be a list of ints");
        return {a->ints().begin(), a->ints().end()};
    }

    // ---- inputs ----
    bool has_in(int i) const { return i < node_->input_size() && !node_->input(i).empty(); }
    const std::string &in_name(int i) const {
        if (!has_in(i)) nfail("input " + std::to_string(i) + " is missing");
        return node_->input(i);
    }
    void check_arity(int min_in, int max_in) const {
        if (node_->input_size() < min_in || node_->input_size() > max_in)
            nfail("has " + std::to_string(node_->input_size()) + " inputs, expects " +
                  (min_in == max_in ? std::to_string(min_in)
                                    : std::to_string(min_in) + " to " + std::to_string(max_in)));
        if (node_->output_size() < 1 || node_->output(0).empty()) nfail("has no output");
    }
    // Outputs beyond the first must be absent or unused (mask, indices, running stats).
    void only_first_output() const {
        for (int i = 1; i < node_->output_size(); i++) {
            const std::string &o = node_->output(i);
            if (!o.empty() && (readers_.count(o) || graph_outputs_.count(o)))
                nfail("output " + std::to_string(i) + " ('" + o + "') is used; only the first output is supported");
        }
    }
    [[noreturn]] void undefined(const std::string &name, const std::string &what) const {
        if (dyn_q_.count(name) || dyn_scale_.count(name) || dyn_zp_.count(name) || dyn_prod_.count(name))
            nfail(what + " '" + name + "' comes from DynamicQuantizeLinear; its outputs are supported only as "
                  "quantize_dynamic writes them: x_q and its zero point into ConvInteger / MatMulInteger, its scale "
                  "(times the weight scale) into the Mul after their Cast");
        nfail(what + " '" + name + "' is not defined (no initializer, graph input or earlier node produces it)");
    }
    const Tensor &decode(const std::string &n) {
        auto d = decoded_.find(n);
        if (d != decoded_.end()) return d->second;
        try {
            return decoded_[n] = tensor_from_proto(*consts_.at(n), "constant '" + n + "'");
        } catch (const std::runtime_error &e) {
            fail(e.what());
        }
    }
    // Is `n` a constant? A graph input with a given value that nothing has read yet becomes one
    // here: every caller asks this where only a constant is supported.
    bool is_constant(const std::string &n, const std::string &what) {
        if (consts_.count(n)) return true;
        if (!pending_.count(n) || !opt_.input_values.count(n)) return false;
        fold_input(n, what);
        return true;
    }
    void fold_input(const std::string &n, const std::string &what);
    // Why the activation `n` is not a constant (for errors).
    std::string not_constant(const std::string &n) const {
        if (pending_.count(n)) return "is a graph input with no given value (give one to fold it in: ImportOptions::input_values, qhalide-run --input)";
        auto a = acts_.find(n);
        if (a == acts_.end() || !input_values_.count(a->second.v) || g_.values[a->second.v].name != n)
            return "is computed by the graph";
        return opt_.input_values.count(n)
                   ? "is a graph input that an earlier node reads as data (a graph input cannot be both)"
                   : "is a graph input with no given value (give one to fold it in: ImportOptions::input_values, "
                     "qhalide-run --input)";
    }
    void add_graph_input(int index);
    const Tensor &constant(int i, const std::string &what) {
        const std::string &n = in_name(i);
        is_constant(n, what);
        auto c = consts_.find(n);
        if (c == consts_.end()) {
            if (acts_.count(n) || pending_.count(n))
                nfail(what + " '" + n + "' must be a constant (initializer), it " + not_constant(n));
            if (qconsts_.count(n)) nfail(what + " '" + n + "' is a DequantizeLinear output; a plain float constant is expected here");
            undefined(n, what);
        }
        return decode(n);
    }
    // QLinearConv's B / QGemm's C: an int32 constant, one value per output channel.
    const Tensor &int32_bias(int i, int64_t oc, const std::string &what) {
        const Tensor &b = constant(i, what);
        if (b.dtype() != DType::s32 || b.rank() != 1 || b.dim(0) != oc)
            nfail(what + " '" + in_name(i) + "' is " + b.describe() + ", expected int32 with " + std::to_string(oc) + " values");
        return b;
    }
    float const_scale(int i, const std::string &what) {
        const Tensor &t = constant(i, what);
        if (t.dtype() != DType::f32 || t.numel() != 1)
            nfail(what + " '" + in_name(i) + "' must be a single float, is " + t.describe());
        float s = t.data<float>()[0];
        if (!(s > 0.f) || !std::isfinite(s)) nfail(what + " '" + in_name(i) + "' must be a positive finite scale, is " + std::to_string(s));
        return s;
    }
    // Optional activation zero point (u8 default 0; int4 / uint4 only where `four_bit`: Q/DQ);
    // returns the zero point, sets its type.
    int32_t const_zp(int i, const std::string &what, DType &type, bool four_bit = false) {
        type = DType::u8;
        if (!has_in(i)) return 0;
        const Tensor &t = constant(i, what);
        const bool ok = t.dtype() == DType::u8 || t.dtype() == DType::s8 || (four_bit && is_4bit(t.dtype()));
        if (!ok || t.numel() != 1)
            nfail(what + " '" + in_name(i) + "' must be a single " +
                  (four_bit ? "uint8, int8, uint4 or int4" : "uint8 or int8") + " value, is " + t.describe());
        type = t.dtype();
        return int_at(t, 0);
    }
    // Activation quantization (per tensor); `type` (u8/s8, or u4/s4 where `four_bit`) becomes the
    // value's qtype.
    QuantParams act_quant(int scale_in, int zp_in, DType &type, bool four_bit = false) {
        float s = const_scale(scale_in, "scale");
        int32_t zp = const_zp(zp_in, "zero point", type, four_bit);
        return QuantParams::per_tensor(s, zp);
    }
    // QuantizeLinear / DequantizeLinear of an activation of IR shape xs: scale (input 1) and zero
    // point (input 2), per tensor or per axis (ONNX `axis` in the IR layout: NCHW axis 1 is NHWC
    // axis 3); `type` = the integers' type (zero point, else output_dtype, else uint8).
    struct QdqParams {
        QuantParams q;
        DType type = DType::u8;
    };
    QdqParams qdq_params(const std::vector<int64_t> &xs, bool quantize);
    const Act &act(int i, const std::string &what) {
        const std::string &n = in_name(i);
        if (pending_.count(n)) add_graph_input(pending_.at(n));  // read as data: a runtime input
        auto a = acts_.find(n);
        if (a != acts_.end()) return a->second;
        if (folded_.count(n))
            nfail(what + " '" + n + "' is a graph input whose given value became a constant (an earlier node reads it "
                  "where only a constant is supported); a graph input cannot be both a constant and data");
        if (consts_.count(n) || qconsts_.count(n))
            nfail(what + " '" + n + "' is a constant; this op needs a computed tensor here");
        undefined(n, what);
    }
    const Act &float_act(int i, const std::string &what) {
        const Act &a = act(i, what);
        if (a.repr != DType::f32)
            nfail(what + " '" + in_name(i) + "' is " + dtype_name(a.repr) +
                  " integers; this op reads float tensors (quantized tensors go through DequantizeLinear or QLinear ops)");
        return a;
    }
    const Act &quant_act(int i, const std::string &what) {
        const Act &a = act(i, what);
        if (a.repr == DType::f32) nfail(what + " '" + in_name(i) + "' is float; this op reads uint8/int8 tensors");
        return a;
    }
    // Sets the quant (and qtype) of value v, or checks they equal what is already known.
    void annotate(int v, const QuantParams &q, DType qtype, const std::string &what) {
        GraphValue &gv = g_.values[v];
        auto show = [&](const QuantParams &p, DType t) {
            return "scale " + std::to_string(p.scale_at(0)) + ", zero point " + std::to_string(p.zp_at(0)) + " (" +
                   dtype_name(t) + ")";
        };
        if (gv.quant.empty()) {
            gv.quant = q;
            gv.qtype = qtype;
            // A Flatten or Pad keeps its input's quantization: the float value it reads takes the
            // same one (its producer, e.g. a GlobalAveragePool left in float between
            // DequantizeLinear and QuantizeLinear, or the graph input, then quantizes straight to it).
            for (auto f = view_input_.find(v); f != view_input_.end() && g_.values[f->second].quant.empty();
                 f = view_input_.find(f->second)) {
                g_.values[f->second].quant = q;
                g_.values[f->second].qtype = qtype;
            }
        } else if (gv.quant.scale != q.scale || gv.quant.zp_at(0) != q.zp_at(0) || gv.qtype != qtype) {
            nfail(what + " '" + gv.name + "' is read with " + show(q, qtype) + " but was quantized with " +
                  show(gv.quant, gv.qtype));
        }
    }
    // Emits n as a QLinear op whose output is quantized with the node's inputs scale_in / zp_in.
    int emit_quantized(GraphNode n, int scale_in, int zp_in) {
        DType yt;
        QuantParams yq = act_quant(scale_in, zp_in, yt);
        int v = emit(std::move(n), yt);
        set_quant(v, yq, yt);
        return v;
    }
    // Output of a QLinear op (or an op on quantized data): quant and qtype.
    void set_quant(int v, const QuantParams &q, DType qtype) {
        g_.values[v].quant = q;
        g_.values[v].qtype = qtype;
    }
    void read_quant_input(int x_in, int scale_in, int zp_in, const std::string &what, bool four_bit = false) {
        const Act &a = quant_act(x_in, what);
        DType t;
        QuantParams q = act_quant(scale_in, zp_in, t, four_bit);
        if (t != a.repr)
            nfail(what + " zero point is " + dtype_name(t) + " but '" + in_name(x_in) + "' is " + dtype_name(a.repr));
        annotate(a.v, q, a.repr, what);
    }

    // ---- outputs ----
    // Adds node n; its output's shape comes from the op's shape rule (op_def.h), as in prepare.
    int emit(GraphNode n, DType repr = DType::f32) {
        n.name = node_->name().empty() ? node_->output(0) : node_->name();
        const std::string &out = node_->output(0);
        if (acts_.count(out) || consts_.count(out) || qconsts_.count(out) || pending_.count(out))
            nfail("output '" + out + "' is assigned twice");
        ShapeInputs in;
        for (int i : n.inputs) {
            in.shapes.push_back(shape_.at(i));
            in.names.push_back(g_.values[i].name);
        }
        std::vector<int64_t> shape;
        try {
            shape = output_shape(n, in);
            checked_numel(shape, "output '" + printable(out) + "'");  // later arithmetic on shapes stays in range
        } catch (const ShapeError &e) {
            nfail(e.what());
        } catch (const std::length_error &e) {
            nfail(e.what());
        }
        int v = g_.add_node(std::move(n), out);
        shape_.resize(g_.values.size());
        shape_[v] = std::move(shape);
        acts_[out] = {v, repr};
        return v;
    }
    void alias(const Act &a) {
        const std::string &out = node_->output(0);
        if (acts_.count(out) || consts_.count(out) || qconsts_.count(out) || pending_.count(out))
            nfail("output '" + out + "' is assigned twice");
        acts_[out] = a;
    }
    const std::vector<int64_t> &shape_of(const Act &a) const { return shape_.at(a.v); }

    // ---- shared pieces ----
    WindowAttrs window(bool conv, int64_t kh, int64_t kw);
    int conv_group(const Tensor &w);
    void avgpool(bool qlinear);
    void unary(OpKind k, bool qlinear);
    void mul(bool qlinear);
    void concat(bool qlinear);
    void global_maxpool();
    void check_broadcast(const Act &a, const Act &b);
    int64_t opset_ = 0;  // the default domain's opset version
    // Output value -> input value of ops that keep their input's quantization (Flatten, Pad): a
    // QuantizeLinear after them quantizes their (float) input the same way.
    std::unordered_map<int, int> view_input_;
    void softmax();
    // Dynamic quantization (GraphNode::dynamic): DynamicQuantizeLinear's outputs (x_q, x_scale,
    // x_zero_point) by name -> the float IR value x they quantize; Mul(x_scale, w_scale) -> x
    // and w_scale; the IR value of a ConvInteger / MatMulInteger -> its node, whose Cast, Mul
    // and Add are folded into it.
    std::map<std::string, int> dyn_q_, dyn_scale_, dyn_zp_;
    struct DynScale {
        int x = -1;
        std::vector<float> ws;
    };
    std::map<std::string, DynScale> dyn_prod_;
    std::map<int, int> dyn_node_;
    std::set<int> int32_out_;  // values of ConvInteger / MatMulInteger with int32 output (graph outputs allowed)
    std::map<std::string, TP> owned_consts_;  // constants the importer computes (Reshape of a constant)
    void pad();
    void dynamic_quantize();
    void integer_op(bool conv);
    void cast();
    bool fold_dynamic_mul();
    bool fold_dynamic_add();
    // The dynamic node producing act a, if its result is read by this node alone and is no graph
    // output (so its epilogue can grow); nullptr otherwise.
    GraphNode *dynamic_node_of(int input, GraphNode::Dynamic stage);
    Weights weights(int i, bool kn_layout, int rank);
    Tensor quant_const(const QConst &qc);
    Tensor bias(int i, const Weights &w, const QuantParams &xq);

    // ---- ops ----
    void conv();
    void qlinear_conv();
    void batchnorm();
    void relu();
    void clip();
    void add();
    void qlinear_add();
    // The Add node of two activations of the same shape (no broadcasting).
    GraphNode add_node(const Act &a, const Act &b);
    void maxpool();
    void global_avgpool(bool qlinear);
    void flatten(bool reshape);
    void gemm();
    void qgemm();
    void matmul(bool qlinear);
    void identity(bool dropout);
    void constant_node();
    void quantize();
    void dequantize();
    void import_node();
    void inputs();
    void outputs();
};

}  // namespace qh::onnx_detail
