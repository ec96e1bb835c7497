// ONNX importer: .onnx files -> the Graph IR (graph.h). Library target qhalide_onnx.
//
// Three model styles are recognized automatically (they may even mix):
//  - float: Conv, BatchNormalization, Relu, Clip, Sigmoid, HardSigmoid, HardSwish, Add, Mul,
//    Concat, Pad, MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool, Softmax, Flatten,
//    Reshape (as a flatten; of a constant: a constant), Gemm, MatMul (+ a constant bias Add),
//    Identity, Dropout, Constant;
//  - QDQ (ONNX Runtime quantize_static, QuantFormat.QDQ): QuantizeLinear -> DequantizeLinear
//    pairs on activations become the `quant` of the value; DequantizeLinear of integer constants
//    becomes integer weights (per tensor or per output channel) or an s32 bias;
//  - QOperator: QuantizeLinear, QLinearConv, QLinearMatMul, QLinearAdd, QLinearGlobalAveragePool,
//    QGemm, QLinearMul, QLinearSigmoid, QLinearConcat, QLinearAveragePool (com.microsoft), MaxPool
//    and Pad on u8, DequantizeLinear: plain ops whose values carry quant;
//  - dynamic (ONNX Runtime quantize_dynamic): DynamicQuantizeLinear -> ConvInteger / MatMulInteger
//    -> Cast -> Mul -> Add, one Conv / Dense with GraphNode::dynamic; ConvInteger / MatMulInteger
//    on uint8 with constant zero points give their int32 result (GraphNode::int32_output).
// INT4 / UINT4 (opset 21) in QDQ form: 4-bit constants behind DequantizeLinear become s4 / u4
// weights, 4-bit zero points on activation Q/DQ pairs a u4 / s4 qtype. QuantizeLinear /
// DequantizeLinear that cannot fold into a value's quant become nodes of their own (graph.h): a
// graph input quantized straight into a graph output, per-axis scales on activations, int8 /
// 4-bit integers crossing the API (graph inputs read by DequantizeLinear, QuantizeLinear graph
// outputs). Blocked quantization (block_size) is refused.
// NCHW graph inputs become NHWC shapes in the IR (weights stay OIHW) and Graph::io_layout is
// NCHW: the Model takes and gives rank-4 tensors in NCHW, converting at its edge; a dynamic
// batch dimension becomes 1. Anything else is refused when the model is loaded, with a
// std::runtime_error naming the file, the node (name and op_type), what it has and what is
// supported. Nothing is approximated. Activation quant is per tensor; GraphValue::qtype says
// whether its zero point is for uint8 or int8 (as the model has it).
//
// Graph inputs with given values (ImportOptions::input_values). ONNX's conformance models (and
// some exported ones) take weights, biases, scales, zero points or Reshape shapes as graph inputs.
// The rule, applied where the importer resolves a constant (one place, not per op): a graph input
// that has a given value AND is read by a node where only a constant is supported (Conv/Gemm/
// MatMul weights and bias, every scale and zero point of QuantizeLinear/DequantizeLinear/QLinear*/
// QGemm, BatchNormalization parameters, Reshape's shape, Dropout's training_mode) becomes a
// constant with that value. Its value must match the input's declared element type and shape
// (INT64 is read as s32), or the import fails naming the file, the node and the input. Every
// other graph input stays a runtime input (its given value is not used and not checked), also
// where a tensor may be either (the data input of DequantizeLinear, Add, Identity). A graph input
// read both as a constant and as data is an error. Values are in ONNX layout, as loaded from the
// .pb/.npy file (not transposed). Names that are not graph inputs, or that have an initializer,
// are errors. The IR's inputs keep the model's order, less the inputs that became constants.
//
// The public header does not include ONNX's protobuf headers; onnx_tensor.h does, for callers
// that already hold an onnx::TensorProto.
#pragma once
#include <map>
#include <string>

#include "graph.h"
#include "tensor.h"

namespace qh {

struct ImportOptions {
    // Values for graph inputs, by name, in ONNX layout; see "Graph inputs with given values".
    std::map<std::string, Tensor> input_values;
};

// Reads and imports a model file; errors name `path`.
Graph import_onnx(const std::string &path);
Graph import_onnx(const std::string &path, const ImportOptions &options);
// Imports a serialized onnx::ModelProto; errors name `name`, which also names the graph.
Graph import_onnx_bytes(const std::string &bytes, const std::string &name);
Graph import_onnx_bytes(const std::string &bytes, const std::string &name, const ImportOptions &options);

// Decodes a serialized onnx::TensorProto (raw_data or typed fields): FLOAT -> f32, UINT8 -> u8,
// INT8 -> s8, INT32 -> s32, INT64 -> s32 (each value range-checked), BOOL -> u8 (0/1), UINT4 / INT4
// -> u4 / s4 (packed two per byte, low nibble first, in raw_data or int32_data). Other types, external
// data, inconsistent sizes or out-of-range values throw, naming `where`.
Tensor tensor_from_proto_bytes(const std::string &bytes, const std::string &where);
// The same for a .pb file holding one TensorProto (e.g. ONNX test data sets).
Tensor load_tensor_pb(const std::string &path);
// The same, and *name receives the TensorProto's name field ("" if it has none).
Tensor load_tensor_pb(const std::string &path, std::string *name);

}  // namespace qh
