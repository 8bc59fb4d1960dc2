// Tile transforms of the Winograd F(2x2, 3x3) and F(2x2, 5x5) convolutions and their filter
// transform (16 filters at a time), written once and compiled three times: by conv_winograd.cpp
// for the portable baseline, by conv_winograd_avx2.cpp with -mavx2 -mfma and by
// conv_winograd_avx512.cpp with the AVX-512 flags. The includer defines CNNOPS_ISA (the namespace
// that keeps the copies apart).
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
// tiles (CNNOPS_WINO_VEC bytes per step: a ymm register, a zmm one in the AVX-512 build).
// clang-format off: the statements are laid out by hand as the register tiles and transform
// matrices they compute, several to a line.
#include <algorithm>
#include <cstdint>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

// Bytes per vector step of the transform loops (their `omp simd simdlen`): the widest register
// of the ISA this copy is compiled for.
#undef CNNOPS_WINO_VEC
#if defined(__AVX512F__)
#define CNNOPS_WINO_VEC 64
#else
#define CNNOPS_WINO_VEC 32
#endif

#include "ops/cpu/conv.h"

namespace cnnops {
namespace cpu {
namespace CNNOPS_ISA {

// Filters transformed together by wino_filter_lanes.
constexpr int kLanes = 16;

// Input transform of n horizontally adjacent 4x4 tiles of one channel: tile j's columns 2j ..
// 2j+3 of four linear padded rows (rows + i * Ws); element xi = 4a + b of tile j goes to
// dst[xi][j]. The stride-2 loads compile to loads and permutes; splitting the rows into even and
// odd columns first (as the 6x6 transform does) is no faster here.
template <typename T>
void wino_input_row(const T* rows, int64_t Ws, int64_t n, T* const* dst) {
  const T *r0 = rows, *r1 = rows + Ws, *r2 = r1 + Ws, *r3 = r2 + Ws;
  T *d0 = dst[0], *d1 = dst[1], *d2 = dst[2], *d3 = dst[3], *d4 = dst[4], *d5 = dst[5], *d6 = dst[6],
    *d7 = dst[7], *d8 = dst[8], *d9 = dst[9], *d10 = dst[10], *d11 = dst[11], *d12 = dst[12], *d13 = dst[13],
    *d14 = dst[14], *d15 = dst[15];
#pragma omp simd simdlen(CNNOPS_WINO_VEC / sizeof(T))
  for (int64_t j = 0; j < n; ++j) {
    // t_i = d_i B (row i of the tile: columns 2j .. 2j+3)
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
#pragma omp simd simdlen(CNNOPS_WINO_VEC / sizeof(T))
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

// F(2x2, 5x5): 6x6 input tiles (points 0, 1, -1, 2, -2 and infinity), same 2x2 output tiles:
//   B^T = | 4  0 -5  0  1  0 |   G = |  1/4    0     0     0    0  |   A^T = | 1  1  1  1  1  0 |
//         | 0 -4 -4  1  1  0 |       | -1/6 -1/6  -1/6  -1/6 -1/6 |         | 0  1 -1  2 -2  1 |
//         | 0  4 -4 -1  1  0 |       | -1/6  1/6  -1/6   1/6 -1/6 |
//         | 0 -2 -1  2  1  0 |       | 1/24 1/12   1/6   1/3  2/3 |
//         | 0  2 -1 -2  1  0 |       | 1/24 -1/12  1/6  -1/3  2/3 |
//         | 0  4  0 -5  0  1 |       |   0    0     0     0    1  |
// 36 products per tile instead of 100; the data transforms multiply by 2, 4 and 5, so the
// rounding error is several times a direct sum's (see conv_winograd.cpp).

// B^T applied to six values.
#define CNNOPS_WINO6_BT(d0, d1, d2, d3, d4, d5, o0, o1, o2, o3, o4, o5) \
  o0 = 4 * (d0) - 5 * (d2) + (d4);                                    \
  o1 = (d3) + (d4) - 4 * ((d1) + (d2));                               \
  o2 = (d4) - (d3) + 4 * ((d1) - (d2));                               \
  o3 = (d4) - (d2) + 2 * ((d3) - (d1));                               \
  o4 = (d4) - (d2) - 2 * ((d3) - (d1));                               \
  o5 = 4 * (d1) - 5 * (d3) + (d5);

// Column b of B^T applied to one row of a 6x6 tile, from the row split into even and odd
// columns: tile j's row values d[k] = r[2j + k] are e[j + k/2] (k even) and o[j + k/2] (k odd).
template <int B, typename T>
static inline T wino6_bt(const T* e, const T* o, int64_t j) {
  if constexpr (B == 0) return 4 * e[j] - 5 * e[j + 1] + e[j + 2];
  else if constexpr (B == 1) return o[j + 1] + e[j + 2] - 4 * (o[j] + e[j + 1]);
  else if constexpr (B == 2) return e[j + 2] - o[j + 1] + 4 * (o[j] - e[j + 1]);
  else if constexpr (B == 3) return e[j + 2] - e[j + 1] + 2 * (o[j + 1] - o[j]);
  else if constexpr (B == 4) return e[j + 2] - e[j + 1] - 2 * (o[j + 1] - o[j]);
  else return 4 * o[j] - 5 * o[j + 1] + o[j + 2];
}

constexpr int64_t kWino6Chunk = 64;  // tiles per pass of wino6_input_row

// Column b of n <= kWino6Chunk transformed tiles (elements 6a + b, a = 0..5); eo holds the six
// rows' even and odd columns (row i: even at eo + 2i * S, odd at eo + (2i + 1) * S).
template <int B, typename T>
static void wino6_input_col(const T* eo, int64_t S, int64_t n, T* const* dst, int64_t j0) {
  const T *e0 = eo, *o0 = e0 + S, *e1 = o0 + S, *o1 = e1 + S, *e2 = o1 + S, *o2 = e2 + S;
  const T *e3 = o2 + S, *o3 = e3 + S, *e4 = o3 + S, *o4 = e4 + S, *e5 = o4 + S, *o5 = e5 + S;
  T *q0 = dst[B] + j0, *q1 = dst[6 + B] + j0, *q2 = dst[12 + B] + j0, *q3 = dst[18 + B] + j0,
    *q4 = dst[24 + B] + j0, *q5 = dst[30 + B] + j0;
#pragma omp simd simdlen(CNNOPS_WINO_VEC / sizeof(T))
  for (int64_t j = 0; j < n; ++j) {
    const T t0 = wino6_bt<B>(e0, o0, j), t1 = wino6_bt<B>(e1, o1, j), t2 = wino6_bt<B>(e2, o2, j);
    const T t3 = wino6_bt<B>(e3, o3, j), t4 = wino6_bt<B>(e4, o4, j), t5 = wino6_bt<B>(e5, o5, j);
    CNNOPS_WINO6_BT(t0, t1, t2, t3, t4, t5, q0[j], q1[j], q2[j], q3[j], q4[j], q5[j])
  }
}

// Input transform of n adjacent 6x6 tiles (tile j's columns 2j .. 2j+5 of six linear padded
// rows, rows + i * Ws); element xi = 6a + b of tile j goes to dst[xi][j]. In chunks of tiles:
// the six rows are split into even and odd columns once (the column passes then load unit
// stride), then one vector pass per column b (a single pass over 36 outputs through the pointer
// table would stay scalar; stride-2 loads in every pass would cost a quarter of MNIST conv2's
// time).
template <typename T>
void wino6_input_row(const T* rows, int64_t Ws, int64_t n, T* const* dst) {
  constexpr int64_t S = kWino6Chunk + 3;
  alignas(64) T eo[12 * S];
  for (int64_t j0 = 0; j0 < n; j0 += kWino6Chunk) {
    const int64_t m = std::min(kWino6Chunk, n - j0);
    for (int i = 0; i < 6; ++i) {
      const T* r = rows + i * Ws + 2 * j0;
      T *e = eo + 2 * i * S, *o = e + S;
#pragma omp simd simdlen(CNNOPS_WINO_VEC / sizeof(T))
      for (int64_t k = 0; k < m + 3; ++k) {
        e[k] = r[2 * k];
        o[k] = r[2 * k + 1];
      }
    }
    wino6_input_col<0>(eo, S, m, dst, j0);
    wino6_input_col<1>(eo, S, m, dst, j0);
    wino6_input_col<2>(eo, S, m, dst, j0);
    wino6_input_col<3>(eo, S, m, dst, j0);
    wino6_input_col<4>(eo, S, m, dst, j0);
    wino6_input_col<5>(eo, S, m, dst, j0);
  }
}

// Output transform of n <= 16 6x6 products (m[xi][j]) to 2x2 tiles (+ bias), as wino_output_row:
// first A^T m per column b (rows s and r), then the columns.
template <typename T>
void wino6_output_row(const T* const* m, int64_t n, T bias, T* const* out) {
  alignas(64) T sb[6][16], rb[6][16];
  for (int b = 0; b < 6; ++b) {
    const T *m0 = m[b], *m1 = m[6 + b], *m2 = m[12 + b], *m3 = m[18 + b], *m4 = m[24 + b], *m5 = m[30 + b];
    T *sp = sb[b], *rp = rb[b];
#pragma omp simd simdlen(CNNOPS_WINO_VEC / sizeof(T))
    for (int64_t j = 0; j < n; ++j) {
      sp[j] = m0[j] + m1[j] + m2[j] + m3[j] + m4[j];
      rp[j] = m1[j] - m2[j] + 2 * (m3[j] - m4[j]) + m5[j];
    }
  }
  T *y00 = out[0], *y01 = out[1], *y10 = out[2], *y11 = out[3];
#pragma omp simd simdlen(CNNOPS_WINO_VEC / sizeof(T))
  for (int64_t j = 0; j < n; ++j) {
    y00[j] = bias + sb[0][j] + sb[1][j] + sb[2][j] + sb[3][j] + sb[4][j];
    y01[j] = bias + sb[1][j] - sb[2][j] + 2 * (sb[3][j] - sb[4][j]) + sb[5][j];
    y10[j] = bias + rb[0][j] + rb[1][j] + rb[2][j] + rb[3][j] + rb[4][j];
    y11[j] = bias + rb[1][j] - rb[2][j] + 2 * (rb[3][j] - rb[4][j]) + rb[5][j];
  }
}

// Two adjacent output columns of n tiles: dst[2j] = a[j], dst[2j + 1] = b[j].
template <typename T>
void wino_store_pairs(const T* a, const T* b, int64_t n, T* dst) {
  int64_t j = 0;
#if defined(__AVX512F__)
  if constexpr (sizeof(T) == 4) {
    const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i hi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    for (; j + 16 <= n; j += 16) {
      const __m512 va = _mm512_loadu_ps(a + j), vb = _mm512_loadu_ps(b + j);
      _mm512_storeu_ps(dst + 2 * j, _mm512_permutex2var_ps(va, lo, vb));
      _mm512_storeu_ps(dst + 2 * j + 16, _mm512_permutex2var_ps(va, hi, vb));
    }
  } else {
    const __m512i lo = _mm512_setr_epi64(0, 8, 1, 9, 2, 10, 3, 11), hi = _mm512_setr_epi64(4, 12, 5, 13, 6, 14, 7, 15);
    for (; j + 8 <= n; j += 8) {
      const __m512d va = _mm512_loadu_pd(a + j), vb = _mm512_loadu_pd(b + j);
      _mm512_storeu_pd(dst + 2 * j, _mm512_permutex2var_pd(va, lo, vb));
      _mm512_storeu_pd(dst + 2 * j + 8, _mm512_permutex2var_pd(va, hi, vb));
    }
  }
#elif defined(__AVX2__)
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

// G v for one column (or row) v of A - 1 values, on m <= kLanes filters at once (v[r][lane] ->
// o[a][lane]), in double. A = 4: F(2x2, 3x3); A = 6: F(2x2, 5x5) (the matrices G above).
template <int A>
static inline void wino_g_lanes(const double* const* v, double* const* o, int m) {
#pragma omp simd
  for (int i = 0; i < m; ++i) {
    if constexpr (A == 4) {
      o[0][i] = v[0][i];
      o[1][i] = 0.5 * (v[0][i] + v[1][i] + v[2][i]);
      o[2][i] = 0.5 * (v[0][i] - v[1][i] + v[2][i]);
      o[3][i] = v[2][i];
    } else {
      const double e = v[0][i] + v[2][i] + v[4][i], d = v[1][i] + v[3][i];
      o[0][i] = v[0][i] / 4;
      o[1][i] = -(e + d) / 6;
      o[2][i] = -(e - d) / 6;
      o[3][i] = (v[0][i] / 4 + v[1][i] / 2 + v[2][i] + 2 * v[3][i] + 4 * v[4][i]) / 6;
      o[4][i] = (v[0][i] / 4 - v[1][i] / 2 + v[2][i] - 2 * v[3][i] + 4 * v[4][i]) / 6;
      o[5][i] = v[4][i];
    }
  }
}

// G f G^T for m <= kLanes filters f[i] (A - 1 square, row-major; with `flip`, rotated by 180
// degrees: element rs read at R*R - 1 - rs) into out[xi * stride + i * ls], in double: the only
// rounding is the final one. The filters are the lanes of every step, so the compiler vectorises
// the transform across them.
template <int A, typename T>
void wino_filter_lanes(const T* const* f, int m, T* out, int64_t stride, int64_t ls, bool flip) {
  constexpr int R = A - 1;
  double v[R][R][kLanes], t[A][R][kLanes], u[A][A][kLanes];
  for (int rs = 0; rs < R * R; ++rs) {
    const int src = flip ? R * R - 1 - rs : rs;
    for (int i = 0; i < m; ++i) v[rs / R][rs % R][i] = static_cast<double>(f[i][src]);
  }
  const double* in[A];
  double* o[A];
  for (int s = 0; s < R; ++s) {  // G f: column s of f -> column s of t
    for (int r = 0; r < R; ++r) in[r] = v[r][s];
    for (int a = 0; a < A; ++a) o[a] = t[a][s];
    wino_g_lanes<A>(in, o, m);
  }
  for (int a = 0; a < A; ++a) {  // (G f) G^T: row a of t
    for (int s = 0; s < R; ++s) in[s] = t[a][s];
    for (int b = 0; b < A; ++b) o[b] = u[a][b];
    wino_g_lanes<A>(in, o, m);
    for (int b = 0; b < A; ++b)
      for (int i = 0; i < m; ++i) out[(A * a + b) * stride + i * ls] = static_cast<T>(u[a][b][i]);
  }
}

template void wino_filter_lanes<4, float>(const float* const*, int, float*, int64_t, int64_t, bool);
template void wino_filter_lanes<4, double>(const double* const*, int, double*, int64_t, int64_t, bool);
template void wino_filter_lanes<6, float>(const float* const*, int, float*, int64_t, int64_t, bool);
template void wino_filter_lanes<6, double>(const double* const*, int, double*, int64_t, int64_t, bool);
template void wino_store_pairs<float>(const float*, const float*, int64_t, float*);
template void wino_store_pairs<double>(const double*, const double*, int64_t, double*);
template void wino6_input_row<float>(const float*, int64_t, int64_t, float* const*);
template void wino6_input_row<double>(const double*, int64_t, int64_t, double* const*);
template void wino6_output_row<float>(const float* const*, int64_t, float, float* const*);
template void wino6_output_row<double>(const double* const*, int64_t, double, double* const*);
template void wino_input_row<float>(const float*, int64_t, int64_t, float* const*);
template void wino_input_row<double>(const double*, int64_t, int64_t, double* const*);
template void wino_output_row<float>(const float* const*, int64_t, float, float* const*);
template void wino_output_row<double>(const double* const*, int64_t, double, double* const*);

}  // namespace CNNOPS_ISA
}  // namespace cpu
}  // namespace cnnops
// clang-format on
