#include "core/cpu_features.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>

#if (defined(__x86_64__) || defined(_M_X64)) && defined(__GNUC__)
#include <cpuid.h>
#define CNNOPS_X86_CPUID 1
#endif

namespace cnnops {

#ifdef CNNOPS_X86_CPUID
// XCR0, the register in which the OS says which register states it saves on a context switch
// (read with xgetbv; encoded as bytes so this file needs no -mxsave).
static uint64_t read_xcr0() {
  uint32_t lo, hi;
  __asm__ volatile(".byte 0x0f, 0x01, 0xd0" : "=a"(lo), "=d"(hi) : "c"(0));
  return (uint64_t(hi) << 32) | lo;
}

// CPUID leaf 1 and leaf 7 (sub-leaf 0) bits, and the OS-enabled state bits of XCR0:
//   AVX2 + FMA: CPUID.1:ECX.{FMA(12), OSXSAVE(27), AVX(28)}, CPUID.7.0:EBX.AVX2(5), XCR0 bits 1-2
//               (SSE and AVX state);
//   AVX-512:    CPUID.7.0:EBX.{F(16), DQ(17), BW(30), VL(31)} and XCR0 bits 5-7 (opmask, upper
//               halves of zmm0-15, zmm16-31) besides the above.
struct X86Features {
  bool avx2_fma = false, avx512 = false;
};

static X86Features probe() {
  X86Features f;
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, fma = (c >> 12) & 1;
  if (!osxsave || !avx) return f;
  const uint64_t xcr0 = read_xcr0();
  if ((xcr0 & 0x6) != 0x6) return f;
  if (__get_cpuid_max(0, nullptr) < 7) return f;
  __cpuid_count(7, 0, a, b, c, d);
  f.avx2_fma = fma && ((b >> 5) & 1);
  const bool f512 = (b >> 16) & 1, dq = (b >> 17) & 1, bw = (b >> 30) & 1, vl = (b >> 31) & 1;
  f.avx512 = f.avx2_fma && f512 && dq && bw && vl && (xcr0 & 0xe0) == 0xe0;
  return f;
}

static const X86Features& features() {
  static const X86Features f = probe();
  return f;
}
#endif

bool cpu_has_avx2_fma() {
#if defined(CNNOPS_HAVE_AVX2_TU) && defined(CNNOPS_X86_CPUID)
  return features().avx2_fma;
#else
  return false;
#endif
}

bool cpu_has_avx512() {
#if defined(CNNOPS_HAVE_AVX512_TU) && defined(CNNOPS_X86_CPUID)
  return cpu_has_avx2_fma() && features().avx512;
#else
  return false;
#endif
}

SimdLevel cpu_simd_level() {
  if (cpu_has_avx512()) return SimdLevel::AVX512;
  return cpu_has_avx2_fma() ? SimdLevel::AVX2_FMA : SimdLevel::Portable;
}

bool parse_simd_level(const std::string& name, SimdLevel* level) {
  if (name == "portable") *level = SimdLevel::Portable;
  else if (name == "avx2" || name == "avx2+fma") *level = SimdLevel::AVX2_FMA;
  else if (name == "avx512") *level = SimdLevel::AVX512;
  else return false;
  return true;
}

static SimdLevel clamp(SimdLevel level) { return std::min(level, cpu_simd_level()); }

static SimdLevel detect() {
  const char* env = std::getenv("CNNOPS_SIMD");
  SimdLevel asked = SimdLevel::AVX512;
  if (env && *env && !parse_simd_level(env, &asked)) asked = SimdLevel::AVX512;  // unknown: the default
  return clamp(asked);
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

void set_simd_level(SimdLevel level) { g_level.store(static_cast<int>(clamp(level)), std::memory_order_relaxed); }

std::string simd_level_name(SimdLevel level) {
  switch (level) {
    case SimdLevel::AVX512: return "avx512";
    case SimdLevel::AVX2_FMA: return "avx2+fma";
    default: return "portable";
  }
}

}  // namespace cnnops
