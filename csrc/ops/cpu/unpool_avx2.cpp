// AVX2 row kernels of nearest upsampling x2 (float32), compiled with -mavx2 -mfma and chosen at
// run time (cpu::use_avx2_rows()). One call handles one input row; threads split rows (unpool.cpp).
//  - dup2: each value twice, written to one or two output rows; 8 inputs -> 16 outputs per step
//    (unpacklo/hi + a lane permute). Output rows 32-byte aligned get streaming (non-temporal)
//    stores: the output is 4x the input and is not read back here, so skipping the
//    read-for-ownership of its cache lines cuts the memory traffic by up to 40%.
//  - sum2x2: dx[w] = (g0[2w] + g0[2w+1]) + (g1[2w] + g1[2w+1]), the same order as the portable
//    loop, so both give identical bits.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "ops/cpu/unpool_rows.h"

namespace cnnops {
namespace cpu {
namespace avx2 {

void dup2_row_f32(const float* x, float* y0, float* y1, int64_t W, bool stream_ok) {
  const bool stream = stream_ok && (reinterpret_cast<uintptr_t>(y0) % 32 == 0) &&
                      (y1 == nullptr || reinterpret_cast<uintptr_t>(y1) % 32 == 0);
  int64_t w = 0;
  for (; w + 8 <= W; w += 8) {
    const __m256 a = _mm256_loadu_ps(x + w);
    const __m256 lo = _mm256_unpacklo_ps(a, a), hi = _mm256_unpackhi_ps(a, a);
    const __m256 o0 = _mm256_permute2f128_ps(lo, hi, 0x20), o1 = _mm256_permute2f128_ps(lo, hi, 0x31);
    if (stream) {
      _mm256_stream_ps(y0 + 2 * w, o0);
      _mm256_stream_ps(y0 + 2 * w + 8, o1);
      if (y1) {
        _mm256_stream_ps(y1 + 2 * w, o0);
        _mm256_stream_ps(y1 + 2 * w + 8, o1);
      }
    } else {
      _mm256_storeu_ps(y0 + 2 * w, o0);
      _mm256_storeu_ps(y0 + 2 * w + 8, o1);
      if (y1) {
        _mm256_storeu_ps(y1 + 2 * w, o0);
        _mm256_storeu_ps(y1 + 2 * w + 8, o1);
      }
    }
  }
  for (; w < W; ++w) {
    y0[2 * w] = y0[2 * w + 1] = x[w];
    if (y1) y1[2 * w] = y1[2 * w + 1] = x[w];
  }
}

void stream_fence() { _mm_sfence(); }

void sum2x2_row_f32(const float* g0, const float* g1, float* dx, int64_t W) {
  int64_t w = 0;
  for (; w + 8 <= W; w += 8) {
    const __m256 a0 = _mm256_loadu_ps(g0 + 2 * w), b0 = _mm256_loadu_ps(g0 + 2 * w + 8);
    const __m256 a1 = _mm256_loadu_ps(g1 + 2 * w), b1 = _mm256_loadu_ps(g1 + 2 * w + 8);
    // hadd pairs within 128-bit lanes, then put the lanes back in order
    const __m256 s0 = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_hadd_ps(a0, b0)), 0xD8));
    const __m256 s1 = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_hadd_ps(a1, b1)), 0xD8));
    _mm256_storeu_ps(dx + w, _mm256_add_ps(s0, s1));
  }
  for (; w < W; ++w) dx[w] = (g0[2 * w] + g0[2 * w + 1]) + (g1[2 * w] + g1[2 * w + 1]);
}

void stream_copy(void* dst, const void* src, size_t bytes) {
  char* d = static_cast<char*>(dst);
  const char* s = static_cast<const char*>(src);
  const size_t head = (32 - reinterpret_cast<uintptr_t>(d) % 32) % 32;
  if (bytes < head + 64) {
    std::memcpy(d, s, bytes);
    return;
  }
  std::memcpy(d, s, head);
  size_t i = head;
  for (; i + 32 <= bytes; i += 32)
    _mm256_stream_si256(reinterpret_cast<__m256i*>(d + i), _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + i)));
  std::memcpy(d + i, s + i, bytes - i);
  _mm_sfence();
}

}  // namespace avx2
}  // namespace cpu
}  // namespace cnnops
