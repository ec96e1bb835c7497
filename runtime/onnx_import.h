// ONNX importer: .onnx files -> the Graph IR (graph.h). Library target qhalide_onnx.
//
// Three model styles are recognized automatically (they may even mix):
//  - float: Conv, BatchNormalization, Relu, Add, MaxPool, GlobalAveragePool, Flatten, Reshape
//    (as a flatten), Gemm, MatMul (+ a constant bias Add), Identity, Dropout, Constant;
//  - QDQ (ONNX Runtime quantize_static, QuantFormat.QDQ): QuantizeLinear -> DequantizeLinear
//    pairs on activations become the `quant` of the value; DequantizeLinear of integer constants
//    becomes integer weights (per tensor or per output channel) or an s32 bias;
//  - QOperator: QuantizeLinear, QLinearConv, QLinearMatMul, QLinearAdd, QLinearGlobalAveragePool,
//    QGemm (com.microsoft), MaxPool on u8, DequantizeLinear: plain ops whose values carry quant.
// NCHW graph inputs become NHWC shapes (data is never transposed; weights stay OIHW); a dynamic
// batch dimension becomes 1. Anything else is refused when the model is loaded, with a
// std::runtime_error naming the file, the node (name and op_type), what it has and what is
// supported. Nothing is approximated. Activation quant is per tensor; GraphValue::qtype says
// whether its zero point is for uint8 or int8 (as the model has it).
//
// The public header does not include ONNX's protobuf headers; onnx_tensor.h does, for callers
// that already hold an onnx::TensorProto.
#pragma once
#include <string>

#include "graph.h"
#include "tensor.h"

namespace qh {

// Reads and imports a model file; errors name `path`.
Graph import_onnx(const std::string &path);
// Imports a serialized onnx::ModelProto; errors name `name`, which also names the graph.
Graph import_onnx_bytes(const std::string &bytes, const std::string &name);

// Decodes a serialized onnx::TensorProto (raw_data or typed fields): FLOAT -> f32, UINT8 -> u8,
// INT8 -> s8, INT32 -> s32, INT64 -> s32 (each value range-checked), BOOL -> u8 (0/1). Other types, external
// data, inconsistent sizes or out-of-range values throw, naming `where`.
Tensor tensor_from_proto_bytes(const std::string &bytes, const std::string &where);
// The same for a .pb file holding one TensorProto (e.g. ONNX test data sets).
Tensor load_tensor_pb(const std::string &path);

}  // namespace qh
