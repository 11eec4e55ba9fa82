// What the build target and the running CPU offer: the only place that knows
// about instruction sets. On x86-64 (GCC or Clang) the hot loops are compiled
// for AVX2 / AVX-512 beside the baseline and chosen at run time; elsewhere
// (aarch64, ...) they are plain C++ that the compiler vectorises for the
// target's own baseline (NEON on aarch64).
#pragma once

#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
#define IDEST_X86 1
// A function compiled twice (AVX2 and the baseline), chosen at load time.
#define IDEST_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define IDEST_X86 0
#define IDEST_CLONES
#endif

namespace idest {

// Run-time checks; false on every CPU that is not x86-64.
bool cpu_has_avx2_fma();
bool cpu_has_avx512();  // AVX-512 F, BW, DQ and VL

}  // namespace idest
