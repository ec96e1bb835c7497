// Image decoding (PNG, JPEG) and the torchvision ImageNet preprocessing, for the inference apps.
//
// load_image() detects the format by its magic bytes (never the extension) and always returns
// 8-bit RGB: grayscale is replicated, palettes are expanded, 16-bit samples are scaled to 8 bits
// (libpng's png_set_scale_16: round(v * 255 / 65535)), alpha is dropped (not composited), and no
// gamma / ICC correction is applied (the stored sample values are returned, like PIL's
// convert("RGB")). JPEGs are decoded by libjpeg(-turbo) with its default (ISLOW) IDCT and fancy
// upsampling; grayscale and YCbCr JPEGs are supported, CMYK/YCCK are rejected.
//
// Errors never exit or crash: a missing/unreadable file, a path that is not a regular file (FIFO,
// device, directory) or is larger than kMaxImageFileBytes, an empty file, an unknown format,
// truncated or corrupt data, a zero-sized image all throw std::runtime_error whose message names
// the file and what was expected. The declared size is checked before the pixels are allocated
// (decompression bombs): width * height * 3 must fit the tensor limits and, with the decoder's
// own buffers, the memory budget (runtime/resource_limits.h), else std::length_error naming the
// file. libpng/libjpeg errors are caught with setjmp in frames that own no C++ objects and
// turned into exceptions afterwards; libjpeg warnings (e.g. "premature end of JPEG file", which
// libjpeg would otherwise paper over with gray) are errors too, except the benign "extraneous
// bytes before marker".
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "tensor.h"

namespace qh::io {

// Largest image file load_image() reads.
inline constexpr size_t kMaxImageFileBytes = size_t(256) << 20;

struct Image {
    int width = 0, height = 0;
    std::vector<uint8_t> rgb;  // row-major, 3 bytes per pixel (R, G, B): size width*height*3
};

// Decodes a PNG or JPEG file (see above).
Image load_image(const std::string &path);
// The same from memory; `name` is used in error messages.
Image decode_image(const uint8_t *data, size_t size, const std::string &name = "<memory>");

// ImageNet mean / std (RGB), as in torchvision's models.
inline constexpr float kImageNetMean[3] = {0.485f, 0.456f, 0.406f};
inline constexpr float kImageNetStd[3] = {0.229f, 0.224f, 0.225f};

// torchvision's eval transform Resize(resize) -> CenterCrop(crop) -> ToTensor -> Normalize,
// returned as an f32 tensor of shape {1, crop, crop, 3} (NHWC). Exactly:
//  1. Resize: the shorter side becomes `resize`, the longer side int(resize * long / short)
//     (truncated, like torchvision). Bilinear interpolation with half-pixel centers and no
//     antialiasing (torch's interpolate(mode="bilinear", align_corners=False), i.e. torchvision's
//     tensor Resize(antialias=False)): source coordinate s = (d + 0.5) * in / out - 0.5, clamped
//     at 0; taps floor(s) and floor(s) + 1 (clamped to the last pixel). Computed in float on the
//     u8 samples as lerp(lerp(row0), lerp(row1)) with lerp(a, b, t) = a + t * (b - a), without
//     rounding to 8 bits in between (so a constant region stays exactly constant).
//     Note: this is not PIL's antialiased resize, which torchvision uses on PIL images; outputs
//     differ slightly when downscaling.
//  2. CenterCrop: top = round((H - crop) / 2), left = round((W - crop) / 2), Python's round
//     (half to even), as torchvision does. Only the cropped pixels are computed.
//  3. x / 255, then (x - mean[c]) / std[c] per channel, in float32.
// Requires 0 < crop <= resize (throws std::invalid_argument otherwise) and a non-empty image;
// the resized size must fit in int32 and the output the memory budget (std::length_error).
Tensor imagenet_preprocess(const Image &img, int resize = 256, int crop = 224);

// Concatenates tensors along axis 0 ({n_i, ...} with the same dtype and trailing dims) into
// one new tensor {sum n_i, ...}; e.g. N copies of a {1,224,224,3} image -> {N,224,224,3}.
// Quantization parameters are taken from the first tensor. Throws std::invalid_argument on an
// empty list, rank 0, or mismatching dtype / trailing dims, and for packed u4/s4 tensors; a
// result beyond the tensor limits or the memory budget throws std::length_error.
Tensor stack_batch(const std::vector<Tensor> &parts);
// `n` copies of `t` stacked along axis 0 (the apps' --batch N with one image).
Tensor repeat_batch(const Tensor &t, int n);

}  // namespace qh::io
