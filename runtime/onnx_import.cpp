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

#include "onnx_importer.h"

namespace qh {
namespace onnx_detail {

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
        if (op == "AveragePool") return avgpool(false);
        if (op == "Sigmoid") return unary(OpKind::Sigmoid, false);
        if (op == "HardSigmoid") return unary(OpKind::HardSigmoid, false);
        if (op == "HardSwish") return unary(OpKind::HardSwish, false);
        if (op == "Mul") return mul(false);
        if (op == "Concat") return concat(false);
        if (op == "GlobalMaxPool") return global_maxpool();
        if (op == "Softmax") return softmax();
        if (op == "Flatten") return flatten(false);
        if (op == "Reshape") return flatten(true);
        if (op == "Gemm") return gemm();
        if (op == "MatMul") return matmul(false);
        if (op == "QLinearMatMul") return matmul(true);
        if (op == "Identity") return identity(false);
        if (op == "Dropout") return identity(true);
        if (op == "Constant") return constant_node();
        if (op == "Pad") return pad();
        if (op == "DynamicQuantizeLinear") return dynamic_quantize();
        if (op == "ConvInteger") return integer_op(true);
        if (op == "MatMulInteger") return integer_op(false);
        if (op == "Cast") return cast();
        if (op == "QuantizeLinear") return quantize();
        if (op == "DequantizeLinear") return dequantize();
        nfail("op not supported (supported: Conv, BatchNormalization, Relu, Clip, Sigmoid, HardSigmoid, HardSwish, Add, Mul, "
              "Concat, Pad, MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool, Softmax, "
              "Flatten, Reshape, Gemm, MatMul, Identity, Dropout, Constant, QuantizeLinear, DequantizeLinear, "
              "QLinearConv, QLinearMatMul, DynamicQuantizeLinear + ConvInteger / MatMulInteger + Cast; "
              "com.microsoft: QLinearAdd, QLinearGlobalAveragePool, QGemm)");
    }
    if (n.domain() == "com.microsoft") {
        if (op == "QLinearAdd") return qlinear_add();
        if (op == "QLinearGlobalAveragePool") return global_avgpool(true);
        if (op == "QGemm") return qgemm();
        if (op == "QLinearSigmoid") return unary(OpKind::Sigmoid, true);
        if (op == "QLinearMul") return mul(true);
        if (op == "QLinearConcat") return concat(true);
        if (op == "QLinearAveragePool") return avgpool(true);
        nfail("op not supported (com.microsoft: QLinearAdd, QLinearMul, QLinearSigmoid, QLinearConcat, QLinearAveragePool, "
              "QLinearGlobalAveragePool, QGemm)");
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
    switch (tt.elem_type()) {
    case TP::FLOAT: dt = DType::f32; break;
    case TP::UINT8: dt = DType::u8; break;
    case TP::INT8: dt = DType::s8; break;  // these three: only a DequantizeLinear may read them
    case kOnnxUint4: dt = DType::u4; break;
    case kOnnxInt4: dt = DType::s4; break;
    default:
        fail(where + " has element type " + onnx_type_name(tt.elem_type()) +
             " (only FLOAT or UINT8; INT8, UINT4 or INT4 read by DequantizeLinear)");
    }
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
    // Rank 4 is NCHW, stored NHWC; other ranks keep ONNX's order (elementwise ops, Q/DQ,
    // Concat and Mul take them; ops with a layout check theirs).
    if (s.size() == 4) s = nhwc_shape(s);  // NCHW -> NHWC
    else if (s.empty() || s.size() > 6)
        fail(where + " has rank " + std::to_string(s.size()) + " (supported: 1 to 6; 4 is NCHW)");
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
    case kOnnxUint4: dt = DType::u4; break;
    case kOnnxInt4: dt = DType::s4; break;
    default:
        nfail(where + ": declared element type " + onnx_type_name(want) +
              " not supported (FLOAT, UINT8, INT8, INT32, INT64, BOOL, UINT4, INT4)");
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
    p.set_data_type(dt == DType::f32  ? TP::FLOAT
                    : dt == DType::u8 ? TP::UINT8
                    : dt == DType::s8 ? TP::INT8
                    : dt == DType::u4 ? kOnnxUint4
                    : dt == DType::s4 ? kOnnxInt4
                                      : TP::INT32);
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
        if (a->second.repr != DType::f32 && a->second.repr != DType::u8 && !real_q_.count(v) && !int32_out_.count(v))
            fail("graph output '" + name + "' is " + dtype_name(a->second.repr) +
                 " integers (only float or uint8 outputs, those of a QuantizeLinear, or the int32 of a ConvInteger / "
                 "MatMulInteger on constant zero points)");
        g_.values[v].dtype = a->second.repr;
        rename_[v] = name;
        g_.outputs.push_back(v);
    }
}

Graph Importer::run() {
    const auto &gp = m_.graph();
    bool std_opset = false;
    for (const auto &o : m_.opset_import())
        if (is_std_domain(o.domain())) {
            std_opset = true;
            opset_ = o.version();
        }
    if (!std_opset) fail("no opset_import for the default ONNX domain (truncated or not an ONNX model?)");
    if (!m_.has_graph()) fail("no graph");
    if (gp.input_size() == 0) fail("the graph has no inputs");
    if (gp.output_size() == 0) fail("the graph has no outputs");
    g_.name = gp.name().empty() ? file_ : gp.name();
    g_.io_layout = Layout::nchw;  // ONNX's: rank-4 inputs and outputs are NCHW at the Model's edge
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

}  // namespace onnx_detail

using onnx_detail::Importer;

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
        bytes = onnx_detail::read_file(path);
    } catch (const std::exception &e) {
        throw std::runtime_error(std::string("onnx import: ") + e.what());
    }
    return import_onnx_bytes(bytes, path, options);
}

}  // namespace qh
