#include "core/cpu_features.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace cnnops {

bool cpu_has_avx2_fma() {
#if defined(CNNOPS_HAVE_AVX2_TU) && (defined(__x86_64__) || defined(_M_X64)) && defined(__GNUC__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return false;
#endif
}

static SimdLevel detect() {
  const char* env = std::getenv("CNNOPS_SIMD");
  if (env && std::strcmp(env, "portable") == 0) return SimdLevel::Portable;
  return cpu_has_avx2_fma() ? SimdLevel::AVX2_FMA : SimdLevel::Portable;
}

static std::atomic<int> g_level{-1};

SimdLevel simd_level() {
  int v = g_level.load(std::memory_order_relaxed);
  if (v < 0) {
    v = static_cast<int>(detect());
    g_level.store(v, std::memory_order_relaxed);
  }
  return static_cast<SimdLevel>(v);
}

void set_simd_level(SimdLevel level) {
  if (level == SimdLevel::AVX2_FMA && !cpu_has_avx2_fma()) level = SimdLevel::Portable;
  g_level.store(static_cast<int>(level), std::memory_order_relaxed);
}

std::string simd_level_name(SimdLevel level) { return level == SimdLevel::AVX2_FMA ? "avx2+fma" : "portable"; }

}  // namespace cnnops
