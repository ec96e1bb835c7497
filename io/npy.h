// NumPy .npy files (format versions 1.0, 2.0 and 3.0), for test vectors and dumping tensors.
//
// Supported: little-endian, C order. dtypes: '<f4' <-> f32, '|u1' <-> u8, '|i1' <-> s8,
// '<i4' <-> s32 (1-byte types are also accepted with '<', '>' or '=' as byte order). On load
// only, '<f8' is converted to f32 (finite values beyond the float range are an error; NaN/inf
// are kept) and '<i8' to s32 (values outside int32 are an error).
// Quantization parameters are not stored: load_npy returns a tensor with empty quant, and
// save_npy ignores t.quant. u4/s4 tensors cannot be saved (no NumPy equivalent).
//
// Errors (missing file, not a regular file, bad magic, malformed header, Fortran order,
// big-endian, unsupported dtype, truncated data or trailing bytes after the data) throw
// std::runtime_error naming the file. Limits (runtime/resource_limits.h) are checked before
// anything is allocated: the file must be a regular file no larger than the memory budget, every
// dimension must fit in int32 and the element count stay within kMaxTensorElements, and the
// declared data must be exactly what the file holds. A shape beyond the limits throws
// std::length_error naming the file. The host must be little-endian (checked at compile time).
#pragma once
#include <string>

#include "tensor.h"

namespace qh::io {

Tensor load_npy(const std::string &path);
// Writes version 1.0 (2.0 if the header does not fit), header padded to 64 bytes like NumPy.
void save_npy(const std::string &path, const Tensor &t);

}  // namespace qh::io
