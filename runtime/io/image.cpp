#include "io/image.h"

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <memory>
#include <stdexcept>

namespace qh::io {

namespace {

// Largest image we agree to decode (per side, and in total pixels): a corrupt header must not
// make us allocate gigabytes.
constexpr uint32_t kMaxSide = 65535;
constexpr uint64_t kMaxPixels = uint64_t(1) << 28;

[[noreturn]] void fail(const std::string &name, const std::string &what) {
    throw std::runtime_error(name + ": " + what);
}

std::vector<uint8_t> read_file(const std::string &path) {
    std::unique_ptr<std::FILE, int (*)(std::FILE *)> f(std::fopen(path.c_str(), "rb"), std::fclose);
    if (!f) fail(path, std::string("cannot open image file (") + std::strerror(errno) + ")");
    std::vector<uint8_t> bytes;
    uint8_t buf[1 << 16];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof(buf), f.get())) > 0) bytes.insert(bytes.end(), buf, buf + n);
    if (std::ferror(f.get())) fail(path, std::string("cannot read image file (") + std::strerror(errno) + ")");
    return bytes;
}

bool check_size(uint64_t w, uint64_t h, char *msg, size_t msg_size) {
    if (w == 0 || h == 0) {
        std::snprintf(msg, msg_size, "zero-sized image (%llux%llu)", (unsigned long long)w,
                      (unsigned long long)h);
        return false;
    }
    if (w > kMaxSide || h > kMaxSide || w * h > kMaxPixels) {
        std::snprintf(msg, msg_size, "image too large (%llux%llu)", (unsigned long long)w,
                      (unsigned long long)h);
        return false;
    }
    return true;
}

// ---- PNG -------------------------------------------------------------------------------------
// Everything libpng may longjmp over lives in PngCtx (owned by the caller, destroyed by its
// destructor) or is plain data: png_decode() holds no C++ objects with destructors.

struct PngCtx {
    png_structp png = nullptr;
    png_infop info = nullptr;
    const uint8_t *data = nullptr;
    size_t size = 0, pos = 0;
    char msg[256] = {0};
    // Output, sized by png_decode() once the header is known.
    std::vector<uint8_t> *rgb = nullptr;
    std::vector<png_bytep> *rows = nullptr;
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

bool png_decode(PngCtx *ctx) {
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
    if (!check_size(w, h, ctx->msg, sizeof(ctx->msg))) return false;
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
    ctx->rgb->resize(size_t(w) * h * 3);
    ctx->rows->resize(h);
    for (png_uint_32 y = 0; y < h; y++) (*ctx->rows)[y] = ctx->rgb->data() + size_t(y) * w * 3;
    png_read_image(ctx->png, ctx->rows->data());
    png_read_end(ctx->png, nullptr);
    return true;
}

Image decode_png(const uint8_t *data, size_t size, const std::string &name) {
    Image img;
    std::vector<png_bytep> rows;
    PngCtx ctx;
    ctx.data = data;
    ctx.size = size;
    ctx.rgb = &img.rgb;
    ctx.rows = &rows;
    if (!png_decode(&ctx)) fail(name, std::string("invalid PNG: ") + ctx.msg);
    img.width = int(ctx.width);
    img.height = int(ctx.height);
    return img;
}

// ---- JPEG ------------------------------------------------------------------------------------
// Same discipline as PNG: libjpeg's error_exit (which would call exit()) is replaced by a
// longjmp back into jpeg_decode(), which holds no C++ objects.

struct JpegCtx {
    jpeg_decompress_struct cinfo;
    jpeg_error_mgr err;
    jmp_buf jump;
    bool created = false;
    char msg[JMSG_LENGTH_MAX + 64] = {0};
    std::vector<uint8_t> *rgb = nullptr;
    uint32_t width = 0, height = 0;
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

bool jpeg_decode(JpegCtx *ctx, const uint8_t *data, size_t size) {
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
    if (!check_size(cinfo->image_width, cinfo->image_height, ctx->msg, sizeof(ctx->msg))) return false;
    if (cinfo->jpeg_color_space == JCS_CMYK || cinfo->jpeg_color_space == JCS_YCCK) {
        std::snprintf(ctx->msg, sizeof(ctx->msg), "CMYK/YCCK JPEGs are not supported (expected YCbCr or grayscale)");
        return false;
    }
    cinfo->out_color_space = JCS_RGB;
    jpeg_start_decompress(cinfo);
    if (cinfo->output_components != 3) {
        std::snprintf(ctx->msg, sizeof(ctx->msg), "unexpected JPEG output (%d components)", cinfo->output_components);
        return false;
    }
    ctx->width = cinfo->output_width;
    ctx->height = cinfo->output_height;
    ctx->rgb->resize(size_t(ctx->width) * ctx->height * 3);
    while (cinfo->output_scanline < cinfo->output_height) {
        JSAMPROW row = ctx->rgb->data() + size_t(cinfo->output_scanline) * ctx->width * 3;
        if (jpeg_read_scanlines(cinfo, &row, 1) != 1) {
            std::snprintf(ctx->msg, sizeof(ctx->msg), "jpeg_read_scanlines returned no data");
            return false;
        }
    }
    jpeg_finish_decompress(cinfo);
    return true;
}

Image decode_jpeg(const uint8_t *data, size_t size, const std::string &name) {
    Image img;
    JpegCtx ctx;
    ctx.rgb = &img.rgb;
    if (!jpeg_decode(&ctx, data, size)) fail(name, std::string("invalid JPEG: ") + ctx.msg);
    img.width = int(ctx.width);
    img.height = int(ctx.height);
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
    std::vector<uint8_t> bytes = read_file(path);
    return decode_image(bytes.data(), bytes.size(), path);
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
    int out_w, out_h;
    if (W <= H) {
        out_w = resize;
        out_h = int(int64_t(resize) * H / W);
    } else {
        out_h = resize;
        out_w = int(int64_t(resize) * W / H);
    }
    const int top = half_round_even(out_h - crop), left = half_round_even(out_w - crop);

    std::vector<Taps> xt(crop), yt(crop);
    for (int i = 0; i < crop; i++) {
        xt[i] = bilinear_taps(left + i, W, out_w);
        yt[i] = bilinear_taps(top + i, H, out_h);
    }
    Tensor out(DType::f32, {1, crop, crop, 3});
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
        n += t.dim(0);
    }
    shape[0] = n;
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
