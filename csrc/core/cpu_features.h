// Run-time CPU feature detection: which SIMD kernels this process may call.
#pragma once
#include <string>

namespace cnnops {

enum class SimdLevel { Portable = 0, AVX2_FMA = 1 };

// Highest level that is both compiled in and supported by this CPU. The environment variable
// CNNOPS_SIMD=portable forces the portable kernels (used by tests to compare both paths).
SimdLevel simd_level();
void set_simd_level(SimdLevel level);  // clamps to what the CPU supports
std::string simd_level_name(SimdLevel level);
bool cpu_has_avx2_fma();

}  // namespace cnnops
