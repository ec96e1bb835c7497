// ONNX -> Graph IR. See onnx_import.h for what is accepted; docs/ARCHITECTURE.md for the mapping.
//
// One pass over the nodes (ONNX keeps them in topological order). Every ONNX tensor name is
// one of:
//  - a constant: an initializer or a Constant node's value;
//  - a quantized constant: DequantizeLinear of an integer constant (weights or bias, consumed
//    by Conv / Gemm / MatMul);
//  - an activation: an IR value plus how ONNX represents it here, float (the real value) or
//    uint8/int8 (the quantized integers of the same IR value, whose quant says how).
// QuantizeLinear and DequantizeLinear of activations create no node: their output names become
// more names of the same IR value, and their scale/zero point become (or must equal) its quant.
#include "onnx_import.h"

#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>

#include "onnx_tensor.h"
#include "op_def.h"
#include "resource_limits.h"

namespace qh {

namespace {

using TP = onnx::TensorProto;

std::string onnx_type_name(int t) {
    return TP::DataType_IsValid(t) ? TP::DataType_Name(TP::DataType(t))
                                   : "invalid type " + std::to_string(t);
}

}  // namespace

Tensor tensor_from_proto(const onnx::TensorProto &t, const std::string &where) {
    auto fail = [&](const std::string &m) -> void { throw std::runtime_error(where + ": " + m); };
    if (t.data_location() == TP::EXTERNAL || t.external_data_size() > 0)
        fail("external data is not supported (store the tensor inside the model)");
    if (t.has_segment()) fail("segmented tensors are not supported");
    std::vector<int64_t> dims(t.dims().begin(), t.dims().end());
    int64_t n = 0;
    try {
        n = checked_numel(dims, "tensor");
    } catch (const std::length_error &e) {
        fail(e.what());
    }
    DType dt;
    size_t elem;  // bytes per element in raw_data
    switch (t.data_type()) {
    case TP::FLOAT: dt = DType::f32; elem = 4; break;
    case TP::UINT8: dt = DType::u8; elem = 1; break;
    case TP::INT8: dt = DType::s8; elem = 1; break;
    case TP::INT32: dt = DType::s32; elem = 4; break;
    case TP::INT64: dt = DType::s32; elem = 8; break;
    case TP::BOOL: dt = DType::u8; elem = 1; break;
    default:
        fail("data type " + onnx_type_name(t.data_type()) +
             " not supported (FLOAT, UINT8, INT8, INT32, INT64, BOOL)");
        return {};
    }
    const std::string &raw = t.raw_data();
    auto check_count = [&](int64_t got, const char *field) {
        if (got != n)
            fail(std::string(field) + " has " + std::to_string(got) + " values for shape " +
                 shape_str(dims) + " (" + std::to_string(n) + " elements)");
    };
    // The declared shape must match the data actually in the file before anything is allocated:
    // a few bytes of protobuf can declare 2^31 elements.
    if (t.has_raw_data()) {
        if (raw.size() != size_t(n) * elem)
            fail("raw_data has " + std::to_string(raw.size()) + " bytes, shape " + shape_str(dims) +
                 " of " + onnx_type_name(t.data_type()) + " needs " + std::to_string(size_t(n) * elem));
    } else if (n > 0) {
        switch (t.data_type()) {
        case TP::FLOAT: check_count(t.float_data_size(), "float_data"); break;
        case TP::INT64: check_count(t.int64_data_size(), "int64_data"); break;
        default: check_count(t.int32_data_size(), "int32_data"); break;
        }
    }
    Tensor r(dt, dims);
    auto put_int = [&](int64_t i, int64_t v) {
        int64_t lo = dt == DType::u8 ? 0 : dt == DType::s8 ? -128 : INT32_MIN;
        int64_t hi = t.data_type() == TP::BOOL ? 1 : dt == DType::u8 ? 255 : dt == DType::s8 ? 127 : INT32_MAX;
        if (v < lo || v > hi)
            fail("value " + std::to_string(v) + " at element " + std::to_string(i) + " does not fit " +
                 (t.data_type() == TP::INT64 ? std::string("int32 (INT64 is read as s32)")
                                             : onnx_type_name(t.data_type())));
        if (dt == DType::u8) r.data<uint8_t>()[i] = uint8_t(v);
        else if (dt == DType::s8) r.data<int8_t>()[i] = int8_t(v);
        else r.data<int32_t>()[i] = int32_t(v);
    };
    if (t.has_raw_data()) {
        if (raw.size() != size_t(n) * elem)
            fail("raw_data has " + std::to_string(raw.size()) + " bytes, shape " + shape_str(dims) +
                 " of " + onnx_type_name(t.data_type()) + " needs " + std::to_string(size_t(n) * elem));
        if (t.data_type() == TP::INT64) {
            for (int64_t i = 0; i < n; i++) {
                int64_t v;
                std::memcpy(&v, raw.data() + i * 8, 8);
                put_int(i, v);
            }
        } else if (t.data_type() == TP::BOOL) {
            for (int64_t i = 0; i < n; i++) put_int(i, uint8_t(raw[size_t(i)]));
        } else {
            std::memcpy(r.raw(), raw.data(), raw.size());  // little-endian host, as ONNX stores
        }
        return r;
    }
    switch (t.data_type()) {
    case TP::FLOAT:
        check_count(t.float_data_size(), "float_data");
        std::copy(t.float_data().begin(), t.float_data().end(), r.data<float>());
        break;
    case TP::INT64:
        check_count(t.int64_data_size(), "int64_data");
        for (int64_t i = 0; i < n; i++) put_int(i, t.int64_data(int(i)));
        break;
    default:  // u8 / s8 / s32 / bool: int32_data, one value per element
        check_count(t.int32_data_size(), "int32_data");
        for (int64_t i = 0; i < n; i++) put_int(i, t.int32_data(int(i)));
        break;
    }
    return r;
}

Tensor tensor_from_proto_bytes(const std::string &bytes, const std::string &where) {
    TP t;
    if (!t.ParseFromString(bytes)) throw std::runtime_error(where + ": not a valid serialized onnx.TensorProto");
    return tensor_from_proto(t, where);
}

namespace {

// Protocol buffers cannot parse a message over 2 GiB, so no ONNX file is larger.
std::string read_file(const std::string &path) {
    return read_regular_file(path, size_t(INT32_MAX), "an ONNX model or tensor (protobuf, at most 2 GiB)");
}

}  // namespace

Tensor load_tensor_pb(const std::string &path) { return tensor_from_proto_bytes(read_file(path), path); }

Tensor load_tensor_pb(const std::string &path, std::string *name) {
    TP t;
    if (!t.ParseFromString(read_file(path))) throw std::runtime_error(path + ": not a valid serialized onnx.TensorProto");
    if (name) *name = t.name();
    return tensor_from_proto(t, path);
}

namespace {

bool is_std_domain(const std::string &d) { return d.empty() || d == "ai.onnx"; }

// {K, N} -> {N, K} (any 1- or 4-byte dtype); per-axis quant along N (axis 1) becomes axis 0.
Tensor transpose_kn(const Tensor &s) {
    const int64_t K = s.dim(0), N = s.dim(1);
    Tensor t(s.dtype(), {N, K}, s.quant);
    const size_t e = size_t(dtype_bits(s.dtype()) / 8);
    const char *src = static_cast<const char *>(s.raw());
    char *dst = static_cast<char *>(t.raw());
    for (int64_t k = 0; k < K; k++)
        for (int64_t j = 0; j < N; j++) std::memcpy(dst + (j * K + k) * e, src + (k * N + j) * e, e);
    if (t.quant.axis >= 0) t.quant.axis = 1 - t.quant.axis;
    return t;
}

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
    // Optional activation zero point (u8 default 0); returns the zero point, sets its type.
    int32_t const_zp(int i, const std::string &what, DType &type) {
        type = DType::u8;
        if (!has_in(i)) return 0;
        const Tensor &t = constant(i, what);
        if ((t.dtype() != DType::u8 && t.dtype() != DType::s8) || t.numel() != 1)
            nfail(what + " '" + in_name(i) + "' must be a single uint8 or int8 value, is " + t.describe());
        type = t.dtype();
        return t.dtype() == DType::u8 ? t.data<uint8_t>()[0] : t.data<int8_t>()[0];
    }
    // Activation quantization (per tensor); `type` (u8/s8) becomes the value's qtype.
    QuantParams act_quant(int scale_in, int zp_in, DType &type) {
        float s = const_scale(scale_in, "scale");
        int32_t zp = const_zp(zp_in, "zero point", type);
        return QuantParams::per_tensor(s, zp);
    }
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
            nfail(what + " '" + in_name(i) + "' is " + (a.repr == DType::u8 ? "uint8" : "int8") +
                  "; this op reads float tensors (quantized tensors go through DequantizeLinear or QLinear ops)");
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
        } else if (gv.quant.scale != q.scale || gv.quant.zp_at(0) != q.zp_at(0) || gv.qtype != qtype) {
            nfail(what + " '" + gv.name + "' is read with " + show(q, qtype) + " but was quantized with " +
                  show(gv.quant, gv.qtype));
        }
    }
    // Output of a QLinear op (or an op on quantized data): quant and qtype.
    void set_quant(int v, const QuantParams &q, DType qtype) {
        g_.values[v].quant = q;
        g_.values[v].qtype = qtype;
    }
    void read_quant_input(int x_in, int scale_in, int zp_in, const std::string &what) {
        const Act &a = quant_act(x_in, what);
        DType t;
        QuantParams q = act_quant(scale_in, zp_in, t);
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
        } catch (const ShapeError &e) {
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

WindowAttrs Importer::window(bool conv, int64_t kh, int64_t kw) {
    WindowAttrs w;
    auto ks = attr_ints("kernel_shape", conv ? std::vector<int64_t>{kh, kw} : std::vector<int64_t>{});
    if (ks.size() != 2) nfail("kernel_shape " + shape_str(ks) + " not supported (only 2-D windows)");
    if (conv && (ks[0] != kh || ks[1] != kw))
        nfail("kernel_shape " + shape_str(ks) + " disagrees with the weights' " + shape_str({kh, kw}));
    auto strides = attr_ints("strides", {1, 1});
    auto pads = attr_ints("pads", {0, 0, 0, 0});
    auto dil = attr_ints("dilations", {1, 1});
    std::string auto_pad = attr_string("auto_pad", "NOTSET");
    if (auto_pad != "NOTSET" && auto_pad != "VALID")
        nfail("auto_pad=" + auto_pad + " not supported (only NOTSET with explicit pads, or VALID)");
    if (auto_pad == "VALID") pads = {0, 0, 0, 0};
    if (strides.size() != 2 || strides[0] < 1 || strides[1] < 1)
        nfail("strides " + shape_str(strides) + " not supported (two values >= 1)");
    if (pads.size() != 4 || *std::min_element(pads.begin(), pads.end()) < 0)
        nfail("pads " + shape_str(pads) + " not supported (four values >= 0)");
    if (dil != std::vector<int64_t>{1, 1}) nfail("dilations " + shape_str(dil) + " not supported (only 1)");
    for (const auto *vals : {&ks, &strides, &pads})
        for (int64_t x : *vals)
            if (x < 0 || x > kMaxWindowAttr)
                nfail("window attribute " + std::to_string(x) + " (kernel_shape " + shape_str(ks) + ", strides " +
                      shape_str(strides) + ", pads " + shape_str(pads) + ") out of range 0.." +
                      std::to_string(kMaxWindowAttr));
    if (conv) {
        int64_t group = attr_int("group", 1);
        if (group != 1) nfail("group=" + std::to_string(group) + " not supported (only group=1)");
    } else {
        int64_t ceil = attr_int("ceil_mode", 0);
        if (ceil != 0) nfail("ceil_mode=" + std::to_string(ceil) + " not supported (only 0)");
        int64_t so = attr_int("storage_order", 0);
        if (so != 0) nfail("storage_order=" + std::to_string(so) + " not supported (only 0)");
    }
    for (int64_t v : {ks[0], ks[1], strides[0], strides[1], pads[0], pads[1], pads[2], pads[3]})
        if (v > 1 << 16) nfail("window attribute value " + std::to_string(v) + " is out of range");
    w.kernel_h = int(ks[0]); w.kernel_w = int(ks[1]);
    w.stride_h = int(strides[0]); w.stride_w = int(strides[1]);
    // ONNX pads: [H_begin, W_begin, H_end, W_end].
    w.pad_top = int(pads[0]); w.pad_left = int(pads[1]);
    w.pad_bottom = int(pads[2]); w.pad_right = int(pads[3]);
    return w;
}

Tensor Importer::quant_const(const QConst &qc) {
    // Decoded in the context of the DequantizeLinear node that produced it.
    const onnx::NodeProto *user = node_;
    node_ = qc.node;
    auto restore = [&] { node_ = user; };
    try {
        auto dec = [&](const std::string &n) { return decode(n); };
        Tensor data = dec(qc.data);
        Tensor scale = dec(qc.scale);
        if (scale.dtype() != DType::f32 || scale.rank() > 1)
            nfail("scale '" + qc.scale + "' must be a float scalar or 1-D, is " + scale.describe());
        QuantParams q;
        q.scale.assign(scale.data<float>(), scale.data<float>() + scale.numel());
        for (float s : q.scale)
            if (!(s > 0.f) || !std::isfinite(s)) nfail("scale '" + qc.scale + "' has a non-positive or non-finite value");
        if (!qc.zp.empty()) {
            Tensor zp = dec(qc.zp);
            if (zp.dtype() != data.dtype() || zp.numel() != scale.numel())
                nfail("zero point '" + qc.zp + "' is " + zp.describe() + ", expected " + dtype_name(data.dtype()) +
                      " with " + std::to_string(scale.numel()) + " value(s)");
            for (int64_t i = 0; i < zp.numel(); i++)
                q.zero_point.push_back(zp.dtype() == DType::u8   ? zp.data<uint8_t>()[i]
                                       : zp.dtype() == DType::s8 ? zp.data<int8_t>()[i]
                                                                 : zp.data<int32_t>()[i]);
        } else {
            q.zero_point.assign(q.scale.size(), 0);
        }
        if (scale.numel() > 1 || scale.rank() == 1) {
            int64_t axis = attr_int("axis", 1);
            if (scale.numel() > 1) {
                if (axis < 0) axis += data.rank();
                if (axis < 0 || axis >= data.rank() || data.dim(int(axis)) != scale.numel())
                    nfail("per-axis scale of " + std::to_string(scale.numel()) + " values does not match axis " +
                          std::to_string(attr_int("axis", 1)) + " of " + data.describe());
                q.axis = int(axis);
            }
        }
        if (q.scale.size() == 1) q.axis = -1;
        data.quant = q;
        restore();
        return data;
    } catch (...) {
        restore();
        throw;
    }
}

// Weights of Conv (rank 4, OIHW) or Dense (rank 2). kn_layout: the source is {K, N} (MatMul,
// Gemm transB=0) and is transposed into {N, K}.
Importer::Weights Importer::weights(int i, bool kn_layout, int rank) {
    const std::string &n = in_name(i);
    Weights r;
    if (qconsts_.count(n)) {
        r.w = quant_const(qconsts_.at(n));
        if (r.w.dtype() != DType::u8 && r.w.dtype() != DType::s8)
            nfail("weights '" + n + "' are " + r.w.describe() + " (only uint8/int8 quantized weights)");
        r.quantized = true;
    } else if (is_constant(n, "weights")) {
        r.w = constant(i, "weights");
        if (r.w.dtype() != DType::f32)
            nfail("weights '" + n + "' are " + r.w.describe() +
                  " without DequantizeLinear (float weights, or integer weights through DequantizeLinear)");
    } else if (acts_.count(n) || pending_.count(n)) {
        nfail("weights '" + n + "': only constant weights are supported, it " + not_constant(n));
    } else {
        undefined(n, "weights");
    }
    if (r.w.rank() != rank)
        nfail("weights '" + n + "' are " + r.w.describe() + ", expected rank " + std::to_string(rank));
    int out_axis = kn_layout ? 1 : 0;
    if (r.w.quant.axis >= 0 && r.w.quant.axis != out_axis)
        nfail("weights '" + n + "' are quantized per axis " + std::to_string(r.w.quant.axis) +
              "; only per tensor or per output channel (axis " + std::to_string(out_axis) + ")");
    if (kn_layout) r.w = transpose_kn(r.w);
    return r;
}

// Optional bias (input i) of Conv/Gemm: f32 {OC}, or (QDQ) int32 through DequantizeLinear with
// scale x_scale * w_scale[oc] and zero point 0, which becomes the s32 bias.
Tensor Importer::bias(int i, const Weights &w, const QuantParams &xq) {
    if (!has_in(i)) return {};
    const std::string &n = in_name(i);
    const int64_t oc = w.w.dim(0);
    Tensor b;
    if (qconsts_.count(n)) {
        b = quant_const(qconsts_.at(n));
        if (b.dtype() != DType::s32) nfail("bias '" + n + "' is " + b.describe() + " (quantized bias must be int32)");
        if (!w.quantized) nfail("bias '" + n + "' is quantized but the weights are float");
        if (xq.empty()) nfail("bias '" + n + "' is quantized but the input has no quantization (no QuantizeLinear/DequantizeLinear pair)");
        for (int64_t c = 0; c < b.numel() && c < oc; c++) {
            if (b.quant.zp_at(size_t(c)) != 0) nfail("bias '" + n + "' has a non-zero zero point");
            float want = xq.scale_at(0) * w.w.quant.scale_at(size_t(c));
            float got = b.quant.scale_at(b.quant.scale.size() == 1 ? 0 : size_t(c));
            if (std::fabs(got - want) > 4 * FLT_EPSILON * want)
                nfail("bias '" + n + "' scale " + std::to_string(got) + " at channel " + std::to_string(c) +
                      " is not input scale * weight scale = " + std::to_string(want) +
                      " (an s32 bias must be in units of x_scale * w_scale)");
        }
        b.quant = {};
    } else if (is_constant(n, "bias")) {
        b = constant(i, "bias");
        if (b.dtype() != DType::f32)
            nfail("bias '" + n + "' is " + b.describe() + " without DequantizeLinear (float bias, or int32 through DequantizeLinear)");
    } else if (acts_.count(n) || pending_.count(n)) {
        nfail("bias '" + n + "': only constant bias is supported, it " + not_constant(n));
    } else {
        undefined(n, "bias");
    }
    if (b.rank() != 1 || b.dim(0) != oc) nfail("bias '" + n + "' is " + b.describe() + ", expected " + std::to_string(oc) + " values");
    return b;
}

// ---- ops -------------------------------------------------------------------------------------

void Importer::conv() {
    check_arity(2, 3);
    allow_attrs({"kernel_shape", "strides", "pads", "dilations", "group", "auto_pad"});
    const Act &x = float_act(0, "input");
    GraphNode n;
    n.op = OpKind::Conv;
    Weights w = weights(1, false, 4);
    n.window = window(true, w.w.dim(2), w.w.dim(3));
    n.bias = bias(2, w, g_.values[x.v].quant);
    n.weights = w.w;
    n.inputs = {x.v};
    emit(std::move(n));
}

void Importer::qlinear_conv() {
    check_arity(8, 9);
    allow_attrs({"kernel_shape", "strides", "pads", "dilations", "group", "auto_pad"});
    read_quant_input(0, 1, 2, "input");
    const Act &x = act(0, "input");
    // Weights: integer constant, scale/zero point per tensor or per output channel.
    const Tensor &wc = constant(3, "weights");
    if ((wc.dtype() != DType::u8 && wc.dtype() != DType::s8) || wc.rank() != 4)
        nfail("weights '" + in_name(3) + "' are " + wc.describe() + ", expected uint8/int8 of rank 4");
    Weights w;
    w.w = wc;
    w.quantized = true;
    const int64_t oc = wc.dim(0);
    const Tensor &ws = constant(4, "weight scale");
    if (ws.dtype() != DType::f32 || ws.rank() > 1 || (ws.numel() != 1 && ws.numel() != oc))
        nfail("weight scale '" + in_name(4) + "' is " + ws.describe() + ", expected 1 or " + std::to_string(oc) + " floats");
    QuantParams wq;
    wq.scale.assign(ws.data<float>(), ws.data<float>() + ws.numel());
    for (float s : wq.scale)
        if (!(s > 0.f) || !std::isfinite(s)) nfail("weight scale '" + in_name(4) + "' has a non-positive or non-finite value");
    if (has_in(5)) {
        const Tensor &wz = constant(5, "weight zero point");
        if (wz.dtype() != wc.dtype() || wz.rank() > 1 || wz.numel() != ws.numel())
            nfail("weight zero point '" + in_name(5) + "' is " + wz.describe() + ", expected " + dtype_name(wc.dtype()) +
                  " with " + std::to_string(ws.numel()) + " value(s)");
        for (int64_t i = 0; i < wz.numel(); i++)
            wq.zero_point.push_back(wz.dtype() == DType::u8 ? wz.data<uint8_t>()[i] : wz.data<int8_t>()[i]);
    } else {
        wq.zero_point.assign(wq.scale.size(), 0);
    }
    wq.axis = ws.numel() > 1 ? 0 : -1;
    w.w.quant = wq;
    GraphNode n;
    n.op = OpKind::Conv;
    n.window = window(true, wc.dim(2), wc.dim(3));
    if (has_in(8)) n.bias = int32_bias(8, oc, "bias");
    n.weights = w.w;
    n.inputs = {x.v};
    DType yt;
    QuantParams yq = act_quant(6, 7, yt);
    int v = emit(std::move(n), yt);
    set_quant(v, yq, yt);
}

void Importer::batchnorm() {
    check_arity(5, 5);
    allow_attrs({"epsilon", "momentum", "training_mode", "spatial", "is_test", "consumed_inputs"});
    if (attr_int("training_mode", 0) != 0) nfail("training_mode=1 not supported (inference only)");
    only_first_output();
    if (attr_int("spatial", 1) != 1) nfail("spatial=0 not supported (only per-channel statistics)");
    const Act &x = float_act(0, "input");
    const auto &xs = shape_of(x);
    if (xs.size() != 4) nfail("input has shape " + shape_str(xs) + "; only rank 4 (NCHW)");
    const int64_t C = xs[3];
    const char *names[] = {"scale", "B", "mean", "var"};
    const float *p[4];
    for (int i = 0; i < 4; i++) {
        const Tensor &t = constant(i + 1, names[i]);
        if (t.dtype() != DType::f32 || t.rank() != 1 || t.dim(0) != C)
            nfail(std::string(names[i]) + " '" + in_name(i + 1) + "' is " + t.describe() + ", expected " + std::to_string(C) + " floats");
        p[i] = t.data<float>();
    }
    const double eps = attr_float("epsilon", 1e-5f);
    GraphNode n;
    n.op = OpKind::BatchNorm;
    for (int64_t c = 0; c < C; c++) {
        if (!(double(p[3][c]) + eps > 0)) nfail("var + epsilon is not positive at channel " + std::to_string(c));
        // y = (x - mean) / sqrt(var + eps) * scale + B, combined in double, rounded once.
        double s = double(p[0][c]) / std::sqrt(double(p[3][c]) + eps);
        n.bn_scale.push_back(float(s));
        n.bn_shift.push_back(float(double(p[1][c]) - double(p[2][c]) * s));
    }
    n.inputs = {x.v};
    emit(std::move(n));
}

void Importer::relu() {
    check_arity(1, 1);
    allow_attrs({"consumed_inputs"});
    const Act &x = float_act(0, "input");
    GraphNode n;
    n.op = OpKind::Relu;
    n.inputs = {x.v};
    emit(std::move(n));
}

// Clip: bounds as attributes (opset < 11) or as optional constant scalar inputs (opset >= 11);
// a missing bound is no bound.
void Importer::clip() {
    check_arity(1, 3);
    allow_attrs({"min", "max"});
    const Act &x = float_act(0, "input");
    GraphNode n;
    n.op = OpKind::Clip;
    n.clip_min = attr_float("min", -INFINITY);
    n.clip_max = attr_float("max", INFINITY);
    for (int i : {1, 2}) {
        if (!has_in(i)) continue;
        const Tensor &b = constant(i, i == 1 ? "min" : "max");
        if (b.dtype() != DType::f32 || b.numel() != 1)
            nfail(std::string(i == 1 ? "min" : "max") + " '" + in_name(i) + "' is " + b.describe() +
                  ", expected one float");
        (i == 1 ? n.clip_min : n.clip_max) = b.data<float>()[0];
    }
    n.inputs = {x.v};
    emit(std::move(n));
}

void Importer::add() {
    check_arity(2, 2);
    allow_attrs({});
    for (int i = 0; i < 2; i++) {
        const std::string &c = in_name(i);
        if (!consts_.count(c) && !qconsts_.count(c)) continue;
        // MatMul + constant bias -> the Dense's bias.
        const std::string &mm = in_name(1 - i);
        auto d = dense_no_bias_.find(mm);
        if (qconsts_.count(c) || d == dense_no_bias_.end() || readers_[mm].size() != 1 || graph_outputs_.count(mm))
            nfail("adding constant '" + c + "' is only supported as the bias of a MatMul whose output is read by this Add alone");
        GraphNode &dn = g_.nodes[d->second];
        const int64_t oc = dn.weights.dim(0);
        const Tensor &b = constant(i, "bias");
        bool shape_ok = (b.rank() == 1 && b.dim(0) == oc) || (b.rank() == 2 && b.dim(0) == 1 && b.dim(1) == oc);
        if (b.dtype() != DType::f32 || !shape_ok)
            nfail("bias '" + c + "' is " + b.describe() + ", expected f32 [" + std::to_string(oc) + "] or [1," + std::to_string(oc) + "]");
        Tensor bb(DType::f32, {oc});
        std::memcpy(bb.raw(), b.raw(), size_t(oc) * 4);
        dn.bias = bb;
        dense_no_bias_.erase(d);
        alias(acts_.at(mm));
        rename_[acts_.at(mm).v] = node_->output(0);
        return;
    }
    const Act &a = float_act(0, "input A"), &b = float_act(1, "input B");
    emit(add_node(a, b));
}

GraphNode Importer::add_node(const Act &a, const Act &b) {
    GraphNode n;
    n.op = OpKind::Add;
    n.inputs = {a.v, b.v};
    return n;
}

void Importer::qlinear_add() {
    check_arity(7, 8);
    allow_attrs({});
    read_quant_input(0, 1, 2, "input A");
    read_quant_input(3, 4, 5, "input B");
    const Act &a = act(0, "input A"), &b = act(3, "input B");
    GraphNode n = add_node(a, b);
    DType yt;
    QuantParams yq = act_quant(6, 7, yt);
    int v = emit(std::move(n), yt);
    set_quant(v, yq, yt);
}

void Importer::maxpool() {
    check_arity(1, 1);
    allow_attrs({"kernel_shape", "strides", "pads", "dilations", "ceil_mode", "storage_order", "auto_pad"});
    only_first_output();
    const Act &x = act(0, "input");
    if (x.repr != DType::f32 && g_.values[x.v].quant.empty()) {
        // A plain uint8 graph input (e.g. ONNX's test_maxpool_2d_uint8): its real value is its
        // integer, i.e. scale 1, zero point 0, which is exact for MaxPool.
        if (!input_values_.count(x.v))
            nfail("input '" + in_name(0) + "' is " + dtype_name(x.repr) + " with no known scale/zero point");
        g_.values[x.v].quant = QuantParams::per_tensor(1.f, 0);
        g_.values[x.v].qtype = x.repr;
    }
    GraphNode n;
    n.op = OpKind::MaxPool;
    n.window = window(false, 0, 0);
    n.inputs = {x.v};
    QuantParams q = g_.values[x.v].quant;
    DType qt = g_.values[x.v].qtype;
    int v = emit(std::move(n), x.repr);
    if (x.repr != DType::f32) set_quant(v, q, qt);  // max commutes with dequantization
}

void Importer::global_avgpool(bool qlinear) {
    if (qlinear) {
        check_arity(5, 5);
        allow_attrs({"channels_last"});
        int64_t cl = attr_int("channels_last", 0);
        if (cl != 0) nfail("channels_last=" + std::to_string(cl) + " not supported (only 0: NCHW)");
        read_quant_input(0, 1, 2, "input");
    } else {
        check_arity(1, 1);
        allow_attrs({});
    }
    const Act &x = qlinear ? act(0, "input") : float_act(0, "input");
    GraphNode n;
    n.op = OpKind::GlobalAvgPool;
    n.inputs = {x.v};
    if (!qlinear) {
        emit(std::move(n));
        return;
    }
    DType yt;
    QuantParams yq = act_quant(3, 4, yt);
    int v = emit(std::move(n), yt);
    set_quant(v, yq, yt);
}

// Flatten(axis=1), or Reshape to {N,-1} / {0,-1} / {N,C}: {N,1,1,C} -> {N,C}. Works on float
// and quantized tensors alike (the quant carries over).
void Importer::flatten(bool reshape) {
    const Act &x = act(0, "input");
    const auto &xs = shape_of(x);
    if (xs.size() != 4 && xs.size() != 2) nfail("input has shape " + shape_str(xs) + "; only rank 4 (NCHW) or 2");
    const int64_t N = xs[0], K = xs.size() == 4 ? xs[1] * xs[2] * xs[3] : xs[1];
    if (reshape) {
        check_arity(2, 2);
        allow_attrs({"allowzero"});
        if (attr_int("allowzero", 0) != 0) nfail("allowzero=1 not supported");
        const Tensor &s = constant(1, "shape");
        if (s.dtype() != DType::s32 || s.rank() != 1)
            nfail("shape '" + in_name(1) + "' must be a 1-D int64 constant, is " + s.describe());
        std::vector<int64_t> t(s.data<int32_t>(), s.data<int32_t>() + s.numel());
        bool ok = t.size() == 2 && (t[0] == 0 || t[0] == N || (t[0] == -1 && t[1] == K)) && (t[1] == -1 || t[1] == K);
        if (!ok)
            nfail("reshape to " + shape_str(t) + " not supported (only {N,-1}, {0,-1} or {N,C*H*W}: a flatten)");
    } else {
        check_arity(1, 1);
        allow_attrs({"axis"});
        int64_t axis = attr_int("axis", 1), ax = axis < 0 ? axis + int64_t(xs.size()) : axis;
        if (ax != 1) nfail("axis=" + std::to_string(axis) + " not supported (only 1)");
    }
    if (xs.size() == 2) {  // already {N, K}
        alias(x);
        return;
    }
    GraphNode n;
    n.op = OpKind::Flatten;
    n.inputs = {x.v};
    QuantParams q = g_.values[x.v].quant;
    DType qt = g_.values[x.v].qtype;
    int v = emit(std::move(n), x.repr);
    if (x.repr != DType::f32) set_quant(v, q, qt);
}

void Importer::gemm() {
    check_arity(2, 3);
    allow_attrs({"alpha", "beta", "transA", "transB", "broadcast"});
    float alpha = attr_float("alpha", 1.f), beta = attr_float("beta", 1.f);
    if (alpha != 1.f) nfail("alpha=" + std::to_string(alpha) + " not supported (only 1)");
    if (has_in(2) && beta != 1.f) nfail("beta=" + std::to_string(beta) + " not supported (only 1)");
    if (attr_int("transA", 0) != 0) nfail("transA=1 not supported (only 0)");
    const int64_t transB = attr_int("transB", 0);
    const Act &x = float_act(0, "input A");
    GraphNode n;
    n.op = OpKind::Dense;
    Weights w = weights(1, transB == 0, 2);
    const int64_t oc = w.w.dim(0);
    if (has_in(2) && is_constant(in_name(2), "C")) {
        // Plain float C: {N}, {1,N}, or a single value broadcast to {N} (exact).
        const Tensor &c = constant(2, "C");
        if (c.dtype() != DType::f32) nfail("C '" + in_name(2) + "' is " + c.describe() + " (float, or int32 through DequantizeLinear)");
        bool row = (c.rank() == 1 && c.dim(0) == oc) || (c.rank() == 2 && c.dim(0) == 1 && c.dim(1) == oc);
        if (!row && c.numel() != 1)
            nfail("C '" + in_name(2) + "' is " + c.describe() + "; only a bias per output ([" + std::to_string(oc) +
                  "], [1," + std::to_string(oc) + "] or one value)");
        n.bias = Tensor(DType::f32, {oc});
        for (int64_t j = 0; j < oc; j++) n.bias.data<float>()[j] = c.data<float>()[row ? j : 0];
    } else {
        n.bias = bias(2, w, g_.values[x.v].quant);
    }
    n.weights = w.w;
    n.inputs = {x.v};
    emit(std::move(n));
}

// com.microsoft QGemm: A (u8/s8) x B (integer constant) + C (int32) -> quantized or float Y.
void Importer::qgemm() {
    check_arity(6, 9);
    allow_attrs({"alpha", "transA", "transB"});
    if (attr_float("alpha", 1.f) != 1.f) nfail("alpha != 1 not supported");
    if (attr_int("transA", 0) != 0) nfail("transA=1 not supported (only 0)");
    const int64_t transB = attr_int("transB", 0);
    read_quant_input(0, 1, 2, "input A");
    const Act &x = act(0, "input A");
    const Tensor &bc = constant(3, "B");
    if ((bc.dtype() != DType::u8 && bc.dtype() != DType::s8) || bc.rank() != 2)
        nfail("B '" + in_name(3) + "' is " + bc.describe() + ", expected uint8/int8 of rank 2");
    const int64_t oc = transB ? bc.dim(0) : bc.dim(1);
    const Tensor &bs = constant(4, "B scale");
    if (bs.dtype() != DType::f32 || bs.rank() > 1 || (bs.numel() != 1 && bs.numel() != oc))
        nfail("B scale '" + in_name(4) + "' is " + bs.describe() + ", expected 1 or " + std::to_string(oc) + " floats");
    QuantParams wq;
    wq.scale.assign(bs.data<float>(), bs.data<float>() + bs.numel());
    for (float s : wq.scale)
        if (!(s > 0.f) || !std::isfinite(s)) nfail("B scale has a non-positive or non-finite value");
    if (has_in(5)) {
        const Tensor &bz = constant(5, "B zero point");
        if (bz.dtype() != bc.dtype() || bz.numel() != bs.numel())
            nfail("B zero point '" + in_name(5) + "' is " + bz.describe() + ", expected " + dtype_name(bc.dtype()) +
                  " with " + std::to_string(bs.numel()) + " value(s)");
        for (int64_t i = 0; i < bz.numel(); i++)
            wq.zero_point.push_back(bz.dtype() == DType::u8 ? bz.data<uint8_t>()[i] : bz.data<int8_t>()[i]);
    } else {
        wq.zero_point.assign(wq.scale.size(), 0);
    }
    wq.axis = bs.numel() > 1 ? (transB ? 0 : 1) : -1;
    Weights w;
    w.w = bc;
    w.w.quant = wq;
    if (!transB) w.w = transpose_kn(w.w);
    w.quantized = true;
    GraphNode n;
    n.op = OpKind::Dense;
    if (has_in(6)) n.bias = int32_bias(6, oc, "C");
    n.weights = w.w;
    n.inputs = {x.v};
    if (!has_in(7)) {  // float output
        emit(std::move(n));
        return;
    }
    DType yt;
    QuantParams yq = act_quant(7, 8, yt);
    int v = emit(std::move(n), yt);
    set_quant(v, yq, yt);
}

void Importer::matmul(bool qlinear) {
    GraphNode n;
    n.op = OpKind::Dense;
    if (!qlinear) {
        check_arity(2, 2);
        allow_attrs({});
        const Act &x = float_act(0, "input A");
        Weights w = weights(1, true, 2);
            n.weights = w.w;
        n.inputs = {x.v};
        emit(std::move(n));
        dense_no_bias_[node_->output(0)] = int(g_.nodes.size()) - 1;
        return;
    }
    // QLinearMatMul: a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp; b {K,N} constant.
    check_arity(8, 8);
    allow_attrs({});
    read_quant_input(0, 1, 2, "input A");
    const Act &x = act(0, "input A");
    const Tensor &bc = constant(3, "B");
    if ((bc.dtype() != DType::u8 && bc.dtype() != DType::s8) || bc.rank() != 2)
        nfail("B '" + in_name(3) + "' is " + bc.describe() + ", expected uint8/int8 of rank 2");
    const int64_t oc = bc.dim(1);
    const Tensor &bs = constant(4, "B scale");
    if (bs.dtype() != DType::f32 || bs.rank() > 1 || (bs.numel() != 1 && bs.numel() != oc))
        nfail("B scale '" + in_name(4) + "' is " + bs.describe() + ", expected 1 or " + std::to_string(oc) + " floats");
    const Tensor &bz = constant(5, "B zero point");
    if (bz.dtype() != bc.dtype() || bz.numel() != bs.numel())
        nfail("B zero point '" + in_name(5) + "' is " + bz.describe() + ", expected " + dtype_name(bc.dtype()) +
              " with " + std::to_string(bs.numel()) + " value(s)");
    QuantParams wq;
    wq.scale.assign(bs.data<float>(), bs.data<float>() + bs.numel());
    for (float s : wq.scale)
        if (!(s > 0.f) || !std::isfinite(s)) nfail("B scale has a non-positive or non-finite value");
    for (int64_t i = 0; i < bz.numel(); i++)
        wq.zero_point.push_back(bz.dtype() == DType::u8 ? bz.data<uint8_t>()[i] : bz.data<int8_t>()[i]);
    wq.axis = bs.numel() > 1 ? 1 : -1;  // per column of B {K, N}
    Tensor w = bc;
    w.quant = wq;
    w = transpose_kn(w);
    n.weights = w;
    n.inputs = {x.v};
    DType yt;
    QuantParams yq = act_quant(6, 7, yt);
    int v = emit(std::move(n), yt);
    set_quant(v, yq, yt);
}

void Importer::identity(bool dropout) {
    if (dropout) {
        check_arity(1, 3);
        allow_attrs({"ratio", "seed", "is_test", "consumed_inputs"});
        only_first_output();
        if (has_in(2)) {
            const Tensor &t = constant(2, "training_mode");
            bool on = t.numel() != 1 || static_cast<const uint8_t *>(t.raw())[0] != 0;
            if (on) nfail("training_mode must be a constant false (inference only)");
        }
    } else {
        check_arity(1, 1);
        allow_attrs({});
    }
    const std::string &in = in_name(0);
    if (consts_.count(in)) {
        if (dropout) nfail("Dropout of a constant is not supported");
        consts_[node_->output(0)] = consts_.at(in);
        return;
    }
    alias(act(0, "input"));
}

void Importer::constant_node() {
    check_arity(0, 0);
    allow_attrs({"value"});
    const auto *a = attr("value");
    if (!a || a->type() != onnx::AttributeProto::TENSOR) nfail("only the 'value' (tensor) form is supported");
    const std::string &out = node_->output(0);
    if (acts_.count(out) || consts_.count(out) || pending_.count(out)) nfail("output '" + out + "' is assigned twice");
    consts_[out] = &a->t();
}

void Importer::quantize() {
    check_arity(2, 3);
    allow_attrs({"axis", "saturate", "block_size"});
    if (attr_int("block_size", 0) != 0) nfail("block_size != 0 not supported (blocked quantization)");
    if (attr_int("saturate", 1) != 1) nfail("saturate=0 not supported");
    const std::string &in = in_name(0);
    if (consts_.count(in)) nfail("quantizing the constant '" + in + "' is not supported (store integer weights with DequantizeLinear)");
    const Act &x = float_act(0, "input");
    // The float tensor is replaced by its quantized form: nothing else may read it as float.
    if (graph_outputs_.count(in)) nfail("'" + in + "' is quantized and also a graph output (the IR has one representation per value)");
    for (int r : readers_[in]) {
        const auto &rn = m_.graph().node(r);
        if (rn.op_type() != "QuantizeLinear" || !is_std_domain(rn.domain()))
            nfail("'" + in + "' is quantized here and also read as float by node '" + rn.name() + "' (" + rn.op_type() +
                  "); the IR has one representation per value");
    }
    DType t;
    QuantParams q = act_quant(1, 2, t);
    annotate(x.v, q, t, "input");
    alias({x.v, t});
}

void Importer::dequantize() {
    check_arity(2, 3);
    allow_attrs({"axis", "block_size"});
    if (attr_int("block_size", 0) != 0) nfail("block_size != 0 not supported (blocked quantization)");
    const std::string &in = in_name(0), &out = node_->output(0);
    if (consts_.count(in)) {
        // Quantized constant: resolved when a Conv / Gemm / MatMul reads it.
        for (int i = 1; i < 3; i++)
            if (has_in(i) && !is_constant(in_name(i), i == 1 ? "scale" : "zero point"))
                nfail("scale / zero point '" + in_name(i) + "' of a constant must be constants");
        if (acts_.count(out) || consts_.count(out) || qconsts_.count(out) || pending_.count(out))
            nfail("output '" + out + "' is assigned twice");
        QConst qc;
        qc.node = node_;
        qc.data = in;
        qc.scale = in_name(1);
        if (has_in(2)) qc.zp = in_name(2);
        quant_const(qc);  // check now: errors at load time, naming this node
        qconsts_[out] = qc;
        return;
    }
    const Act &x = quant_act(0, "input");
    const Tensor &s = constant(1, "scale");
    if (s.numel() != 1) nfail("per-axis dequantization of an activation is not supported (scale is " + s.describe() + ")");
    read_quant_input(0, 1, 2, "input");
    if (!input_values_.count(x.v) && !rename_.count(x.v)) rename_[x.v] = out;  // consumers read this name
    alias({x.v, DType::f32});
}

void Importer::import_node() {
    const onnx::NodeProto &n = *node_;
    const std::string &op = n.op_type();
    if (is_std_domain(n.domain())) {
        if (op == "Conv") return conv();
        if (op == "QLinearConv") return qlinear_conv();
        if (op == "BatchNormalization") return batchnorm();
        if (op == "Relu") return relu();
        if (op == "Clip") return clip();
        if (op == "Add") return add();
        if (op == "MaxPool") return maxpool();
        if (op == "GlobalAveragePool") return global_avgpool(false);
        if (op == "Flatten") return flatten(false);
        if (op == "Reshape") return flatten(true);
        if (op == "Gemm") return gemm();
        if (op == "MatMul") return matmul(false);
        if (op == "QLinearMatMul") return matmul(true);
        if (op == "Identity") return identity(false);
        if (op == "Dropout") return identity(true);
        if (op == "Constant") return constant_node();
        if (op == "QuantizeLinear") return quantize();
        if (op == "DequantizeLinear") return dequantize();
        nfail("op not supported (supported: Conv, BatchNormalization, Relu, Clip, Add, MaxPool, GlobalAveragePool, "
              "Flatten, Reshape, Gemm, MatMul, Identity, Dropout, Constant, QuantizeLinear, DequantizeLinear, "
              "QLinearConv, QLinearMatMul; com.microsoft: QLinearAdd, QLinearGlobalAveragePool, QGemm)");
    }
    if (n.domain() == "com.microsoft") {
        if (op == "QLinearAdd") return qlinear_add();
        if (op == "QLinearGlobalAveragePool") return global_avgpool(true);
        if (op == "QGemm") return qgemm();
        nfail("op not supported (com.microsoft: QLinearAdd, QLinearGlobalAveragePool, QGemm)");
    }
    nfail("domain '" + n.domain() + "' not supported (only the default ONNX domain and com.microsoft)");
}

// A graph input that is read as data: an IR input value (NHWC shape).
void Importer::add_graph_input(int index) {
    const auto &in = m_.graph().input(index);
    const std::string &name = in.name();
    pending_.erase(name);
    std::string where = "graph input '" + name + "'";
    if (!in.type().has_tensor_type()) fail(where + " is not a tensor");
    const auto &tt = in.type().tensor_type();
    DType dt;
    if (tt.elem_type() == TP::FLOAT) dt = DType::f32;
    else if (tt.elem_type() == TP::UINT8) dt = DType::u8;
    else fail(where + " has element type " + onnx_type_name(tt.elem_type()) + " (only FLOAT or UINT8)");
    if (!tt.has_shape()) fail(where + " has no shape");
    std::vector<int64_t> s;
    for (int i = 0; i < tt.shape().dim_size(); i++) {
        const auto &d = tt.shape().dim(i);
        if (d.has_dim_value() && d.dim_value() > 0) s.push_back(d.dim_value());
        else if (i == 0) s.push_back(1);  // dynamic batch
        else fail(where + " has a dynamic or invalid dimension " + std::to_string(i) + " (only the batch may be dynamic)");
    }
    try {
        checked_numel(s, where);
    } catch (const std::length_error &e) {
        fail(e.what());
    }
    if (s.size() == 4) s = {s[0], s[2], s[3], s[1]};  // NCHW -> NHWC
    else if (s.size() != 2) fail(where + " has rank " + std::to_string(s.size()) + " (only 4: NCHW, or 2: {N, K})");
    int v = g_.add_value(name, s, dt);
    shape_.resize(g_.values.size());
    shape_[v] = s;
    g_.inputs.push_back(v);
    input_values_.insert(v);
    input_order_[v] = index;
    acts_[name] = {v, dt};
}

// A graph input with a given value, read where only a constant is supported: the value becomes
// an initializer, after checking it against the input's declared type and shape.
void Importer::fold_input(const std::string &n, const std::string &what) {
    const auto &in = m_.graph().input(pending_.at(n));
    const Tensor &t = opt_.input_values.at(n);
    const std::string where = what + " '" + n + "' (a graph input with a given value)";
    if (!in.type().has_tensor_type()) nfail(where + ": the input is not declared as a tensor");
    const auto &tt = in.type().tensor_type();
    int want = tt.elem_type();
    DType dt;  // what tensor_from_proto makes of the declared type
    switch (want) {
    case TP::FLOAT: dt = DType::f32; break;
    case TP::UINT8: case TP::BOOL: dt = DType::u8; break;
    case TP::INT8: dt = DType::s8; break;
    case TP::INT32: case TP::INT64: dt = DType::s32; break;
    default: nfail(where + ": declared element type " + onnx_type_name(want) + " not supported (FLOAT, UINT8, INT8, INT32, INT64, BOOL)");
    }
    std::string declared = onnx_type_name(want);
    bool shape_ok = true;
    if (tt.has_shape()) {
        declared += " [";
        shape_ok = tt.shape().dim_size() == t.rank();
        for (int i = 0; i < tt.shape().dim_size(); i++) {
            const auto &d = tt.shape().dim(i);
            declared += (i ? "," : "") + (d.has_dim_value() ? std::to_string(d.dim_value()) : d.dim_param().empty() ? "?" : d.dim_param());
            if (shape_ok && d.has_dim_value() && d.dim_value() != t.dim(i)) shape_ok = false;
        }
        declared += "]";
    }
    if (t.dtype() != dt || !shape_ok)
        nfail(where + " is given as " + t.describe() + ", but the model declares it " + declared +
              (want == TP::INT64 ? " (INT64 is read as s32)" : ""));
    TP &p = folded_[n];
    p.set_name(n);
    p.set_data_type(dt == DType::f32 ? TP::FLOAT : dt == DType::u8 ? TP::UINT8 : dt == DType::s8 ? TP::INT8 : TP::INT32);
    for (int i = 0; i < t.rank(); i++) p.add_dims(t.dim(i));
    p.set_raw_data(std::string(static_cast<const char *>(t.raw()), t.nbytes()));
    pending_.erase(n);
    consts_[n] = &p;
    decode(n);
}

void Importer::inputs() {
    for (const auto &t : m_.graph().initializer()) {
        if (t.name().empty()) fail("an initializer has no name");
        if (consts_.count(t.name())) fail("initializer '" + t.name() + "' is defined twice");
        consts_[t.name()] = &t;
        decode(t.name());  // every initializer is checked at load time
    }
    if (m_.graph().sparse_initializer_size() > 0) fail("sparse initializers are not supported");
    std::map<std::string, int> index;
    for (int i = 0; i < m_.graph().input_size(); i++) {
        const std::string &name = m_.graph().input(i).name();
        if (consts_.count(name)) continue;  // old-style: initializers listed as inputs
        index[name] = i;
    }
    for (const auto &[name, t] : opt_.input_values) {
        if (consts_.count(name))
            fail("a value is given for '" + name + "', which is an initializer (a constant of the model), not a graph input");
        if (!index.count(name)) {
            std::string names;
            for (const auto &in : m_.graph().input())
                if (!consts_.count(in.name())) names += (names.empty() ? "'" : ", '") + in.name() + "'";
            fail("a value is given for '" + name + "', which is not a graph input (graph inputs: " + names + ")");
        }
    }
    pending_ = index;  // each decided by its first reader
}

void Importer::outputs() {
    std::set<int> seen;
    for (const auto &o : m_.graph().output()) {
        const std::string &name = o.name();
        if (pending_.count(name)) add_graph_input(pending_.at(name));
        auto a = acts_.find(name);
        if (a == acts_.end())
            fail("graph output '" + name + "' is " + (consts_.count(name) || qconsts_.count(name) ? "a constant" : "not computed by any node"));
        int v = a->second.v;
        if (input_values_.count(v)) fail("graph output '" + name + "' is the graph input '" + g_.values[v].name + "' itself");
        if (!seen.insert(v).second) fail("graph output '" + name + "' is the same value as another graph output");
        if (a->second.repr == DType::s8) fail("graph output '" + name + "' is int8 (only float or uint8 outputs)");
        g_.values[v].dtype = a->second.repr;
        rename_[v] = name;
        g_.outputs.push_back(v);
    }
}

Graph Importer::run() {
    const auto &gp = m_.graph();
    bool std_opset = false;
    for (const auto &o : m_.opset_import()) std_opset = std_opset || is_std_domain(o.domain());
    if (!std_opset) fail("no opset_import for the default ONNX domain (truncated or not an ONNX model?)");
    if (!m_.has_graph()) fail("no graph");
    if (gp.input_size() == 0) fail("the graph has no inputs");
    if (gp.output_size() == 0) fail("the graph has no outputs");
    g_.name = gp.name().empty() ? file_ : gp.name();
    for (int i = 0; i < gp.node_size(); i++)
        for (const auto &in : gp.node(i).input())
            if (!in.empty()) readers_[in].push_back(i);
    for (const auto &o : gp.output()) graph_outputs_.insert(o.name());
    inputs();
    for (int i = 0; i < gp.node_size(); i++) {
        node_ = &gp.node(i);
        node_index_ = i;
        import_node();
    }
    node_ = nullptr;
    outputs();
    while (!pending_.empty()) add_graph_input(pending_.begin()->second);  // read by no node
    std::sort(g_.inputs.begin(), g_.inputs.end(), [&](int a, int b) { return input_order_.at(a) < input_order_.at(b); });
    if (g_.inputs.empty())
        fail(folded_.empty() ? "the graph has no inputs besides initializers"
                             : "the graph has no runtime inputs left (the others are initializers or given values that became constants)");
    for (auto &[v, name] : rename_) g_.values[v].name = name;
    std::set<std::string> names;
    for (const auto &v : g_.values)
        if (!names.insert(v.name).second) fail("two IR values would both be named '" + v.name + "'");
    try {
        g_.validate();
    } catch (const std::exception &e) {
        fail(e.what());
    }
    return std::move(g_);
}

}  // namespace

Graph import_onnx_bytes(const std::string &bytes, const std::string &name, const ImportOptions &options) {
    onnx::ModelProto m;
    if (bytes.empty()) throw std::runtime_error("onnx import '" + printable(name) + "': empty file");
    if (!m.ParseFromString(bytes))
        throw std::runtime_error("onnx import '" + printable(name) +
                                 "': not a valid ONNX model (protobuf parse failed: truncated or corrupt)");
    try {
        return Importer(m, name, options).run();
    } catch (const std::bad_alloc &) {
        throw std::length_error("onnx import '" + printable(name) + "': out of memory");
    } catch (const std::length_error &e) {
        throw std::length_error(one_line(e.what()));
    } catch (const std::exception &e) {
        throw std::runtime_error(one_line(e.what()));
    }
}

Graph import_onnx_bytes(const std::string &bytes, const std::string &name) {
    return import_onnx_bytes(bytes, name, ImportOptions{});
}

Graph import_onnx(const std::string &path) { return import_onnx(path, ImportOptions{}); }

Graph import_onnx(const std::string &path, const ImportOptions &options) {
    std::string bytes;
    try {
        bytes = read_file(path);
    } catch (const std::exception &e) {
        throw std::runtime_error(std::string("onnx import: ") + e.what());
    }
    return import_onnx_bytes(bytes, path, options);
}

}  // namespace qh
