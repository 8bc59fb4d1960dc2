// Tile transforms of the Winograd F(2x2, 3x3) convolution, written once and compiled twice: by
// conv_winograd.cpp for the portable baseline and by conv_winograd_avx2.cpp with -mavx2 -mfma.
// The includer defines CNNOPS_ISA (the namespace that keeps the two copies apart).
//
// With d a 4x4 input tile, g a 3x3 filter and Y the 2x2 output tile (cross-correlation, as every
// convolution here): Y = A^T [ (G g G^T) * (B^T d B) ] A, elementwise product in the middle, with
//   B^T = | 1  0 -1  0 |     G = |  1    0    0  |     A^T = | 1  1  1  0 |
//         | 0  1  1  0 |         | 1/2  1/2  1/2 |           | 0  1 -1 -1 |
//         | 0 -1  1  0 |         | 1/2 -1/2  1/2 |
//         | 0  1  0 -1 |         |  0    0    1  |
// Both data transforms are additions only; the 1/2 sits in the filter transform (exact in
// binary), which is why F(2x2, 3x3) keeps the rounding error of a direct sum (see the bound in
// conv_winograd.cpp). Each loop runs over a row of tiles, so the compiler vectorises it across
// tiles (8 floats per AVX2 register).
#include <cstdint>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include "ops/cpu/conv.h"

namespace cnnops {
namespace cpu {
namespace CNNOPS_ISA {

// Input transform of n horizontally adjacent tiles of one channel. `rows` points at tile 0's
// first padded row, split into even/odd column phases (fill_padded_rows with stride 2: padded
// column 2j + ph at rows[ph * Wph + j]); row i of the tile is rows + i * Ws. Writes element
// xi = 4a + b of tile j's transformed tile to dst[xi][j].
template <typename T>
void wino_input_row(const T* rows, int64_t Ws, int64_t n, T* const* dst) {
  const T *r0 = rows, *r1 = rows + Ws, *r2 = r1 + Ws, *r3 = r2 + Ws;
  T *d0 = dst[0], *d1 = dst[1], *d2 = dst[2], *d3 = dst[3], *d4 = dst[4], *d5 = dst[5], *d6 = dst[6],
    *d7 = dst[7], *d8 = dst[8], *d9 = dst[9], *d10 = dst[10], *d11 = dst[11], *d12 = dst[12], *d13 = dst[13],
    *d14 = dst[14], *d15 = dst[15];
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) {
    // t_i = d_i B (row i of the tile: columns 2j .. 2j+3 = e[j], o[j], e[j+1], o[j+1])
    const T t00 = r0[2 * j] - r0[2 * j + 2], t01 = r0[2 * j + 1] + r0[2 * j + 2], t02 = r0[2 * j + 2] - r0[2 * j + 1],
            t03 = r0[2 * j + 1] - r0[2 * j + 3];
    const T t10 = r1[2 * j] - r1[2 * j + 2], t11 = r1[2 * j + 1] + r1[2 * j + 2], t12 = r1[2 * j + 2] - r1[2 * j + 1],
            t13 = r1[2 * j + 1] - r1[2 * j + 3];
    const T t20 = r2[2 * j] - r2[2 * j + 2], t21 = r2[2 * j + 1] + r2[2 * j + 2], t22 = r2[2 * j + 2] - r2[2 * j + 1],
            t23 = r2[2 * j + 1] - r2[2 * j + 3];
    const T t30 = r3[2 * j] - r3[2 * j + 2], t31 = r3[2 * j + 1] + r3[2 * j + 2], t32 = r3[2 * j + 2] - r3[2 * j + 1],
            t33 = r3[2 * j + 1] - r3[2 * j + 3];
    // B^T t: rows 0 - 2, 1 + 2, 2 - 1, 1 - 3
    d0[j] = t00 - t20;  d1[j] = t01 - t21;  d2[j] = t02 - t22;  d3[j] = t03 - t23;
    d4[j] = t10 + t20;  d5[j] = t11 + t21;  d6[j] = t12 + t22;  d7[j] = t13 + t23;
    d8[j] = t20 - t10;  d9[j] = t21 - t11;  d10[j] = t22 - t12; d11[j] = t23 - t13;
    d12[j] = t10 - t30; d13[j] = t11 - t31; d14[j] = t12 - t32; d15[j] = t13 - t33;
  }
}

// Output transform of n tiles: m[xi][j] is element xi of tile j's product (16 arrays);
// out[0..3][j] receive Y[0][0], Y[0][1], Y[1][0], Y[1][1] of tile j, plus `bias`.
template <typename T>
void wino_output_row(const T* const* m, int64_t n, T bias, T* const* out) {
  const T *m0 = m[0], *m1 = m[1], *m2 = m[2], *m3 = m[3], *m4 = m[4], *m5 = m[5], *m6 = m[6], *m7 = m[7];
  const T *m8 = m[8], *m9 = m[9], *m10 = m[10], *m11 = m[11], *m12 = m[12], *m13 = m[13], *m14 = m[14],
          *m15 = m[15];
  T *y00 = out[0], *y01 = out[1], *y10 = out[2], *y11 = out[3];
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) {
    // A^T m: row 0 = m_0 + m_1 + m_2, row 1 = m_1 - m_2 - m_3 (rows of 4 columns)
    const T s0 = m0[j] + m4[j] + m8[j], s1 = m1[j] + m5[j] + m9[j], s2 = m2[j] + m6[j] + m10[j],
            s3 = m3[j] + m7[j] + m11[j];
    const T r0 = m4[j] - m8[j] - m12[j], r1 = m5[j] - m9[j] - m13[j], r2 = m6[j] - m10[j] - m14[j],
            r3 = m7[j] - m11[j] - m15[j];
    // (A^T m) A: column 0 = c0 + c1 + c2, column 1 = c1 - c2 - c3
    y00[j] = bias + s0 + s1 + s2;
    y01[j] = bias + s1 - s2 - s3;
    y10[j] = bias + r0 + r1 + r2;
    y11[j] = bias + r1 - r2 - r3;
  }
}

// Two adjacent output columns of n tiles: dst[2j] = a[j], dst[2j + 1] = b[j].
template <typename T>
void wino_store_pairs(const T* a, const T* b, int64_t n, T* dst) {
  int64_t j = 0;
#if defined(__AVX2__)
  if constexpr (sizeof(T) == 4) {
    for (; j + 8 <= n; j += 8) {
      const __m256 va = _mm256_loadu_ps(a + j), vb = _mm256_loadu_ps(b + j);
      const __m256 lo = _mm256_unpacklo_ps(va, vb), hi = _mm256_unpackhi_ps(va, vb);  // pairs 0 1 4 5, 2 3 6 7
      _mm256_storeu_ps(dst + 2 * j, _mm256_permute2f128_ps(lo, hi, 0x20));
      _mm256_storeu_ps(dst + 2 * j + 8, _mm256_permute2f128_ps(lo, hi, 0x31));
    }
  } else {
    for (; j + 4 <= n; j += 4) {
      const __m256d va = _mm256_loadu_pd(a + j), vb = _mm256_loadu_pd(b + j);
      const __m256d lo = _mm256_unpacklo_pd(va, vb), hi = _mm256_unpackhi_pd(va, vb);  // pairs 0 2, 1 3
      _mm256_storeu_pd(dst + 2 * j, _mm256_permute2f128_pd(lo, hi, 0x20));
      _mm256_storeu_pd(dst + 2 * j + 4, _mm256_permute2f128_pd(lo, hi, 0x31));
    }
  }
#endif
  for (; j < n; ++j) {
    dst[2 * j] = a[j];
    dst[2 * j + 1] = b[j];
  }
}

template void wino_store_pairs<float>(const float*, const float*, int64_t, float*);
template void wino_store_pairs<double>(const double*, const double*, int64_t, double*);
template void wino_input_row<float>(const float*, int64_t, int64_t, float* const*);
template void wino_input_row<double>(const double*, int64_t, int64_t, double* const*);
template void wino_output_row<float>(const float* const*, int64_t, float, float* const*);
template void wino_output_row<double>(const double* const*, int64_t, double, double* const*);

}  // namespace CNNOPS_ISA
}  // namespace cpu
}  // namespace cnnops
