// ONNX TensorProto -> qh::Tensor (onnx_tensor.h, onnx_import.h: tensor_from_proto*,
// load_tensor_pb), and the importer's file reading.
#include "onnx_importer.h"

namespace qh {

using onnx_detail::onnx_type_name;

namespace onnx_detail {

std::string onnx_type_name(int t) {
    return TP::DataType_IsValid(t) ? TP::DataType_Name(TP::DataType(t)) : "invalid type " + std::to_string(t);
}

// Protocol buffers cannot parse a message over 2 GiB, so no ONNX file is larger.
std::string read_file(const std::string &path) {
    return read_regular_file(path, size_t(INT32_MAX), "an ONNX model or tensor (protobuf, at most 2 GiB)");
}

}  // namespace onnx_detail

using TP = onnx::TensorProto;

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


Tensor load_tensor_pb(const std::string &path) { return tensor_from_proto_bytes(onnx_detail::read_file(path), path); }

Tensor load_tensor_pb(const std::string &path, std::string *name) {
    TP t;
    if (!t.ParseFromString(onnx_detail::read_file(path))) throw std::runtime_error(path + ": not a valid serialized onnx.TensorProto");
    if (name) *name = t.name();
    return tensor_from_proto(t, path);
}

}  // namespace qh
