// Row kernels of 2-D channels-first sum pooling (average, adaptive average, global average, LP),
// written once and compiled twice: by pool.cpp for the portable baseline and by
// pool_rows_avx2.cpp with -mavx2 -mfma. The includer defines CNNOPS_ISA (the namespace that keeps
// the two copies apart).
//
// One call = one (n, c) plane, owned by one thread (pool.cpp hands out runs of planes), so the
// summation order is fixed: bitwise identical results for any thread count. Per output row:
//  forward:  the window's input rows [bh, bh + ch) are summed (or their p-th powers, LP) into a
//            row buffer with unit-stride loops the compiler vectorises; each output then sums its
//            columns [bw, bw + cw) of the buffer and divides by its divisor (a per-call table).
//            2-wide stride-2 windows (the common 2x2/2 and the 14 -> 7 adaptive case) get a
//            pairwise loop.
//  backward: each output's grad / divisor is spread over its columns into a row buffer (outputs
//            in order), and that buffer is added to every input row of the window.
// Windows come from the per-dimension lists of PoolGeom (padding, ceil_mode and adaptive windows
// all reduce to "valid columns [bw, bw + cw)"), dilation 1 only.
#include <algorithm>
#include <cmath>
#include <cstring>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include "ops/cpu/pool.h"

namespace cnnops {
namespace cpu {
namespace CNNOPS_ISA {

template <typename T, bool LP>
void sum_rows_plane(const T* x, T* y, const PoolGeom& g, const T* dtab, T* buf) {
  const int64_t W = g.in[2], OH = g.out[1], OW = g.out[2];
  const int64_t* bws = g.begin[2].data();
  const int64_t* cws = g.count[2].data();
  const double p = g.norm_type;
  const T kprod = static_cast<T>(g.kprod);
  const bool pairs = [&] {
    for (int64_t ow = 0; ow < OW; ++ow)
      if (cws[ow] != 2 || bws[ow] != 2 * ow) return false;
    return true;
  }();
  const int64_t cend = bws[OW - 1] + cws[OW - 1];  // columns any window reads
  for (int64_t oh = 0; oh < OH; ++oh) {
    const int64_t bh = g.begin[1][oh], ch = g.count[1][oh];
    const T* r0 = x + bh * W;
    if (LP && p == 2.0) {
      for (int64_t w = 0; w < cend; ++w) buf[w] = r0[w] * r0[w];
    } else if (LP && p != 1.0) {
      for (int64_t w = 0; w < cend; ++w) buf[w] = static_cast<T>(std::pow(r0[w], static_cast<T>(p)));
    } else {
      for (int64_t w = 0; w < cend; ++w) buf[w] = r0[w];
    }
    for (int64_t j = 1; j < ch; ++j) {
      const T* r = r0 + j * W;
      if (LP && p == 2.0) {
        for (int64_t w = 0; w < cend; ++w) buf[w] += r[w] * r[w];
      } else if (LP && p != 1.0) {
        for (int64_t w = 0; w < cend; ++w) buf[w] += static_cast<T>(std::pow(r[w], static_cast<T>(p)));
      } else {
        for (int64_t w = 0; w < cend; ++w) buf[w] += r[w];
      }
    }
    T* yr = y + oh * OW;
    const T* dr = dtab + oh * OW;
    if (pairs) {
      for (int64_t ow = 0; ow < OW; ++ow) yr[ow] = (buf[2 * ow] + buf[2 * ow + 1]) / dr[ow];
    } else {
      for (int64_t ow = 0; ow < OW; ++ow) {
        const T* q = buf + bws[ow];
        T s = q[0];
        for (int64_t c = 1; c < cws[ow]; ++c) s += q[c];
        yr[ow] = s / dr[ow];
      }
    }
    if (LP) {
      if (p == 2.0)
        for (int64_t ow = 0; ow < OW; ++ow) yr[ow] = std::sqrt(yr[ow] * kprod);
      else if (p == 1.0)
        for (int64_t ow = 0; ow < OW; ++ow) yr[ow] = yr[ow] * kprod;
      else
        for (int64_t ow = 0; ow < OW; ++ow) yr[ow] = static_cast<T>(std::pow(yr[ow] * kprod, static_cast<T>(1.0 / p)));
    }
  }
}

// Average backward of one plane; dx is fully written.
template <typename T>
void avg_rows_backward_plane(const T* dy, T* dx, const PoolGeom& g, const T* dtab, T* buf) {
  const int64_t W = g.in[2], H = g.in[1], OH = g.out[1], OW = g.out[2];
  const int64_t* bws = g.begin[2].data();
  const int64_t* cws = g.count[2].data();
  std::memset(dx, 0, sizeof(T) * H * W);
  for (int64_t oh = 0; oh < OH; ++oh) {
    const int64_t bh = g.begin[1][oh], ch = g.count[1][oh];
    const T* gr = dy + oh * OW;
    const T* dr = dtab + oh * OW;
    for (int64_t w = 0; w < W; ++w) buf[w] = 0;
    for (int64_t ow = 0; ow < OW; ++ow) {
      const T c = gr[ow] / dr[ow];
      T* q = buf + bws[ow];
      for (int64_t k = 0; k < cws[ow]; ++k) q[k] += c;
    }
    for (int64_t j = 0; j < ch; ++j) {
      T* r = dx + (bh + j) * W;
      for (int64_t w = 0; w < W; ++w) r[w] += buf[w];
    }
  }
}

// Global average: y[i] = sum of plane i / d for `planes` contiguous planes of P values. Eight
// independent lanes per plane (vectorisable without reassociation flags), combined pairwise.
template <typename T>
void plane_means(const T* x, T* y, int64_t planes, int64_t P, T d) {
  for (int64_t pl = 0; pl < planes; ++pl) {
    const T* v = x + pl * P;
    T a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 8 <= P; i += 8)
      for (int j = 0; j < 8; ++j) a[j] += v[i + j];
    for (int j = 0; i < P; ++i, ++j) a[j] += v[i];
    y[pl] = (((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]))) / d;
  }
}

#if defined(__AVX2__)
// float on AVX2: the one-plane loop above is latency-bound on small planes (ResNet's 7x7 = 49
// values: six dependent vector adds and a horizontal sum per plane, ~50 cycles). Here eight
// planes go together: one accumulator vector per plane (eight independent add chains), the
// P % 8 tail through a masked load, and the eight accumulators are reduced by a transpose-add
// (two rounds of hadd, one cross-lane add) into one vector of eight sums, divided and stored at
// once. A last group of fewer than eight planes runs the same code with the missing planes
// left at zero, so every plane is summed in the same order wherever it falls.
template <>
void plane_means<float>(const float* x, float* y, int64_t planes, int64_t P, float d) {
  const int64_t full = P / 8 * 8;
  const __m256i tail =
      _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(P - full)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  const __m256 dv = _mm256_set1_ps(d);
  for (int64_t pl = 0; pl < planes; pl += 8) {
    const int n = static_cast<int>(std::min<int64_t>(8, planes - pl));
    const float* v = x + pl * P;
    __m256 a[8];
    for (int j = 0; j < 8; ++j) a[j] = _mm256_setzero_ps();
    if (n == 8) {
      for (int64_t i = 0; i < full; i += 8)
        for (int j = 0; j < 8; ++j) a[j] = _mm256_add_ps(a[j], _mm256_loadu_ps(v + j * P + i));
    } else {
      for (int64_t i = 0; i < full; i += 8)
        for (int j = 0; j < n; ++j) a[j] = _mm256_add_ps(a[j], _mm256_loadu_ps(v + j * P + i));
    }
    if (full < P)
      for (int j = 0; j < n; ++j) a[j] = _mm256_add_ps(a[j], _mm256_maskload_ps(v + j * P + full, tail));
    // lanes k and k + 4 of u0 hold plane k's sums of accumulator lanes 0-3 and 4-7 (k < 4);
    // u1 the same for planes 4-7
    const __m256 u0 = _mm256_hadd_ps(_mm256_hadd_ps(a[0], a[1]), _mm256_hadd_ps(a[2], a[3]));
    const __m256 u1 = _mm256_hadd_ps(_mm256_hadd_ps(a[4], a[5]), _mm256_hadd_ps(a[6], a[7]));
    const __m256 s = _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
    const __m256 m = _mm256_div_ps(s, dv);
    if (n == 8) {
      _mm256_storeu_ps(y + pl, m);
    } else {
      alignas(32) float out[8];
      _mm256_store_ps(out, m);
      std::memcpy(y + pl, out, sizeof(float) * n);
    }
  }
}
#endif

template void plane_means<float>(const float*, float*, int64_t, int64_t, float);
template void plane_means<double>(const double*, double*, int64_t, int64_t, double);
template void sum_rows_plane<float, false>(const float*, float*, const PoolGeom&, const float*, float*);
template void sum_rows_plane<float, true>(const float*, float*, const PoolGeom&, const float*, float*);
template void sum_rows_plane<double, false>(const double*, double*, const PoolGeom&, const double*, double*);
template void sum_rows_plane<double, true>(const double*, double*, const PoolGeom&, const double*, double*);
template void avg_rows_backward_plane<float>(const float*, float*, const PoolGeom&, const float*, float*);
template void avg_rows_backward_plane<double>(const double*, double*, const PoolGeom&, const double*, double*);

}  // namespace CNNOPS_ISA
}  // namespace cpu
}  // namespace cnnops
