// AVX2 + FMA micro-kernels (this file alone is compiled with -mavx2 -mfma; callers reach it only
// after run-time detection, see gemm.h for the tile shapes and why).
//
// Per kk step (float): load 2 vectors of B (16 columns), then for each of the 6 rows broadcast
// one A value and issue 2 FMAs. 12 independent accumulator chains cover the FMA latency (4-5
// cycles) x 2 FMA pipes. The loop is unrolled by 4 with a prefetch of B ahead. Alone on
// L1-resident panels (kc = 256, one core) it runs at 88-92 GFLOP/s of the ~97 the FMA loop
// reaches, as fast as a hand-scheduled inline-assembly version of the same loop. The C tile is
// not prefetched: doing so at the start of each call (to hide its load for `accumulate`) makes
// the convolutions 5-9% slower.
// clang-format off: the statements are laid out by hand as the register tiles and transform
// matrices they compute, several to a line.
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

// The remaining kernels share one body: 12 named accumulators (named variables, not an array:
// GCC spills an accumulator array to the stack on every iteration), B row kk at `ROW(k)`.
#define CNNOPS_UKERNEL_BODY(VT, SET0, LOAD, STORE, BCAST, FMA, ADD, W, ROW)                      \
  VT c00 = SET0(), c01 = SET0(), c10 = SET0(), c11 = SET0(), c20 = SET0(), c21 = SET0();           \
  VT c30 = SET0(), c31 = SET0(), c40 = SET0(), c41 = SET0(), c50 = SET0(), c51 = SET0();           \
  if (bias) {                                                                                      \
    c00 = c01 = BCAST(bias + 0); c10 = c11 = BCAST(bias + 1); c20 = c21 = BCAST(bias + 2);         \
    c30 = c31 = BCAST(bias + 3); c40 = c41 = BCAST(bias + 4); c50 = c51 = BCAST(bias + 5);         \
  }                                                                                                \
  for (int64_t k = 0; k < kc; ++k) {                                                               \
    const auto* b = ROW(k);                                                                        \
    const VT b0 = LOAD(b), b1 = LOAD(b + W);                                                       \
    VT a = BCAST(A + 0); c00 = FMA(a, b0, c00); c01 = FMA(a, b1, c01);                            \
    a = BCAST(A + 1); c10 = FMA(a, b0, c10); c11 = FMA(a, b1, c11);                                \
    a = BCAST(A + 2); c20 = FMA(a, b0, c20); c21 = FMA(a, b1, c21);                                \
    a = BCAST(A + 3); c30 = FMA(a, b0, c30); c31 = FMA(a, b1, c31);                                \
    a = BCAST(A + 4); c40 = FMA(a, b0, c40); c41 = FMA(a, b1, c41);                                \
    a = BCAST(A + 5); c50 = FMA(a, b0, c50); c51 = FMA(a, b1, c51);                                \
    A += 6;                                                                                        \
  }                                                                                                \
  if (accumulate) {                                                                                \
    c00 = ADD(c00, LOAD(C + 0 * ldc)); c01 = ADD(c01, LOAD(C + 0 * ldc + W));                      \
    c10 = ADD(c10, LOAD(C + 1 * ldc)); c11 = ADD(c11, LOAD(C + 1 * ldc + W));                      \
    c20 = ADD(c20, LOAD(C + 2 * ldc)); c21 = ADD(c21, LOAD(C + 2 * ldc + W));                      \
    c30 = ADD(c30, LOAD(C + 3 * ldc)); c31 = ADD(c31, LOAD(C + 3 * ldc + W));                      \
    c40 = ADD(c40, LOAD(C + 4 * ldc)); c41 = ADD(c41, LOAD(C + 4 * ldc + W));                      \
    c50 = ADD(c50, LOAD(C + 5 * ldc)); c51 = ADD(c51, LOAD(C + 5 * ldc + W));                      \
  }                                                                                                \
  STORE(C + 0 * ldc, c00); STORE(C + 0 * ldc + W, c01); STORE(C + 1 * ldc, c10);                   \
  STORE(C + 1 * ldc + W, c11); STORE(C + 2 * ldc, c20); STORE(C + 2 * ldc + W, c21);               \
  STORE(C + 3 * ldc, c30); STORE(C + 3 * ldc + W, c31); STORE(C + 4 * ldc, c40);                   \
  STORE(C + 4 * ldc + W, c41); STORE(C + 5 * ldc, c50); STORE(C + 5 * ldc + W, c51);

#define CNNOPS_PACKED_ROW(k) (B + (k) * NRW)
#define CNNOPS_OFFSET_ROW(k) (base + offs[k])

void ukernel_f64_avx2(int64_t kc, const double* A, const double* B, double* C, int64_t ldc, bool accumulate) {
  constexpr int64_t NRW = 8;
  const double* const bias = nullptr;
  CNNOPS_UKERNEL_BODY(__m256d, _mm256_setzero_pd, _mm256_loadu_pd, _mm256_storeu_pd, _mm256_broadcast_sd,
                      _mm256_fmadd_pd, _mm256_add_pd, 4, CNNOPS_PACKED_ROW)
}

void ukernel_offs_f32_avx2(int64_t kc, const float* A, const float* base, const int64_t* offs, float* C, int64_t ldc,
                           bool accumulate, const float* bias) {
  CNNOPS_UKERNEL_BODY(__m256, _mm256_setzero_ps, _mm256_loadu_ps, _mm256_storeu_ps, _mm256_broadcast_ss,
                      _mm256_fmadd_ps, _mm256_add_ps, 8, CNNOPS_OFFSET_ROW)
}

void ukernel_offs_f64_avx2(int64_t kc, const double* A, const double* base, const int64_t* offs, double* C,
                           int64_t ldc, bool accumulate, const double* bias) {
  CNNOPS_UKERNEL_BODY(__m256d, _mm256_setzero_pd, _mm256_loadu_pd, _mm256_storeu_pd, _mm256_broadcast_sd,
                      _mm256_fmadd_pd, _mm256_add_pd, 4, CNNOPS_OFFSET_ROW)
}

// Broadcast kernel (gemm.h): the 6 "rows" are pixels whose input values are broadcast from six
// independent pointers at the same tap offset; B is the packed weight panel.
#define CNNOPS_BCAST_LOOP(VT, SET0, LOAD, BCAST, FMA, W)                                           \
  const auto *p0 = P[0], *p1 = P[1], *p2 = P[2], *p3 = P[3], *p4 = P[4], *p5 = P[5];               \
  VT c00 = SET0(), c01 = SET0(), c10 = SET0(), c11 = SET0(), c20 = SET0(), c21 = SET0();           \
  VT c30 = SET0(), c31 = SET0(), c40 = SET0(), c41 = SET0(), c50 = SET0(), c51 = SET0();           \
  for (int64_t k = 0; k < kc; ++k) {                                                               \
    const int64_t o = offs[k];                                                                     \
    const VT b0 = LOAD(B), b1 = LOAD(B + W);                                                       \
    VT a = BCAST(p0 + o); c00 = FMA(a, b0, c00); c01 = FMA(a, b1, c01);                            \
    a = BCAST(p1 + o); c10 = FMA(a, b0, c10); c11 = FMA(a, b1, c11);                               \
    a = BCAST(p2 + o); c20 = FMA(a, b0, c20); c21 = FMA(a, b1, c21);                               \
    a = BCAST(p3 + o); c30 = FMA(a, b0, c30); c31 = FMA(a, b1, c31);                               \
    a = BCAST(p4 + o); c40 = FMA(a, b0, c40); c41 = FMA(a, b1, c41);                               \
    a = BCAST(p5 + o); c50 = FMA(a, b0, c50); c51 = FMA(a, b1, c51);                               \
    B += 2 * W;                                                                                    \
  }
#define CNNOPS_BCAST_BODY(VT, SET0, LOAD, STORE, BCAST, FMA, W)                                    \
  CNNOPS_BCAST_LOOP(VT, SET0, LOAD, BCAST, FMA, W)                                                 \
  STORE(C + 0 * W, c00); STORE(C + 1 * W, c01); STORE(C + 2 * W, c10); STORE(C + 3 * W, c11);      \
  STORE(C + 4 * W, c20); STORE(C + 5 * W, c21); STORE(C + 6 * W, c30); STORE(C + 7 * W, c31);      \
  STORE(C + 8 * W, c40); STORE(C + 9 * W, c41); STORE(C + 10 * W, c50); STORE(C + 11 * W, c51);

void ukernel_bcast_f32_avx2(int64_t kc, const float* const* P, const int64_t* offs, const float* B, float* C) {
  CNNOPS_BCAST_BODY(__m256, _mm256_setzero_ps, _mm256_loadu_ps, _mm256_storeu_ps, _mm256_broadcast_ss,
                    _mm256_fmadd_ps, 8)
}

void ukernel_bcast_f64_avx2(int64_t kc, const double* const* P, const int64_t* offs, const double* B, double* C) {
  CNNOPS_BCAST_BODY(__m256d, _mm256_setzero_pd, _mm256_loadu_pd, _mm256_storeu_pd, _mm256_broadcast_sd,
                    _mm256_fmadd_pd, 4)
}

// Flat-row kernel (gemm.h): MRF channels x NV vectors; per tap NV loads of the slab, MRF weight
// broadcasts and MRF * NV FMAs (4 x 3: 7 loads per 12 FMAs). The accumulator array is indexed
// only by constants after full unrolling, so it lives in registers (checked in the disassembly:
// no stack traffic in the loop). In MNIST conv1 it runs at ~84% of the FMA peak (perf profile;
// conv_smallc.cpp has the layer's figures).
template <int MRF, int NV>
static inline void flat_kernel(int64_t ns, int64_t kc, const float* A, const float* base, const int64_t* offs,
                               const float* bias, float* y, int64_t ycs, int mr, const FlatStore* st) {
  const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (int64_t si = 0; si < ns; ++si, base += 8 * NV, st += NV) {
    __m256 acc[MRF][NV];
#pragma GCC unroll 8
    for (int a = 0; a < MRF; ++a) {
      const __m256 init = bias ? _mm256_broadcast_ss(bias + a) : _mm256_setzero_ps();
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) acc[a][j] = init;
    }
    const float* ap = A;
    for (int64_t k = 0; k < kc; ++k) {
      const float* b = base + offs[k];
      __m256 bv[NV];
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) bv[j] = _mm256_loadu_ps(b + 8 * j);
#pragma GCC unroll 8
      for (int a = 0; a < MRF; ++a) {
        const __m256 av = _mm256_broadcast_ss(ap + a);
#pragma GCC unroll 4
        for (int j = 0; j < NV; ++j) acc[a][j] = _mm256_fmadd_ps(av, bv[j], acc[a][j]);
      }
      ap += MRF;
    }
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) {
      const FlatStore& s = st[j];
      float* dst = y + s.dst;
      if (s.mode == 0) {
#pragma GCC unroll 8
        for (int a = 0; a < MRF; ++a)
          if (a < mr) _mm256_storeu_ps(dst + a * ycs, acc[a][j]);
      } else if (s.mode != 3) {
        const __m256i perm = _mm256_load_si256(reinterpret_cast<const __m256i*>(s.perm));
        const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(s.n), lanes);
#pragma GCC unroll 8
        for (int a = 0; a < MRF; ++a) {
          if (a >= mr) continue;
          const __m256 v = _mm256_permutevar8x32_ps(acc[a][j], perm);
          if (s.mode == 1) _mm256_storeu_ps(dst + a * ycs, v);
          else _mm256_maskstore_ps(dst + a * ycs, mask, v);
        }
      }
    }
  }
}

void ukernel_flat_f32_avx2_4x3(int64_t ns, int64_t kc, const float* A, const float* base, const int64_t* offs,
                               const float* bias, float* y, int64_t ycs, int mr, const FlatStore* st) {
  flat_kernel<4, 3>(ns, kc, A, base, offs, bias, y, ycs, mr, st);
}

void ukernel_flat_f32_avx2_6x2(int64_t ns, int64_t kc, const float* A, const float* base, const int64_t* offs,
                               const float* bias, float* y, int64_t ycs, int mr, const FlatStore* st) {
  flat_kernel<6, 2>(ns, kc, A, base, offs, bias, y, ycs, mr, st);
}

// Broadcast kernel that stores its 6 x 16 tile straight into the NCHW output (six consecutive
// pixels of each of the first kn channels, at y + i * ycs for channel i), transposed in registers:
// per 8 channels, pixels 0-3 by a 4 x 8 unpack/shuffle transpose (one 16-byte store per channel)
// and pixels 4-5 by one unpack (one 8-byte store per channel). `bias` holds 16 values (padded).
static inline void store_six_pixels(__m256 r0, __m256 r1, __m256 r2, __m256 r3, __m256 r4, __m256 r5,
                                    float* y, int64_t ycs, int kn) {
  const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
  const __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
  // u[i] holds channel i (low half) and channel i + 4 (high half), pixels 0-3
  const __m256 u[4] = {_mm256_shuffle_ps(t0, t2, 0x44), _mm256_shuffle_ps(t0, t2, 0xEE),
                       _mm256_shuffle_ps(t1, t3, 0x44), _mm256_shuffle_ps(t1, t3, 0xEE)};
  // v[0]: channels 0, 1 (low) and 4, 5 (high), pixels 4-5 as pairs; v[1]: channels 2, 3 and 6, 7
  const __m256 v[2] = {_mm256_unpacklo_ps(r4, r5), _mm256_unpackhi_ps(r4, r5)};
  for (int i = 0; i < 8 && i < kn; ++i) {
    const __m128 lo = (i < 4) ? _mm256_castps256_ps128(u[i & 3]) : _mm256_extractf128_ps(u[i & 3], 1);
    const __m128 pv = (i < 4) ? _mm256_castps256_ps128(v[(i >> 1) & 1]) : _mm256_extractf128_ps(v[(i >> 1) & 1], 1);
    float* d = y + i * ycs;
    _mm_storeu_ps(d, lo);
    if (i & 1) _mm_storeh_pi(reinterpret_cast<__m64*>(d + 4), pv);
    else _mm_storel_pi(reinterpret_cast<__m64*>(d + 4), pv);
  }
}

void ukernel_bcast_store_f32_avx2(int64_t kc, const float* const* P, const int64_t* offs, const float* B,
                                  const float* bias, float* y, int64_t ycs, int kn) {
  CNNOPS_BCAST_LOOP(__m256, _mm256_setzero_ps, _mm256_loadu_ps, _mm256_broadcast_ss, _mm256_fmadd_ps, 8)
  if (bias) {
    const __m256 b0 = _mm256_loadu_ps(bias), b1 = _mm256_loadu_ps(bias + 8);
    c00 = _mm256_add_ps(c00, b0); c10 = _mm256_add_ps(c10, b0); c20 = _mm256_add_ps(c20, b0);
    c30 = _mm256_add_ps(c30, b0); c40 = _mm256_add_ps(c40, b0); c50 = _mm256_add_ps(c50, b0);
    c01 = _mm256_add_ps(c01, b1); c11 = _mm256_add_ps(c11, b1); c21 = _mm256_add_ps(c21, b1);
    c31 = _mm256_add_ps(c31, b1); c41 = _mm256_add_ps(c41, b1); c51 = _mm256_add_ps(c51, b1);
  }
  store_six_pixels(c00, c10, c20, c30, c40, c50, y, ycs, kn);
  if (kn > 8) store_six_pixels(c01, c11, c21, c31, c41, c51, y + 8 * ycs, ycs, kn - 8);
}

#undef CNNOPS_BCAST_LOOP
#undef CNNOPS_BCAST_BODY
#undef CNNOPS_UKERNEL_BODY
#undef CNNOPS_PACKED_ROW
#undef CNNOPS_OFFSET_ROW

}  // namespace cpu
}  // namespace cnnops
// clang-format on
