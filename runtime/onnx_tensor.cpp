// ONNX TensorProto -> qh::Tensor (onnx_tensor.h, onnx_import.h: tensor_from_proto*,
// load_tensor_pb), and the importer's file reading.
#include "onnx_importer.h"

namespace qh {

// By number, not through the protobuf enum: Debian's libonnx (1.12) knows no type after
// BFLOAT16 (16), and models carry the newer ones (UINT4 = 21, INT4 = 22, ...).
std::string onnx_type_name(int t) {
    static const char *const names[] = {
        "UNDEFINED", "FLOAT", "UINT8", "INT8", "UINT16", "INT16", "INT32", "INT64", "STRING", "BOOL",
        "FLOAT16", "DOUBLE", "UINT32", "UINT64", "COMPLEX64", "COMPLEX128", "BFLOAT16", "FLOAT8E4M3FN",
        "FLOAT8E4M3FNUZ", "FLOAT8E5M2", "FLOAT8E5M2FNUZ", "UINT4", "INT4", "FLOAT4E2M1", "FLOAT8E8M0",
        "UINT2", "INT2", "FLOAT6E2M3", "FLOAT6E3M2"};
    if (t >= 0 && t < int(sizeof(names) / sizeof(names[0]))) return names[t];
    return "unknown type " + std::to_string(t);
}

namespace onnx_detail {

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
    const int type = t.data_type();
    const std::string tname = onnx_type_name(type);
    DType dt;
    size_t elem = 0;  // bytes per element in raw_data (0: packed 4-bit, ceil(n/2) bytes)
    switch (type) {
    case TP::FLOAT: dt = DType::f32; elem = 4; break;
    case TP::UINT8: dt = DType::u8; elem = 1; break;
    case TP::INT8: dt = DType::s8; elem = 1; break;
    case TP::INT32: dt = DType::s32; elem = 4; break;
    case TP::INT64: dt = DType::s32; elem = 8; break;
    case TP::BOOL: dt = DType::u8; elem = 1; break;
    case kOnnxUint4: dt = DType::u4; break;
    case kOnnxInt4: dt = DType::s4; break;
    default:
        fail("data type " + tname + " not supported (FLOAT, UINT8, INT8, INT32, INT64, BOOL, UINT4, INT4)");
        return {};
    }
    const bool four_bit = elem == 0;
    // Bytes the data take in raw_data: packed two per byte for 4-bit types (ONNX and qh::Tensor
    // pack the same way: element 2i in the low nibble of byte i).
    const size_t want_bytes = four_bit ? size_t(n + 1) / 2 : size_t(n) * elem;
    const std::string &raw = t.raw_data();
    auto check_count = [&](int64_t got, int64_t want, const char *field, const char *per) {
        if (got == want) return;
        if (want == n)
            fail(std::string(field) + " has " + std::to_string(got) + " values for shape " + shape_str(dims) + " (" +
                 std::to_string(n) + " elements)");
        fail(std::string(field) + " has " + std::to_string(got) + " entries, shape " + shape_str(dims) + " of " + tname +
             " (" + std::to_string(n) + " elements) needs " + std::to_string(want) + per);
    };
    // The declared shape must match the data actually in the file before anything is allocated:
    // a few bytes of protobuf can declare 2^31 elements.
    if (t.has_raw_data()) {
        if (raw.size() != want_bytes)
            fail("raw_data has " + std::to_string(raw.size()) + " bytes, shape " + shape_str(dims) + " of " + tname +
                 " needs " + std::to_string(want_bytes) + (four_bit ? " (two 4-bit values per byte)" : ""));
    } else {  // (also for 0 elements: data for an empty shape would be copied into nothing)
        switch (type) {
        case TP::FLOAT: check_count(t.float_data_size(), n, "float_data", ""); break;
        case TP::INT64: check_count(t.int64_data_size(), n, "int64_data", ""); break;
        case kOnnxUint4: case kOnnxInt4:
            check_count(t.int32_data_size(), (n + 1) / 2, "int32_data", " (two 4-bit values per entry)");
            break;
        default: check_count(t.int32_data_size(), n, "int32_data", ""); break;
        }
    }
    Tensor r(dt, dims);
    if (four_bit) {
        // One byte per pair, from raw_data or int32_data (each entry one byte, 0..255: the ONNX
        // spec and onnx.helper.make_tensor store two 4-bit values per int32_data entry). Every
        // nibble is a valid value; the unused high nibble of an odd count is cleared, so equal
        // tensors are equal bytes.
        uint8_t *o = r.data<uint8_t>();
        for (size_t i = 0; i < want_bytes; i++) {
            int64_t v = t.has_raw_data() ? int64_t(uint8_t(raw[i])) : int64_t(t.int32_data(int(i)));
            if (v < 0 || v > 255)
                fail("int32_data entry " + std::to_string(i) + " is " + std::to_string(v) + "; " + tname +
                     " int32_data holds two 4-bit values per entry, packed into one byte (0..255)");
            o[i] = uint8_t(v);
        }
        if (n % 2) o[want_bytes - 1] &= 0x0f;
        return r;
    }
    auto put_int = [&](int64_t i, int64_t v) {
        int64_t lo = dt == DType::u8 ? 0 : dt == DType::s8 ? -128 : INT32_MIN;
        int64_t hi = type == TP::BOOL ? 1 : dt == DType::u8 ? 255 : dt == DType::s8 ? 127 : INT32_MAX;
        if (v < lo || v > hi)
            fail("value " + std::to_string(v) + " at element " + std::to_string(i) + " does not fit " +
                 (type == TP::INT64 ? std::string("int32 (INT64 is read as s32)") : tname));
        if (dt == DType::u8) r.data<uint8_t>()[i] = uint8_t(v);
        else if (dt == DType::s8) r.data<int8_t>()[i] = int8_t(v);
        else r.data<int32_t>()[i] = int32_t(v);
    };
    if (t.has_raw_data()) {
        if (type == TP::INT64) {
            for (int64_t i = 0; i < n; i++) {
                int64_t v;
                std::memcpy(&v, raw.data() + i * 8, 8);
                put_int(i, v);
            }
        } else if (type == TP::BOOL) {
            for (int64_t i = 0; i < n; i++) put_int(i, uint8_t(raw[size_t(i)]));
        } else {
            std::memcpy(r.raw(), raw.data(), raw.size());  // little-endian host, as ONNX stores
        }
        return r;
    }
    switch (type) {
    case TP::FLOAT:
        std::copy(t.float_data().begin(), t.float_data().end(), r.data<float>());
        break;
    case TP::INT64:
        for (int64_t i = 0; i < n; i++) put_int(i, t.int64_data(int(i)));
        break;
    default:  // u8 / s8 / s32 / bool: int32_data, one value per element
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
