// Small ONNX models in the three styles the importer knows (float, QDQ, QOperator), built with
// onnx_builder.h: the importer tests check them node by node, and fuzz/make_onnx_seeds.cpp writes
// them as seeds of the fuzz_onnx corpus.
#pragma once
#include <vector>

#include "onnx_builder.h"

namespace qh::test {

// n values start, start + step, ...
inline std::vector<float> ramp(size_t n, float start, float step) {
    std::vector<float> v(n);
    for (size_t i = 0; i < n; i++) v[i] = start + step * float(i);
    return v;
}

// x -> conv1(+b) -> bn -> relu -> conv2 -> add(relu, conv2) -> maxpool -> gap -> flatten
//   -> gemm transB=1 -> gemm transB=0 -> matmul + bias -> logits
inline OnnxBuilder float_model() {
    OnnxBuilder m("float_net");
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

// x -Q/DQ-> conv(DQ(int8 W per channel), DQ(int32 bias)) -Q/DQ(int8)-> relu -Q/DQ-> out
inline OnnxBuilder qdq_model(float bias_scale_factor = 1.f, int w_axis = 0) {
    OnnxBuilder m("qdq_conv");
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

// x -Q-> QLinearConv (u8 weights with zero points, int32 bias) and QLinearConv (s8 weights, pads)
//   -> QLinearAdd -> MaxPool on u8 -> QLinearGlobalAveragePool -DQ-> y
inline OnnxBuilder qop_model(float add_a_scale = 0.1f) {
    OnnxBuilder m("qop_net");
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

// The int4 QDQ form of a conv (W4A4, as ONNX opset 21 writes it): x -Q/DQ(UINT4)-> conv(DQ(INT4 W
// per output channel, or UINT4 W per tensor with zero point 8 when `uint4_weights`),
// DQ(int32 bias)) -Q/DQ(UINT4)-> out. The weights are int4_conv_weight(i) in flat OIHW order.
inline int32_t int4_conv_weight(size_t i, bool uint4_weights) {
    return uint4_weights ? int32_t((i * 7 + 3) % 16) : int32_t((i * 5 + 1) % 16) - 8;
}
inline OnnxBuilder int4_qdq_model(bool uint4_weights = false, bool raw = true) {
    OnnxBuilder m("int4_qdq_conv", 21);
    m.input("x", {1, 3, 5, 5});
    m.f32("x_s", {}, {0.1f});
    m.int4("x_z", kOnnxUint4, {}, {8}, raw);
    m.node("QuantizeLinear", {"x", "x_s", "x_z"}, {"x_q"}, "x_quant");
    m.node("DequantizeLinear", {"x_q", "x_s", "x_z"}, {"x_dq"}, "x_dequant");
    std::vector<int32_t> wq(4 * 3 * 3 * 3);
    for (size_t i = 0; i < wq.size(); i++) wq[i] = int4_conv_weight(i, uint4_weights);
    const int wt = uint4_weights ? kOnnxUint4 : kOnnxInt4;
    m.int4("w_q", wt, {4, 3, 3, 3}, wq, raw);
    std::vector<float> ws = uint4_weights ? std::vector<float>{0.05f} : std::vector<float>{0.05f, 0.1f, 0.15f, 0.2f};
    m.f32("w_s", {int64_t(ws.size())}, ws);
    m.int4("w_z", wt, {int64_t(ws.size())}, std::vector<int32_t>(ws.size(), uint4_weights ? 8 : 0), raw);
    auto &dqw = m.node("DequantizeLinear", {"w_q", "w_s", "w_z"}, {"w_dq"}, "w_dequant");
    attr(dqw, "axis", int64_t(0));
    m.ints("b_q", TP::INT32, {4}, {10, -20, 30, -40});
    std::vector<float> bs;
    for (int c = 0; c < 4; c++) bs.push_back(0.1f * ws[ws.size() == 1 ? 0 : c]);
    m.f32("b_s", {4}, bs);
    auto &dqb = m.node("DequantizeLinear", {"b_q", "b_s"}, {"b_dq"}, "b_dequant");
    attr(dqb, "axis", int64_t(0));
    auto &conv = m.node("Conv", {"x_dq", "w_dq", "b_dq"}, {"y"}, "conv");
    attr(conv, "pads", {1, 1, 1, 1});
    m.f32("y_s", {}, {0.5f});
    m.int4("y_z", kOnnxUint4, {}, {3}, raw);
    m.node("QuantizeLinear", {"y", "y_s", "y_z"}, {"y_q"}, "y_quant");
    m.node("DequantizeLinear", {"y_q", "y_s", "y_z"}, {"out"}, "y_dequant");
    m.output("out");
    return m;
}

// x {2,8,1,1} -> Reshape(shape {0,-1}: a flatten) -> Gemm transB=1 -> y
inline OnnxBuilder reshape_model() {
    OnnxBuilder m("reshape_net");
    m.input("x", {2, 8, 1, 1});
    m.i64("shape", {2}, {0, -1});
    m.node("Reshape", {"x", "shape"}, {"r"}, "reshape");
    m.f32("W", {3, 8}, ramp(24, 0.f, 0.1f));
    auto &fc = m.node("Gemm", {"r", "W"}, {"y"}, "fc");
    attr(fc, "transB", int64_t(1));
    m.output("y");
    return m;
}

}  // namespace qh::test
