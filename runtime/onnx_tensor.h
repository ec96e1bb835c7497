// onnx::TensorProto -> qh::Tensor for callers that use ONNX's protobuf classes themselves
// (needs the onnx headers and ONNX_ML=1 / ONNX_NAMESPACE=onnx, which qhalide_onnx exports).
#pragma once
#include <onnx/onnx_pb.h>

#include <string>

#include "tensor.h"

namespace qh {

// See tensor_from_proto_bytes (onnx_import.h): same types, same checks, errors name `where`.
Tensor tensor_from_proto(const onnx::TensorProto &t, const std::string &where);

}  // namespace qh
