// 16 independent 16-wide FMA chains: FMA latency (4 cycles) x up to two 512-bit pipes, with
// room to spare; 16 of the 32 zmm registers.
#include <immintrin.h>

#include "core/peak.h"

namespace cnnops {

double fma_loop_avx512(long iters, float seed) {
  __m512 a[16];
  for (int i = 0; i < 16; ++i) a[i] = _mm512_set1_ps(seed + 0.001f * i);
  const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
  for (long it = 0; it < iters; ++it)
    for (int i = 0; i < 16; ++i) a[i] = _mm512_fmadd_ps(a[i], m, c);
  __m512 s = a[0];
  for (int i = 1; i < 16; ++i) s = _mm512_add_ps(s, a[i]);
  volatile float sink = _mm512_reduce_add_ps(s);
  (void)sink;
  return static_cast<double>(iters) * 16 * 16 * 2;
}

}  // namespace cnnops
