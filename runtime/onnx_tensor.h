// onnx::TensorProto -> qh::Tensor for callers that use ONNX's protobuf classes themselves
// (needs the onnx headers and ONNX_ML=1 / ONNX_NAMESPACE=onnx, which qhalide_onnx exports).
#pragma once
#include <onnx/onnx_pb.h>

#include <string>

#include "tensor.h"

namespace qh {

// TensorProto data types newer than Debian's libonnx (1.12), whose enum has no names for them.
constexpr int kOnnxUint4 = 21;  // u4, packed two per byte, low nibble first
constexpr int kOnnxInt4 = 22;   // s4, the same packing

// See tensor_from_proto_bytes (onnx_import.h): same types, same checks, errors name `where`.
Tensor tensor_from_proto(const onnx::TensorProto &t, const std::string &where);

// "FLOAT", "UINT8", "INT4", "FLOAT16", ... by number (whatever libonnx's enum knows), or
// "unknown type N".
std::string onnx_type_name(int type);

}  // namespace qh
