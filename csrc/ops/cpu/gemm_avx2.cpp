// AVX2 + FMA micro-kernels (this file alone is compiled with -mavx2 -mfma; callers reach it only
// after run-time detection, see gemm.h for the tile shapes and why).
//
// Per kk step (float): load 2 vectors of B (16 columns), then for each of the 6 rows broadcast
// one A value and issue 2 FMAs. 12 independent accumulator chains cover the FMA latency (4-5
// cycles) x 2 FMA pipes. The loop is unrolled by 4 with a prefetch of B ahead.
#include <immintrin.h>

#include "ops/cpu/gemm.h"

namespace cnnops {
namespace cpu {

void ukernel_f32_avx2(int64_t kc, const float* A, const float* B, float* C, int64_t ldc, bool accumulate) {
  __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
  __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
  __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
  __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
  __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
  __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
#define CNNOPS_STEP_F32(off)                                              \
  {                                                                       \
    const __m256 b0 = _mm256_loadu_ps(B + (off) * 16);                    \
    const __m256 b1 = _mm256_loadu_ps(B + (off) * 16 + 8);                \
    __m256 a = _mm256_broadcast_ss(A + (off) * 6 + 0);                    \
    c00 = _mm256_fmadd_ps(a, b0, c00); c01 = _mm256_fmadd_ps(a, b1, c01); \
    a = _mm256_broadcast_ss(A + (off) * 6 + 1);                           \
    c10 = _mm256_fmadd_ps(a, b0, c10); c11 = _mm256_fmadd_ps(a, b1, c11); \
    a = _mm256_broadcast_ss(A + (off) * 6 + 2);                           \
    c20 = _mm256_fmadd_ps(a, b0, c20); c21 = _mm256_fmadd_ps(a, b1, c21); \
    a = _mm256_broadcast_ss(A + (off) * 6 + 3);                           \
    c30 = _mm256_fmadd_ps(a, b0, c30); c31 = _mm256_fmadd_ps(a, b1, c31); \
    a = _mm256_broadcast_ss(A + (off) * 6 + 4);                           \
    c40 = _mm256_fmadd_ps(a, b0, c40); c41 = _mm256_fmadd_ps(a, b1, c41); \
    a = _mm256_broadcast_ss(A + (off) * 6 + 5);                           \
    c50 = _mm256_fmadd_ps(a, b0, c50); c51 = _mm256_fmadd_ps(a, b1, c51); \
  }
  int64_t k = 0;
  for (; k + 4 <= kc; k += 4) {
    _mm_prefetch(reinterpret_cast<const char*>(B + 8 * 16), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(B + 9 * 16), _MM_HINT_T0);
    CNNOPS_STEP_F32(0) CNNOPS_STEP_F32(1) CNNOPS_STEP_F32(2) CNNOPS_STEP_F32(3)
    A += 24;
    B += 64;
  }
  for (; k < kc; ++k) {
    CNNOPS_STEP_F32(0)
    A += 6;
    B += 16;
  }
#undef CNNOPS_STEP_F32
  if (accumulate) {
    c00 = _mm256_add_ps(c00, _mm256_loadu_ps(C + 0 * ldc)); c01 = _mm256_add_ps(c01, _mm256_loadu_ps(C + 0 * ldc + 8));
    c10 = _mm256_add_ps(c10, _mm256_loadu_ps(C + 1 * ldc)); c11 = _mm256_add_ps(c11, _mm256_loadu_ps(C + 1 * ldc + 8));
    c20 = _mm256_add_ps(c20, _mm256_loadu_ps(C + 2 * ldc)); c21 = _mm256_add_ps(c21, _mm256_loadu_ps(C + 2 * ldc + 8));
    c30 = _mm256_add_ps(c30, _mm256_loadu_ps(C + 3 * ldc)); c31 = _mm256_add_ps(c31, _mm256_loadu_ps(C + 3 * ldc + 8));
    c40 = _mm256_add_ps(c40, _mm256_loadu_ps(C + 4 * ldc)); c41 = _mm256_add_ps(c41, _mm256_loadu_ps(C + 4 * ldc + 8));
    c50 = _mm256_add_ps(c50, _mm256_loadu_ps(C + 5 * ldc)); c51 = _mm256_add_ps(c51, _mm256_loadu_ps(C + 5 * ldc + 8));
  }
  _mm256_storeu_ps(C + 0 * ldc, c00); _mm256_storeu_ps(C + 0 * ldc + 8, c01);
  _mm256_storeu_ps(C + 1 * ldc, c10); _mm256_storeu_ps(C + 1 * ldc + 8, c11);
  _mm256_storeu_ps(C + 2 * ldc, c20); _mm256_storeu_ps(C + 2 * ldc + 8, c21);
  _mm256_storeu_ps(C + 3 * ldc, c30); _mm256_storeu_ps(C + 3 * ldc + 8, c31);
  _mm256_storeu_ps(C + 4 * ldc, c40); _mm256_storeu_ps(C + 4 * ldc + 8, c41);
  _mm256_storeu_ps(C + 5 * ldc, c50); _mm256_storeu_ps(C + 5 * ldc + 8, c51);
}

void ukernel_f64_avx2(int64_t kc, const double* A, const double* B, double* C, int64_t ldc, bool accumulate) {
  __m256d acc[6][2];
  for (int i = 0; i < 6; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_pd();
  for (int64_t k = 0; k < kc; ++k) {
    const __m256d b0 = _mm256_loadu_pd(B), b1 = _mm256_loadu_pd(B + 4);
    for (int i = 0; i < 6; ++i) {  // fully unrolled by the compiler: constant trip count
      const __m256d a = _mm256_broadcast_sd(A + i);
      acc[i][0] = _mm256_fmadd_pd(a, b0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_pd(a, b1, acc[i][1]);
    }
    A += 6;
    B += 8;
  }
  for (int i = 0; i < 6; ++i) {
    if (accumulate) {
      acc[i][0] = _mm256_add_pd(acc[i][0], _mm256_loadu_pd(C + i * ldc));
      acc[i][1] = _mm256_add_pd(acc[i][1], _mm256_loadu_pd(C + i * ldc + 4));
    }
    _mm256_storeu_pd(C + i * ldc, acc[i][0]);
    _mm256_storeu_pd(C + i * ldc + 4, acc[i][1]);
  }
}

// Same shape as ukernel_f32_avx2, but B row kk is read in place at base + offs[kk].
void ukernel_offs_f32_avx2(int64_t kc, const float* A, const float* base, const int64_t* offs, float* C, int64_t ldc,
                           bool accumulate) {
  __m256 acc[6][2];
  for (int i = 0; i < 6; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
  for (int64_t k = 0; k < kc; ++k) {
    const float* b = base + offs[k];
    const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
    for (int i = 0; i < 6; ++i) {
      const __m256 a = _mm256_broadcast_ss(A + i);
      acc[i][0] = _mm256_fmadd_ps(a, b0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(a, b1, acc[i][1]);
    }
    A += 6;
  }
  for (int i = 0; i < 6; ++i) {
    if (accumulate) {
      acc[i][0] = _mm256_add_ps(acc[i][0], _mm256_loadu_ps(C + i * ldc));
      acc[i][1] = _mm256_add_ps(acc[i][1], _mm256_loadu_ps(C + i * ldc + 8));
    }
    _mm256_storeu_ps(C + i * ldc, acc[i][0]);
    _mm256_storeu_ps(C + i * ldc + 8, acc[i][1]);
  }
}

void ukernel_offs_f64_avx2(int64_t kc, const double* A, const double* base, const int64_t* offs, double* C,
                           int64_t ldc, bool accumulate) {
  __m256d acc[6][2];
  for (int i = 0; i < 6; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_pd();
  for (int64_t k = 0; k < kc; ++k) {
    const double* b = base + offs[k];
    const __m256d b0 = _mm256_loadu_pd(b), b1 = _mm256_loadu_pd(b + 4);
    for (int i = 0; i < 6; ++i) {
      const __m256d a = _mm256_broadcast_sd(A + i);
      acc[i][0] = _mm256_fmadd_pd(a, b0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_pd(a, b1, acc[i][1]);
    }
    A += 6;
  }
  for (int i = 0; i < 6; ++i) {
    if (accumulate) {
      acc[i][0] = _mm256_add_pd(acc[i][0], _mm256_loadu_pd(C + i * ldc));
      acc[i][1] = _mm256_add_pd(acc[i][1], _mm256_loadu_pd(C + i * ldc + 4));
    }
    _mm256_storeu_pd(C + i * ldc, acc[i][0]);
    _mm256_storeu_pd(C + i * ldc + 4, acc[i][1]);
  }
}

}  // namespace cpu
}  // namespace cnnops
