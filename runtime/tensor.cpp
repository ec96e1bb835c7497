#include "tensor.h"

#include "resource_limits.h"

#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace qh {

const char *dtype_name(DType t) {
    switch (t) {
    case DType::u8: return "u8";
    case DType::s8: return "s8";
    case DType::s32: return "s32";
    case DType::f32: return "f32";
    case DType::u4: return "u4";
    case DType::s4: return "s4";
    }
    return "?";
}

int dtype_bits(DType t) {
    switch (t) {
    case DType::u8: case DType::s8: return 8;
    case DType::s32: case DType::f32: return 32;
    case DType::u4: case DType::s4: return 4;
    }
    return 0;
}

size_t dtype_storage_bytes(DType t, int64_t numel) {
    return dtype_bits(t) == 4 ? size_t(numel + 1) / 2 : size_t(numel) * dtype_bits(t) / 8;
}

Tensor::Tensor(DType t, std::vector<int64_t> shape, QuantParams q)
    : quant(std::move(q)), dtype_(t), shape_(std::move(shape)) {
    checked_numel(shape_, std::string("tensor ") + dtype_name(t));
    size_t bytes = (nbytes() + 63) / 64 * 64;
    check_budget(bytes, "tensor " + describe());
    void *p = std::aligned_alloc(64, bytes ? bytes : 64);
    if (!p) throw std::length_error("tensor " + describe() + ": out of memory allocating " + bytes_str(bytes));
    std::memset(p, 0, bytes ? bytes : 64);
    owner_ = std::shared_ptr<void>(p, std::free);
    data_ = p;
}

Tensor Tensor::wrap(DType t, std::vector<int64_t> shape, void *data, QuantParams q) {
    checked_numel(shape, std::string("tensor ") + dtype_name(t));
    Tensor r;
    r.dtype_ = t;
    r.shape_ = std::move(shape);
    r.data_ = data;
    r.quant = std::move(q);
    return r;
}

Tensor Tensor::wrap_device(Device d, DType t, std::vector<int64_t> shape, uint64_t handle, QuantParams q) {
    checked_numel(shape, std::string("tensor ") + dtype_name(t));
    Tensor r;
    r.dtype_ = t;
    r.shape_ = std::move(shape);
    r.device_ = d;
    r.device_handle_ = handle;
    r.quant = std::move(q);
    return r;
}

const char *device_name(Device d) { return d == Device::cuda ? "cuda" : "cpu"; }

// Every constructor checked the shape (checked_numel): the product of non-zero dims fits; a
// zero dim makes the tensor empty whatever the other dims are (they are not multiplied).
int64_t Tensor::numel() const {
    for (auto d : shape_)
        if (d == 0) return 0;
    int64_t n = 1;
    for (auto d : shape_) n *= d;
    return n;
}

std::string shape_str(const std::vector<int64_t> &shape) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); i++) s += (i ? "," : "") + std::to_string(shape[i]);
    return s + "]";
}

std::string Tensor::describe() const {
    return dtype_name(dtype_) + shape_str(shape_) + (device_ == Device::cpu ? "" : std::string("@") + device_name(device_));
}

}  // namespace qh
