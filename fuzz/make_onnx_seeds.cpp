// Writes the generated part of the fuzz_onnx seed corpus: small valid models in every style the
// importer knows (float, QDQ, QOperator): the importer tests' models (tests/onnx_test_models.h)
// and one more below, built with tests/onnx_builder.h.
//   build-asan/fuzz/fuzz_make_onnx_seeds fuzz/corpus/fuzz_onnx
#include <onnx/onnx_pb.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "onnx_builder.h"
#include "onnx_test_models.h"

namespace {

using namespace qh::test;
using Model = OnnxBuilder;

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
