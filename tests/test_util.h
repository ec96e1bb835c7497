// Helpers shared by the tests: random data, and running a block once per kernel variant this
// CPU can run (the others are reported as skipped, never silently dropped).
#pragma once
#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>
#include <functional>
#include <iterator>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "cpu_features.h"
#include "kernels.h"
#include "tensor.h"

namespace qh::test {

// Tags this library was built with (every family has the same variants; QH_TARGET_TAGS may
// build fewer than target_tags() knows, e.g. generic only in the sanitizer build) that this CPU
// can run.
inline std::vector<std::string> runnable_targets() {
    std::vector<std::string> r;
    for (const auto &v : kernels::conv2d_u8s8u8())
        if (cpu_supports(v.tag)) r.push_back(v.tag);
    return r;
}

// Forces one target for its lifetime.
struct ForceTarget {
    explicit ForceTarget(const std::string &t) { force_target(t); }
    ~ForceTarget() { force_target(""); }
};

#define QH_FOR_EACH_TARGET(tag)                                        \
    for (const std::string &tag : ::qh::test::runnable_targets())      \
        if (::qh::test::ForceTarget qh_force_##tag(tag); true)         \
            if (SCOPED_TRACE("target " + tag); true)

// The message of the exception f throws, "" if it throws none.
inline std::string error_of(const std::function<void()> &f) {
    try {
        f();
    } catch (const std::exception &e) {
        return e.what();
    }
    return "";
}

// A float tensor of N(0, 1) values (model inputs in NHWC).
inline Tensor random_input(std::vector<int64_t> shape, uint32_t seed) {
    Tensor t(DType::f32, std::move(shape));
    std::mt19937 g(seed);
    std::normal_distribution<float> d(0.f, 1.f);
    for (int64_t i = 0; i < t.numel(); i++) t.data<float>()[i] = d(g);
    return t;
}

template <typename T>
std::vector<T> random_vec(size_t n, int lo, int hi, uint32_t seed) {
    std::mt19937 g(seed);
    std::uniform_int_distribution<int> d(lo, hi);
    std::vector<T> v(n);
    for (auto &e : v) e = T(d(g));
    return v;
}

template <typename T>
Tensor tensor_from(DType t, std::vector<int64_t> shape, const std::vector<T> &v,
                   QuantParams q = {}) {
    Tensor r(t, std::move(shape), std::move(q));
    std::copy(v.begin(), v.end(), r.data<T>());
    return r;
}

template <typename T>
std::vector<int32_t> values(const Tensor &t) {
    return std::vector<int32_t>(t.data<T>(), t.data<T>() + t.numel());
}

// First mismatch, formatted; empty when equal.
inline std::string first_mismatch(const std::vector<int32_t> &got,
                                  const std::vector<int32_t> &want) {
    if (got.size() != want.size())
        return "size " + std::to_string(got.size()) + " vs " + std::to_string(want.size());
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < got.size(); i++)
        if (got[i] != want[i] && bad++ == 0) first = i;
    if (!bad) return "";
    return std::to_string(bad) + " mismatches, first at flat index " + std::to_string(first) +
           ": got " + std::to_string(got[first]) + ", want " + std::to_string(want[first]);
}

// A file the build writes next to kernel `kernel`'s object (add_halide_library outputs in the
// build directory: suffix ".s" for assembly, ".device_code" for PTX); missing fails the test.
inline std::string read_kernel_output(const std::string &build_dir, const std::string &kernel,
                                      const std::string &suffix) {
    const std::string path = build_dir + "/qh_" + kernel + suffix;
    std::ifstream f(path);
    EXPECT_TRUE(f.good()) << "missing " << path;
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

// Number of matches of the regular expression `pattern` in `text`.
inline size_t count_matches(const std::string &text, const std::string &pattern) {
    std::regex re(pattern);
    return size_t(std::distance(std::sregex_iterator(text.begin(), text.end(), re), std::sregex_iterator()));
}

}  // namespace qh::test
