// qhalide's tensor: a dtype, a shape, quantization parameters and (shared) storage.
//
// Layout contract: activations are NHWC (shape {N, H, W, C}, C innermost); 2-D activations are
// {N, K}. u4/s4 tensors are packed two values per byte in flat element order, element 2i in the
// low nibble of byte i (see generators/eltwise_generator.cpp). Storage is 64-byte aligned.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace qh {

enum class DType { u8, s8, s32, f32, u4, s4 };

// Where a tensor's storage lives. cuda: a device pointer of the Halide CUDA runtime's context
// (runtime/device.h); such a tensor has no host data (raw() is nullptr).
enum class Device { cpu, cuda };
const char *device_name(Device d);

const char *dtype_name(DType t);
// "[1,56,56,64]": a shape for messages.
std::string shape_str(const std::vector<int64_t> &shape);
int dtype_bits(DType t);
// Byte size of `numel` elements of `t` (packed for u4/s4).
size_t dtype_storage_bytes(DType t, int64_t numel);

// Per-tensor (one scale/zero point) or per-axis quantization: real = scale * (q - zero_point).
struct QuantParams {
    std::vector<float> scale;
    std::vector<int32_t> zero_point;
    int axis = -1;  // -1: per tensor
    bool empty() const { return scale.empty(); }
    float scale_at(size_t i) const { return scale.size() == 1 ? scale[0] : scale.at(i); }
    int32_t zp_at(size_t i) const {
        return zero_point.empty() ? 0 : zero_point.size() == 1 ? zero_point[0] : zero_point.at(i);
    }
    static QuantParams per_tensor(float s, int32_t zp) { return {{s}, {zp}, -1}; }
};

class Tensor {
public:
    Tensor() = default;
    // Allocates zero-filled, 64-byte aligned storage.
    Tensor(DType t, std::vector<int64_t> shape, QuantParams q = {});
    // Wraps memory the caller owns (must outlive the tensor).
    static Tensor wrap(DType t, std::vector<int64_t> shape, void *data, QuantParams q = {});
    // Wraps device memory the caller owns (a CUdeviceptr for cuda; must outlive the tensor).
    static Tensor wrap_device(Device d, DType t, std::vector<int64_t> shape, uint64_t handle,
                              QuantParams q = {});

    DType dtype() const { return dtype_; }
    const std::vector<int64_t> &shape() const { return shape_; }
    int rank() const { return (int)shape_.size(); }
    int64_t dim(int i) const { return shape_.at(i < 0 ? i + rank() : i); }
    int64_t numel() const;
    size_t nbytes() const { return dtype_storage_bytes(dtype_, numel()); }
    void *raw() { return data_; }
    const void *raw() const { return data_; }
    template <typename T> T *data() { return static_cast<T *>(data_); }
    template <typename T> const T *data() const { return static_cast<const T *>(data_); }
    bool defined() const { return data_ != nullptr || device_handle_ != 0 || numel() == 0; }
    Device device() const { return device_; }
    uint64_t device_handle() const { return device_handle_; }  // 0 for host tensors
    std::string describe() const;  // "u8[1,56,56,64]"

    QuantParams quant;

private:
    DType dtype_ = DType::u8;
    std::vector<int64_t> shape_;
    std::shared_ptr<void> owner_;
    void *data_ = nullptr;
    Device device_ = Device::cpu;
    uint64_t device_handle_ = 0;
};

// How a caller lays out rank-4 activations. qhalide computes in NHWC; a model that declares
// NCHW (every ONNX model) takes and gives NCHW at its edge (Model::input / output), converted
// there. Other ranks have one layout (the model's own order).
enum class Layout { nhwc, nchw };
const char *layout_name(Layout l);  // "NHWC" / "NCHW"
// The rank-4 shape in the other layout: {N,H,W,C} -> {N,C,H,W} and back.
std::vector<int64_t> nchw_shape(const std::vector<int64_t> &nhwc);
std::vector<int64_t> nhwc_shape(const std::vector<int64_t> &nchw);
// Rank-4 layout changes between host tensors of any dtype (4-bit included): `dst` must have the
// same dtype and the permuted shape ({N,C,H,W} <-> {N,H,W,C}); throws std::invalid_argument if not.
void nchw_to_nhwc(const Tensor &src, Tensor &dst);
void nhwc_to_nchw(const Tensor &src, Tensor &dst);
Tensor nchw_to_nhwc(const Tensor &src);  // a new tensor
Tensor nhwc_to_nchw(const Tensor &src);

}  // namespace qh
