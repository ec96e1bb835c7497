// GPU kernels (runtime/gpu_kernels.h, today cuda_dp4a) against the generic CPU kernel of the same
// family, bit for bit: the same inputs (random, never all zeros; weights packed once by
// runtime/pack, the layout every variant takes), the GPU run on device buffers
// (copy_to_device, run, copy_to_host) with a poisoned output. The generic kernels are themselves
// bit-exact against tests/reference (test_conv2d, test_eltwise), so this chains to the reference.
//
// Without a CUDA device (CI, the build machine) every device test is skipped with a message that
// says where they run: scripts/device_gpu_test.sh. The PTX checks need no device.
//
// QHALIDE_GPU_BENCH=1 also times the conv kernels on ResNet-50 shapes (GpuBench.*, median of
// repeats, host clock around run + halide_device_sync, after warm-up); QHALIDE_GPU_BENCH_OUT=FILE
// writes the table as CSV.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <atomic>
#include <fstream>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <random>
#include <sstream>

#include "HalideBuffer.h"
#include "HalideRuntimeCuda.h"
#include "device.h"
#include "gpu_kernels.h"
#include "model.h"
#include "ops.h"
#include "pack.h"
#include "precision.h"
#include "models/resnet.h"
#if QH_HAVE_CUDA_MMA
#include "../cuda/mma_ops.h"
#endif
#include "mobile_graphs.h"
#include "small_quant_graph.h"
#include "test_util.h"

namespace {

using Halide::Runtime::Buffer;
using qh::gpu_kernels::cuda_device_available;

#define QH_REQUIRE_CUDA()                                                                       \
    if (!cuda_device_available())                                                               \
    GTEST_SKIP() << "no CUDA device: GPU tests run on the device machine "                     \
                    "(scripts/device_gpu_test.sh)"

const halide_device_interface_t *cuda() { return halide_cuda_device_interface(); }

template <typename T>
Buffer<T> random_buffer(std::vector<int> shape, int lo, int hi, uint32_t seed) {
    Buffer<T> b(shape);
    std::mt19937 g(seed);
    std::uniform_int_distribution<int> d(lo, hi);
    b.for_each_value([&](T &v) { v = T(d(g)); });
    return b;
}

// Argument mappers: host buffers as they are (CPU run), or device copies (GPU run).
struct HostArgs {
    halide_buffer_t *operator()(Buffer<> &b) { return b.raw_buffer(); }
};
struct DeviceArgs {
    std::list<Buffer<>> keep;  // stable addresses for the raw buffers handed out
    halide_buffer_t *operator()(Buffer<> &b) {
        keep.push_back(b.copy());
        Buffer<> &c = keep.back();
        c.set_host_dirty();
        EXPECT_EQ(c.copy_to_device(cuda()), 0);
        return c.raw_buffer();
    }
};

std::string mismatch(const Buffer<> &got, const Buffer<> &want) {
    const size_t n = want.size_in_bytes(), es = want.type().bytes();
    if (got.size_in_bytes() != n) return "size differs";
    const uint8_t *g = static_cast<const uint8_t *>(got.data());
    const uint8_t *w = static_cast<const uint8_t *>(want.data());
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < n; i += es)
        if (std::memcmp(g + i, w + i, es) && bad++ == 0) first = i / es;
    if (!bad) return "";
    auto val = [&](const uint8_t *p) {
        int64_t v = 0;
        std::memcpy(&v, p + first * es, es);
        return std::to_string(v);
    };
    return std::to_string(bad) + " of " + std::to_string(n / es) +
           " elements differ, first at flat index " + std::to_string(first) + ": gpu " + val(g) +
           " (bits), cpu " + val(w);
}

// Runs call(args, out, gpu) once with host buffers (CPU kernel) and once with device copies
// (GPU kernel) and compares the outputs byte for byte. Returns the GPU output.
template <typename Call>
Buffer<> compare_cpu_gpu(halide_type_t type, const std::vector<int> &shape, Call call) {
    Buffer<> cpu(type, shape), gpu(type, shape);
    std::memset(cpu.data(), 0xA5, cpu.size_in_bytes());  // poison: every element is written
    std::memset(gpu.data(), 0x5A, gpu.size_in_bytes());
    HostArgs h;
    EXPECT_EQ(call(h, cpu.raw_buffer(), false), 0) << "CPU kernel failed";
    gpu.set_host_dirty();
    EXPECT_EQ(gpu.copy_to_device(cuda()), 0);
    gpu.set_host_dirty(false);
    DeviceArgs d;
    EXPECT_EQ(call(d, gpu.raw_buffer(), true), 0) << "GPU kernel failed";
    EXPECT_TRUE(gpu.has_device_allocation());
    EXPECT_TRUE(gpu.device_dirty()) << "the GPU kernel did not write its output on the device";
    EXPECT_EQ(gpu.copy_to_host(), 0);
    EXPECT_EQ(mismatch(gpu, cpu), "");
    return gpu;
}

// ---- conv2d (every family) ----------------------------------------------------------------

struct ConvCase {
    std::string name;
    int n, h, w, c, oc, kh, kw, stride, pad;
    int x_zp = 128;
    bool relu = false;
};

std::vector<ConvCase> conv_cases() {
    return {
        {"r50_conv1_7x7s2", 1, 224, 224, 3, 64, 7, 7, 2, 3, 128},
        {"r50_res2_3x3_64", 1, 56, 56, 64, 64, 3, 3, 1, 1, 0},
        {"r50_res2_1x1_64_256", 1, 56, 56, 64, 256, 1, 1, 1, 0, 17},
        {"r50_res3_1x1s2_256_512", 1, 56, 56, 256, 512, 1, 1, 2, 0, 128},
        {"r50_res5_3x3_512_relu", 1, 7, 7, 512, 512, 3, 3, 1, 1, 3, true},
        {"odd_c5_oc7_b3", 3, 9, 9, 5, 7, 3, 3, 1, 1, 3},
        {"c13_oc70_5x5s2_b2", 2, 13, 11, 13, 70, 5, 5, 2, 2, 200, true},
        {"oc1_c1_1x1", 1, 7, 7, 1, 1, 1, 1, 1, 0, 0},
    };
}

enum class ConvFamily { u8s8u8, u8s8s8, u8s8s32, u8z8u8, u8z8s32, add_u8s8u8 };
const char *family_name(ConvFamily f) {
    switch (f) {
    case ConvFamily::u8s8u8: return "conv2d_u8s8u8";
    case ConvFamily::u8s8s8: return "conv2d_u8s8s8";
    case ConvFamily::u8s8s32: return "conv2d_u8s8s32";
    case ConvFamily::u8z8u8: return "conv2d_u8z8u8";
    case ConvFamily::u8z8s32: return "conv2d_u8z8s32";
    default: return "conv2d_add_u8s8u8";
    }
}

using ConvFn = decltype(&qh_conv2d_u8s8u8__generic);
std::pair<ConvFn, ConvFn> conv_fns(ConvFamily f) {
    using namespace qh;
    switch (f) {
    case ConvFamily::u8s8u8: return {&qh_conv2d_u8s8u8__generic, gpu_kernels::conv2d_u8s8u8__cuda_dp4a().fn};
    case ConvFamily::u8s8s8: return {&qh_conv2d_u8s8s8__generic, gpu_kernels::conv2d_u8s8s8__cuda_dp4a().fn};
    case ConvFamily::u8s8s32: return {&qh_conv2d_u8s8s32__generic, gpu_kernels::conv2d_u8s8s32__cuda_dp4a().fn};
    case ConvFamily::u8z8u8: return {&qh_conv2d_u8z8u8__generic, gpu_kernels::conv2d_u8z8u8__cuda_dp4a().fn};
    case ConvFamily::u8z8s32: return {&qh_conv2d_u8z8s32__generic, gpu_kernels::conv2d_u8z8s32__cuda_dp4a().fn};
    default: return {&qh_conv2d_add_u8s8u8__generic, gpu_kernels::conv2d_add_u8s8u8__cuda_dp4a().fn};
    }
}

// Packed weights + Halide buffers of one conv problem.
struct ConvSetup {
    ConvCase tc;
    qh::PackedWeights pw;
    Buffer<> x, w, bias, wzp, mult, res;
    int oh, ow;
    int32_t yzp, lo, hi;
};

ConvSetup make_conv(const ConvCase &tc, ConvFamily fam, uint32_t seed) {
    ConvSetup s;
    s.tc = tc;
    const bool zp = fam == ConvFamily::u8z8u8 || fam == ConvFamily::u8z8s32;
    const bool s32 = fam == ConvFamily::u8s8s32 || fam == ConvFamily::u8z8s32;
    const bool s8 = fam == ConvFamily::u8s8s8;
    qh::WeightsDesc wd;
    wd.name = tc.name;
    wd.oc = tc.oc; wd.ic = tc.c; wd.kh = tc.kh; wd.kw = tc.kw;
    const size_t nw = size_t(tc.oc) * tc.c * tc.kh * tc.kw;
    std::vector<uint8_t> wu8;
    std::vector<int8_t> ws8;
    std::mt19937 g(seed);
    if (zp) {  // u8 weights with zero points: w - z_w does not fit s8 -> z8 family
        wu8.resize(nw);
        for (auto &v : wu8) v = uint8_t(g());
        wd.dtype = qh::DType::u8; wd.data = wu8.data();
        wd.zero_point.resize(tc.oc);
        for (auto &z : wd.zero_point) z = int32_t(g() % 256);
        wd.zero_point[0] = 255;
    } else {
        ws8.resize(nw);
        for (auto &v : ws8) v = int8_t(int(g() % 255) - 127);
        wd.dtype = qh::DType::s8; wd.data = ws8.data();
        wd.zero_point = {0};
    }
    std::vector<int32_t> b(tc.oc);
    for (auto &v : b) v = int32_t(g() % 40001) - 20000;
    wd.bias = b.data();
    wd.scale.resize(tc.oc);
    for (int o = 0; o < tc.oc; o++) wd.scale[o] = 0.002f + 0.0005f * (o % 7);
    const float xs = 0.02f, ys = 0.05f;
    s.pw = qh::pack_weights(wd, xs, tc.x_zp, s32 ? 0.f : ys);
    EXPECT_EQ(s.pw.has_zero_point, zp);
    s.oh = (tc.h + 2 * tc.pad - tc.kh) / tc.stride + 1;
    s.ow = (tc.w + 2 * tc.pad - tc.kw) / tc.stride + 1;
    s.x = random_buffer<uint8_t>({tc.c, tc.w, tc.h, tc.n}, 0, 255, seed + 1);
    const auto &pw = s.pw;
    s.w = Buffer<int8_t>(const_cast<int8_t *>(pw.blocked()), {4, 16, pw.ic_pad / 4, pw.kw, pw.kh, pw.oc_pad / 16});
    s.bias = Buffer<int32_t>(const_cast<int32_t *>(pw.bias.data()), {pw.oc_pad});
    s.wzp = Buffer<int32_t>(const_cast<int32_t *>(pw.wzp.data()), {pw.oc_pad});
    s.mult = Buffer<float>(const_cast<float *>(pw.mult.data()), {pw.oc_pad});
    s.res = random_buffer<uint8_t>({tc.oc, s.ow, s.oh, tc.n}, 0, 255, seed + 2);
    s.yzp = s8 ? -5 : 77;
    s.lo = s8 ? -128 : 0;
    s.hi = s8 ? 127 : 255;
    if (tc.relu) s.lo = s.yzp;
    return s;
}

halide_type_t conv_out_type(ConvFamily f) {
    if (f == ConvFamily::u8s8s32 || f == ConvFamily::u8z8s32) return halide_type_of<int32_t>();
    if (f == ConvFamily::u8s8s8) return halide_type_of<int8_t>();
    return halide_type_of<uint8_t>();
}

template <typename Args>
int run_conv(ConvFn fn, ConvSetup &s, Args &B, halide_buffer_t *out) {
    return fn(B(s.x), s.tc.x_zp, B(s.w), B(s.bias), B(s.wzp), B(s.mult), s.yzp, s.lo, s.hi,
              s.tc.stride, s.tc.stride, s.tc.pad, s.tc.pad, B(s.res), 64, 110, 0.05f / 0.09f,
              0.07f / 0.09f, out);
}

class GpuConv : public ::testing::TestWithParam<std::tuple<ConvFamily, ConvCase>> {};

TEST_P(GpuConv, BitExactWithGenericCpu) {
    QH_REQUIRE_CUDA();
    auto [fam, tc] = GetParam();
    ConvSetup s = make_conv(tc, fam, uint32_t(std::hash<std::string>()(tc.name)) + int(fam));
    auto [cpu_fn, gpu_fn] = conv_fns(fam);
    compare_cpu_gpu(conv_out_type(fam), {tc.oc, s.ow, s.oh, tc.n},
                    [&](auto &B, halide_buffer_t *out, bool gpu) {
                        return run_conv(gpu ? gpu_fn : cpu_fn, s, B, out);
                    });
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, GpuConv,
    ::testing::Combine(::testing::Values(ConvFamily::u8s8u8, ConvFamily::u8s8s8,
                                         ConvFamily::u8s8s32, ConvFamily::u8z8u8,
                                         ConvFamily::u8z8s32, ConvFamily::add_u8s8u8),
                       ::testing::ValuesIn(conv_cases())),
    [](const auto &info) {
        return std::string(family_name(std::get<0>(info.param))) + "_" +
               std::get<1>(info.param).name;
    });

// ---- dense (every family) -----------------------------------------------------------------

struct DenseCase {
    std::string name;
    int b, k, oc, x_zp;
};
enum class DenseFamily { u8s8u8, u8s8s8, u8s8s32, u8z8u8, u8z8s32 };
using DenseFn = decltype(&qh_dense_u8s8u8__generic);
std::pair<DenseFn, DenseFn> dense_fns(DenseFamily f) {
    using namespace qh;
    switch (f) {
    case DenseFamily::u8s8u8: return {&qh_dense_u8s8u8__generic, gpu_kernels::dense_u8s8u8__cuda_dp4a().fn};
    case DenseFamily::u8s8s8: return {&qh_dense_u8s8s8__generic, gpu_kernels::dense_u8s8s8__cuda_dp4a().fn};
    case DenseFamily::u8s8s32: return {&qh_dense_u8s8s32__generic, gpu_kernels::dense_u8s8s32__cuda_dp4a().fn};
    case DenseFamily::u8z8u8: return {&qh_dense_u8z8u8__generic, gpu_kernels::dense_u8z8u8__cuda_dp4a().fn};
    default: return {&qh_dense_u8z8s32__generic, gpu_kernels::dense_u8z8s32__cuda_dp4a().fn};
    }
}
const char *dense_name(DenseFamily f) {
    const char *n[] = {"dense_u8s8u8", "dense_u8s8s8", "dense_u8s8s32", "dense_u8z8u8",
                       "dense_u8z8s32"};
    return n[int(f)];
}

class GpuDense : public ::testing::TestWithParam<std::tuple<DenseFamily, DenseCase>> {};

TEST_P(GpuDense, BitExactWithGenericCpu) {
    QH_REQUIRE_CUDA();
    auto [fam, tc] = GetParam();
    const bool zp = fam == DenseFamily::u8z8u8 || fam == DenseFamily::u8z8s32;
    const bool s32 = fam == DenseFamily::u8s8s32 || fam == DenseFamily::u8z8s32;
    const bool s8 = fam == DenseFamily::u8s8s8;
    std::mt19937 g(uint32_t(std::hash<std::string>()(tc.name)) + int(fam));
    qh::WeightsDesc wd;
    wd.name = tc.name; wd.oc = tc.oc; wd.ic = tc.k;
    std::vector<uint8_t> wu8(size_t(tc.oc) * tc.k);
    std::vector<int8_t> ws8(wu8.size());
    if (zp) {
        for (auto &v : wu8) v = uint8_t(g());
        wd.dtype = qh::DType::u8; wd.data = wu8.data(); wd.zero_point = {131};
    } else {
        for (auto &v : ws8) v = int8_t(int(g() % 256) - 128);
        wd.dtype = qh::DType::s8; wd.data = ws8.data(); wd.zero_point = {0};
    }
    std::vector<int32_t> bias(tc.oc);
    for (auto &v : bias) v = int32_t(g() % 10001) - 5000;
    wd.bias = bias.data();
    wd.scale = {0.003f};
    qh::PackedWeights pw = qh::pack_weights(wd, 0.01f, tc.x_zp, s32 ? 0.f : 0.4f);
    Buffer<> x = random_buffer<uint8_t>({tc.k, tc.b}, 0, 255, g());
    Buffer<> w = Buffer<int8_t>(const_cast<int8_t *>(pw.blocked()), {4, 16, pw.ic_pad / 4, pw.oc_pad / 16});
    Buffer<> bb = Buffer<int32_t>(pw.bias.data(), {pw.oc_pad});
    Buffer<> wz = Buffer<int32_t>(pw.wzp.data(), {pw.oc_pad});
    Buffer<> m = Buffer<float>(pw.mult.data(), {pw.oc_pad});
    const int32_t yzp = s8 ? 3 : 120, lo = s8 ? -128 : 0, hi = s8 ? 127 : 255;
    auto [cpu_fn, gpu_fn] = dense_fns(fam);
    halide_type_t t = s32 ? halide_type_of<int32_t>() : s8 ? halide_type_of<int8_t>()
                                                           : halide_type_of<uint8_t>();
    compare_cpu_gpu(t, {tc.oc, tc.b}, [&](auto &B, halide_buffer_t *out, bool gpu) {
        return (gpu ? gpu_fn : cpu_fn)(B(x), tc.x_zp, B(w), B(bb), B(wz), B(m), yzp, lo, hi, out);
    });
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, GpuDense,
    ::testing::Combine(::testing::Values(DenseFamily::u8s8u8, DenseFamily::u8s8s8,
                                         DenseFamily::u8s8s32, DenseFamily::u8z8u8,
                                         DenseFamily::u8z8s32),
                       ::testing::Values(DenseCase{"r50_fc_2048_1000", 1, 2048, 1000, 128},
                                         DenseCase{"b16_fc_2048_1000", 16, 2048, 1000, 7},
                                         DenseCase{"odd_b5_k37_oc70", 5, 37, 70, 200})),
    [](const auto &info) {
        return std::string(dense_name(std::get<0>(info.param))) + "_" + std::get<1>(info.param).name;
    });

// ---- pools ---------------------------------------------------------------------------------

TEST(GpuPool, MaxPoolBitExact) {
    QH_REQUIRE_CUDA();
    struct P { int n, h, w, c, k, s, pad; };
    for (P p : {P{1, 112, 112, 64, 3, 2, 1}, P{2, 9, 11, 5, 3, 1, 1}, P{1, 8, 8, 33, 2, 2, 0}}) {
        SCOPED_TRACE("maxpool c" + std::to_string(p.c) + " hw" + std::to_string(p.h));
        const int oh = (p.h + 2 * p.pad - p.k) / p.s + 1, ow = (p.w + 2 * p.pad - p.k) / p.s + 1;
        Buffer<> xu = random_buffer<uint8_t>({p.c, p.w, p.h, p.n}, 0, 255, p.c * 7 + p.h);
        compare_cpu_gpu(halide_type_of<uint8_t>(), {p.c, ow, oh, p.n},
                        [&](auto &B, halide_buffer_t *out, bool gpu) {
                            auto fn = gpu ? qh::gpu_kernels::maxpool_u8u8__cuda_dp4a().fn
                                          : &qh_maxpool_u8u8__generic;
                            return fn(B(xu), p.k, p.k, p.s, p.s, p.pad, p.pad, out);
                        });
        Buffer<> xs = random_buffer<int8_t>({p.c, p.w, p.h, p.n}, -128, 127, p.c * 5 + p.h);
        compare_cpu_gpu(halide_type_of<int8_t>(), {p.c, ow, oh, p.n},
                        [&](auto &B, halide_buffer_t *out, bool gpu) {
                            auto fn = gpu ? qh::gpu_kernels::maxpool_s8s8__cuda_dp4a().fn
                                          : &qh_maxpool_s8s8__generic;
                            return fn(B(xs), p.k, p.k, p.s, p.s, p.pad, p.pad, out);
                        });
    }
}

TEST(GpuPool, GlobalAvgPoolBitExact) {
    QH_REQUIRE_CUDA();
    struct P { int n, hw, c; };
    for (P p : {P{1, 7, 2048}, P{3, 5, 70}, P{1, 14, 1}}) {
        SCOPED_TRACE("global_avgpool c" + std::to_string(p.c));
        Buffer<> x = random_buffer<uint8_t>({p.c, p.hw, p.hw, p.n}, 0, 255, p.c + p.hw);
        const float mult = 0.05f / (0.03f * p.hw * p.hw);
        compare_cpu_gpu(halide_type_of<uint8_t>(), {p.c, p.n},
                        [&](auto &B, halide_buffer_t *out, bool gpu) {
                            auto fn = gpu ? qh::gpu_kernels::global_avgpool_u8u8__cuda_dp4a().fn
                                          : &qh_global_avgpool_u8u8__generic;
                            return fn(B(x), 100, mult, 20, 255, out);
                        });
    }
}

// ---- elementwise ---------------------------------------------------------------------------

Buffer<> per_channel_scales(int c, float base, uint32_t seed) {
    Buffer<float> s(c);
    std::mt19937 g(seed);
    for (int i = 0; i < c; i++) s(i) = base * (1.0f + float(g() % 1000) / 250.0f);
    return s;
}

TEST(GpuEltwise, QuantizeBitExact) {
    QH_REQUIRE_CUDA();
    const std::vector<int> shape = {37, 5, 3};
    Buffer<float> x(shape);
    std::mt19937 g(11);
    Buffer<> scale = per_channel_scales(5, 0.02f, 12);
    Buffer<float> sc(scale);
    x.for_each_element([&](int i, int c, int o) {
        // Half the values are exact ties k/2 * scale (round half to even), half arbitrary.
        int k = int(g() % 1201) - 600;
        x(i, c, o) = (i % 2) ? (k + 0.5f) * sc(c) : float(k) * 0.731f * sc(c);
    });
    Buffer<> xb = x;
    Buffer<> zp = random_buffer<int32_t>({5}, -20, 140, 13);
    for (bool u8 : {true, false}) {
        SCOPED_TRACE(u8 ? "quantize_f32u8" : "quantize_f32s8");
        compare_cpu_gpu(u8 ? halide_type_of<uint8_t>() : halide_type_of<int8_t>(), shape,
                        [&](auto &B, halide_buffer_t *out, bool gpu) {
                            auto fn = u8 ? (gpu ? qh::gpu_kernels::quantize_f32u8__cuda_dp4a().fn
                                                : &qh_quantize_f32u8__generic)
                                         : (gpu ? qh::gpu_kernels::quantize_f32s8__cuda_dp4a().fn
                                                : &qh_quantize_f32s8__generic);
                            return fn(B(xb), B(scale), B(zp), u8 ? 255 : 127, out);
                        });
    }
}

TEST(GpuEltwise, DequantizeBitExact) {
    QH_REQUIRE_CUDA();
    const std::vector<int> shape = {37, 5, 3};
    Buffer<> scale = per_channel_scales(5, 0.013f, 21);
    Buffer<> zp = random_buffer<int32_t>({5}, -100, 200, 22);
    Buffer<> xu = random_buffer<uint8_t>(shape, 0, 255, 23);
    Buffer<> xs = random_buffer<int8_t>(shape, -128, 127, 24);
    Buffer<> xi = random_buffer<int32_t>(shape, -3000000, 3000000, 25);
    using namespace qh::gpu_kernels;
    std::vector<std::tuple<const char *, Buffer<> *, decltype(&qh_dequantize_u8f32__generic),
                           decltype(&qh_dequantize_u8f32__generic)>>
        runs = {{"u8", &xu, &qh_dequantize_u8f32__generic, dequantize_u8f32__cuda_dp4a().fn},
                {"s8", &xs, &qh_dequantize_s8f32__generic, dequantize_s8f32__cuda_dp4a().fn},
                {"s32", &xi, &qh_dequantize_s32f32__generic, dequantize_s32f32__cuda_dp4a().fn}};
    for (auto &[name, x, cpu_fn, gpu_fn] : runs) {
        SCOPED_TRACE(std::string("dequantize_") + name + "f32");
        compare_cpu_gpu(halide_type_of<float>(), shape,
                        [&](auto &B, halide_buffer_t *out, bool gpu) {
                            return (gpu ? gpu_fn : cpu_fn)(B(*x), B(scale), B(zp), out);
                        });
    }
}

TEST(GpuEltwise, RequantizeBitExact) {
    QH_REQUIRE_CUDA();
    const std::vector<int> shape = {37, 5, 3};
    const int n = 37 * 5 * 3;  // odd: the last int4 byte has one nibble
    Buffer<> x = random_buffer<int32_t>(shape, -100000, 100000, 31);
    Buffer<> mult = per_channel_scales(5, 0.0011f, 32);
    Buffer<> zp8 = random_buffer<int32_t>({5}, 0, 30, 33);
    Buffer<> zp4 = random_buffer<int32_t>({5}, 0, 3, 34);
    using namespace qh::gpu_kernels;
    using Fn = decltype(&qh_requantize_s32u8__generic);
    struct R { const char *name; Fn cpu, gpu; halide_type_t t; bool int4; int32_t lo, hi; };
    for (R r : {R{"requantize_s32u8", &qh_requantize_s32u8__generic, requantize_s32u8__cuda_dp4a().fn, halide_type_of<uint8_t>(), false, 0, 255},
                R{"requantize_s32s8", &qh_requantize_s32s8__generic, requantize_s32s8__cuda_dp4a().fn, halide_type_of<int8_t>(), false, -128, 127},
                R{"requantize_s32u4", &qh_requantize_s32u4__generic, requantize_s32u4__cuda_dp4a().fn, halide_type_of<uint8_t>(), true, 0, 255},
                R{"requantize_s32s4", &qh_requantize_s32s4__generic, requantize_s32s4__cuda_dp4a().fn, halide_type_of<int8_t>(), true, -128, 127}}) {
        SCOPED_TRACE(r.name);
        std::vector<int> oshape = r.int4 ? std::vector<int>{(n + 1) / 2} : shape;
        Buffer<> &zp = r.int4 ? zp4 : zp8;
        compare_cpu_gpu(r.t, oshape, [&](auto &B, halide_buffer_t *out, bool gpu) {
            return (gpu ? r.gpu : r.cpu)(B(x), B(mult), B(zp), r.lo, r.hi, out);
        });
    }
}

TEST(GpuEltwise, Int4PackUnpackBitExact) {
    QH_REQUIRE_CUDA();
    const int n = 1001;
    using namespace qh::gpu_kernels;
    Buffer<> xs = random_buffer<int8_t>({n}, -128, 127, 41);
    Buffer<> xu = random_buffer<uint8_t>({n}, 0, 255, 42);
    Buffer<> packed = random_buffer<uint8_t>({(n + 1) / 2}, 0, 255, 43);
    compare_cpu_gpu(halide_type_of<uint8_t>(), {(n + 1) / 2}, [&](auto &B, halide_buffer_t *o, bool gpu) {
        return (gpu ? int4_pack_s8s4__cuda_dp4a().fn : &qh_int4_pack_s8s4__generic)(B(xs), o);
    });
    compare_cpu_gpu(halide_type_of<uint8_t>(), {(n + 1) / 2}, [&](auto &B, halide_buffer_t *o, bool gpu) {
        return (gpu ? int4_pack_u8u4__cuda_dp4a().fn : &qh_int4_pack_u8u4__generic)(B(xu), o);
    });
    compare_cpu_gpu(halide_type_of<int8_t>(), {n}, [&](auto &B, halide_buffer_t *o, bool gpu) {
        return (gpu ? int4_unpack_s4s8__cuda_dp4a().fn : &qh_int4_unpack_s4s8__generic)(B(packed), o);
    });
    compare_cpu_gpu(halide_type_of<uint8_t>(), {n}, [&](auto &B, halide_buffer_t *o, bool gpu) {
        return (gpu ? int4_unpack_u4u8__cuda_dp4a().fn : &qh_int4_unpack_u4u8__generic)(B(packed), o);
    });
}

TEST(GpuEltwise, AddBitExact) {
    QH_REQUIRE_CUDA();
    const int n = 10007;
    Buffer<> a = random_buffer<uint8_t>({n}, 0, 255, 51);
    Buffer<> b = random_buffer<uint8_t>({n}, 0, 255, 52);
    for (bool relu : {false, true}) {
        SCOPED_TRACE(relu ? "add relu" : "add");
        compare_cpu_gpu(halide_type_of<uint8_t>(), {n}, [&](auto &B, halide_buffer_t *o, bool gpu) {
            auto fn = gpu ? qh::gpu_kernels::add_u8u8u8__cuda_dp4a().fn : &qh_add_u8u8u8__generic;
            return fn(B(a), 110, 0.07f / 0.09f, B(b), 64, 0.05f / 0.09f, 20, relu ? 20 : 0, 255, o);
        });
    }
}

// ---- cuda_mma formulations through the ops (fused, extern, extern_im2col) ------------------
//
// bind_conv2d / bind_conv2d_add / bind_dense on device tensors with KernelOptions::cuda_formulation
// forced, against the same op on host tensors (the CPU kernels), byte for byte. Binding tunes on
// the op's input slot, so the input is uploaded after bind. Where the forced formulation does not
// apply (extern on the 7x7 stem: the microkernel needs a workspace there), the fused one runs.

// KernelOptions (runtime/options.h) with one cuda_mma formulation forced ("" = measured).
qh::KernelOptions formulation(const std::string &f) {
    qh::KernelOptions o;
    if (!f.empty()) o.cuda_formulation = f;
    return o;
}

// "extern" -> the kernel name the layer should report.
std::string expected_family(const std::string &form, bool add, bool applies) {
    const std::string base = add ? "conv2d_add" : "conv2d";
    if (form == "fused" || !applies) return base + "_u8s8u8__cuda_mma__";
    return base + (form == "extern" ? "_extern_u8s8u8__cuda_mma__" : "_extern_im2col_u8s8u8__cuda_mma__");
}

struct DevTensor {
    std::vector<uint8_t> host;
    std::unique_ptr<qh::DeviceBuffer> buf;
    qh::Tensor t;
    DevTensor(qh::DType dt, std::vector<int64_t> shape, qh::QuantParams q) {
        int64_t numel = 1;
        for (auto d : shape) numel *= d;
        const size_t n = qh::dtype_storage_bytes(dt, numel);
        host.assign(n, 0x5A);
        buf = std::make_unique<qh::DeviceBuffer>(qh::Device::cuda, n, host.data());
        t = qh::Tensor::wrap_device(qh::Device::cuda, dt, shape, buf->handle(), q);
    }
};

class GpuFormulation : public ::testing::TestWithParam<std::tuple<std::string, bool, ConvCase>> {};

TEST_P(GpuFormulation, ConvBitExactWithCpu) {
    QH_REQUIRE_CUDA();
    if (!qh::cuda_mma_built()) GTEST_SKIP() << "library built without the cuda_mma microkernel (no nvcc)";
    auto [form, add, tc] = GetParam();
    ConvSetup s = make_conv(tc, add ? ConvFamily::add_u8s8u8 : ConvFamily::u8s8u8,
                            uint32_t(std::hash<std::string>()(tc.name)) + 11);
    const auto q = [](float sc, int zp) { return qh::QuantParams::per_tensor(sc, zp); };
    qh::Conv2dParams p;
    p.name = tc.name;
    p.stride_h = p.stride_w = tc.stride;
    p.pad_top = p.pad_left = p.pad_bottom = p.pad_right = tc.pad;
    p.act = tc.relu ? qh::Activation::relu(s.yzp) : qh::Activation{};
    const std::vector<int64_t> xs{tc.n, tc.h, tc.w, tc.c}, ys{tc.n, s.oh, s.ow, tc.oc};
    const qh::ResidualParams rp{0.05f, 64};
    qh::Tensor xh = qh::Tensor::wrap(qh::DType::u8, xs, s.x.data(), q(0.02f, tc.x_zp));
    qh::Tensor rh = qh::Tensor::wrap(qh::DType::u8, ys, s.res.data(), q(0.07f, 110));
    qh::Tensor yh(qh::DType::u8, ys, q(0.09f, s.yzp));
    if (add) qh::conv2d_add(xh, s.pw, p, rp, rh, yh);
    else qh::conv2d(xh, s.pw, p, yh);

    DevTensor xd(qh::DType::u8, xs, q(0.02f, tc.x_zp)), yd(qh::DType::u8, ys, q(0.09f, s.yzp)),
        rd(qh::DType::u8, ys, q(0.07f, 110));
    qh::BoundOp b;
    {
        qh::KernelOptionsScope scope(formulation(form));
        b = add ? qh::bind_conv2d_add(xd.t, s.pw, p, rp, rd.t, yd.t) : qh::bind_conv2d(xd.t, s.pw, p, yd.t);
    }
    // The direct extern applies where the microkernel needs no workspace: surely with IC % 64 == 0
    // (its direct A loader); the stem's NHWC4 pass and its own im2col path need one (fused then).
    const bool surely = form != "extern" || tc.c % 64 == 0;
    const bool as_expected = b.kernel().rfind(expected_family(form, add, true), 0) == 0 ||
                             (!surely && b.kernel().rfind(expected_family(form, add, false), 0) == 0);
    EXPECT_TRUE(as_expected) << b.kernel();
    std::memcpy(xd.host.data(), s.x.data(), xd.host.size());
    std::memcpy(rd.host.data(), s.res.data(), rd.host.size());
    xd.buf->upload();
    rd.buf->upload();
    yd.buf->upload();  // poison: every element is written
    for (int rep = 0; rep < 2; rep++) {  // twice: the second run reuses Halide's cached scratch
        b.run();
        yd.buf->download();
        size_t bad = 0, first = 0;
        for (size_t i = 0; i < yd.host.size(); i++)
            if (yd.host[i] != yh.data<uint8_t>()[i] && bad++ == 0) first = i;
        EXPECT_EQ(bad, 0u) << "of " << yd.host.size() << " differ (" << b.kernel() << ", run " << rep
                           << "), first at " << first << ": gpu " << int(yd.host[first]) << " cpu "
                           << int(yh.data<uint8_t>()[first]);
        std::memset(yd.host.data(), 0x5A, yd.host.size());
        yd.buf->upload();  // poison between runs
    }
}

std::vector<ConvCase> formulation_cases() {
    return {
        {"r50_conv1_7x7s2_b2", 2, 224, 224, 3, 64, 7, 7, 2, 3, 128, true},
        {"r50_res2_3x3_64", 1, 56, 56, 64, 64, 3, 3, 1, 1, 0, true},
        {"r50_res2_1x1_64_256", 2, 56, 56, 64, 256, 1, 1, 1, 0, 17},
        {"r50_res3_1x1s2_256_512", 1, 56, 56, 256, 512, 1, 1, 2, 0, 128},
        {"r50_res3_3x3s2_128", 1, 56, 56, 128, 128, 3, 3, 2, 1, 5, true},
        {"r50_res5_3x3_512_relu", 3, 7, 7, 512, 512, 3, 3, 1, 1, 3, true},
        {"c13_oc72_5x5s2_b2", 2, 13, 11, 13, 72, 5, 5, 2, 2, 200, true},
    };
}

INSTANTIATE_TEST_SUITE_P(
    Forms, GpuFormulation,
    ::testing::Combine(::testing::Values("fused", "extern", "extern_im2col"), ::testing::Bool(),
                       ::testing::ValuesIn(formulation_cases())),
    [](const auto &info) {
        return std::get<0>(info.param) + (std::get<1>(info.param) ? "_add_" : "_") + std::get<2>(info.param).name;
    });

// dense as a 1x1 conv over 1x1 images, u8 output (s32 output has the fused formulation only).
TEST(GpuFormulation, DenseBitExactWithCpu) {
    QH_REQUIRE_CUDA();
    if (!qh::cuda_mma_built()) GTEST_SKIP() << "library built without the cuda_mma microkernel (no nvcc)";
    for (const char *form : {"fused", "extern", "extern_im2col"})
        for (auto [b, k, oc, zp] : {std::tuple{1, 2048, 1000, 128}, std::tuple{16, 2048, 1000, 7},
                                    std::tuple{5, 40, 72, 200}}) {
            SCOPED_TRACE(std::string(form) + " b" + std::to_string(b) + " k" + std::to_string(k));
            std::mt19937 g(b * 131 + k);
            qh::WeightsDesc wd;
            wd.name = "fc"; wd.oc = oc; wd.ic = k;
            std::vector<int8_t> ws(size_t(oc) * k);
            for (auto &v : ws) v = int8_t(int(g() % 256) - 128);
            wd.dtype = qh::DType::s8; wd.data = ws.data(); wd.zero_point = {0};
            std::vector<int32_t> bias(oc);
            for (auto &v : bias) v = int32_t(g() % 10001) - 5000;
            wd.bias = bias.data();
            wd.scale = {0.003f};
            qh::PackedWeights pw = qh::pack_weights(wd, 0.01f, zp, 0.4f);
            const auto q = [](float sc, int z) { return qh::QuantParams::per_tensor(sc, z); };
            Buffer<uint8_t> x = random_buffer<uint8_t>({k, b}, 0, 255, g());
            qh::Tensor xh = qh::Tensor::wrap(qh::DType::u8, {b, k}, x.data(), q(0.01f, zp));
            qh::Tensor yh(qh::DType::u8, {b, oc}, q(0.4f, 120));
            const qh::Activation act = qh::Activation::relu(120);
            qh::dense(xh, pw, act, yh);
            DevTensor xd(qh::DType::u8, {b, k}, q(0.01f, zp)), yd(qh::DType::u8, {b, oc}, q(0.4f, 120));
            qh::BoundOp bo;
            {
                qh::KernelOptionsScope scope(formulation(form));
                bo = qh::bind_dense(xd.t, pw, act, yd.t, "fc");
            }
            // The direct extern needs K % 64 == 0 here (else the microkernel's own im2col path
            // needs a workspace and the fused formulation runs).
            const std::string f = form;
            const std::string want = f == "fused" || (f == "extern" && k % 64 != 0) ? "dense_u8s8u8__cuda_mma__"
                                     : f == "extern" ? "conv2d_extern_u8s8u8__cuda_mma__"
                                                     : "conv2d_extern_im2col_u8s8u8__cuda_mma__";
            EXPECT_EQ(bo.kernel().rfind(want, 0), 0u) << bo.kernel();
            std::memcpy(xd.host.data(), x.data(), xd.host.size());
            xd.buf->upload();
            yd.buf->upload();  // poison
            bo.run();
            yd.buf->download();
            EXPECT_EQ(std::memcmp(yd.host.data(), yh.raw(), yd.host.size()), 0) << bo.kernel();
        }
}

TEST(GpuFormulation, UnknownFormulationIsAnError) {
    QH_REQUIRE_CUDA();
    if (!qh::cuda_mma_built()) GTEST_SKIP() << "library built without the cuda_mma microkernel (no nvcc)";
    ConvSetup s = make_conv(conv_cases()[1], ConvFamily::u8s8u8, 3);
    qh::Conv2dParams p;
    p.name = "layer_x";
    p.pad_top = p.pad_left = p.pad_bottom = p.pad_right = 1;
    const auto q = qh::QuantParams::per_tensor(0.02f, s.tc.x_zp);
    DevTensor xd(qh::DType::u8, {1, 56, 56, 64}, q), yd(qh::DType::u8, {1, 56, 56, 64}, qh::QuantParams::per_tensor(0.1f, 3));
    qh::KernelOptionsScope scope(formulation("bogus"));
    try {
        qh::bind_conv2d(xd.t, s.pw, p, yd.t);
        ADD_FAILURE() << "no error";
    } catch (const std::exception &e) {
        EXPECT_NE(std::string(e.what()).find("layer_x: cuda formulation 'bogus' (KernelOptions::cuda_formulation"), std::string::npos) << e.what();
    }
}

// conv2d_grouped, avgpool and lut (with its concat-slice form) on the GPU, byte for byte against
// the CPU variant this machine picks, through the ops' binds on device tensors, poisoned.
namespace {
std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
    std::vector<uint8_t> v(n);
    for (auto &b : v) b = uint8_t((seed = seed * 1664525u + 1013904223u) >> 24);
    return v;
}
// Runs `bind(in, out)` on host tensors and on device copies; the device output must equal the host's.
template <typename Bind>
void expect_gpu_equals_cpu(const std::string &what, qh::DType dt, std::vector<int64_t> xs, std::vector<int64_t> ys,
                           qh::QuantParams xq, qh::QuantParams yq, uint32_t seed, Bind bind) {
    SCOPED_TRACE(what);
    DevTensor xd(dt, xs, xq), yd(qh::DType::u8, ys, yq);
    const auto bytes = random_bytes(xd.host.size(), seed);  // into the mirrored host memory (not a new vector)
    std::copy(bytes.begin(), bytes.end(), xd.host.begin());
    qh::Tensor xh = qh::Tensor::wrap(dt, xs, xd.host.data(), xq);
    qh::Tensor yh(qh::DType::u8, ys, yq);
    std::memset(yh.raw(), 0x5A, yh.nbytes());
    bind(xh, yh).run();
    xd.buf->upload();
    yd.buf->upload();  // poison
    qh::BoundOp b = bind(xd.t, yd.t);
    b.run();
    b.run();  // twice: a kernel that reads what it writes, or races, shows here
    yd.buf->download();
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < yd.host.size(); i++)
        if (yd.host[i] != yh.data<uint8_t>()[i] && bad++ == 0) first = i;
    EXPECT_EQ(bad, 0u) << "of " << yd.host.size() << " differ (" << b.kernel() << "), first at " << first << ": gpu "
                       << int(yd.host[first]) << " cpu " << int(yh.data<uint8_t>()[first]) << "; gpu[0..7] "
                       << int(yd.host[0]) << " " << int(yd.host[1]) << " " << int(yd.host[2]) << " " << int(yd.host[3])
                       << " cpu[0..3] " << int(yh.data<uint8_t>()[0]) << " " << int(yh.data<uint8_t>()[1]);
    EXPECT_NE(b.kernel().find("__cuda_dp4a"), std::string::npos) << b.kernel();
}
}  // namespace

TEST(GpuNewOps, GroupedConvBitExactWithCpu) {
    QH_REQUIRE_CUDA();
    struct G { const char *name; int n, hw, c, oc, k, s, group, dil; bool u8w; };
    for (const G &g : {G{"dw3x3_s1_c32", 1, 112, 32, 32, 3, 1, 32, 1, false}, G{"dw5x5_s2_c672_b2", 2, 14, 672, 672, 5, 2, 672, 1, false},
                       G{"mv2_dw3x3_s1_c48_b2", 2, 16, 48, 48, 3, 1, 48, 1, false}, G{"mv2_dw3x3_s2_c64_b2", 2, 16, 64, 64, 3, 2, 64, 1, false},
                       G{"mv2_dw5x5_mult2_c24_b2", 2, 8, 24, 48, 5, 1, 24, 1, false}, G{"group4_c16_oc32_b2", 2, 12, 16, 32, 3, 1, 4, 1, false},
                       G{"dw3x3_c1152", 1, 7, 1152, 1152, 3, 1, 1152, 1, false}, G{"group4_c16_oc32", 1, 12, 16, 32, 3, 1, 4, 1, false},
                       G{"dilated2_dw_c40", 1, 16, 40, 40, 3, 1, 40, 2, false}, G{"dw_u8_zp_c70", 1, 11, 70, 70, 3, 1, 70, 1, true}}) {
        const int cg = g.c / g.group;
        auto wraw = random_bytes(size_t(g.oc) * cg * g.k * g.k, 7);
        std::vector<int32_t> bias(g.oc);
        for (int o = 0; o < g.oc; o++) bias[o] = (o * 977) % 4001 - 2000;
        qh::WeightsDesc wd;
        wd.name = g.name;
        wd.grouped = true;
        wd.oc = g.oc; wd.ic = cg; wd.kh = wd.kw = g.k;
        wd.dtype = g.u8w ? qh::DType::u8 : qh::DType::s8;
        if (!g.u8w) for (auto &b : wraw) b = uint8_t(std::max<int>(int8_t(b), -127));
        wd.data = wraw.data();
        wd.zero_point = g.u8w ? std::vector<int32_t>(g.oc, 131) : std::vector<int32_t>{0};
        wd.scale = {0.003f};
        wd.bias = bias.data();
        const float ys = 0.004f * float(g.k * g.k * cg) / 9.f;
        qh::PackedWeights pw = qh::pack_weights(wd, 0.02f, 120, ys);
        qh::Conv2dParams p;
        p.name = g.name;
        p.stride_h = p.stride_w = g.s;
        p.pad_top = p.pad_left = p.pad_bottom = p.pad_right = (g.k - 1) * g.dil / 2;
        p.dilation_h = p.dilation_w = g.dil;
        p.group = g.group;
        p.act = {0, 230};
        const int64_t o = (g.hw + 2 * p.pad_top - (g.k - 1) * g.dil - 1) / g.s + 1;
        expect_gpu_equals_cpu(g.name, qh::DType::u8, {g.n, g.hw, g.hw, g.c}, {g.n, o, o, g.oc},
                              qh::QuantParams::per_tensor(0.02f, 120), qh::QuantParams::per_tensor(ys, 77), 11,
                              [&](const qh::Tensor &x, qh::Tensor &y) { return qh::bind_conv2d_grouped(x, pw, p, y); });
    }
}

TEST(GpuNewOps, AvgPoolLutConcatBitExactWithCpu) {
    QH_REQUIRE_CUDA();
    for (int cfg = 0; cfg < 5; cfg++) {
            const bool inc = cfg & 1, ceil = cfg & 2, mv2 = cfg == 4;  // 4: MobileNetV2-style 3x3/1 pad 1 at batch 2
            qh::PoolParams p;
            p.name = "avgpool";
            p.kernel_h = p.kernel_w = 3;
            p.stride_h = p.stride_w = mv2 ? 1 : 2;
            p.pad_top = p.pad_left = 1;
            p.pad_bottom = p.pad_right = mv2 ? 1 : 0;
            p.ceil_mode = ceil;
            const int64_t hw = mv2 ? 8 : 17, c = mv2 ? 24 : 40;
            const std::vector<int64_t> xs{2, hw, hw, c};
            const std::vector<int64_t> ys{2, p.out_h(hw), p.out_w(hw), c};
            expect_gpu_equals_cpu("avgpool cfg " + std::to_string(cfg), qh::DType::u8, xs, ys,
                                  qh::QuantParams::per_tensor(0.05f, 100), qh::QuantParams::per_tensor(0.03f, 90), 5,
                                  [&](const qh::Tensor &x, qh::Tensor &y) { return qh::bind_avgpool(x, p, inc, y); });
    }
    uint8_t table[256];
    for (int i = 0; i < 256; i++) table[i] = uint8_t((i * 37 + 11) % 256);
    expect_gpu_equals_cpu("lut", qh::DType::u8, {3, 5, 7, 9}, {3, 5, 7, 9}, qh::QuantParams::per_tensor(1.f, 0),
                          qh::QuantParams::per_tensor(1.f, 0), 9,
                          [&](const qh::Tensor &x, qh::Tensor &y) { return qh::bind_lut(x, table, y); });
    // mul with b broadcast over H x W (squeeze-excitation) and as a full tensor: b's values come
    // from a second device tensor, fixed for both runs.
    for (std::vector<int64_t> bs : {std::vector<int64_t>{2, 1, 1, 40}, std::vector<int64_t>{2, 9, 9, 40}}) {
        DevTensor bd(qh::DType::u8, bs, qh::QuantParams::per_tensor(0.03f, 7));
        const auto bytes = random_bytes(bd.host.size(), 17);
        std::copy(bytes.begin(), bytes.end(), bd.host.begin());
        bd.buf->upload();
        qh::Tensor bh = qh::Tensor::wrap(qh::DType::u8, bs, bd.host.data(), bd.t.quant);
        expect_gpu_equals_cpu("mul b " + qh::shape_str(bs), qh::DType::u8, {2, 9, 9, 40}, {2, 9, 9, 40},
                              qh::QuantParams::per_tensor(0.04f, 120), qh::QuantParams::per_tensor(0.05f, 60), 19,
                              [&](const qh::Tensor &x, qh::Tensor &y) {
                                  return qh::bind_mul(x, x.device() == qh::Device::cpu ? bh : bd.t, {0, 255}, y);
                              });
    }
    // A concat slice writes only its channels: the others keep the (equal) poison on both sides.
    expect_gpu_equals_cpu("concat slice", qh::DType::u8, {2, 6, 5, 24}, {2, 6, 5, 56}, qh::QuantParams::per_tensor(1.f, 0),
                          qh::QuantParams::per_tensor(1.f, 0), 13,
                          [&](const qh::Tensor &x, qh::Tensor &y) { return qh::bind_concat_slice(x, table, y, 3, 16); });
}

// Every GPU kernel of the library is exercised above.
TEST(GpuKernels, ListIsComplete) {
    auto names = qh::gpu_kernels::all_names();
    const size_t mma = qh::cuda_mma_built() ? 4 : 0;  // the conv2d_extern families
    EXPECT_EQ(names.size(), 51u + mma);  // 28 int8 + 14 int4 + conv2d_grouped x4 (u8, s32 out), avgpool, lut, mul, transpose x2 families
    size_t extern_kernels = 0;
    for (auto &k : names) {
        const bool dp4a = k.find("__cuda_dp4a") != std::string::npos;
        const bool ext = k.find("_extern_") != std::string::npos && k.find("__cuda_mma") != std::string::npos;
        EXPECT_TRUE(dp4a || ext) << k;
        extern_kernels += ext;
    }
    EXPECT_EQ(extern_kernels, mma);
    // None of them is in the CPU dispatch table.
    for (auto &k : qh::all_kernel_names()) EXPECT_EQ(k.find("cuda"), std::string::npos) << k;
}

// ---- whole models: Model::prepare(..., device = cuda) against the CPU Model ------------------

qh::Tensor random_image(std::vector<int64_t> shape, uint32_t seed) {
    qh::Tensor t(qh::DType::f32, shape);
    std::mt19937 g(seed);
    std::normal_distribution<float> d(0.f, 1.f);
    for (int64_t i = 0; i < t.numel(); i++) t.data<float>()[i] = d(g);
    return t;
}

// Prepares `g` for the CPU and for CUDA at `batch`, runs both on the same input (every image
// different) twice, and compares the outputs bit for bit. Returns the layers of the CUDA model.
// Convs and dense run on the tensor-core kernels (cuda_mma) when the library has them, else on cuda_dp4a;
// conv_mode "dp4a" forces cuda_dp4a (KernelOptions::implementation = "halide"). Both are checked.
// `formulation_name` (KernelOptions::cuda_formulation: fused, extern, extern_im2col; "" = measured) forces
// how the cuda_mma layers run where they allow it.
std::vector<qh::LayerInfo> expect_cuda_matches_cpu_with(const qh::Graph &g, int batch, uint32_t seed,
                                                        const char *conv_mode, const char *formulation_name = "") {
    SCOPED_TRACE(std::string("convs: ") + conv_mode + " formulation: " + formulation_name);
    qh::PrepareOptions po;
    po.batch = batch;
    auto cpu = qh::Model::prepare(g, po);
    po.device = qh::Device::cuda;
    po.kernels = formulation(formulation_name);
    if (std::string(conv_mode) == "dp4a") po.kernels.implementation = "halide";  // the cuda_dp4a Halide kernels
    auto gpu = qh::Model::prepare(g, po);
    EXPECT_EQ(gpu->device(), qh::Device::cuda);
    EXPECT_EQ(gpu->arena_bytes(), cpu->arena_bytes()) << "same memory plan";
    // execute() replays the CUDA graph recorded at prepare (the tensor-core build has one stream
    // to record) unless a layer runs a Halide extern pipeline, whose scratch is allocated per run:
    // then prepare measured that plan against a graph of a replayable one and kept the faster
    // (or the formulation was forced).
    bool any_extern = false;
    for (const auto &l : gpu->layers()) any_extern |= l.kernel.find("_extern_") != std::string::npos;
    const std::string dg = gpu->device_graph();
    if (qh::cuda_mma_built() && !any_extern) EXPECT_EQ(dg, "on");
    if (any_extern) {
        EXPECT_EQ(dg.rfind("off: layer '", 0), 0u) << dg;
        if (!*formulation_name) EXPECT_NE(dg.find("measured at prepare"), std::string::npos) << dg;
    }
    // Every conv2d / conv2d_add layer on cuda_mma (symmetric weights, u8 out, OC % 8 == 0 in
    // these graphs); dense may fall back to cuda_dp4a (OC % 8 != 0); everything else cuda_dp4a.
    const bool mma = qh::cuda_mma_built() && std::string(conv_mode) != "dp4a";
    const std::string form = formulation_name;
    int convs = 0, in_form = 0;
    for (const auto &l : gpu->layers()) {
        const bool conv = l.op.rfind("conv2d", 0) == 0 && l.op.rfind("conv2d_grouped", 0) != 0,
                   dense = l.op.rfind("dense", 0) == 0;
        const bool on_mma = l.kernel.find("__cuda_mma") != std::string::npos;
        const bool on_dp4a = l.kernel.find("__cuda_dp4a") != std::string::npos;
        if (conv && mma) EXPECT_TRUE(on_mma) << l.name << ": " << l.kernel;
        else if (dense && mma) EXPECT_TRUE(on_mma || on_dp4a) << l.name << ": " << l.kernel;
        else EXPECT_TRUE(on_dp4a) << l.name << ": " << l.kernel;
        if (conv && mma) {
            const bool ext = l.kernel.find("_extern_") != std::string::npos;
            const bool col = l.kernel.find("_extern_im2col_") != std::string::npos;
            convs++;
            in_form += form == "fused" ? !ext : form == "extern" ? ext && !col : col;
        }
    }
    // Forced: every conv in that formulation, except (extern) the 7x7 stem, whose microkernel
    // path needs a workspace (fused there).
    if (mma && form == "fused") EXPECT_EQ(in_form, convs);
    if (mma && form == "extern") EXPECT_GE(in_form, convs - 1);
    if (mma && form == "extern_im2col") EXPECT_EQ(in_form, convs);
    for (int rep = 0; rep < 2; rep++) {
        qh::Tensor x = random_image(cpu->input(0).shape(), seed + rep);
        std::memcpy(cpu->input(0).raw(), x.raw(), x.nbytes());
        std::memcpy(gpu->input(0).raw(), x.raw(), x.nbytes());
        std::memset(const_cast<void *>(gpu->output(0).raw()), 0x5A, gpu->output(0).nbytes());  // poison
        cpu->execute();
        gpu->execute();
        const qh::Tensor &a = cpu->output(0), &b = gpu->output(0);
        EXPECT_EQ(a.shape(), b.shape());
        EXPECT_EQ(a.dtype(), b.dtype());
        size_t bad = 0, first = 0;
        const float *pa = a.data<float>(), *pb = b.data<float>();
        for (int64_t i = 0; i < a.numel(); i++)
            if (std::memcmp(pa + i, pb + i, 4) && bad++ == 0) first = size_t(i);
        EXPECT_EQ(bad, 0u) << "of " << a.numel() << " outputs differ (batch " << batch << ", run " << rep
                           << "), first at " << first << ": gpu " << pb[first] << " cpu " << pa[first];
        // Not a degenerate network: the logits vary.
        EXPECT_NE(*std::max_element(pa, pa + a.numel()), *std::min_element(pa, pa + a.numel()));
    }
    return gpu->layers();
}

std::vector<qh::LayerInfo> expect_cuda_matches_cpu(const qh::Graph &g, int batch, uint32_t seed) {
    expect_cuda_matches_cpu_with(g, batch, seed, "dp4a");
    return expect_cuda_matches_cpu_with(g, batch, seed, "default");
}

TEST(GpuModel, SmallQuantGraphBitExactWithCpuAndReference) {
    QH_REQUIRE_CUDA();
    qh::testing_graphs::SmallQuantGraph sg;
    auto layers = expect_cuda_matches_cpu(sg.g, 1, 5);
    std::vector<std::string> ops;
    for (const auto &l : layers) ops.push_back(l.op);
    EXPECT_EQ(ops, (std::vector<std::string>{"quantize", "conv2d+relu", "conv2d_add+relu", "maxpool",
                                             "global_avgpool", "dense", "dequantize"}));
    expect_cuda_matches_cpu(sg.g, 3, 6);
    // And against the reference ops directly.
    qh::PrepareOptions po;
    po.device = qh::Device::cuda;
    auto m = qh::Model::prepare(sg.g, po);
    qh::Tensor x = random_image({1, 9, 9, 8}, 9);
    std::memcpy(m->input(0).raw(), x.raw(), x.nbytes());
    m->execute();
    std::vector<float> want = sg.reference(x);
    for (size_t i = 0; i < want.size(); i++) EXPECT_EQ(m->output(0).data<float>()[i], want[i]) << i;
}

// A graph that declares NCHW on the device: the caller's NCHW input is converted before the
// upload and the rank-4 output after the download, the same values as the CPU model's.
TEST(GpuModel, DeclaredNchwLayoutMatchesCpu) {
    QH_REQUIRE_CUDA();
    qh::testing_graphs::SmallQuantGraph sg;
    sg.g.outputs.push_back(sg.g.find_value("relu2"));
    sg.g.io_layout = qh::Layout::nchw;
    qh::PrepareOptions po;
    po.batch = 2;
    auto cpu = qh::Model::prepare(sg.g, po);
    po.device = qh::Device::cuda;
    auto gpu = qh::Model::prepare(sg.g, po);
    const qh::Tensor x = qh::nhwc_to_nchw(random_image({2, 9, 9, 8}, 77));
    ASSERT_EQ(gpu->input(0).shape(), x.shape());
    for (qh::Model *m : {cpu.get(), gpu.get()}) {
        std::memcpy(m->input(0).raw(), x.raw(), x.nbytes());
        m->execute();
    }
    for (int k = 0; k < 2; k++) {
        ASSERT_EQ(gpu->output(k).shape(), cpu->output(k).shape());
        EXPECT_EQ(std::memcmp(gpu->output(k).raw(), cpu->output(k).raw(), cpu->output(k).nbytes()), 0) << "output " << k;
    }
    EXPECT_EQ(gpu->output(1).shape(), (std::vector<int64_t>{2, 8, 9, 9}));
}

// Model::run from several threads on a device model: requests are serialized on the one device
// context (model.h), each bit-exact with the CPU; create_context() is refused there.
TEST(GpuModel, RunFromThreadsIsSerializedAndBitExact) {
    QH_REQUIRE_CUDA();
    qh::testing_graphs::SmallQuantGraph sg;
    auto cpu = qh::Model::prepare(sg.g, {});
    qh::PrepareOptions po;
    po.device = qh::Device::cuda;
    auto gpu = qh::Model::prepare(sg.g, po);
    std::vector<qh::Tensor> xs;
    std::vector<std::vector<float>> want;
    for (int i = 0; i < 4; i++) {
        xs.push_back(random_image({1, 9, 9, 8}, 40 + i));
        std::memcpy(cpu->input(0).raw(), xs.back().raw(), xs.back().nbytes());
        cpu->execute();
        want.emplace_back(cpu->output(0).data<float>(), cpu->output(0).data<float>() + cpu->output(0).numel());
    }
    std::atomic<int> bad{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < 3; t++)
        ts.emplace_back([&, t] {
            for (int r = 0; r < 8; r++) {
                const int k = (t + r) % 4;
                auto out = gpu->run({xs[k]});
                if (std::memcmp(out[0].raw(), want[k].data(), out[0].nbytes()) != 0) bad++;
            }
        });
    for (auto &t : ts) t.join();
    EXPECT_EQ(bad.load(), 0);
    EXPECT_THROW(gpu->create_context(), std::runtime_error);
}

// The built-in ResNets at 224x224, calibrated on synthetic inputs like qhalide-resnet does.
class GpuResNet : public ::testing::TestWithParam<int> {
protected:
    static qh::Graph calibrated(int depth) {
        qh::Graph g = qh::build_resnet({depth});
        std::vector<qh::Tensor> samples;
        for (int i = 0; i < 2; i++) samples.push_back(random_image({1, 224, 224, 3}, 300 + i));
        qh::calibrate(g, samples, {});
        return g;
    }
};

TEST_P(GpuResNet, Int8LogitsBitExactWithCpu) {
    QH_REQUIRE_CUDA();
    const int depth = GetParam();
    qh::Graph g = calibrated(depth);
    for (int batch : {1, 2}) {
        SCOPED_TRACE("resnet" + std::to_string(depth) + " batch " + std::to_string(batch));
        auto layers = expect_cuda_matches_cpu(g, batch, 400 + batch);
        if (qh::cuda_mma_built())
            for (const char *form : {"fused", "extern", "extern_im2col"})
                expect_cuda_matches_cpu_with(g, batch, 500 + batch, "default", form);
        // Which formulation the measurement chose, per layer (the report's numbers).
        std::map<std::string, int> chosen;
        for (const auto &l : layers)
            if (l.kernel.find("__cuda_mma__") != std::string::npos)
                chosen[l.kernel.substr(0, l.kernel.find("__cuda_mma__"))]++;
        for (const auto &[k, count] : chosen) std::printf("  resnet%d batch %d: %2d x %s\n", depth, batch, count, k.c_str());
        int convs = 0;
        for (const auto &l : layers) convs += l.op.rfind("conv2d", 0) == 0;
        EXPECT_EQ(convs, depth == 18 ? 20 : 53);
    }
}
// INT4 whole models: W4A8, W4A4 and a mixed configuration of the built-in ResNets at 224x224, the
// GPU (cuda_mma where it takes the layer: u8 tensors, weights from their s8 neutral form; the
// cuda_dp4a int4 families elsewhere, u4 storage included) bit-identical with the CPU.
class GpuInt4ResNet : public ::testing::TestWithParam<std::tuple<int, std::string>> {};

TEST_P(GpuInt4ResNet, LogitsBitExactWithCpu) {
    QH_REQUIRE_CUDA();
    const auto &[depth, prec_] = GetParam();
    // w4a8_widened: W4A8 with cuda_mma's widened formulation forced on every W4A8 layer (widen
    // the 4-bit weights in a shared scratch, then the int8 kernel), the choice at large batch.
    const bool widened = prec_ == "w4a8_widened";
    const std::string prec = widened ? "w4a8" : prec_;
    qh::Graph g = qh::build_resnet({depth});
    if (prec == "mixed") {  // every other layer w4a4 (edges int8)
        qh::BitConfig c;
        const auto layers = qh::quantizable_layers(g);
        for (size_t k = 1; k + 1 < layers.size(); k++)
            c.layers.push_back({g.nodes[layers[k]].name, k % 2 ? qh::LayerPrecision::w4a4 : qh::LayerPrecision::int8});
        qh::apply_bit_config(g, c);
    } else {
        qh::set_uniform_precision(g, qh::parse_precision(prec));
    }
    std::vector<qh::Tensor> samples;
    for (int i = 0; i < 2; i++) samples.push_back(random_image({1, 224, 224, 3}, 300 + i));
    qh::calibrate(g, samples, {});
    for (int batch : {1, 2}) {
        SCOPED_TRACE("resnet" + std::to_string(depth) + " " + prec + " batch " + std::to_string(batch));
        qh::PrepareOptions pc, pg;
        pc.batch = pg.batch = batch;
        pg.device = qh::Device::cuda;
        auto cpu = qh::Model::prepare(g, pc);
        std::unique_ptr<qh::Model> gpu;
        {
            qh::KernelOptionsScope scope(formulation(widened ? "widened" : ""));
            gpu = qh::Model::prepare(g, pg);
        }
        std::map<std::string, int> kernels;
        int n_widened = 0;
        for (const auto &l : gpu->layers()) {
            if (l.op.rfind("conv2d", 0) == 0 || l.op.rfind("dense", 0) == 0) kernels[l.kernel.substr(0, l.kernel.find("__"))]++;
            n_widened += l.kernel.find("__cuda_mma__widened_") != std::string::npos;
        }
        if (widened) EXPECT_GE(n_widened, depth == 18 ? 15 : 45) << "W4A8 layers on the widened formulation";
        for (const auto &[k, n] : kernels) std::printf("  resnet%d %s batch %d: %2d x %s\n", depth, prec.c_str(), batch, n, k.c_str());
        qh::Tensor x = random_image(cpu->input(0).shape(), 700 + batch);
        std::memcpy(cpu->input(0).raw(), x.raw(), x.nbytes());
        std::memcpy(gpu->input(0).raw(), x.raw(), x.nbytes());
        cpu->execute();
        gpu->execute();
        const qh::Tensor &a = cpu->output(0), &b = gpu->output(0);
        ASSERT_EQ(a.nbytes(), b.nbytes());
        EXPECT_EQ(std::memcmp(a.raw(), b.raw(), a.nbytes()), 0);
        EXPECT_NE(*std::max_element(a.data<float>(), a.data<float>() + a.numel()),
                  *std::min_element(a.data<float>(), a.data<float>() + a.numel()));
    }
}
INSTANTIATE_TEST_SUITE_P(Precisions, GpuInt4ResNet,
                         ::testing::Combine(::testing::Values(18, 50), ::testing::Values("w4a8", "w4a8_widened", "w4a4", "mixed")),
                         [](const auto &info) {
                             return "resnet" + std::to_string(std::get<0>(info.param)) + "_" + std::get<1>(info.param);
                         });

// The recorded graph replays exactly the per-step launches: the same logits as with it off, on
// inputs that differ in every run after the recording.
TEST_F(GpuResNet, DeviceGraphReplayEqualsStepByStep) {
    QH_REQUIRE_CUDA();
    if (!qh::cuda_mma_built()) GTEST_SKIP() << "device graphs need the CUDA runtime kernels (nvcc at build time)";
    qh::Graph g = calibrated(18);
    qh::PrepareOptions po;
    po.batch = 2;
    po.device = qh::Device::cuda;
    po.kernels = formulation("fused");  // no per-run Halide scratch: recordable
    auto on = qh::Model::prepare(g, po);
    po.device_graph = false;
    auto off = qh::Model::prepare(g, po);
    ASSERT_EQ(on->device_graph(), "on");
    EXPECT_EQ(off->device_graph(), "off: PrepareOptions::device_graph is false");
    for (int rep = 0; rep < 3; rep++) {
        qh::Tensor x = random_image(on->input(0).shape(), 700 + rep);
        std::memcpy(on->input(0).raw(), x.raw(), x.nbytes());
        std::memcpy(off->input(0).raw(), x.raw(), x.nbytes());
        on->execute();
        off->execute();
        std::vector<float> a(on->output(0).data<float>(), on->output(0).data<float>() + on->output(0).numel());
        const float *b = off->output(0).data<float>();
        EXPECT_EQ(std::memcmp(a.data(), b, a.size() * 4), 0) << "run " << rep;
        EXPECT_NE(*std::max_element(a.begin(), a.end()), *std::min_element(a.begin(), a.end()));
    }
}

INSTANTIATE_TEST_SUITE_P(Depths, GpuResNet, ::testing::Values(18, 50),
                         [](const auto &info) { return "resnet" + std::to_string(info.param); });

// These run everywhere (CI included): the refusals come before any device is touched, and on a
// machine without a CUDA device prepare says so.
// The MobileNetV2-style and EfficientNet-style graphs (tests/mobile_graphs.h) on the GPU, logits
// bit-identical with the CPU at batch 1 and 2 (depthwise / grouped / dilated convs, avgpool,
// lut tables, mul and concat on cuda_dp4a; the dense convs on cuda_mma when built).
TEST(GpuModel, MobileGraphsBitExactWithCpu) {
    QH_REQUIRE_CUDA();
    for (qh::Graph g : {qh::testing_graphs::mobilenet_v2_graph(), qh::testing_graphs::efficientnet_graph()}) {
        SCOPED_TRACE(g.name);
        g = qh::testing_graphs::calibrated(g);
        for (int batch : {1, 2}) {
            auto layers = expect_cuda_matches_cpu(g, batch, 77);
            int grouped = 0;
            for (const auto &l : layers) grouped += l.op.rfind("conv2d_grouped", 0) == 0;
            EXPECT_GE(grouped, 3);
        }
    }
}

TEST(GpuModelErrors, PrepareForCudaRefusesClearly) {
    qh::testing_graphs::SmallQuantGraph sg;
    qh::PrepareOptions po;
    po.device = qh::Device::cuda;
    auto message = [&](const qh::Graph &g, const qh::PrepareOptions &o) -> std::string {
        try {
            qh::Model::prepare(g, o);
        } catch (const std::exception &e) {
            return e.what();
        }
        return "";
    };
    // The fp32 path has no GPU kernels.
    qh::PrepareOptions fp = po;
    fp.precision = qh::Precision::fp32;
    EXPECT_NE(message(sg.g, fp).find("fp32 path runs on the CPU only"), std::string::npos) << message(sg.g, fp);
    std::string e;
    // No device here: a clear error, not a crash in the driver.
    if (!cuda_device_available()) {
        e = message(sg.g, po);
        EXPECT_NE(e.find("no CUDA device"), std::string::npos) << e;
        EXPECT_NE(e.find("model 'small' prepared for cuda"), std::string::npos) << e;
    } else {
        EXPECT_EQ(message(sg.g, po), "");
    }
}

// ---- generated PTX (no device needed) -------------------------------------------------------

std::string read_ptx(const std::string &kernel) {
    return qh::test::read_kernel_output(QH_KERNEL_ASM_DIR, kernel, ".device_code");
}
using qh::test::count_matches;

TEST(GpuCodegen, ConvAndDenseUseDp4a) {
    int checked = 0;
    for (auto &k : qh::gpu_kernels::all_names()) {
        if (k.rfind("conv2d_", 0) != 0 && k.rfind("dense_", 0) != 0) continue;
        if (k.rfind("conv2d_grouped_", 0) == 0) continue;  // reduces over taps, not 4 channels
        if (k.find("__cuda_dp4a") == std::string::npos) continue;  // cuda_mma: tensor cores (extern)
        std::string ptx = read_ptx(k);
        EXPECT_GT(count_matches(ptx, "\\bdp4a\\.[us]32\\.[us]32\\b"), 0u) << k << " has no dp4a";
        // Accumulators stay in registers: no local-memory spill of the tile.
        EXPECT_EQ(count_matches(ptx, "\\b(ld|st)\\.local\\b"), 0u) << k << " uses local memory";
        checked++;
    }
    EXPECT_EQ(checked, 25);  // 11 int8 + 14 int4 families
}

// ONNX rounding needs the product and the sum rounded separately: no kernel may contract
// a float multiply-add (the PTX backend would, see qh::quantized_add's no_contraction).
TEST(GpuCodegen, NoFloatContraction) {
    for (auto &k : qh::gpu_kernels::all_names())
        EXPECT_EQ(count_matches(read_ptx(k), "\\b(fma|mad)\\.[a-z.]*f32\\b"), 0u) << k;
}

// The conv2d_extern pipelines: the accumulator is the define_extern call to the microkernel
// (in the host code, no GPU loop of Halide's computes it), the epilogue and the im2col packing
// are Halide GPU kernels, and (NoFloatContraction above covers their PTX) no float fma.
TEST(GpuCodegen, ExternPipelinesCallTheMicrokernel) {
    if (!qh::cuda_mma_built()) GTEST_SKIP() << "library built without the cuda_mma microkernel (no nvcc)";
    int checked = 0;
    for (auto &k : qh::gpu_kernels::all_names()) {
        if (k.find("_extern_") == std::string::npos) continue;
        const std::string stmt = qh::test::read_kernel_output(QH_KERNEL_ASM_DIR, k, ".stmt");
        EXPECT_GT(count_matches(stmt, "qh_cuda_mma_conv2d_s32\\("), 0u) << k;
        const std::string ptx = read_ptx(k);
        const bool im2col = k.find("_im2col_") != std::string::npos;
        // Kernel entries: the epilogue, plus the tap table and the im2col gather where there is one.
        EXPECT_EQ(count_matches(ptx, "\\.entry\\b"), im2col ? 3u : 1u) << k;
        // The gather's per-byte work divides by nothing at run time (the tap table does that).
        if (im2col) {
            const size_t at = ptx.find(".entry _kernel_col_");
            ASSERT_NE(at, std::string::npos) << k;
            const std::string col = ptx.substr(at, ptx.find(".entry", at + 1) - at);
            EXPECT_EQ(count_matches(col, "\\b(div|rem)\\.[su]32\\b"), 0u) << k;
        }
        EXPECT_EQ(count_matches(ptx, "\\b(fma|mad)\\.[a-z.]*f32\\b"), 0u) << k;
        // The epilogue's float steps are there (it requantizes on the GPU, not on the host).
        EXPECT_GT(count_matches(ptx, "\\bmul\\.[a-z.]*f32\\b"), 0u) << k;
        checked++;
    }
    EXPECT_EQ(checked, 4);
}

// ---- timings (QHALIDE_GPU_BENCH=1) ----------------------------------------------------------

// The cuda_mma formulation chosen per layer of ResNet-50 at batch 1 and 256, with every
// candidate's time (QHALIDE_CUDA_TUNE_LOG=1 prints one "cuda_mma tune" line per layer to stderr),
// and the whole network's device time (execute_on_device: the input already on the GPU, median
// of 20 after 300 ms of warm-up) with the measured choice and with each formulation forced.
TEST(GpuBench, ResNet50Formulations) {
    const char *e = std::getenv("QHALIDE_GPU_BENCH");
    if (!e || std::string(e) != "1") GTEST_SKIP() << "set QHALIDE_GPU_BENCH=1 to time";
    QH_REQUIRE_CUDA();
    if (!qh::cuda_mma_built()) GTEST_SKIP() << "library built without the cuda_mma microkernel (no nvcc)";
    qh::Graph g = qh::build_resnet({50});
    std::vector<qh::Tensor> samples{random_image({1, 224, 224, 3}, 300)};
    qh::calibrate(g, samples, {});
    for (int batch : {1, 256}) {
        // "measured" first and last: the first timing after the CPU calibration / a prepare can
        // catch the GPU clocks low.
        for (const char *form : {"", "fused", "extern", "extern_im2col", ""}) {
            qh::PrepareOptions po;
            po.batch = batch;
            po.device = qh::Device::cuda;
            po.kernels = formulation(form);
            if (!*form) po.kernels.cuda_tune_log = true;  // one "cuda_mma tune" line per layer
            auto m = qh::Model::prepare(g, po);
            std::map<std::string, int> chosen;
            for (const auto &l : m->layers())
                if (l.kernel.find("__cuda_mma__") != std::string::npos)
                    chosen[l.kernel.substr(0, l.kernel.find("__cuda_mma__"))]++;
            qh::Tensor x = random_image(m->input(0).shape(), 7);
            std::memcpy(m->input(0).raw(), x.raw(), x.nbytes());
            m->execute();
            // Warm-up for at least 300 ms of device work (clocks up), then 20 timed runs.
            for (auto w0 = std::chrono::steady_clock::now();
                 std::chrono::steady_clock::now() - w0 < std::chrono::milliseconds(300);)
                m->execute_on_device();
            std::vector<double> ms;
            for (int i = 0; i < 20; i++) {
                auto t0 = std::chrono::steady_clock::now();
                m->execute_on_device();
                ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
            }
            std::sort(ms.begin(), ms.end());
            std::printf("resnet50 batch %d formulation %-13s device %.3f ms (min %.3f):", batch,
                        *form ? form : "measured", ms[ms.size() / 2], ms[0]);
            for (const auto &[k, count] : chosen) std::printf(" %d x %s", count, k.c_str());
            std::printf("\n");
        }
    }
}

TEST(GpuBench, ResNet50Conv) {
    const char *e = std::getenv("QHALIDE_GPU_BENCH");
    if (!e || std::string(e) != "1") GTEST_SKIP() << "set QHALIDE_GPU_BENCH=1 to time";
    QH_REQUIRE_CUDA();
    struct L { const char *name; int hw, c, oc, k, s, pad; };
    const L layers[] = {
        {"conv1_7x7s2_3_64", 224, 3, 64, 7, 2, 3},     {"res2_1x1_64_64", 56, 64, 64, 1, 1, 0},
        {"res2_3x3_64_64", 56, 64, 64, 3, 1, 1},       {"res2_1x1_64_256", 56, 64, 256, 1, 1, 0},
        {"res2_1x1_256_64", 56, 256, 64, 1, 1, 0},     {"res3_1x1_256_128", 56, 256, 128, 1, 1, 0},
        {"res3_3x3s2_128_128", 56, 128, 128, 3, 2, 1}, {"res3_1x1s2_256_512", 56, 256, 512, 1, 2, 0},
        {"res3_3x3_128_128", 28, 128, 128, 3, 1, 1},   {"res3_1x1_128_512", 28, 128, 512, 1, 1, 0},
        {"res3_1x1_512_128", 28, 512, 128, 1, 1, 0},   {"res4_1x1_512_256", 28, 512, 256, 1, 1, 0},
        {"res4_3x3s2_256_256", 28, 256, 256, 3, 2, 1}, {"res4_1x1s2_512_1024", 28, 512, 1024, 1, 2, 0},
        {"res4_3x3_256_256", 14, 256, 256, 3, 1, 1},   {"res4_1x1_256_1024", 14, 256, 1024, 1, 1, 0},
        {"res4_1x1_1024_256", 14, 1024, 256, 1, 1, 0}, {"res5_1x1_1024_512", 14, 1024, 512, 1, 1, 0},
        {"res5_3x3s2_512_512", 14, 512, 512, 3, 2, 1}, {"res5_1x1s2_1024_2048", 14, 1024, 2048, 1, 2, 0},
        {"res5_3x3_512_512", 7, 512, 512, 3, 1, 1},    {"res5_1x1_512_2048", 7, 512, 2048, 1, 1, 0},
        {"res5_1x1_2048_512", 7, 2048, 512, 1, 1, 0},
    };
    const int reps = 25;
    std::ostringstream csv;
    csv << "kernel,layer,batch,median_us,min_us,gops\n";
    std::printf("%-32s %-22s %5s %10s %10s %8s\n", "kernel", "layer", "batch", "median_us",
                "min_us", "GOP/s");
    for (int batch : {1, 16}) {
        for (const L &l : layers) {
            ConvCase tc{l.name, batch, l.hw, l.hw, l.c, l.oc, l.k, l.k, l.s, l.pad, 128};
            ConvSetup s = make_conv(tc, ConvFamily::u8s8u8, 1);
            DeviceArgs d;
            Buffer<uint8_t> out(std::vector<int>{l.oc, s.ow, s.oh, batch});
            ASSERT_EQ(out.device_malloc(cuda()), 0);
            auto fn = qh::gpu_kernels::conv2d_u8s8u8__cuda_dp4a().fn;
            halide_buffer_t *x = d(s.x), *w = d(s.w), *bias = d(s.bias), *wzp = d(s.wzp),
                            *mult = d(s.mult), *res = d(s.res);
            auto run = [&] {
                int rc = fn(x, tc.x_zp, w, bias, wzp, mult, s.yzp, s.lo, s.hi, tc.stride,
                            tc.stride, tc.pad, tc.pad, res, 64, 110, 1.f, 1.f, out.raw_buffer());
                return rc == 0 && halide_device_sync(nullptr, out.raw_buffer()) == 0;
            };
            for (int i = 0; i < 3; i++) ASSERT_TRUE(run());
            std::vector<double> us;
            for (int i = 0; i < reps; i++) {
                auto t0 = std::chrono::steady_clock::now();
                ASSERT_TRUE(run());
                us.push_back(std::chrono::duration<double, std::micro>(
                                 std::chrono::steady_clock::now() - t0).count());
            }
            std::sort(us.begin(), us.end());
            const double med = us[us.size() / 2];
            const double ops = 2.0 * batch * s.oh * s.ow * l.oc * double(l.c) * l.k * l.k;
            std::printf("%-32s %-22s %5d %10.1f %10.1f %8.0f\n", "conv2d_u8s8u8__cuda_dp4a",
                        l.name, batch, med, us[0], ops / med * 1e-3);
            csv << "conv2d_u8s8u8__cuda_dp4a," << l.name << "," << batch << "," << med << ","
                << us[0] << "," << ops / med * 1e-3 << "\n";
        }
    }
    if (const char *path = std::getenv("QHALIDE_GPU_BENCH_OUT")) std::ofstream(path) << csv.str();
}


// ---- cuda_mma with 4-bit weights (W4A8) and 4-bit activations (W4A4), issue 14 --------------
//
// Weights in [-8, 7]: the CPU reference is the int8 kernel on those values (PackedWeights with
// weight_bits = 8); the GPU gets the same PackedWeights with weight_bits = 4, so cuda_mma keeps
// them 4-bit on the device (W4A8: u8 tensors, kernel conv2d[_add]_u8s4u8__cuda_mma__*). W4A4: u4
// storage tensors (two channels a byte, low nibble first) through cuda_mma's bind directly (the
// ops' validation of u4 tensors comes with the int4 graph branch); the CPU reference runs the
// int8 kernel on the unpacked values with the output clamped to [0, 15], then packs. Both tuned
// at bind (every variant of the layer measured), the chosen one checked byte for byte, twice,
// poisoned between runs.
struct Int4Case {
    std::string name;
    int n, h, w, c, oc, k, stride, pad;
    bool relu;
};
std::vector<Int4Case> int4_cases() {
    return {
        {"r50_conv1_7x7s2_b2", 2, 224, 224, 4, 64, 7, 2, 3, false},  // IC 4 (even, for u4)
        {"r50_res2_3x3_64", 1, 56, 56, 64, 64, 3, 1, 1, true},
        {"r50_res2_1x1_64_256_b2", 2, 56, 56, 64, 256, 1, 1, 0, false},
        {"r50_res3_1x1s2_256_512", 1, 56, 56, 256, 512, 1, 2, 0, false},
        {"r50_res4_3x3_256_b3", 3, 14, 14, 256, 256, 3, 1, 1, true},
        {"r50_res5_3x3_512_relu", 2, 7, 7, 512, 512, 3, 1, 1, true},
        {"c14_oc72_5x5s2_b2", 2, 13, 11, 14, 72, 5, 2, 2, true},
    };
}

class GpuInt4Mma : public ::testing::TestWithParam<std::tuple<std::string, bool, Int4Case>> {};

TEST_P(GpuInt4Mma, BitExactWithCpu) {
    QH_REQUIRE_CUDA();
    if (!qh::cuda_mma_built()) GTEST_SKIP() << "library built without the cuda_mma microkernel (no nvcc)";
    const auto &[prec, add, tc] = GetParam();
    const bool a4 = prec == "w4a4";
    const bool widened = prec == "w4a8_widened";  // forced: widen to s8 in the shared scratch, int8 kernel
    std::mt19937 g(uint32_t(std::hash<std::string>()(tc.name + prec)) + (add ? 7 : 0));
    const int x_zp = a4 ? int(g() % 16) : int(g() % 256), yzp = a4 ? int(g() % 8) : int(g() % 200);
    std::vector<int8_t> wv(size_t(tc.oc) * tc.c * tc.k * tc.k);
    for (auto &v : wv) v = int8_t(int(g() % 16) - 8);
    qh::WeightsDesc wd;
    wd.name = tc.name;
    wd.oc = tc.oc; wd.ic = tc.c; wd.kh = wd.kw = tc.k;
    wd.dtype = qh::DType::s8; wd.data = wv.data(); wd.zero_point = {0};
    wd.scale.resize(tc.oc);
    for (auto &sc : wd.scale) sc = 0.004f + 0.0001f * float(g() % 50);
    std::vector<int32_t> bias(tc.oc);
    for (auto &b : bias) b = int32_t(g() % 4001) - 2000;
    wd.bias = bias.data();
    const float xs_scale = 0.02f, ys_scale = a4 ? 1.5f : 0.09f;
    const qh::PackedWeights pw = qh::pack_weights(wd, xs_scale, x_zp, ys_scale);
    qh::PackedWeights pw4 = pw;
    pw4.weight_bits = 4;

    const int oh = (tc.h + 2 * tc.pad - tc.k) / tc.stride + 1, ow = (tc.w + 2 * tc.pad - tc.k) / tc.stride + 1;
    const std::vector<int64_t> xsh{tc.n, tc.h, tc.w, tc.c}, ysh{tc.n, oh, ow, tc.oc};
    const auto q = [](float sc, int zp) { return qh::QuantParams::per_tensor(sc, zp); };
    const int vmax = a4 ? 16 : 256;
    std::vector<uint8_t> xv(size_t(tc.n) * tc.h * tc.w * tc.c), rv(size_t(tc.n) * oh * ow * tc.oc);
    for (auto &v : xv) v = uint8_t(g() % vmax);
    for (auto &v : rv) v = uint8_t(g() % vmax);
    const int res_zp = int(g() % vmax);
    qh::Conv2dParams p;
    p.name = tc.name + "_" + prec;
    p.stride_h = p.stride_w = tc.stride;
    p.pad_top = p.pad_left = p.pad_bottom = p.pad_right = tc.pad;
    p.act = tc.relu ? qh::Activation::relu(yzp) : qh::Activation{};
    qh::Conv2dParams pc = p;  // the CPU reference: u8 output, clamped to the u4 range for W4A4
    if (a4) pc.act.max = std::min(pc.act.max, 15);
    const qh::ResidualParams rp{0.05f, 64};
    const float res_scale = 0.07f;

    qh::Tensor xh = qh::Tensor::wrap(qh::DType::u8, xsh, xv.data(), q(xs_scale, x_zp));
    qh::Tensor rh = qh::Tensor::wrap(qh::DType::u8, ysh, rv.data(), q(res_scale, res_zp));
    qh::Tensor yh(qh::DType::u8, ysh, q(ys_scale, yzp));
    if (add) qh::conv2d_add(xh, pw, pc, rp, rh, yh);
    else qh::conv2d(xh, pw, pc, yh);

    const qh::DType io = a4 ? qh::DType::u4 : qh::DType::u8;
    auto pack4 = [](const uint8_t *v, size_t n) {
        std::vector<uint8_t> o(n / 2);
        for (size_t i = 0; i < n / 2; i++) o[i] = uint8_t(v[2 * i] | v[2 * i + 1] << 4);
        return o;
    };
    DevTensor xd(io, xsh, q(xs_scale, x_zp)), yd(io, ysh, q(ys_scale, yzp)), rd(io, ysh, q(res_scale, res_zp));
    qh::BoundOp b;
    if (a4) {
#if !QH_HAVE_CUDA_MMA
        GTEST_SKIP() << "library built without the cuda_mma microkernel";
#else
        const float sy = ys_scale;
        const qh::cuda_mma::Residual r{&rd.t, rp.conv_zp, res_zp, rp.conv_scale / sy, res_scale / sy};
        b = qh::cuda_mma::bind_conv2d(xd.t, pw4, p, yd.t, add ? &r : nullptr);
#endif
    } else {
        qh::KernelOptionsScope scope(formulation(widened ? "widened" : ""));
        b = add ? qh::bind_conv2d_add(xd.t, pw4, p, rp, rd.t, yd.t) : qh::bind_conv2d(xd.t, pw4, p, yd.t);
    }
    const std::string want = std::string(add ? "conv2d_add_" : "conv2d_") + (a4 ? "u4s4u4" : "u8s4u8") +
                             (widened ? "__cuda_mma__widened_" : "__cuda_mma__");
    ASSERT_EQ(b.kernel().rfind(want, 0), 0u) << b.kernel();
    const std::vector<uint8_t> want_y = a4 ? pack4(yh.data<uint8_t>(), yh.numel())
                                           : std::vector<uint8_t>(yh.data<uint8_t>(), yh.data<uint8_t>() + yh.numel());
    const std::vector<uint8_t> xin = a4 ? pack4(xv.data(), xv.size()) : xv, rin = a4 ? pack4(rv.data(), rv.size()) : rv;
    ASSERT_EQ(xd.host.size(), xin.size());
    ASSERT_EQ(yd.host.size(), want_y.size());
    std::memcpy(xd.host.data(), xin.data(), xin.size());
    std::memcpy(rd.host.data(), rin.data(), rin.size());
    xd.buf->upload();
    rd.buf->upload();
    yd.buf->upload();  // poison
    for (int rep = 0; rep < 2; rep++) {
        b.run();
        yd.buf->download();
        size_t bad = 0, first = 0;
        for (size_t i = 0; i < yd.host.size(); i++)
            if (yd.host[i] != want_y[i] && bad++ == 0) first = i;
        EXPECT_EQ(bad, 0u) << "of " << yd.host.size() << " bytes differ (" << b.kernel() << ", run " << rep
                           << "), first at " << first << ": gpu " << int(yd.host[first]) << " cpu " << int(want_y[first]);
        std::memset(yd.host.data(), 0x5A, yd.host.size());
        yd.buf->upload();
    }
}

INSTANTIATE_TEST_SUITE_P(Int4, GpuInt4Mma,
                         ::testing::Combine(::testing::Values("w4a8", "w4a8_widened", "w4a4"), ::testing::Bool(),
                                            ::testing::ValuesIn(int4_cases())),
                         [](const auto &info) {
                             return std::get<0>(info.param) + (std::get<1>(info.param) ? "_add_" : "_") +
                                    std::get<2>(info.param).name;
                         });

// Weights outside [-8, 7] marked 4-bit are declined (the next implementation binds), never cut.
TEST(GpuInt4Mma, OutOfRangeWeightsDecline) {
    QH_REQUIRE_CUDA();
    if (!qh::cuda_mma_built()) GTEST_SKIP() << "library built without the cuda_mma microkernel (no nvcc)";
    std::vector<int8_t> wv(64 * 64, 3);
    wv[5] = 9;
    qh::WeightsDesc wd;
    wd.oc = 64; wd.ic = 64;
    wd.data = wv.data(); wd.zero_point = {0}; wd.scale = {0.01f};
    qh::PackedWeights pw = qh::pack_weights(wd, 0.02f, 3, 0.1f);
    pw.weight_bits = 4;
    const auto q = qh::QuantParams::per_tensor(0.02f, 3);
    DevTensor xd(qh::DType::u8, {1, 4, 4, 64}, q), yd(qh::DType::u8, {1, 4, 4, 64}, q);
    qh::Conv2dParams p;
#if QH_HAVE_CUDA_MMA
    EXPECT_TRUE(qh::cuda_mma::bind_conv2d(xd.t, pw, p, yd.t, nullptr).kernel().empty());
#endif
}

}  // namespace
