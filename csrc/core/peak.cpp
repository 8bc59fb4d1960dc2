#include "core/peak.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <vector>

#include "core/cpu_features.h"

namespace cnnops {

static double fma_loop_portable(long iters, float seed) {
  float a[12][8];
  for (int i = 0; i < 12; ++i)
    for (int j = 0; j < 8; ++j) a[i][j] = seed + 0.001f * i;
  for (long it = 0; it < iters; ++it)
    for (int i = 0; i < 12; ++i)
      for (int j = 0; j < 8; ++j) a[i][j] = a[i][j] * 0.999999f + 1e-7f;
  volatile float sink = a[3][5];
  (void)sink;
  return static_cast<double>(iters) * 12 * 8 * 2;
}

// One thread's share of a timed round at `level`: iters iterations of that level's loop.
static double fma_loop(SimdLevel level, long iters, float seed) {
#ifdef CNNOPS_HAVE_AVX512_TU
  if (level == SimdLevel::AVX512) return fma_loop_avx512(iters / 2, seed);  // twice the FLOPs per iteration
#endif
#ifdef CNNOPS_HAVE_AVX2_TU
  if (level >= SimdLevel::AVX2_FMA) return fma_loop_avx2(iters, seed);
#endif
  (void)level;
  return fma_loop_portable(iters, seed);
}

double measure_fma_peak_gflops(int threads, double seconds, SimdLevel level) {
  level = std::min(level, cpu_simd_level());
  double best = 0;
  const long iters = 2000000;
  auto t_end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  do {
    double flops = 0;
    auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel num_threads(threads) reduction(+ : flops)
    flops += fma_loop(level, iters, 1.0f + omp_get_thread_num());
    double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, flops / dt / 1e9);
  } while (std::chrono::steady_clock::now() < t_end);
  return best;
}

double measure_fma_peak_gflops(int threads, double seconds) {
  return measure_fma_peak_gflops(threads, seconds, simd_level());
}

double measure_copy_bandwidth_gbs(int threads, double seconds) {
  const size_t n = size_t(64) << 20;  // 64 Mi floats = 256 MB each way, far past the caches
  std::vector<float> src(n, 1.0f), dst(n, 0.0f);
  double best = 0;
  auto t_end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  do {
    auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel for num_threads(threads) schedule(static)
    for (long b = 0; b < 64; ++b) std::memcpy(dst.data() + b * (n / 64), src.data() + b * (n / 64), n / 64 * 4);
    double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, 2.0 * n * 4 / dt / 1e9);  // bytes read + bytes written
  } while (std::chrono::steady_clock::now() < t_end);
  return best;
}

}  // namespace cnnops
