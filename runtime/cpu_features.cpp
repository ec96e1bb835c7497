#include "cpu_features.h"

#include <cpuid.h>

#include <cstring>
#include <stdexcept>

namespace qh {

namespace {

unsigned long long xgetbv0() {
    unsigned int lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}

CpuFeatures detect() {
    CpuFeatures f;
    unsigned a, b, c, d;
    unsigned max_leaf = __get_cpuid_max(0, nullptr);
    if (max_leaf < 1) return f;
    __cpuid_count(1, 0, a, b, c, d);
    bool osxsave = c & (1u << 27);
    f.sse41 = c & (1u << 19);
    f.fma = c & (1u << 12);
    f.movbe = c & (1u << 22);
    f.popcnt = c & (1u << 23);
    f.f16c = c & (1u << 29);
    bool avx_cpu = c & (1u << 28);
    unsigned long long xcr0 = osxsave ? xgetbv0() : 0;
    bool os_ymm = (xcr0 & 0x6) == 0x6;
    bool os_zmm = (xcr0 & 0xe6) == 0xe6;
    f.avx = avx_cpu && os_ymm;
    if (!f.avx) f.fma = f.f16c = false;
    if (max_leaf >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        f.bmi1 = b & (1u << 3);
        f.avx2 = f.avx && (b & (1u << 5));
        f.bmi2 = b & (1u << 8);
        if (os_zmm) {
            f.avx512f = b & (1u << 16);
            f.avx512dq = b & (1u << 17);
            f.avx512ifma = b & (1u << 21);
            f.avx512cd = b & (1u << 28);
            f.avx512bw = b & (1u << 30);
            f.avx512vl = b & (1u << 31);
            f.avx512vbmi = c & (1u << 1);
            f.avx512vbmi2 = c & (1u << 6);
            f.avx512vnni = c & (1u << 11);
            f.avx512bitalg = c & (1u << 12);
            f.avx512vpopcntdq = c & (1u << 14);
        }
        f.gfni = c & (1u << 8);
        f.vaes = f.avx && (c & (1u << 9));
        f.vpclmulqdq = f.avx && (c & (1u << 10));
        bool os_amx = (xcr0 & 0x60000) == 0x60000;
        f.amx_int8 = os_amx && (d & (1u << 25));
        __cpuid_count(7, 1, a, b, c, d);
        f.avxvnni = f.avx && (a & (1u << 4));
        f.avx512bf16 = os_zmm && (a & (1u << 5));
    }
    if (__get_cpuid_max(0x80000000, nullptr) >= 0x80000004) {
        unsigned regs[12];
        for (unsigned i = 0; i < 3; i++)
            __cpuid(0x80000002 + i, regs[4 * i], regs[4 * i + 1], regs[4 * i + 2], regs[4 * i + 3]);
        char buf[49];
        std::memcpy(buf, regs, 48);
        buf[48] = 0;
        f.brand = buf;
        while (!f.brand.empty() && f.brand.back() == ' ') f.brand.pop_back();
        __cpuid(0x80000001, a, b, c, d);
        f.lzcnt = c & (1u << 5);
    }
    return f;
}

struct TagReq {
    const char *tag;
    const char *text;
    bool (*ok)(const CpuFeatures &);
};

// Halide's avx2 target compiles for Haswell; its avx512_zen4 feature compiles for -mcpu=znver4,
// so a tag demands everything that CPU model lets LLVM emit.
bool haswell(const CpuFeatures &f) {
    return f.sse41 && f.avx && f.avx2 && f.fma && f.f16c && f.bmi1 && f.bmi2 && f.lzcnt &&
           f.popcnt && f.movbe;
}
bool zen4(const CpuFeatures &f) {
    return haswell(f) && f.avx512f && f.avx512cd && f.avx512bw && f.avx512dq && f.avx512vl &&
           f.avx512vnni && f.avx512bf16 && f.avx512vbmi && f.avx512vbmi2 && f.avx512bitalg &&
           f.avx512vpopcntdq && f.avx512ifma && f.gfni && f.vaes && f.vpclmulqdq;
}

const TagReq kTags[] = {
    {"x86_avx512vnni",
     "avx2 fma f16c bmi1 bmi2 lzcnt popcnt movbe avx512f/cd/bw/dq/vl/vnni/bf16/vbmi/vbmi2/"
     "bitalg/vpopcntdq/ifma gfni vaes vpclmulqdq (Halide avx512_zen4 = -mcpu=znver4)",
     zen4},
    {"x86_avx2", "sse4.1 avx avx2 fma f16c bmi1 bmi2 lzcnt popcnt movbe (Haswell)", haswell},
    {"generic", "x86-64 baseline (SSE2)", [](const CpuFeatures &) { return true; }},
};

const TagReq &find(const std::string &tag) {
    for (auto &t : kTags)
        if (tag == t.tag) return t;
    std::string valid;
    for (auto &t : kTags) valid += std::string(valid.empty() ? "" : ", ") + t.tag;
    throw std::invalid_argument("unknown target tag '" + tag + "' (known: " + valid + ")");
}

}  // namespace

const CpuFeatures &cpu_features() {
    static const CpuFeatures f = detect();
    return f;
}

const std::vector<std::string> &target_tags() {
    static const std::vector<std::string> tags = [] {
        std::vector<std::string> v;
        for (auto &t : kTags) v.push_back(t.tag);
        return v;
    }();
    return tags;
}

bool cpu_supports(const std::string &tag) { return find(tag).ok(cpu_features()); }

std::string target_requirements(const std::string &tag) { return find(tag).text; }

}  // namespace qh
