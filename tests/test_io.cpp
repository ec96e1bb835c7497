// runtime/io: image decoding (bundled PNG/JPEG + synthetic PNG variants), ImageNet
// preprocessing geometry and values, batching, .npy round trips and errors, labels and top_k.
#include <gtest/gtest.h>
#include <png.h>
#include <sys/stat.h>
#include <zlib.h>

#include <array>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "io/image.h"
#include "io/labels.h"
#include "io/npy.h"
#include "resource_limits.h"

namespace fs = std::filesystem;
using namespace qh;
using namespace qh::io;

namespace {

const std::string kAssets = QH_ASSETS_DIR;

// A fresh scratch directory per test.
std::string scratch(const std::string &file) {
    const auto *info = ::testing::UnitTest::GetInstance()->current_test_info();
    fs::path dir = fs::path(::testing::TempDir()) / "qhalide_test_io" / info->name();
    fs::create_directories(dir);
    return (dir / file).string();
}

std::vector<uint8_t> read_bytes(const std::string &path) {
    std::ifstream f(path, std::ios::binary);
    return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

void write_bytes(const std::string &path, const void *data, size_t n) {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(static_cast<const char *>(data), std::streamsize(n));
    ASSERT_TRUE(f.good()) << path;
}

void write_bytes(const std::string &path, const std::vector<uint8_t> &v) { write_bytes(path, v.data(), v.size()); }

// Expects fn() to throw std::runtime_error whose message contains `path` and `what`.
void expect_error(const std::function<void()> &fn, const std::string &path, const std::string &what = "") {
    try {
        fn();
        ADD_FAILURE() << "no exception for " << path;
    } catch (const std::runtime_error &e) {
        std::string m = e.what();
        EXPECT_NE(m.find(path), std::string::npos) << "message does not name the file: " << m;
        EXPECT_NE(m.find(what), std::string::npos) << "message lacks '" << what << "': " << m;
    }
}

std::array<int, 3> pixel(const Image &im, int x, int y) {
    const uint8_t *p = &im.rgb.at((size_t(y) * im.width + x) * 3);
    return {p[0], p[1], p[2]};
}

Image synthetic(int w, int h, const std::function<std::array<int, 3>(int, int)> &f) {
    Image im{w, h, std::vector<uint8_t>(size_t(w) * h * 3)};
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            auto c = f(x, y);
            for (int k = 0; k < 3; k++) im.rgb[(size_t(y) * w + x) * 3 + k] = uint8_t(c[k]);
        }
    return im;
}

float normalized(float v, int c) { return (v / 255.0f - kImageNetMean[c]) / kImageNetStd[c]; }

float out_at(const Tensor &t, int y, int x, int c) {
    return t.data<float>()[(int64_t(y) * t.dim(2) + x) * 3 + c];
}

// Writes a PNG with libpng's simplified API (format: PNG_FORMAT_*).
void write_png(const std::string &path, int w, int h, uint32_t format, const void *pixels,
               const void *colormap = nullptr, int colormap_entries = 0) {
    png_image im;
    std::memset(&im, 0, sizeof(im));
    im.version = PNG_IMAGE_VERSION;
    im.width = w;
    im.height = h;
    im.format = format;
    im.colormap_entries = colormap_entries;
    ASSERT_TRUE(png_image_write_to_file(&im, path.c_str(), 0, pixels, 0, colormap)) << im.message;
}

}  // namespace

// ---- decoding ----------------------------------------------------------------------------------

// Expected values were read with PIL 13 (Image.open(...).convert("RGB")).
TEST(Image, DecodesBundledPng) {
    Image im = load_image(kAssets + "/sample.png");
    ASSERT_EQ(im.width, 225);
    ASSERT_EQ(im.height, 150);
    ASSERT_EQ(im.rgb.size(), 225u * 150 * 3);
    EXPECT_EQ(pixel(im, 0, 0), (std::array<int, 3>{144, 121, 105}));
    EXPECT_EQ(pixel(im, 224, 149), (std::array<int, 3>{164, 140, 130}));
    EXPECT_EQ(pixel(im, 100, 75), (std::array<int, 3>{118, 58, 28}));
    EXPECT_EQ(pixel(im, 37, 120), (std::array<int, 3>{175, 140, 121}));
    EXPECT_EQ(pixel(im, 200, 10), (std::array<int, 3>{96, 68, 52}));
    uint64_t sum = 0;
    for (uint8_t v : im.rgb) sum += v;
    EXPECT_EQ(sum, 11684884u);
}

// JPEG decoders may differ by a unit or two (IDCT / upsampling), so a small tolerance.
TEST(Image, DecodesBundledJpeg) {
    Image im = load_image(kAssets + "/sample.jpg");
    ASSERT_EQ(im.width, 450);
    ASSERT_EQ(im.height, 300);
    ASSERT_EQ(im.rgb.size(), 450u * 300 * 3);
    const struct { int x, y; std::array<int, 3> rgb; } want[] = {
        {0, 0, {143, 119, 107}}, {449, 299, {162, 138, 128}}, {200, 150, {121, 68, 37}},
        {75, 240, {173, 138, 119}}, {400, 20, {96, 67, 53}}};
    for (auto &w : want)
        for (int c = 0; c < 3; c++)
            EXPECT_NEAR(pixel(im, w.x, w.y)[c], w.rgb[c], 2) << "at " << w.x << "," << w.y << " c" << c;
    double mean = 0;
    for (uint8_t v : im.rgb) mean += v;
    EXPECT_NEAR(mean / im.rgb.size(), 115.291, 0.05);
}

// sample.png is sample.jpg's source photo reduced 2x2 (box); the JPEG, box-reduced, must match.
TEST(Image, PngAndJpegOfTheSamePictureAgree) {
    Image png = load_image(kAssets + "/sample.png");
    Image jpg = load_image(kAssets + "/sample.jpg");
    ASSERT_EQ(jpg.width, 2 * png.width);
    ASSERT_EQ(jpg.height, 2 * png.height);
    double total = 0;
    int worst = 0;
    for (int y = 0; y < png.height; y++)
        for (int x = 0; x < png.width; x++)
            for (int c = 0; c < 3; c++) {
                int s = 0;
                for (int dy = 0; dy < 2; dy++)
                    for (int dx = 0; dx < 2; dx++) s += pixel(jpg, 2 * x + dx, 2 * y + dy)[c];
                int d = std::abs((s + 2) / 4 - pixel(png, x, y)[c]);
                total += d;
                worst = std::max(worst, d);
            }
    double mean = total / (png.width * png.height * 3.0);
    EXPECT_LT(mean, 2.0);  // 1.24 with libjpeg-turbo
    EXPECT_LT(worst, 48);  // 29
    EXPECT_GT(mean, 0.0);  // they are really different encodings
}

TEST(Image, DetectsFormatByContentNotExtension) {
    std::string p = scratch("actually_a_png.jpg");
    write_bytes(p, read_bytes(kAssets + "/sample.png"));
    Image im = load_image(p);
    EXPECT_EQ(im.width, 225);
    EXPECT_EQ(pixel(im, 0, 0), (std::array<int, 3>{144, 121, 105}));
}

TEST(Image, PngGrayPaletteAlpha16BitBecomeRgb8) {
    {  // 8-bit gray -> replicated
        const uint8_t g[6] = {0, 50, 100, 150, 200, 255};
        std::string p = scratch("gray.png");
        write_png(p, 3, 2, PNG_FORMAT_GRAY, g);
        Image im = load_image(p);
        ASSERT_EQ(im.width, 3);
        ASSERT_EQ(im.height, 2);
        for (int i = 0; i < 6; i++) EXPECT_EQ(pixel(im, i % 3, i / 3), (std::array<int, 3>{g[i], g[i], g[i]}));
    }
    {  // RGBA -> alpha dropped, not composited
        const uint8_t rgba[8] = {10, 20, 30, 0, 200, 100, 50, 128};
        std::string p = scratch("rgba.png");
        write_png(p, 2, 1, PNG_FORMAT_RGBA, rgba);
        Image im = load_image(p);
        ASSERT_EQ(im.width, 2);
        EXPECT_EQ(pixel(im, 0, 0), (std::array<int, 3>{10, 20, 30}));
        EXPECT_EQ(pixel(im, 1, 0), (std::array<int, 3>{200, 100, 50}));
    }
    {  // palette -> expanded
        const uint8_t cmap[9] = {255, 0, 0, 0, 255, 0, 1, 2, 3};
        const uint8_t idx[4] = {2, 0, 1, 2};
        std::string p = scratch("palette.png");
        write_png(p, 2, 2, PNG_FORMAT_RGB_COLORMAP, idx, cmap, 3);
        Image im = load_image(p);
        ASSERT_EQ(im.width, 2);
        EXPECT_EQ(pixel(im, 0, 0), (std::array<int, 3>{1, 2, 3}));
        EXPECT_EQ(pixel(im, 1, 0), (std::array<int, 3>{255, 0, 0}));
        EXPECT_EQ(pixel(im, 0, 1), (std::array<int, 3>{0, 255, 0}));
        EXPECT_EQ(pixel(im, 1, 1), (std::array<int, 3>{1, 2, 3}));
    }
    {  // 16-bit gray -> round(v * 255 / 65535), stored values (no gamma)
        const uint16_t g16[4] = {0, 65535, 0x8080, 257 * 100};
        std::string p = scratch("gray16.png");
        write_png(p, 4, 1, PNG_FORMAT_LINEAR_Y, g16);
        auto bytes = read_bytes(p);
        ASSERT_GT(bytes.size(), 25u);
        ASSERT_EQ(bytes[24], 16) << "the writer did not produce a 16-bit PNG";
        Image im = load_image(p);
        const int want[4] = {0, 255, 128, 100};
        for (int i = 0; i < 4; i++) EXPECT_EQ(pixel(im, i, 0), (std::array<int, 3>{want[i], want[i], want[i]}));
    }
}

// ---- decoding errors: always std::runtime_error naming the file --------------------------------

TEST(ImageErrors, MissingEmptyGarbage) {
    std::string missing = scratch("does_not_exist.png");
    expect_error([&] { load_image(missing); }, missing, "cannot open");
    std::string empty = scratch("empty.jpg");
    write_bytes(empty, "", 0);
    expect_error([&] { load_image(empty); }, empty, "empty");
    std::string garbage = scratch("garbage.png");
    std::vector<uint8_t> g(1000);
    std::mt19937 rng(7);
    for (auto &b : g) b = uint8_t(rng());
    g[0] = 'G';
    write_bytes(garbage, g);
    expect_error([&] { load_image(garbage); }, garbage, "expected PNG or JPEG");
    std::string dir = scratch("");
    expect_error([&] { load_image(dir); }, dir, "is not a regular file (a directory)");
}

TEST(ImageErrors, TruncatedPng) {
    auto bytes = read_bytes(kAssets + "/sample.png");
    for (size_t n : {size_t(8), size_t(20), size_t(100), bytes.size() / 2, bytes.size() - 13}) {
        std::string p = scratch("trunc_" + std::to_string(n) + ".png");
        write_bytes(p, bytes.data(), n);
        expect_error([&] { load_image(p); }, p, "invalid PNG");
    }
}

TEST(ImageErrors, CorruptPng) {
    auto bytes = read_bytes(kAssets + "/sample.png");
    bytes[bytes.size() / 2] ^= 0x55;  // inside IDAT: CRC mismatch
    std::string p = scratch("corrupt.png");
    write_bytes(p, bytes);
    expect_error([&] { load_image(p); }, p, "invalid PNG");
}

TEST(ImageErrors, ZeroSizedPng) {
    // A valid signature + IHDR (with a correct CRC) declaring width 0.
    std::vector<uint8_t> png = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13};
    const uint8_t ihdr[17] = {'I', 'H', 'D', 'R', 0, 0, 0, 0, 0, 0, 0, 4, 8, 2, 0, 0, 0};
    png.insert(png.end(), ihdr, ihdr + 17);
    uint32_t crc = uint32_t(crc32(0, ihdr, 17));
    for (int s = 24; s >= 0; s -= 8) png.push_back(uint8_t(crc >> s));
    std::string p = scratch("zero.png");
    write_bytes(p, png);
    expect_error([&] { load_image(p); }, p, "invalid PNG");
}

TEST(ImageErrors, TruncatedJpeg) {
    auto bytes = read_bytes(kAssets + "/sample.jpg");
    for (size_t n : {size_t(3), size_t(50), size_t(600), bytes.size() / 2, bytes.size() - 2}) {
        std::string p = scratch("trunc_" + std::to_string(n) + ".jpg");
        write_bytes(p, bytes.data(), n);
        expect_error([&] { load_image(p); }, p, "invalid JPEG");
    }
}

TEST(ImageErrors, CorruptJpegHeader) {
    auto bytes = read_bytes(kAssets + "/sample.jpg");
    std::vector<uint8_t> bad(bytes.begin(), bytes.begin() + 4);
    bad.resize(400, 0x00);  // SOI, then a marker with garbage
    std::string p = scratch("corrupt.jpg");
    write_bytes(p, bad);
    expect_error([&] { load_image(p); }, p, "invalid JPEG");
}

// The message of what fn() throws (any std::exception), "(no error)" if nothing.
std::string error_of(const std::function<void()> &fn) {
    try {
        fn();
    } catch (const std::exception &e) {
        return e.what();
    }
    return "(no error)";
}

// Restores the default memory budget when a test that lowers it ends.
struct BudgetGuard {
    explicit BudgetGuard(size_t bytes) { set_memory_budget(bytes); }
    ~BudgetGuard() { set_memory_budget(0); }
};

// A PNG that declares w x h RGB8 and ends where the pixel data would start (IHDR, then an IDAT
// chunk header): the declared size is all the decoder has seen when it must decide.
std::vector<uint8_t> png_header_only(uint32_t w, uint32_t h) {
    std::vector<uint8_t> png = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13};
    uint8_t ihdr[17] = {'I', 'H', 'D', 'R', 0, 0, 0, 0, 0, 0, 0, 0, 8, 2, 0, 0, 0};
    for (int i = 0; i < 4; i++) {
        ihdr[4 + i] = uint8_t(w >> (24 - 8 * i));
        ihdr[8 + i] = uint8_t(h >> (24 - 8 * i));
    }
    png.insert(png.end(), ihdr, ihdr + 17);
    uint32_t crc = uint32_t(crc32(0, ihdr, 17));
    for (int s = 24; s >= 0; s -= 8) png.push_back(uint8_t(crc >> s));
    const uint8_t idat[8] = {0, 0, 0x10, 0, 'I', 'D', 'A', 'T'};
    png.insert(png.end(), idat, idat + 8);
    return png;
}

TEST(ImageLimits, PngDeclaredSizeIsCheckedBeforeAllocating) {
    std::string p = scratch("bomb.png");
    write_bytes(p, png_header_only(65535, 65535));
    EXPECT_EQ(error_of([&] { load_image(p); }),
              p + ": image of 65535x65535 pixels: shape [65535,65535,3] has more than 2147483648 elements (the "
                  "limit per tensor)");
    // Within the tensor limits but over the memory budget: pixels + row pointers.
    BudgetGuard budget(size_t(1) << 20);
    write_bytes(p, png_header_only(1000, 1000));
    EXPECT_EQ(error_of([&] { load_image(p); }),
              p + ": image of 1000x1000 pixels needs 2.9 MiB (3008000 bytes), more than the memory budget of "
                  "1.0 MiB (set_memory_budget / QHALIDE_MEMORY_BUDGET)");
}

TEST(ImageLimits, JpegDeclaredSizeIsCheckedBeforeAllocating) {
    auto bytes = read_bytes(kAssets + "/sample.jpg");
    size_t sof = 0;
    for (size_t i = 2; i + 9 < bytes.size(); i++)
        if (bytes[i] == 0xff && (bytes[i + 1] == 0xc0 || bytes[i + 1] == 0xc2)) {
            sof = i;
            break;
        }
    ASSERT_GT(sof, 0u) << "no SOF marker in sample.jpg";
    for (int k : {5, 7}) {  // height, width: 60000
        bytes[sof + k] = 60000 >> 8;
        bytes[sof + k + 1] = 60000 & 0xff;
    }
    std::string p = scratch("bomb.jpg");
    write_bytes(p, bytes);
    EXPECT_EQ(error_of([&] { load_image(p); }),
              p + ": image of 60000x60000 pixels: shape [60000,60000,3] has more than 2147483648 elements (the "
                  "limit per tensor)");
}

TEST(ImageLimits, OnlyRegularFilesUpToTheLimit) {
    EXPECT_EQ(error_of([] { load_image("/dev/zero"); }),
              "'/dev/zero' is not a regular file (a device or socket); an image must be a file");
    std::string fifo = scratch("fifo.png");
    fs::remove(fifo);
    ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
    EXPECT_EQ(error_of([&] { load_image(fifo); }),
              "'" + fifo + "' is not a regular file (a FIFO); an image must be a file");
    std::string big = scratch("big.png");  // sparse: nothing is written
    write_bytes(big, "", 0);
    fs::resize_file(big, kMaxImageFileBytes + 1);
    EXPECT_EQ(error_of([&] { load_image(big); }),
              "'" + big + "' is 256.0 MiB, more than the limit of 256.0 MiB for an image");
    // A name with a newline stays on one line.
    std::string nl = scratch("two\nlines.png");
    EXPECT_EQ(error_of([&] { load_image(nl); }),
              "cannot open '" + printable(nl) + "': No such file or directory");
    EXPECT_EQ(printable(nl).find('\n'), std::string::npos);
}

TEST(BatchLimits, StackBeyondTheBudgetIsRefused) {
    BudgetGuard budget(size_t(1) << 20);
    Tensor t(DType::f32, {1, 64, 64, 3});  // 48 KiB
    EXPECT_EQ(error_of([&] { repeat_batch(t, 100); }),
              "stack_batch: result f32[100,64,64,3] needs 4.7 MiB (4915200 bytes), more than the memory budget of "
              "1.0 MiB (set_memory_budget / QHALIDE_MEMORY_BUDGET)");
}

// ---- preprocessing -----------------------------------------------------------------------------

TEST(Preprocess, SolidColorIsExactlyNormalized) {
    const int rgb[3] = {10, 128, 250};
    Image im = synthetic(300, 400, [&](int, int) { return std::array<int, 3>{rgb[0], rgb[1], rgb[2]}; });
    Tensor t = imagenet_preprocess(im);
    ASSERT_EQ(t.dtype(), DType::f32);
    ASSERT_EQ(t.shape(), (std::vector<int64_t>{1, 224, 224, 3}));
    for (int c = 0; c < 3; c++) {
        const float want = (float(rgb[c]) / 255.0f - kImageNetMean[c]) / kImageNetStd[c];
        for (int64_t i = c; i < t.numel(); i += 3) ASSERT_EQ(t.data<float>()[i], want) << "flat " << i;
    }
    // Hand-computed: (128/255 - 0.456) / 0.224 = 0.2051...
    EXPECT_NEAR(t.data<float>()[1], 0.205182, 1e-5);
}

// 512x256: the short side is already 256, so the resize is the identity and the crop starts at
// top = 16, left = (512 - 224) / 2 = 144.
TEST(Preprocess, IdentityResizeThenCenterCrop) {
    Image im = synthetic(512, 256, [](int x, int y) { return std::array<int, 3>{x & 255, y, x >> 8}; });
    Tensor t = imagenet_preprocess(im, 256, 224);
    ASSERT_EQ(t.shape(), (std::vector<int64_t>{1, 224, 224, 3}));
    for (int y = 0; y < 224; y += 7)
        for (int x = 0; x < 224; x += 5) {
            int sx = 144 + x, sy = 16 + y;
            ASSERT_EQ(out_at(t, y, x, 0), normalized(float(sx & 255), 0)) << y << "," << x;
            ASSERT_EQ(out_at(t, y, x, 1), normalized(float(sy), 1)) << y << "," << x;
            ASSERT_EQ(out_at(t, y, x, 2), normalized(float(sx >> 8), 2)) << y << "," << x;
        }
}

// Odd margins round half to even like Python: 341 - 224 = 117 -> left 58; 343 -> 119 -> 60.
TEST(Preprocess, CenterCropRoundsHalfToEven) {
    for (auto [w, left] : {std::pair{341, 58}, std::pair{343, 60}, std::pair{256, 16}}) {
        Image im = synthetic(w, 256, [](int x, int y) { return std::array<int, 3>{x & 255, y, 0}; });
        Tensor t = imagenet_preprocess(im);
        EXPECT_EQ(out_at(t, 0, 0, 0), normalized(float(left), 0)) << "width " << w;
        EXPECT_EQ(out_at(t, 0, 0, 1), normalized(16.0f, 1)) << "width " << w;
    }
    // Transposed: a tall image crops vertically.
    Image tall = synthetic(256, 343, [](int x, int y) { return std::array<int, 3>{x, y & 255, 0}; });
    Tensor t = imagenet_preprocess(tall);
    EXPECT_EQ(out_at(t, 0, 0, 1), normalized(60.0f, 1));
    EXPECT_EQ(out_at(t, 0, 0, 0), normalized(16.0f, 0));
}

// 1024x512 -> 512x256: with half-pixel centers, output pixel d samples source 2d + 0.5, i.e.
// the mean of a 2x2 block (no antialias needed at exactly 2x).
TEST(Preprocess, DownscaleByTwoAveragesBlocks) {
    std::mt19937 rng(3);
    Image im = synthetic(1024, 512, [&](int, int) {
        return std::array<int, 3>{int(rng() % 256), int(rng() % 256), int(rng() % 256)};
    });
    Tensor t = imagenet_preprocess(im);
    const int top = 16, left = 144;
    double worst = 0;
    for (int y = 0; y < 224; y++)
        for (int x = 0; x < 224; x++)
            for (int c = 0; c < 3; c++) {
                double s = 0;
                for (int dy = 0; dy < 2; dy++)
                    for (int dx = 0; dx < 2; dx++)
                        s += im.rgb[(size_t(2 * (top + y) + dy) * 1024 + 2 * (left + x) + dx) * 3 + c];
                double want = (s / 4 / 255.0 - kImageNetMean[c]) / kImageNetStd[c];
                worst = std::max(worst, std::abs(out_at(t, y, x, c) - want));
            }
    EXPECT_LT(worst, 1e-5);
}

// Upscaling 2x (128x100 -> 327x256 is not 2x; use 200x128 -> 400x256): d samples (d + 0.5)/2 - 0.5,
// i.e. 0.75/0.25 weights between neighbours, clamped at the border.
TEST(Preprocess, UpscaleByTwoHalfPixelWeights) {
    Image im = synthetic(200, 128, [](int x, int y) { return std::array<int, 3>{x, 2 * y, 0}; });
    Tensor t = imagenet_preprocess(im, 256, 256);  // output 400x256, crop left = 72, top = 0
    ASSERT_EQ(t.shape(), (std::vector<int64_t>{1, 256, 256, 3}));
    for (int x : {0, 1, 2, 101}) {
        int d = 72 + x;
        double s = (d + 0.5) / 2 - 0.5;
        EXPECT_NEAR(out_at(t, 5, x, 0), (s / 255.0 - 0.485) / 0.229, 1e-5) << x;
    }
    // Row 0 samples source row max(0, -0.25) = 0; row 255 samples 127.25 -> clamped tap 127.
    EXPECT_NEAR(out_at(t, 0, 0, 1), normalized(0.0f, 1), 1e-6);
    EXPECT_NEAR(out_at(t, 255, 0, 1), normalized(254.0f, 1), 1e-5);
    EXPECT_NEAR(out_at(t, 1, 0, 1), normalized(2 * 0.25f, 1), 1e-5);
}

TEST(Preprocess, BundledImagesAgree) {
    Tensor a = imagenet_preprocess(load_image(kAssets + "/sample.jpg"));
    Tensor b = imagenet_preprocess(load_image(kAssets + "/sample.png"));
    ASSERT_EQ(a.shape(), (std::vector<int64_t>{1, 224, 224, 3}));
    ASSERT_EQ(b.shape(), a.shape());
    double diff = 0;
    for (int64_t i = 0; i < a.numel(); i++) {
        ASSERT_TRUE(std::isfinite(a.data<float>()[i]));
        ASSERT_GE(a.data<float>()[i], (0 - 0.485f) / 0.229f - 1e-5f);
        ASSERT_LE(a.data<float>()[i], (1 - 0.406f) / 0.225f + 1e-5f);
        diff += std::abs(a.data<float>()[i] - b.data<float>()[i]);
    }
    EXPECT_LT(diff / a.numel(), 0.1);
}

TEST(Preprocess, RejectsBadArguments) {
    Image im = synthetic(10, 10, [](int, int) { return std::array<int, 3>{0, 0, 0}; });
    EXPECT_THROW(imagenet_preprocess(im, 224, 256), std::invalid_argument);
    EXPECT_THROW(imagenet_preprocess(im, 256, 0), std::invalid_argument);
    EXPECT_THROW(imagenet_preprocess(Image{}), std::invalid_argument);
    Image bad{4, 4, std::vector<uint8_t>(10)};
    EXPECT_THROW(imagenet_preprocess(bad), std::invalid_argument);
}

TEST(Batch, StackAndRepeat) {
    Tensor a(DType::f32, {1, 2, 2, 3}), b(DType::f32, {2, 2, 2, 3});
    for (int i = 0; i < 12; i++) a.data<float>()[i] = float(i);
    for (int i = 0; i < 24; i++) b.data<float>()[i] = float(100 + i);
    Tensor s = stack_batch({a, b});
    ASSERT_EQ(s.shape(), (std::vector<int64_t>{3, 2, 2, 3}));
    for (int i = 0; i < 12; i++) EXPECT_EQ(s.data<float>()[i], float(i));
    for (int i = 0; i < 24; i++) EXPECT_EQ(s.data<float>()[12 + i], float(100 + i));
    Tensor r = repeat_batch(a, 4);
    ASSERT_EQ(r.shape(), (std::vector<int64_t>{4, 2, 2, 3}));
    for (int n = 0; n < 4; n++)
        for (int i = 0; i < 12; i++) EXPECT_EQ(r.data<float>()[n * 12 + i], float(i));
    EXPECT_NE(r.raw(), a.raw());
    EXPECT_THROW(stack_batch({}), std::invalid_argument);
    EXPECT_THROW(stack_batch({a, Tensor(DType::f32, {1, 2, 3, 3})}), std::invalid_argument);
    EXPECT_THROW(stack_batch({a, Tensor(DType::u8, {1, 2, 2, 3})}), std::invalid_argument);
    EXPECT_THROW(repeat_batch(a, 0), std::invalid_argument);
}

// ---- npy ---------------------------------------------------------------------------------------

template <typename T>
void round_trip(DType dt, std::vector<int64_t> shape, const std::string &descr) {
    Tensor t(dt, shape);
    std::mt19937 rng(11);
    for (int64_t i = 0; i < t.numel(); i++) {
        if constexpr (std::is_floating_point_v<T>)
            t.data<T>()[i] = std::uniform_real_distribution<float>(-1e6f, 1e6f)(rng);
        else
            t.data<T>()[i] = T(std::uniform_int_distribution<int64_t>(std::numeric_limits<T>::min(),
                                                                       std::numeric_limits<T>::max())(rng));
    }
    std::string p = scratch(std::string(dtype_name(dt)) + "_" + std::to_string(shape.size()) + ".npy");
    save_npy(p, t);
    auto bytes = read_bytes(p);
    ASSERT_GE(bytes.size(), 64u);
    EXPECT_EQ(std::string(bytes.begin() + 1, bytes.begin() + 6), "NUMPY");
    size_t header_len = bytes[8] | bytes[9] << 8;
    EXPECT_EQ((10 + header_len) % 64, 0u);
    EXPECT_EQ(bytes[10 + header_len - 1], '\n');
    std::string header(bytes.begin() + 10, bytes.begin() + 10 + header_len);
    EXPECT_NE(header.find("'descr': '" + descr + "'"), std::string::npos) << header;
    EXPECT_EQ(bytes.size(), 10 + header_len + t.nbytes());
    Tensor u = load_npy(p);
    ASSERT_EQ(u.dtype(), dt);
    ASSERT_EQ(u.shape(), shape);
    EXPECT_EQ(std::memcmp(u.raw(), t.raw(), t.nbytes()), 0);
}

TEST(Npy, RoundTripEveryDtype) {
    for (auto shape : std::vector<std::vector<int64_t>>{{1, 5, 7, 3}, {13}, {}, {2, 0, 3}}) {
        SCOPED_TRACE(shape.size());
        round_trip<float>(DType::f32, shape, "<f4");
        round_trip<uint8_t>(DType::u8, shape, "|u1");
        round_trip<int8_t>(DType::s8, shape, "|i1");
        round_trip<int32_t>(DType::s32, shape, "<i4");
    }
}

TEST(Npy, HeaderTextMatchesNumpy) {
    Tensor t(DType::f32, {1, 2, 3});
    std::string p = scratch("h.npy");
    save_npy(p, t);
    auto b = read_bytes(p);
    std::string h(b.begin() + 10, b.begin() + 10 + (b[8] | b[9] << 8));
    EXPECT_EQ(h.substr(0, h.find('}') + 1), "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2, 3), }");
    Tensor v(DType::u8, {4});
    save_npy(p, v);
    b = read_bytes(p);
    h.assign(b.begin() + 10, b.begin() + 10 + (b[8] | b[9] << 8));
    EXPECT_EQ(h.substr(0, h.find('}') + 1), "{'descr': '|u1', 'fortran_order': False, 'shape': (4,), }");
    EXPECT_THROW(save_npy(p, Tensor(DType::u4, {4})), std::runtime_error);
}

// Builds a .npy by hand: version major.0, header text (padded with spaces + '\n'), raw data.
std::vector<uint8_t> npy_bytes(int major, const std::string &dict, const void *data, size_t n) {
    std::vector<uint8_t> b = {0x93, 'N', 'U', 'M', 'P', 'Y', uint8_t(major), 0};
    size_t prefix = major == 1 ? 10 : 12;
    std::string h = dict;
    while ((prefix + h.size() + 1) % 16) h += ' ';
    h += '\n';
    for (size_t i = 0; i < (major == 1 ? 2u : 4u); i++) b.push_back(uint8_t(h.size() >> (8 * i)));
    b.insert(b.end(), h.begin(), h.end());
    b.insert(b.end(), static_cast<const uint8_t *>(data), static_cast<const uint8_t *>(data) + n);
    return b;
}

TEST(Npy, ReadsHandWrittenFiles) {
    const int32_t v[6] = {1, -2, 3, 2147483647, -2147483647 - 1, 0};
    std::string p = scratch("i4.npy");
    write_bytes(p, npy_bytes(1, "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), }", v, sizeof(v)));
    Tensor t = load_npy(p);
    ASSERT_EQ(t.dtype(), DType::s32);
    ASSERT_EQ(t.shape(), (std::vector<int64_t>{2, 3}));
    for (int i = 0; i < 6; i++) EXPECT_EQ(t.data<int32_t>()[i], v[i]);

    // Version 2.0, double quotes, other key order, no trailing comma.
    const uint8_t u[3] = {0, 128, 255};
    write_bytes(p, npy_bytes(2, "{\"shape\": (3,), \"fortran_order\": False, \"descr\": \"|u1\"}", u, 3));
    t = load_npy(p);
    ASSERT_EQ(t.dtype(), DType::u8);
    ASSERT_EQ(t.shape(), (std::vector<int64_t>{3}));
    EXPECT_EQ(t.data<uint8_t>()[1], 128);

    // '<f8' -> f32, '<i8' -> s32.
    const double d[3] = {0.5, -1e30, std::numeric_limits<double>::infinity()};
    write_bytes(p, npy_bytes(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }", d, sizeof(d)));
    t = load_npy(p);
    ASSERT_EQ(t.dtype(), DType::f32);
    EXPECT_EQ(t.data<float>()[0], 0.5f);
    EXPECT_EQ(t.data<float>()[1], -1e30f);
    EXPECT_TRUE(std::isinf(t.data<float>()[2]));
    const int64_t l[2] = {-5, 2147483647};
    write_bytes(p, npy_bytes(1, "{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }", l, sizeof(l)));
    t = load_npy(p);
    ASSERT_EQ(t.dtype(), DType::s32);
    EXPECT_EQ(t.data<int32_t>()[0], -5);
    EXPECT_EQ(t.data<int32_t>()[1], 2147483647);

    // Scalar.
    const float f = 3.25f;
    write_bytes(p, npy_bytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (), }", &f, 4));
    t = load_npy(p);
    EXPECT_EQ(t.rank(), 0);
    EXPECT_EQ(t.data<float>()[0], 3.25f);
}

TEST(Npy, ErrorsNameTheFile) {
    std::string p = scratch("bad.npy");
    const float f[6] = {};
    auto check = [&](const std::vector<uint8_t> &bytes, const std::string &what) {
        SCOPED_TRACE(what);
        write_bytes(p, bytes);
        expect_error([&] { load_npy(p); }, p, what);
    };
    check(npy_bytes(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", f, 24), "Fortran");
    check(npy_bytes(1, "{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }", f, 24), "big-endian");
    check(npy_bytes(1, "{'descr': '<c8', 'fortran_order': False, 'shape': (3,), }", f, 24), "unsupported .npy dtype");
    check(npy_bytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", f, 20), "truncated .npy data");
    check(npy_bytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }", f, 24), "trailing");
    check(npy_bytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3 }", f, 24), "malformed");
    check(npy_bytes(1, "{'descr': '<f4', 'shape': (2, 3), }", f, 24), "missing");
    check(npy_bytes(4, "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }", f, 24), "version");
    const double big = 1e300;
    check(npy_bytes(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }", &big, 8), "float32");
    const int64_t huge = int64_t(1) << 40;
    check(npy_bytes(1, "{'descr': '<i8', 'fortran_order': False, 'shape': (1,), }", &huge, 8), "int32");
    check({'P', 'K', 3, 4, 0, 0, 0, 0, 0, 0, 0, 0}, "not a .npy file");
    auto good = npy_bytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", f, 24);
    check(std::vector<uint8_t>(good.begin(), good.begin() + 30), "truncated .npy header");
    std::string missing = scratch("missing.npy");
    expect_error([&] { load_npy(missing); }, missing, "cannot open");
    std::string dir = scratch("");
    expect_error([&] { load_npy(dir); }, dir);
}

TEST(NpyLimits, DeclaredShapeIsCheckedBeforeAllocating) {
    std::string p = scratch("huge.npy");
    // (2^32+1, 3, 32, 0): no data, but a dim beyond int32.
    write_bytes(p, npy_bytes(1, "{'descr': '|u1', 'fortran_order': False, 'shape': (4294967297, 3, 32, 0), }",
                             nullptr, 0));
    EXPECT_EQ(error_of([&] { load_npy(p); }),
              p + ": .npy shape: dimension 4294967297 of shape [4294967297,3,32,0] does not fit in int32");
    write_bytes(p, npy_bytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (65536, 65536), }", nullptr, 0));
    EXPECT_EQ(error_of([&] { load_npy(p); }),
              p + ": .npy shape: shape [65536,65536] has more than 2147483648 elements (the limit per tensor)");
    // Within the limits, the file must hold the data before anything is allocated.
    write_bytes(p, npy_bytes(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (1000, 1000, 100), }", nullptr, 0));
    EXPECT_EQ(error_of([&] { load_npy(p); }),
              p + ": truncated .npy data: expected 800000000 bytes for shape [1000,1000,100] ('<f8'), found 0");
    // Zero elements with dims at the int32 limit load (nothing to read or walk).
    write_bytes(p, npy_bytes(1, "{'descr': '|u1', 'fortran_order': False, 'shape': (2147483647, 0), }", nullptr, 0));
    EXPECT_EQ(load_npy(p).numel(), 0);
}

TEST(NpyLimits, OnlyRegularFilesWithinTheBudget) {
    EXPECT_EQ(error_of([] { load_npy("/dev/zero"); }),
              "'/dev/zero' is not a regular file (a device or socket); a .npy file must be a file");
    std::string fifo = scratch("fifo.npy");
    fs::remove(fifo);
    ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
    EXPECT_EQ(error_of([&] { load_npy(fifo); }), "'" + fifo + "' is not a regular file (a FIFO); a .npy file must be a file");
    std::string p = scratch("big.npy");
    std::vector<float> v(1000);
    write_bytes(p, npy_bytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1000,), }", v.data(), 4000));
    BudgetGuard budget(2000);
    EXPECT_EQ(error_of([&] { load_npy(p); }), "'" + p + "' is 4080 bytes, more than the limit of 2000 bytes for a .npy file");
}

TEST(NpyLimits, F8IsConvertedInChunks) {
    std::string p = scratch("f8.npy");
    std::vector<double> v(20000);
    for (size_t i = 0; i < v.size(); i++) v[i] = double(i) * 0.5;
    write_bytes(p, npy_bytes(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (20000,), }", v.data(), v.size() * 8));
    Tensor t = load_npy(p);
    ASSERT_EQ(t.numel(), 20000);
    for (int i : {0, 1, 8191, 8192, 19999}) EXPECT_EQ(t.data<float>()[i], float(i) * 0.5f);
}

// ---- labels and top_k --------------------------------------------------------------------------

TEST(Labels, BundledImageNetLabels) {
    auto labels = load_labels(kAssets + "/imagenet_labels.txt");
    ASSERT_EQ(labels.size(), 1000u);
    EXPECT_EQ(labels[0], "tench");
    EXPECT_EQ(labels[1], "goldfish");
    EXPECT_EQ(labels[281], "tabby");
    EXPECT_EQ(labels[285], "Egyptian cat");
    EXPECT_EQ(labels[999], "toilet tissue");
}

TEST(Labels, CrLfTrailingNewlineAndErrors) {
    std::string p = scratch("l.txt");
    write_bytes(p, std::string("a b\r\n\r\nc").data(), 8);
    auto l = load_labels(p);
    EXPECT_EQ(l, (std::vector<std::string>{"a b", "", "c"}));
    write_bytes(p, std::string("x\ny\n").data(), 4);
    EXPECT_EQ(load_labels(p), (std::vector<std::string>{"x", "y"}));
    write_bytes(p, "", 0);
    expect_error([&] { load_labels(p); }, p, "no labels");
    std::string missing = scratch("missing.txt");
    expect_error([&] { load_labels(missing); }, missing, "cannot open");
    std::string dir = scratch("");
    expect_error([&] { load_labels(dir); }, dir);
}

TEST(TopK, OrderTiesNaNAndClamping) {
    const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
    const float v[7] = {1.f, 3.f, nan, 3.f, -inf, 2.f, 3.f};
    auto r = top_k(v, 7, 4);
    ASSERT_EQ(r.size(), 4u);
    EXPECT_EQ(r[0], (std::pair<int, float>{1, 3.f}));
    EXPECT_EQ(r[1], (std::pair<int, float>{3, 3.f}));
    EXPECT_EQ(r[2], (std::pair<int, float>{6, 3.f}));
    EXPECT_EQ(r[3], (std::pair<int, float>{5, 2.f}));
    auto all = top_k(v, 7, 100);
    ASSERT_EQ(all.size(), 7u);
    EXPECT_EQ(all[4].first, 0);
    EXPECT_EQ(all[5].first, 4);
    EXPECT_EQ(all[6].first, 2);
    EXPECT_TRUE(top_k(v, 7, 0).empty());
    EXPECT_THROW(top_k(v, 7, -1), std::invalid_argument);
    EXPECT_THROW(top_k(nullptr, 3, 1), std::invalid_argument);
}

TEST(Labels, OnlyRegularFilesUpToTheLimit) {
    EXPECT_EQ(error_of([] { load_labels("/dev/zero"); }),
              "'/dev/zero' is not a regular file (a device or socket); a labels file must be a file");
    std::string fifo = scratch("fifo.txt");
    fs::remove(fifo);
    ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
    EXPECT_EQ(error_of([&] { load_labels(fifo); }), "'" + fifo + "' is not a regular file (a FIFO); a labels file must be a file");
    std::string big = scratch("big.txt");
    write_bytes(big, "", 0);
    fs::resize_file(big, kMaxLabelsBytes + 1);
    EXPECT_EQ(error_of([&] { load_labels(big); }), "'" + big + "' is 16.0 MiB, more than the limit of 16.0 MiB for a labels file");
}

TEST(TopK, FirstRowOfAnyDtype) {
    // u8 logits with quantization: dequantized, never read as float.
    uint8_t q[6] = {3, 7, 1, 200, 0, 0};
    Tensor u = Tensor::wrap(DType::u8, {2, 3}, q, QuantParams::per_tensor(0.25f, 3));
    EXPECT_EQ(first_row_as_float(u, "y"), (std::vector<float>{0.f, 1.f, -0.5f}));
    int32_t s[4] = {INT32_MIN, 5, -5, INT32_MAX};
    Tensor s32 = Tensor::wrap(DType::s32, {1, 1, 1, 4}, s);  // NHWC {N,1,1,C}: the row is every value
    EXPECT_EQ(first_row_as_float(s32, "y"), (std::vector<float>{float(INT32_MIN), 5.f, -5.f, float(INT32_MAX)}));
    float f[3] = {1.f, 2.f, 3.f};
    EXPECT_EQ(first_row_as_float(Tensor::wrap(DType::f32, {3}, f), "y"), (std::vector<float>{1.f}));  // {N}
    EXPECT_EQ(error_of([&] { first_row_as_float(Tensor::wrap(DType::f32, {}, f), "model output 'y'"); }),
              "model output 'y' is f32[]: expected {N, classes...}, not a scalar");
    QuantParams axis{{0.1f, 0.2f, 0.3f}, {0, 0, 0}, 1};
    EXPECT_EQ(error_of([&] { first_row_as_float(Tensor::wrap(DType::u8, {1, 3}, q, axis), "y\nz"); }),
              "y\\nz is u8[1,3]: per-axis quantized outputs are not supported");
    EXPECT_EQ(error_of([&] { first_row_as_float(Tensor::wrap(DType::u4, {1, 4}, q), "y"); }),
              "y is u4[1,4]: packed 4-bit outputs are not supported");
}
