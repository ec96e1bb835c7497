#include "tensor.h"

#include "resource_limits.h"

#include <HalideRuntime.h>

#include <algorithm>
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

const char *layout_name(Layout l) { return l == Layout::nchw ? "NCHW" : "NHWC"; }
std::vector<int64_t> nchw_shape(const std::vector<int64_t> &s) { return {s.at(0), s.at(3), s.at(1), s.at(2)}; }
std::vector<int64_t> nhwc_shape(const std::vector<int64_t> &s) { return {s.at(0), s.at(2), s.at(3), s.at(1)}; }

namespace {

// Per batch, the rows x cols matrix at src becomes its transpose at dst (element (r, c) of src is
// element (c, r) of dst), in 32 x 32 tiles so that both sides stay in cache. Tasks of the Halide
// thread pool (the one the kernels use) take one batch x a block of the longer side each: an
// image-sized input is memory-bound, and one thread moves it at a fraction of the bandwidth.
template <typename T>
struct TransposeJob {
    const T *src;
    T *dst;
    int64_t rows, cols, block, blocks;  // blocks of `block` rows (split_rows) or columns per batch
    bool split_rows;
};

template <typename T>
int transpose_task(void *, int task, uint8_t *closure) {
    const auto &j = *reinterpret_cast<const TransposeJob<T> *>(closure);
    constexpr int64_t kTile = 32;
    const int64_t n = task / j.blocks, b = task % j.blocks, m = j.rows * j.cols;
    const T *src = j.src + n * m;
    T *dst = j.dst + n * m;
    const int64_t r_lo = j.split_rows ? b * j.block : 0, r_hi = j.split_rows ? std::min(j.rows, r_lo + j.block) : j.rows;
    const int64_t c_lo = j.split_rows ? 0 : b * j.block, c_hi = j.split_rows ? j.cols : std::min(j.cols, c_lo + j.block);
    for (int64_t r0 = r_lo; r0 < r_hi; r0 += kTile)
        for (int64_t c0 = c_lo; c0 < c_hi; c0 += kTile)
            for (int64_t r = r0; r < std::min(r_hi, r0 + kTile); r++)
                for (int64_t c = c0; c < std::min(c_hi, c0 + kTile); c++) dst[c * j.rows + r] = src[r * j.cols + c];
    return 0;
}

template <typename T>
void transpose_batches(const T *src, T *dst, int64_t batches, int64_t rows, int64_t cols) {
    constexpr int64_t kBlock = 4096;  // elements of the longer side per task
    const bool split_rows = rows >= cols;
    const int64_t longer = split_rows ? rows : cols, blocks = (longer + kBlock - 1) / kBlock;
    TransposeJob<T> j{src, dst, rows, cols, kBlock, blocks, split_rows};
    const int64_t tasks = batches * blocks;
    if (tasks == 1 || tasks > INT32_MAX || rows * cols * batches < (int64_t(1) << 16)) {
        for (int64_t t = 0; t < tasks; t++) transpose_task<T>(nullptr, int(t), reinterpret_cast<uint8_t *>(&j));
        return;
    }
    halide_do_par_for(nullptr, transpose_task<T>, 0, int(tasks), reinterpret_cast<uint8_t *>(&j));
}

// 4-bit tensors: element i in the low (even i) or high nibble of byte i / 2.
void transpose_nibbles(const uint8_t *src, uint8_t *dst, int64_t batches, int64_t rows, int64_t cols) {
    const int64_t m = rows * cols;
    std::memset(dst, 0, size_t((batches * m + 1) / 2));
    for (int64_t n = 0; n < batches; n++)
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c = 0; c < cols; c++) {
                const int64_t i = n * m + r * cols + c, o = n * m + c * rows + r;
                dst[o / 2] |= uint8_t(((src[i / 2] >> (4 * (i & 1))) & 15) << (4 * (o & 1)));
            }
}

void change_layout(const Tensor &src, Tensor &dst, bool to_nhwc) {
    const auto &s = src.shape();
    const std::vector<int64_t> want = s.size() != 4 ? std::vector<int64_t>{} : to_nhwc ? nhwc_shape(s) : nchw_shape(s);
    const char *what = to_nhwc ? "NCHW -> NHWC" : "NHWC -> NCHW";
    if (src.rank() != 4 || dst.dtype() != src.dtype() || dst.shape() != want || src.device() != Device::cpu ||
        dst.device() != Device::cpu)
        throw std::invalid_argument(std::string(what) + ": " + src.describe() + " into " + dst.describe() +
                                    " (expected a rank-4 host tensor into " + dtype_name(src.dtype()) + shape_str(want) + ")");
    if (src.numel() == 0) return;
    const int64_t c = to_nhwc ? s[1] : s[3], hw = to_nhwc ? s[2] * s[3] : s[1] * s[2];
    const int64_t rows = to_nhwc ? c : hw, cols = to_nhwc ? hw : c;
    switch (dtype_bits(src.dtype())) {
    case 4: transpose_nibbles(src.data<uint8_t>(), dst.data<uint8_t>(), s[0], rows, cols); break;
    case 8: transpose_batches(src.data<uint8_t>(), dst.data<uint8_t>(), s[0], rows, cols); break;
    default: transpose_batches(src.data<uint32_t>(), dst.data<uint32_t>(), s[0], rows, cols); break;
    }
}

Tensor changed_layout(const Tensor &src, bool to_nhwc) {
    if (src.rank() != 4)
        throw std::invalid_argument(std::string(to_nhwc ? "NCHW -> NHWC" : "NHWC -> NCHW") + ": " + src.describe() +
                                    " is not rank 4");
    Tensor r(src.dtype(), to_nhwc ? nhwc_shape(src.shape()) : nchw_shape(src.shape()), src.quant);
    if (r.quant.axis > 0) r.quant.axis = to_nhwc ? (r.quant.axis == 1 ? 3 : r.quant.axis - 1)   // C moves last
                                                 : (r.quant.axis == 3 ? 1 : r.quant.axis + 1);  // C moves to 1
    change_layout(src, r, to_nhwc);
    return r;
}

}  // namespace

void nchw_to_nhwc(const Tensor &src, Tensor &dst) { change_layout(src, dst, true); }
void nhwc_to_nchw(const Tensor &src, Tensor &dst) { change_layout(src, dst, false); }
Tensor nchw_to_nhwc(const Tensor &src) { return changed_layout(src, true); }
Tensor nhwc_to_nchw(const Tensor &src) { return changed_layout(src, false); }

}  // namespace qh

