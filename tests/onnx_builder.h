// Builds small ONNX models in tests with ONNX's protobuf classes (onnx/onnx_pb.h).
#pragma once
#include <onnx/onnx_pb.h>

#include <cstdint>
#include <string>
#include <vector>

#include "graph.h"
#include "onnx_import.h"
#include "onnx_tensor.h"

namespace qh::test {

using TP = onnx::TensorProto;

// ---- building models -------------------------------------------------------------------------

struct OnnxBuilder {
    onnx::ModelProto m;
    onnx::GraphProto *g;
    std::string name;

    explicit OnnxBuilder(std::string n, int opset = 13) : name(std::move(n)) {
        m.set_ir_version(7);
        m.set_producer_name("qhalide-test");
        auto *o = m.add_opset_import();
        o->set_domain("");
        o->set_version(opset);
        g = m.mutable_graph();
        g->set_name(name);
    }
    void ms_domain() {
        auto *o = m.add_opset_import();
        o->set_domain("com.microsoft");
        o->set_version(1);
    }
    // dims: -1 = symbolic ("N").
    void input(const std::string &n, std::vector<int64_t> dims, int elem = TP::FLOAT) {
        auto *vi = g->add_input();
        vi->set_name(n);
        auto *tt = vi->mutable_type()->mutable_tensor_type();
        tt->set_elem_type(elem);
        auto *sh = tt->mutable_shape();
        for (int64_t d : dims) {
            auto *dim = sh->add_dim();
            if (d < 0) dim->set_dim_param("N");
            else dim->set_dim_value(d);
        }
    }
    void output(const std::string &n, int elem = TP::FLOAT) {
        auto *vi = g->add_output();
        vi->set_name(n);
        vi->mutable_type()->mutable_tensor_type()->set_elem_type(elem);
    }
    onnx::NodeProto &node(const std::string &op, std::vector<std::string> in, std::vector<std::string> out,
                          const std::string &name = "", const std::string &domain = "") {
        auto *n = g->add_node();
        n->set_op_type(op);
        n->set_name(name);
        if (!domain.empty()) n->set_domain(domain);
        for (auto &i : in) n->add_input(i);
        for (auto &o : out) n->add_output(o);
        return *n;
    }
    TP &init(const std::string &n, int type, std::vector<int64_t> dims) {
        TP *t = g->add_initializer();
        t->set_name(n);
        t->set_data_type(type);
        for (auto d : dims) t->add_dims(d);
        return *t;
    }
    // Floats in float_data; integers alternate raw_data (raw=true) and int32_data.
    void f32(const std::string &n, std::vector<int64_t> dims, const std::vector<float> &v, bool raw = false) {
        TP &t = init(n, TP::FLOAT, dims);
        if (raw) t.set_raw_data(std::string(reinterpret_cast<const char *>(v.data()), v.size() * 4));
        else for (float f : v) t.add_float_data(f);
    }
    void ints(const std::string &n, int type, std::vector<int64_t> dims, const std::vector<int32_t> &v, bool raw = true) {
        TP &t = init(n, type, dims);
        if (!raw) {
            for (int32_t x : v) t.add_int32_data(x);
            return;
        }
        std::string r;
        for (int32_t x : v) {
            if (type == TP::INT32) r.append(reinterpret_cast<const char *>(&x), 4);
            else r.push_back(char(x));
        }
        t.set_raw_data(r);
    }
    // INT4 / UINT4 (kOnnxInt4 / kOnnxUint4): two values per byte, element 2i in the low nibble,
    // in raw_data or (raw=false) int32_data, one packed byte per entry as the ONNX spec and
    // onnx.helper.make_tensor have it.
    void int4(const std::string &n, int type, std::vector<int64_t> dims, const std::vector<int32_t> &v,
              bool raw = true) {
        TP &t = init(n, type, dims);
        std::string r((v.size() + 1) / 2, '\0');
        for (size_t i = 0; i < v.size(); i++) r[i / 2] = char(uint8_t(r[i / 2]) | ((v[i] & 15) << (4 * (i & 1))));
        if (raw) t.set_raw_data(r);
        else for (char c : r) t.add_int32_data(uint8_t(c));
    }
    void i64(const std::string &n, std::vector<int64_t> dims, const std::vector<int64_t> &v) {
        TP &t = init(n, TP::INT64, dims);
        for (int64_t x : v) t.add_int64_data(x);
    }
    std::string bytes() const { return m.SerializeAsString(); }
    Graph import() const { return import_onnx_bytes(bytes(), name); }
};

inline void attr(onnx::NodeProto &n, const std::string &name, std::vector<int64_t> v) {
    auto *a = n.add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INTS);
    for (auto x : v) a->add_ints(x);
}
inline void attr(onnx::NodeProto &n, const std::string &name, int64_t v) {
    auto *a = n.add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(v);
}
inline void attr_f(onnx::NodeProto &n, const std::string &name, float v) {
    auto *a = n.add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::FLOAT);
    a->set_f(v);
}
inline void attr_s(onnx::NodeProto &n, const std::string &name, const std::string &v) {
    auto *a = n.add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::STRING);
    a->set_s(v);
}

}  // namespace qh::test
