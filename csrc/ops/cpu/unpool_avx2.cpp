// AVX2 row kernels of nearest upsampling x2 (float32), compiled with -mavx2 -mfma and chosen at
// run time (cpu::use_avx2_rows()). One call handles one input row; threads split rows (unpool.cpp).
//  - dup2: each value twice, written to one or two output rows; 8 inputs -> 16 outputs per step
//    (unpacklo/hi + a lane permute). Output rows 32-byte aligned get streaming (non-temporal)
//    stores: the output is 4x the input and is not read back here, so skipping the
//    read-for-ownership of its cache lines cuts the memory traffic by up to 40%.
//  - sum2x2 (upsampling backward): dx[w] = (g0[2w] + g0[2w+1]) + (g1[2w] + g1[2w+1]), and the
//    channels-last form over C contiguous channels per pixel, the same order as the portable loops,
//    so both give identical bits. Results above the cache size are streamed too.
//  - gather (max_unpool backward, one plane per call): eight indices are range-checked with two
//    vector compares (a group with a bad index goes through the scalar path, which records it and
//    writes 0), the eight values are loaded as scalars and stored as one vector, streamed when the
//    result is larger than the cache. Scalar loads rather than vgatherqps: two vgatherqps per
//    eight values are slower than the eight loads on this CPU, and a software prefetch through the
//    index does not pay either.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "ops/cpu/unpool_rows.h"

namespace cnnops {
namespace cpu {
namespace avx2 {

void dup2_row_f32(const float* x, float* y0, float* y1, int64_t W, bool stream) {
  const bool nt = stream && (reinterpret_cast<uintptr_t>(y0) % 32 == 0) &&
                  (y1 == nullptr || reinterpret_cast<uintptr_t>(y1) % 32 == 0);
  int64_t w = 0;
  for (; w + 8 <= W; w += 8) {
    const __m256 a = _mm256_loadu_ps(x + w);
    const __m256 lo = _mm256_unpacklo_ps(a, a), hi = _mm256_unpackhi_ps(a, a);
    const __m256 o0 = _mm256_permute2f128_ps(lo, hi, 0x20), o1 = _mm256_permute2f128_ps(lo, hi, 0x31);
    if (nt) {
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

void sum2x2_row_f32(const float* g0, const float* g1, float* dx, int64_t W, bool stream) {
  const bool nt = stream && reinterpret_cast<uintptr_t>(dx) % 32 == 0;
  int64_t w = 0;
  for (; w + 8 <= W; w += 8) {
    const __m256 a0 = _mm256_loadu_ps(g0 + 2 * w), b0 = _mm256_loadu_ps(g0 + 2 * w + 8);
    const __m256 a1 = _mm256_loadu_ps(g1 + 2 * w), b1 = _mm256_loadu_ps(g1 + 2 * w + 8);
    // hadd pairs within 128-bit lanes, then put the lanes back in order
    const __m256 s0 = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_hadd_ps(a0, b0)), 0xD8));
    const __m256 s1 = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_hadd_ps(a1, b1)), 0xD8));
    if (nt) _mm256_stream_ps(dx + w, _mm256_add_ps(s0, s1));
    else _mm256_storeu_ps(dx + w, _mm256_add_ps(s0, s1));
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

int64_t gather_f32(const float* g, const int64_t* ip, float* dp, int64_t n, int64_t limit, bool stream) {
  const __m256i last = _mm256_set1_epi64x(limit - 1), zero = _mm256_setzero_si256();
  int64_t i = 0, first = -1;
  auto one = [&](int64_t j) {
    const int64_t k = ip[j];
    const bool ok = static_cast<uint64_t>(k) < static_cast<uint64_t>(limit);
    if (!ok && first < 0) first = j;
    dp[j] = ok ? g[k] : 0.0f;
  };
  if (stream)  // streaming stores need 32-byte aligned destinations
    for (; i < n && reinterpret_cast<uintptr_t>(dp + i) % 32 != 0; ++i) one(i);
  for (; i + 8 <= n; i += 8) {
    const __m256i k0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ip + i));
    const __m256i k1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ip + i + 4));
    // k outside [0, limit): k < 0 or k > limit - 1 (signed compares; limit < 2^63)
    const __m256i bad = _mm256_or_si256(_mm256_or_si256(_mm256_cmpgt_epi64(zero, k0), _mm256_cmpgt_epi64(k0, last)),
                                        _mm256_or_si256(_mm256_cmpgt_epi64(zero, k1), _mm256_cmpgt_epi64(k1, last)));
    if (!_mm256_testz_si256(bad, bad)) {
      for (int j = 0; j < 8; ++j) one(i + j);
      continue;
    }
    const __m256 v = _mm256_setr_ps(g[ip[i]], g[ip[i + 1]], g[ip[i + 2]], g[ip[i + 3]], g[ip[i + 4]], g[ip[i + 5]],
                                    g[ip[i + 6]], g[ip[i + 7]]);
    if (stream) _mm256_stream_ps(dp + i, v);
    else _mm256_storeu_ps(dp + i, v);
  }
  for (; i < n; ++i) one(i);
  return first;
}

void sum2x2_cl_row_f32(const float* g0, const float* g1, float* dx, int64_t W, int64_t C, bool stream) {
  const bool nt = stream && C % 8 == 0 && reinterpret_cast<uintptr_t>(dx) % 32 == 0;
  for (int64_t w = 0; w < W; ++w) {
    const float *a = g0 + 2 * w * C, *b = a + C, *c = g1 + 2 * w * C, *d = c + C;
    float* o = dx + w * C;
    int64_t k = 0;
    for (; k + 8 <= C; k += 8) {
      const __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_loadu_ps(a + k), _mm256_loadu_ps(b + k)),
                                     _mm256_add_ps(_mm256_loadu_ps(c + k), _mm256_loadu_ps(d + k)));
      if (nt) _mm256_stream_ps(o + k, s);
      else _mm256_storeu_ps(o + k, s);
    }
    for (; k < C; ++k) o[k] = (a[k] + b[k]) + (c[k] + d[k]);
  }
}
}  // namespace avx2
}  // namespace cpu
}  // namespace cnnops
