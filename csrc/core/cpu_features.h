// Run-time CPU feature detection: which SIMD kernels this process may call.
#pragma once
#include <cstddef>
#include <string>

namespace cnnops {

// Ordered: each level includes the ones below it (an AVX-512 CPU runs the AVX2 kernels too).
//   AVX2_FMA: AVX2 + FMA3, with the OS saving ymm state;
//   AVX512:   AVX-512 F/BW/VL/DQ + AVX2 + FMA3, with the OS saving opmask and zmm state.
enum class SimdLevel { Portable = 0, AVX2_FMA = 1, AVX512 = 2 };

// The level kernels use: the highest one both compiled in and supported by this CPU, unless the
// environment variable CNNOPS_SIMD=portable|avx2|avx512 asks for a lower one (read once, at the
// first call; a level above what the CPU supports is clamped to it).
SimdLevel simd_level();
void set_simd_level(SimdLevel level);  // clamps to what the CPU supports
std::string simd_level_name(SimdLevel level);
// Parses "portable", "avx2" / "avx2+fma", "avx512"; false for anything else.
bool parse_simd_level(const std::string& name, SimdLevel* level);
// The highest level this CPU and OS support among those compiled in.
SimdLevel cpu_simd_level();

// The kernel families' selector tests: call the AVX2+FMA variants (compiled only where
// CNNOPS_HAVE_AVX2_TU is defined) or the AVX-512 ones (CNNOPS_HAVE_AVX512_TU) when the current
// level allows them.
inline bool use_avx2() { return simd_level() >= SimdLevel::AVX2_FMA; }
inline bool use_avx512() { return simd_level() >= SimdLevel::AVX512; }
bool cpu_has_avx2_fma();
bool cpu_has_avx512();

// Streaming (non-temporal) stores pay off only for results larger than the last-level cache:
// smaller ones stay in cache between calls (and are often read next). Kernels that can stream
// their output do so at this size or more. 24 MB: below the 32 MB L3 of the benchmark CPU;
// there, a 12.8 MB upsampling output written with streaming stores runs at 0.84x torch's speed,
// a 103 MB one at 8.7x.
constexpr size_t kStreamMinBytes = size_t(24) << 20;

}  // namespace cnnops
