// Run-time CPU feature detection and the predicate of each target tag.
#pragma once
#include <string>
#include <vector>

namespace qh {

struct CpuFeatures {
    bool sse41 = false, avx = false, avx2 = false, fma = false, f16c = false;
    bool bmi1 = false, bmi2 = false, lzcnt = false, popcnt = false, movbe = false;
    bool avx512f = false, avx512cd = false, avx512bw = false, avx512dq = false, avx512vl = false;
    bool avx512vnni = false, avx512bf16 = false, avx512vbmi = false, avx512vbmi2 = false;
    bool avx512bitalg = false, avx512vpopcntdq = false, avx512ifma = false;
    bool gfni = false, vaes = false, vpclmulqdq = false, avxvnni = false, amx_int8 = false;
    std::string brand;
};

const CpuFeatures &cpu_features();

// Every target tag the library was built for, most specific first (cmake/qhalide_targets.cmake).
const std::vector<std::string> &target_tags();
// Whether this CPU can run kernels of `tag`. Throws std::invalid_argument for an unknown tag.
bool cpu_supports(const std::string &tag);
// Feature list of `tag` as text, for messages.
std::string target_requirements(const std::string &tag);

}  // namespace qh
