#include "io/image.h"

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <memory>
#include <stdexcept>

#include "resource_limits.h"

namespace qh::io {

namespace {

// Largest image side we agree to decode (libpng's user limit; JPEG cannot exceed 65500). The
// total size is bounded by decoded_size() below.
constexpr uint32_t kMaxSide = 65535;

[[noreturn]] void fail(const std::string &name, const std::string &what) {
    throw std::runtime_error(printable(name) + ": " + what);
}

// Bytes of the decoded RGB8 image of a declared w x h, after checking the declared size against
// the tensor limits and the memory budget (with `extra` bytes the decoder needs besides the
// output, e.g. a progressive JPEG's coefficients), before anything is allocated.
size_t decoded_size(uint64_t w, uint64_t h, uint64_t extra, const std::string &name) {
    if (w == 0 || h == 0) fail(name, "zero-sized image (" + std::to_string(w) + "x" + std::to_string(h) + ")");
    const std::string what = printable(name) + ": image of " + std::to_string(w) + "x" + std::to_string(h) + " pixels";
    const int64_t bytes = checked_numel({int64_t(h), int64_t(w), 3}, what);
    check_budget(size_t(checked_add(bytes, int64_t(std::min<uint64_t>(extra, INT64_MAX)), what)), what);
    return size_t(bytes);
}

// ---- PNG -------------------------------------------------------------------------------------
// libpng reports errors by longjmp: png_read_header() and png_read_pixels() hold no C++ objects
// (everything lives in PngCtx, owned by decode_png(), whose destructor frees libpng's state);
// they return false with ctx->msg set, and decode_png() throws. The size check and the
// allocation of the output happen in decode_png(), between the two.

struct PngCtx {
    png_structp png = nullptr;
    png_infop info = nullptr;
    const uint8_t *data = nullptr;
    size_t size = 0, pos = 0;
    char msg[256] = {0};
    uint32_t width = 0, height = 0;
    ~PngCtx() {
        if (png) png_destroy_read_struct(&png, info ? &info : nullptr, nullptr);
    }
};

void png_error_fn(png_structp png, png_const_charp m) {
    auto *ctx = static_cast<PngCtx *>(png_get_error_ptr(png));
    if (!ctx->msg[0]) std::snprintf(ctx->msg, sizeof(ctx->msg), "%s", m ? m : "libpng error");
    png_longjmp(png, 1);
}

void png_warning_fn(png_structp, png_const_charp) {}  // benign (e.g. unknown chunks): ignored

void png_read_fn(png_structp png, png_bytep out, png_size_t n) {
    auto *ctx = static_cast<PngCtx *>(png_get_io_ptr(png));
    if (n > ctx->size - ctx->pos) {
        std::snprintf(ctx->msg, sizeof(ctx->msg), "truncated PNG data (needed %zu more bytes at offset %zu of %zu)",
                      n, ctx->pos, ctx->size);
        png_error(png, ctx->msg);
    }
    std::memcpy(out, ctx->data + ctx->pos, n);
    ctx->pos += n;
}

// Reads the header and sets up the conversion to RGB8; ctx->width/height: the declared size.
bool png_read_header(PngCtx *ctx) {
    ctx->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, ctx, png_error_fn, png_warning_fn);
    if (!ctx->png) {
        std::snprintf(ctx->msg, sizeof(ctx->msg), "png_create_read_struct failed");
        return false;
    }
    ctx->info = png_create_info_struct(ctx->png);
    if (!ctx->info) {
        std::snprintf(ctx->msg, sizeof(ctx->msg), "png_create_info_struct failed");
        return false;
    }
    if (setjmp(png_jmpbuf(ctx->png))) return false;
    png_set_read_fn(ctx->png, ctx, png_read_fn);
    png_set_user_limits(ctx->png, kMaxSide, kMaxSide);
    png_read_info(ctx->png, ctx->info);

    png_uint_32 w = 0, h = 0;
    int bit_depth = 0, color_type = 0;
    png_get_IHDR(ctx->png, ctx->info, &w, &h, &bit_depth, &color_type, nullptr, nullptr, nullptr);
    // -> 8-bit RGB, stored sample values (no gamma handling), alpha dropped.
    if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(ctx->png);
    if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(ctx->png);
    if (png_get_valid(ctx->png, ctx->info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(ctx->png);
    if (bit_depth == 16) png_set_scale_16(ctx->png);
    if (color_type == PNG_COLOR_TYPE_GRAY || color_type == PNG_COLOR_TYPE_GRAY_ALPHA)
        png_set_gray_to_rgb(ctx->png);
    png_set_strip_alpha(ctx->png);
    png_set_interlace_handling(ctx->png);
    png_read_update_info(ctx->png, ctx->info);
    if (png_get_channels(ctx->png, ctx->info) != 3 || png_get_bit_depth(ctx->png, ctx->info) != 8 ||
        png_get_rowbytes(ctx->png, ctx->info) != size_t(w) * 3) {
        std::snprintf(ctx->msg, sizeof(ctx->msg), "unexpected PNG layout after conversion to RGB8");
        return false;
    }
    ctx->width = w;
    ctx->height = h;
    return true;
}

// Decodes into rows[0..height), each width * 3 bytes.
bool png_read_pixels(PngCtx *ctx, png_bytep *rows) {
    if (setjmp(png_jmpbuf(ctx->png))) return false;
    png_read_image(ctx->png, rows);
    png_read_end(ctx->png, nullptr);
    return true;
}

Image decode_png(const uint8_t *data, size_t size, const std::string &name) {
    PngCtx ctx;
    ctx.data = data;
    ctx.size = size;
    if (!png_read_header(&ctx)) fail(name, std::string("invalid PNG: ") + ctx.msg);
    Image img;
    img.rgb.resize(decoded_size(ctx.width, ctx.height, uint64_t(ctx.height) * sizeof(png_bytep), name));
    std::vector<png_bytep> rows(ctx.height);
    for (uint32_t y = 0; y < ctx.height; y++) rows[y] = img.rgb.data() + size_t(y) * ctx.width * 3;
    if (!png_read_pixels(&ctx, rows.data())) fail(name, std::string("invalid PNG: ") + ctx.msg);
    img.width = int(ctx.width);
    img.height = int(ctx.height);
    return img;
}

// ---- JPEG ------------------------------------------------------------------------------------
// Same discipline as PNG: libjpeg's error_exit (which would call exit()) is replaced by a
// longjmp back into jpeg_read_header_rgb() / jpeg_start() / jpeg_read_pixels(), which hold no
// C++ objects; decode_jpeg() checks the declared size and allocates in between.

struct JpegCtx {
    jpeg_decompress_struct cinfo;
    jpeg_error_mgr err;
    jmp_buf jump;
    bool created = false;
    char msg[JMSG_LENGTH_MAX + 64] = {0};
    JpegCtx() { std::memset(&cinfo, 0, sizeof(cinfo)); }
    ~JpegCtx() {
        if (created) jpeg_destroy_decompress(&cinfo);
    }
};

JpegCtx *jpeg_ctx(j_common_ptr cinfo) {
    // client_data points to the JpegCtx (set before jpeg_create_decompress).
    return static_cast<JpegCtx *>(cinfo->client_data);
}

void jpeg_error_exit_fn(j_common_ptr cinfo) {
    JpegCtx *ctx = jpeg_ctx(cinfo);
    char buf[JMSG_LENGTH_MAX];
    (*cinfo->err->format_message)(cinfo, buf);
    if (!ctx->msg[0]) std::snprintf(ctx->msg, sizeof(ctx->msg), "%s", buf);
    std::longjmp(ctx->jump, 1);
}

void jpeg_emit_message_fn(j_common_ptr cinfo, int level) {
    if (level >= 0) return;  // trace messages
    // A warning means corrupt data (libjpeg would substitute gray): fatal, except extraneous
    // bytes between markers, which many encoders produce and which lose nothing.
    if (cinfo->err->msg_code == JWRN_EXTRANEOUS_DATA) return;
    JpegCtx *ctx = jpeg_ctx(cinfo);
    char buf[JMSG_LENGTH_MAX];
    (*cinfo->err->format_message)(cinfo, buf);
    std::snprintf(ctx->msg, sizeof(ctx->msg), "corrupt or truncated JPEG data: %s", buf);
    std::longjmp(ctx->jump, 1);
}

void jpeg_output_message_fn(j_common_ptr) {}  // never print to stderr

// Reads the header; cinfo.image_width/height: the declared size.
bool jpeg_read_header_rgb(JpegCtx *ctx, const uint8_t *data, size_t size) {
    jpeg_decompress_struct *cinfo = &ctx->cinfo;
    cinfo->err = jpeg_std_error(&ctx->err);
    ctx->err.error_exit = jpeg_error_exit_fn;
    ctx->err.emit_message = jpeg_emit_message_fn;
    ctx->err.output_message = jpeg_output_message_fn;
    cinfo->client_data = ctx;
    if (setjmp(ctx->jump)) return false;
    jpeg_create_decompress(cinfo);
    cinfo->client_data = ctx;  // jpeg_create_decompress clears the struct except err/client_data
    ctx->created = true;
    jpeg_mem_src(cinfo, data, (unsigned long)size);
    jpeg_read_header(cinfo, TRUE);
    if (cinfo->jpeg_color_space == JCS_CMYK || cinfo->jpeg_color_space == JCS_YCCK) {
        std::snprintf(ctx->msg, sizeof(ctx->msg), "CMYK/YCCK JPEGs are not supported (expected YCbCr or grayscale)");
        return false;
    }
    cinfo->out_color_space = JCS_RGB;
    return true;
}

// Allocates libjpeg's buffers, at most max_memory bytes of them (a progressive JPEG's
// coefficient arrays are the large part), and checks the output format.
bool jpeg_start(JpegCtx *ctx, size_t max_memory) {
    jpeg_decompress_struct *cinfo = &ctx->cinfo;
    if (setjmp(ctx->jump)) return false;
    cinfo->mem->max_memory_to_use = long(std::min<size_t>(max_memory, LONG_MAX));
    jpeg_start_decompress(cinfo);
    if (cinfo->output_components != 3 || cinfo->output_width != cinfo->image_width ||
        cinfo->output_height != cinfo->image_height) {
        std::snprintf(ctx->msg, sizeof(ctx->msg), "unexpected JPEG output (%d components, %ux%u)",
                      cinfo->output_components, unsigned(cinfo->output_width), unsigned(cinfo->output_height));
        return false;
    }
    return true;
}

// Decodes into rgb (output_width * output_height * 3 bytes).
bool jpeg_read_pixels(JpegCtx *ctx, uint8_t *rgb) {
    jpeg_decompress_struct *cinfo = &ctx->cinfo;
    if (setjmp(ctx->jump)) return false;
    while (cinfo->output_scanline < cinfo->output_height) {
        JSAMPROW row = rgb + size_t(cinfo->output_scanline) * cinfo->output_width * 3;
        if (jpeg_read_scanlines(cinfo, &row, 1) != 1) {
            std::snprintf(ctx->msg, sizeof(ctx->msg), "jpeg_read_scanlines returned no data");
            return false;
        }
    }
    jpeg_finish_decompress(cinfo);
    return true;
}

Image decode_jpeg(const uint8_t *data, size_t size, const std::string &name) {
    JpegCtx ctx;
    if (!jpeg_read_header_rgb(&ctx, data, size)) fail(name, std::string("invalid JPEG: ") + ctx.msg);
    jpeg_decompress_struct *ci = &ctx.cinfo;
    // A progressive (multi-scan) JPEG keeps every DCT coefficient until its last scan: 2 bytes
    // per sample of each component, blocks padded to 8x8 and to the subsampling factors.
    uint64_t coef = 0;
    if (jpeg_has_multiple_scans(ci))
        coef = (uint64_t(ci->image_width) + 31) * (uint64_t(ci->image_height) + 31) * uint64_t(ci->num_components) * 2;
    const size_t bytes = decoded_size(ci->image_width, ci->image_height, coef, name);
    if (!jpeg_start(&ctx, memory_budget() - bytes)) fail(name, std::string("invalid JPEG: ") + ctx.msg);
    Image img;
    img.rgb.resize(bytes);
    if (!jpeg_read_pixels(&ctx, img.rgb.data())) fail(name, std::string("invalid JPEG: ") + ctx.msg);
    img.width = int(ci->output_width);
    img.height = int(ci->output_height);
    return img;
}

}  // namespace

Image decode_image(const uint8_t *data, size_t size, const std::string &name) {
    static const uint8_t png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    static const uint8_t jpeg_magic[3] = {0xff, 0xd8, 0xff};
    if (size == 0) fail(name, "empty file (expected a PNG or JPEG image)");
    if (size >= 8 && std::memcmp(data, png_magic, 8) == 0) return decode_png(data, size, name);
    if (size >= 3 && std::memcmp(data, jpeg_magic, 3) == 0) return decode_jpeg(data, size, name);
    fail(name, "unknown image format (expected PNG or JPEG magic bytes)");
}

Image load_image(const std::string &path) {
    const std::string bytes = read_regular_file(path, kMaxImageFileBytes, "an image");
    return decode_image(reinterpret_cast<const uint8_t *>(bytes.data()), bytes.size(), path);
}

// ---- preprocessing ---------------------------------------------------------------------------

namespace {

struct Taps {
    int i0, i1;
    float t;  // weight of i1
};

// torch upsample bilinear, align_corners=False, no antialias: one output coordinate.
Taps bilinear_taps(int dst, int in_size, int out_size) {
    double scale = double(in_size) / double(out_size);
    double s = (dst + 0.5) * scale - 0.5;
    if (s < 0) s = 0;
    int i0 = std::min(int(s), in_size - 1);
    int i1 = std::min(i0 + 1, in_size - 1);
    return {i0, i1, float(s - i0)};
}

// Python's round(x / 2) for a non-negative integer x: half to even.
int half_round_even(int x) {
    int q = x / 2;
    return (x % 2 == 1 && q % 2 == 1) ? q + 1 : q;
}

}  // namespace

Tensor imagenet_preprocess(const Image &img, int resize, int crop) {
    if (crop <= 0 || resize <= 0 || crop > resize)
        throw std::invalid_argument("imagenet_preprocess: need 0 < crop <= resize, got resize=" +
                                    std::to_string(resize) + " crop=" + std::to_string(crop));
    if (img.width <= 0 || img.height <= 0 || img.rgb.size() != size_t(img.width) * img.height * 3)
        throw std::invalid_argument("imagenet_preprocess: empty or inconsistent image (" +
                                    std::to_string(img.width) + "x" + std::to_string(img.height) + ", " +
                                    std::to_string(img.rgb.size()) + " bytes)");
    const int W = img.width, H = img.height;
    const int64_t out_w64 = W <= H ? resize : int64_t(resize) * W / H;
    const int64_t out_h64 = W <= H ? int64_t(resize) * H / W : resize;
    checked_numel({out_h64, out_w64}, "imagenet_preprocess: resized image", INT64_MAX);
    const int out_w = int(out_w64), out_h = int(out_h64);
    const std::vector<int64_t> out_shape = {1, crop, crop, 3};
    check_budget(dtype_storage_bytes(DType::f32, checked_numel(out_shape, "imagenet_preprocess: output")),
                 "imagenet_preprocess: output " + shape_str(out_shape));
    const int top = half_round_even(out_h - crop), left = half_round_even(out_w - crop);

    std::vector<Taps> xt(crop), yt(crop);
    for (int i = 0; i < crop; i++) {
        xt[i] = bilinear_taps(left + i, W, out_w);
        yt[i] = bilinear_taps(top + i, H, out_h);
    }
    Tensor out(DType::f32, out_shape);
    float *o = out.data<float>();
    const uint8_t *p = img.rgb.data();
    for (int y = 0; y < crop; y++) {
        const uint8_t *r0 = p + size_t(yt[y].i0) * W * 3, *r1 = p + size_t(yt[y].i1) * W * 3;
        const float ty = yt[y].t;
        for (int x = 0; x < crop; x++) {
            const Taps &tx = xt[x];
            for (int c = 0; c < 3; c++) {
                float a0 = r0[tx.i0 * 3 + c], b0 = r0[tx.i1 * 3 + c];
                float a1 = r1[tx.i0 * 3 + c], b1 = r1[tx.i1 * 3 + c];
                float v0 = a0 + tx.t * (b0 - a0);
                float v1 = a1 + tx.t * (b1 - a1);
                float v = v0 + ty * (v1 - v0);
                *o++ = (v / 255.0f - kImageNetMean[c]) / kImageNetStd[c];
            }
        }
    }
    return out;
}

Tensor stack_batch(const std::vector<Tensor> &parts) {
    if (parts.empty()) throw std::invalid_argument("stack_batch: no tensors");
    const Tensor &first = parts[0];
    if (first.rank() == 0) throw std::invalid_argument("stack_batch: rank-0 tensor");
    if (dtype_bits(first.dtype()) == 4)
        throw std::invalid_argument("stack_batch: packed 4-bit tensors are not supported");
    std::vector<int64_t> shape = first.shape();
    int64_t n = 0;
    for (const Tensor &t : parts) {
        bool same = t.dtype() == first.dtype() && t.rank() == first.rank() &&
                    std::equal(t.shape().begin() + 1, t.shape().end(), first.shape().begin() + 1);
        if (!same)
            throw std::invalid_argument("stack_batch: " + t.describe() + " does not stack with " +
                                        first.describe());
        if (!t.defined()) throw std::invalid_argument("stack_batch: tensor without data");
        n = checked_add(n, t.dim(0), "stack_batch: batch");
    }
    shape[0] = n;
    check_budget(dtype_storage_bytes(first.dtype(), checked_numel(shape, "stack_batch: result")),
                 std::string("stack_batch: result ") + dtype_name(first.dtype()) + shape_str(shape));
    Tensor out(first.dtype(), shape, first.quant);
    auto *dst = static_cast<uint8_t *>(out.raw());
    for (const Tensor &t : parts) {
        if (t.nbytes()) std::memcpy(dst, t.raw(), t.nbytes());
        dst += t.nbytes();
    }
    return out;
}

Tensor repeat_batch(const Tensor &t, int n) {
    if (n <= 0) throw std::invalid_argument("repeat_batch: n must be positive, got " + std::to_string(n));
    return stack_batch(std::vector<Tensor>(size_t(n), t));
}

}  // namespace qh::io
