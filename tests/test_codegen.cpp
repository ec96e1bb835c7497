// Instruction checks on the AOT kernels' generated assembly (build/qh_<kernel>.s, emitted by
// add_halide_library next to each object): the dot-product kernels really use the integer
// dot-product instruction of their target, and no variant uses registers its target lacks.
#include <gtest/gtest.h>

#include <string>

#include "kernels.h"
#include "test_util.h"

namespace {

std::string read_asm(const std::string &kernel) {
    return qh::test::read_kernel_output(QH_KERNEL_ASM_DIR, kernel, ".s");
}
using qh::test::count_matches;

bool is_dot_family(const std::string &k) {
    return (k.rfind("conv2d_", 0) == 0 && k.rfind("conv2d_grouped_", 0) != 0) || k.rfind("dense_", 0) == 0;
}

// conv2d_grouped reduces over taps, not over 4 adjacent channels: its u8 x s8 products are
// 16-bit (exact), zero-extended to 32-bit lanes and accumulated by the word dot product:
// vpdpwssd on AVX-512 VNNI, vpmaddwd (+ add) on AVX2, pmaddwd on SSE2; no 32-bit multiply in the
// window loop (vpmulld only indexes).
TEST(Codegen, GroupedConvUsesWordDotProducts) {
    int checked = 0;
    for (auto &k : qh::all_kernel_names()) {
        if (k.rfind("conv2d_grouped_", 0) != 0) continue;
        std::string s = read_asm(k);
        if (k.find("__x86_avx512vnni") != std::string::npos)
            EXPECT_GT(count_matches(s, "vpdpwssd[^\\n]*%zmm"), 0u) << k;
        else if (k.find("__x86_avx2") != std::string::npos)
            EXPECT_GT(count_matches(s, "vpmaddwd[^\\n]*%ymm"), 0u) << k;
        else
            EXPECT_GT(count_matches(s, "\\bv?pmaddwd\\b"), 0u) << k;
        checked++;
    }
    EXPECT_GE(checked, 2);
}

TEST(Codegen, VnniConvAndDenseUseVpdpbusd) {
    int checked = 0;
    for (auto &k : qh::all_kernel_names()) {
        if (!is_dot_family(k) || k.find("__x86_avx512vnni") == std::string::npos) continue;
        std::string s = read_asm(k);
        EXPECT_GT(count_matches(s, "\\bvpdpbusd\\b"), 0u) << k << " has no vpdpbusd";
        EXPECT_GT(count_matches(s, "vpdpbusd[^\\n]*%zmm"), 0u) << k << " has no 512-bit vpdpbusd";
        checked++;
    }
    EXPECT_GE(checked, 11);
}

// AVX2 has no VNNI: Halide lowers the 4-wide u8*s8 reduction to vpmaddwd on sign/zero-extended
// 16-bit lanes (exact). vpmaddubsw would saturate its i16 pair sums, so it must not appear.
TEST(Codegen, Avx2ConvAndDenseUseVpmaddwdNotVpmaddubsw) {
    int checked = 0;
    for (auto &k : qh::all_kernel_names()) {
        if (!is_dot_family(k) || k.find("__x86_avx2") == std::string::npos) continue;
        std::string s = read_asm(k);
        EXPECT_GT(count_matches(s, "\\bvpmaddwd\\b"), 0u) << k;
        EXPECT_EQ(count_matches(s, "\\bvpmaddubsw\\b"), 0u) << k;
        EXPECT_EQ(count_matches(s, "\\bvpdpbusd\\b"), 0u) << k;
        checked++;
    }
    EXPECT_GE(checked, 11);
}

// Register classes: a variant never uses a register file its target does not have.
TEST(Codegen, VariantsStayWithinTheirIsa) {
    for (auto &k : qh::all_kernel_names()) {
        std::string s = read_asm(k);
        if (k.find("__generic") != std::string::npos) {
            EXPECT_EQ(count_matches(s, "%[yz]mm"), 0u) << k << " (generic = SSE2 only)";
        } else if (k.find("__x86_avx2") != std::string::npos) {
            EXPECT_EQ(count_matches(s, "%zmm|%k[1-7]\\b"), 0u) << k << " (AVX2 has no zmm/mask registers)";
        }
    }
}

}  // namespace

// Tuned kernels (tuning/db.json) are held to the same instruction rules as their family.
TEST(Codegen, TunedKernelsUseTheirTargetsDotInstruction) {
    for (auto &t : qh::tuned_kernels()) {
        std::string k = t.name(), fam = t.family, tag = t.tag;
        if (!is_dot_family(fam)) continue;
        std::string s = read_asm(k);
        if (tag == "x86_avx512vnni") EXPECT_GT(count_matches(s, "vpdpbusd[^\\n]*%zmm"), 0u) << k;
        if (tag == "x86_avx2") {
            EXPECT_GT(count_matches(s, "\\bvpmaddwd\\b"), 0u) << k;
            EXPECT_EQ(count_matches(s, "\\bvpmaddubsw\\b"), 0u) << k;
        }
    }
}
