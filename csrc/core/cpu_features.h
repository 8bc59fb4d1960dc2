// Run-time CPU feature detection: which SIMD kernels this process may call.
#pragma once
#include <cstddef>
#include <string>

namespace cnnops {

enum class SimdLevel { Portable = 0, AVX2_FMA = 1 };

// Highest level that is both compiled in and supported by this CPU. The environment variable
// CNNOPS_SIMD=portable forces the portable kernels (used by tests to compare both paths).
SimdLevel simd_level();
void set_simd_level(SimdLevel level);  // clamps to what the CPU supports
std::string simd_level_name(SimdLevel level);
// The kernel families' selector test: call the AVX2+FMA variants (compiled only where
// CNNOPS_HAVE_AVX2_TU is defined) when the current level allows them.
inline bool use_avx2() { return simd_level() == SimdLevel::AVX2_FMA; }
bool cpu_has_avx2_fma();

// Streaming (non-temporal) stores pay off only for results larger than the last-level cache:
// smaller ones stay in cache between calls (and are often read next). Kernels that can stream
// their output do so at this size or more. 24 MB: below the 32 MB L3 of the benchmark CPU;
// there, a 12.8 MB upsampling output written with streaming stores runs at 0.84x torch's speed,
// a 103 MB one at 8.7x.
constexpr size_t kStreamMinBytes = size_t(24) << 20;

}  // namespace cnnops
