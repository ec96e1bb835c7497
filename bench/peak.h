// Register-only integer dot-product peak of one core, measured in the same run as the kernels
// it is compared with (the denominator of every "fraction of peak" figure).
#pragma once

namespace qh::bench {

// GOP/s of 512-bit vpdpbusd (16 lanes x 4 u8*s8 MACs x 2 ops per instruction) on the calling
// thread, or 0 if this CPU lacks AVX-512 VNNI. Median of `reps` timed runs.
double vnni_peak_gops(int reps = 7);

}  // namespace qh::bench
