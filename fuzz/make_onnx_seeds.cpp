// Writes the generated part of the fuzz_onnx seed corpus: small valid models in every style the
// importer knows (float, QDQ, QOperator), built with ONNX's protobuf classes like
// tests/test_onnx_import.cpp (the builders below are copied from there).
//   build-asan/fuzz/fuzz_make_onnx_seeds fuzz/corpus/fuzz_onnx
#include <onnx/onnx_pb.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

namespace {

using TP = onnx::TensorProto;

struct Model {
    onnx::ModelProto m;
    onnx::GraphProto *g;
    std::string name;

    explicit Model(std::string n, int opset = 13) : name(std::move(n)) {
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
    void i64(const std::string &n, std::vector<int64_t> dims, const std::vector<int64_t> &v) {
        TP &t = init(n, TP::INT64, dims);
        for (int64_t x : v) t.add_int64_data(x);
    }
    std::string bytes() const { return m.SerializeAsString(); }
};

void attr(onnx::NodeProto &n, const std::string &name, std::vector<int64_t> v) {
    auto *a = n.add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INTS);
    for (auto x : v) a->add_ints(x);
}
void attr(onnx::NodeProto &n, const std::string &name, int64_t v) {
    auto *a = n.add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(v);
}
void attr_f(onnx::NodeProto &n, const std::string &name, float v) {
    auto *a = n.add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::FLOAT);
    a->set_f(v);
}
void attr_s(onnx::NodeProto &n, const std::string &name, const std::string &v) {
    auto *a = n.add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::STRING);
    a->set_s(v);
}

std::vector<float> ramp(size_t n, float start, float step) {
    std::vector<float> v(n);
    for (size_t i = 0; i < n; i++) v[i] = start + step * float(i);
    return v;
}


// tests/test_onnx_import.cpp: float_model, qdq_model, qop_model.
Model float_model() {
    Model m("float_net");
    m.input("x", {-1, 3, 8, 8});
    m.f32("W1", {4, 3, 3, 3}, ramp(108, -1.f, 0.02f), true);
    m.f32("B1", {4}, {0.1f, 0.2f, 0.3f, 0.4f});
    auto &c1 = m.node("Conv", {"x", "W1", "B1"}, {"c1"}, "conv1");
    attr(c1, "pads", {1, 1, 1, 1});
    attr(c1, "kernel_shape", {3, 3});
    m.f32("bn_s", {4}, {1.f, 2.f, 0.5f, 1.5f});
    m.f32("bn_b", {4}, {0.f, 0.1f, -0.1f, 0.2f});
    m.f32("bn_m", {4}, {0.5f, -0.5f, 0.f, 1.f});
    m.f32("bn_v", {4}, {1.f, 4.f, 0.25f, 2.f});
    auto &bn = m.node("BatchNormalization", {"c1", "bn_s", "bn_b", "bn_m", "bn_v"}, {"b1"}, "bn1");
    attr_f(bn, "epsilon", 1e-3f);
    m.node("Relu", {"b1"}, {"r1"}, "relu1");
    m.f32("W2", {4, 4, 1, 1}, ramp(16, 0.5f, -0.05f));
    m.node("Conv", {"r1", "W2"}, {"c2"}, "conv2");
    m.node("Add", {"r1", "c2"}, {"s1"}, "add1");
    auto &mp = m.node("MaxPool", {"s1"}, {"p1"}, "pool1");
    attr(mp, "kernel_shape", {2, 2});
    attr(mp, "strides", {2, 2});
    m.node("GlobalAveragePool", {"p1"}, {"g1"}, "gap");
    m.node("Flatten", {"g1"}, {"f1"}, "flatten");
    m.f32("Wfc", {5, 4}, ramp(20, -0.5f, 0.05f));
    m.f32("Cfc", {5}, {1.f, 2.f, 3.f, 4.f, 5.f});
    auto &fc = m.node("Gemm", {"f1", "Wfc", "Cfc"}, {"fc1"}, "fc1");
    attr(fc, "transB", int64_t(1));
    m.f32("Wkn", {5, 6}, ramp(30, 0.f, 1.f));
    m.f32("Ckn", {}, {0.25f});
    m.node("Gemm", {"fc1", "Wkn", "Ckn"}, {"fc2"}, "fc2");
    m.node("Dropout", {"fc2"}, {"d1"}, "drop");
    m.f32("Wm", {6, 2}, ramp(12, 1.f, 1.f));
    m.f32("bm", {2}, {-1.f, 1.f});
    m.node("MatMul", {"d1", "Wm"}, {"mm"}, "matmul");
    m.node("Add", {"mm", "bm"}, {"logits"}, "bias");
    m.output("logits");
    return m;
}

Model qdq_model(float bias_scale_factor = 1.f, int w_axis = 0) {
    Model m("qdq_conv");
    m.input("x", {1, 3, 5, 5});
    m.f32("x_s", {}, {0.02f});
    m.ints("x_z", TP::UINT8, {}, {128});
    m.node("QuantizeLinear", {"x", "x_s", "x_z"}, {"x_q"}, "x_quant");
    m.node("DequantizeLinear", {"x_q", "x_s", "x_z"}, {"x_dq"}, "x_dequant");
    std::vector<int32_t> wq(4 * 3 * 3 * 3);
    for (size_t i = 0; i < wq.size(); i++) wq[i] = int32_t(i % 255) - 127;
    m.ints("w_q", TP::INT8, {4, 3, 3, 3}, wq);
    std::vector<float> ws = {0.01f, 0.02f, 0.03f, 0.04f};
    if (w_axis == 1) ws.resize(3);
    m.f32("w_s", {int64_t(ws.size())}, ws);
    m.ints("w_z", TP::INT8, {int64_t(ws.size())}, std::vector<int32_t>(ws.size(), 0), false);
    auto &dqw = m.node("DequantizeLinear", {"w_q", "w_s", "w_z"}, {"w_dq"}, "w_dequant");
    attr(dqw, "axis", int64_t(w_axis));
    m.ints("b_q", TP::INT32, {4}, {100, -200, 300, -400});
    std::vector<float> bs;
    for (int c = 0; c < 4; c++) bs.push_back(0.02f * ws[w_axis == 0 ? c : 0] * bias_scale_factor);
    m.f32("b_s", {4}, bs);
    m.ints("b_z", TP::INT32, {4}, {0, 0, 0, 0});
    auto &dqb = m.node("DequantizeLinear", {"b_q", "b_s", "b_z"}, {"b_dq"}, "b_dequant");
    attr(dqb, "axis", int64_t(0));
    auto &conv = m.node("Conv", {"x_dq", "w_dq", "b_dq"}, {"y"}, "conv");
    attr(conv, "pads", {1, 1, 1, 1});
    m.f32("y_s", {}, {0.05f});
    m.ints("y_z", TP::INT8, {}, {-3});
    m.node("QuantizeLinear", {"y", "y_s", "y_z"}, {"y_q"}, "y_quant");
    m.node("DequantizeLinear", {"y_q", "y_s", "y_z"}, {"y_dq"}, "y_dequant");
    m.node("Relu", {"y_dq"}, {"r"}, "relu");
    m.f32("r_s", {}, {0.04f});
    m.ints("r_z", TP::UINT8, {}, {0});
    m.node("QuantizeLinear", {"r", "r_s", "r_z"}, {"r_q"}, "r_quant");
    m.node("DequantizeLinear", {"r_q", "r_s", "r_z"}, {"out"}, "r_dequant");
    m.output("out");
    return m;
}

Model qop_model(float add_a_scale = 0.1f) {
    Model m("qop_net");
    m.ms_domain();
    m.input("x", {1, 2, 4, 4});
    m.f32("x_s", {}, {0.05f});
    m.ints("x_z", TP::UINT8, {}, {10});
    m.node("QuantizeLinear", {"x", "x_s", "x_z"}, {"x_q"}, "quant");
    m.ints("wa", TP::UINT8, {3, 2, 1, 1}, {1, 2, 3, 4, 5, 6});
    m.f32("wa_s", {3}, {0.1f, 0.2f, 0.3f});
    m.ints("wa_z", TP::UINT8, {3}, {128, 127, 126});
    m.f32("a_s", {}, {0.1f});
    m.ints("a_z", TP::UINT8, {}, {5});
    m.ints("ba", TP::INT32, {3}, {7, 8, 9});
    m.node("QLinearConv", {"x_q", "x_s", "x_z", "wa", "wa_s", "wa_z", "a_s", "a_z", "ba"}, {"a_q"}, "conv_a");
    m.ints("wb", TP::INT8, {3, 2, 3, 3}, std::vector<int32_t>(54, -2), false);
    m.f32("wb_s", {}, {0.5f});
    m.ints("wb_z", TP::INT8, {}, {0});
    m.f32("b_s", {}, {0.2f});
    m.ints("b_z", TP::UINT8, {}, {0});
    auto &cb = m.node("QLinearConv", {"x_q", "x_s", "x_z", "wb", "wb_s", "wb_z", "b_s", "b_z"}, {"b_q"}, "conv_b");
    attr(cb, "pads", {1, 1, 1, 1});
    m.f32("a_s2", {}, {add_a_scale});
    m.f32("s_s", {}, {0.3f});
    m.ints("s_z", TP::UINT8, {}, {0});
    m.node("QLinearAdd", {"a_q", "a_s2", "a_z", "b_q", "b_s", "b_z", "s_s", "s_z"}, {"s_q"}, "add", "com.microsoft");
    auto &mp = m.node("MaxPool", {"s_q"}, {"p_q"}, "pool");
    attr(mp, "kernel_shape", {2, 2});
    attr(mp, "strides", {2, 2});
    m.f32("g_s", {}, {0.25f});
    m.ints("g_z", TP::UINT8, {}, {3});
    auto &gap = m.node("QLinearGlobalAveragePool", {"p_q", "s_s", "s_z", "g_s", "g_z"}, {"g_q"}, "gap", "com.microsoft");
    attr(gap, "channels_last", int64_t(0));
    m.node("DequantizeLinear", {"g_q", "g_s", "g_z"}, {"y"}, "dequant");
    m.output("y");
    return m;
}

// Reshape as flatten + Gemm, u8 graph input.
Model reshape_model() {
    Model m("reshape_net");
    m.input("x", {2, 8, 1, 1});
    m.i64("shape", {2}, {0, -1});
    m.node("Reshape", {"x", "shape"}, {"r"}, "reshape");
    m.f32("W", {3, 8}, ramp(24, 0.f, 0.1f));
    auto &fc = m.node("Gemm", {"r", "W"}, {"y"}, "fc");
    attr(fc, "transB", int64_t(1));
    m.output("y");
    return m;
}

// QOperator dense: QuantizeLinear -> QLinearMatMul -> QGemm (com.microsoft) -> DequantizeLinear.
Model qmatmul_model() {
    Model m("qmatmul_net");
    m.ms_domain();
    m.input("x", {1, 6});
    m.f32("x_s", {}, {0.05f});
    m.ints("x_z", TP::UINT8, {}, {128});
    m.node("QuantizeLinear", {"x", "x_s", "x_z"}, {"x_q"}, "quant");
    std::vector<int32_t> w(6 * 4);
    for (size_t i = 0; i < w.size(); i++) w[i] = int32_t(i * 7 % 200) - 100;
    m.ints("w", TP::INT8, {6, 4}, w);
    m.f32("w_s", {}, {0.01f});
    m.ints("w_z", TP::INT8, {}, {0});
    m.f32("y_s", {}, {0.1f});
    m.ints("y_z", TP::UINT8, {}, {100});
    m.node("QLinearMatMul", {"x_q", "x_s", "x_z", "w", "w_s", "w_z", "y_s", "y_z"}, {"y_q"}, "matmul");
    std::vector<int32_t> w2(3 * 4);
    for (size_t i = 0; i < w2.size(); i++) w2[i] = int32_t(i * 13 % 200) - 100;
    m.ints("w2", TP::INT8, {3, 4}, w2);
    m.f32("w2_s", {}, {0.02f});
    m.ints("w2_z", TP::INT8, {}, {0});
    m.ints("b2", TP::INT32, {3}, {10, -20, 30});
    m.f32("z_s", {}, {0.2f});
    m.ints("z_z", TP::UINT8, {}, {50});
    auto &g = m.node("QGemm", {"y_q", "y_s", "y_z", "w2", "w2_s", "w2_z", "b2", "z_s", "z_z"}, {"z_q"}, "gemm",
                     "com.microsoft");
    attr(g, "transB", int64_t(1));
    attr_f(g, "alpha", 1.f);
    m.node("DequantizeLinear", {"z_q", "z_s", "z_z"}, {"z"}, "dequant");
    m.output("z");
    return m;
}

}  // namespace

int main(int argc, char **argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s OUTPUT_DIR\n", argv[0]);
        return 2;
    }
    const std::string dir = argv[1];
    std::vector<std::pair<std::string, Model>> models;
    models.emplace_back("gen_float.onnx", float_model());
    models.emplace_back("gen_qdq_conv.onnx", qdq_model());
    models.emplace_back("gen_qop.onnx", qop_model());
    models.emplace_back("gen_reshape_gemm.onnx", reshape_model());
    models.emplace_back("gen_qmatmul_qgemm.onnx", qmatmul_model());
    for (auto &[file, m] : models) {
        std::ofstream f(dir + "/" + file, std::ios::binary);
        f << m.bytes();
        if (!f) {
            std::fprintf(stderr, "cannot write %s/%s\n", dir.c_str(), file.c_str());
            return 1;
        }
        std::printf("%s/%s (%zu bytes)\n", dir.c_str(), file.c_str(), m.bytes().size());
    }
    return 0;
}
