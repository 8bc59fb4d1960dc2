// AVX-512 packed GEMM micro-kernels (this file alone is compiled with -mavx512f -mavx512bw
// -mavx512vl -mavx512dq; callers reach it only after run-time detection, see gemm.h).
//
// Register tile: 14 rows x 2 zmm vectors (float 14 x 32, double 14 x 16). Per kk step: 2 loads of
// B, 14 broadcasts of A, 28 FMAs into 28 accumulators (30 of the 32 zmm registers in use).
// Why this shape (AMD Zen 4, where a zmm FMA issues as two 256-bit halves, so the FMA peak is
// AVX2's: 118 GFLOP/s per core, 235 for two): alone on one core (kc = 256, the A panel in L1) every
// candidate runs at 116-118 GFLOP/s while its B panels sit in L2 (14 x 32, 12 x 32, 8 x 48,
// 6 x 64, 16 x 16, and the AVX2 6 x 16 as well); with B streaming from L3 the AVX2 kernel drops to
// 95 and the zmm tiles hold 108-116 (half the instructions per FMA, fewer B bytes per FMA for
// the tall tiles). In the convolutions (forward through the packed path, same process,
// interleaved) the candidates came within 4% of each other and 14 x 32 was the fastest or within
// 1% of it on ResNet-50's 1x1 and 3x3/2 layers, conv1d 128 -> 128 k3 and VGG's 512-channel 3x3;
// 14-row panels also waste less of 512 / 256 output channels than 12-row ones once the edges
// run their own row count. VGG's 8x512x14x14 3x3 layer through this path reaches 191 GFLOP/s (81%
// of the measured peak, 4-5% above the AVX2 kernel), the kernels 83% of its time (perf);
// benchmarks/results/conv_cpu_avx512.md has the layers.
//
// Edges: a tile with m < 14 valid rows runs a kernel of m rows (the A panel keeps its stride of
// 14); a tile with at most 16 (float) / 8 (double) valid columns runs a one-vector kernel, so a
// 196-pixel image (6 full panels and 4 columns) computes 13 vectors, not 14; the last vector's
// columns are masked on the load and store of C. Edge and full tiles compute each element by
// the same sequence of FMAs, so results do not depend on where a tile boundary falls.
#include <immintrin.h>

#include <array>
#include <utility>

#include "ops/cpu/gemm.h"

namespace cnnops {
namespace cpu {
namespace {

constexpr int kMR = 14, kNV = 2;  // rows, vectors per row
static_assert(kMR <= kMaxMR && kNV * 16 <= kMaxNR, "gemm.h bounds the tile");

struct F32 {
  using T = float;
  using V = __m512;
  using Mask = __mmask16;
  static constexpr int W = 16;
  static V zero() { return _mm512_setzero_ps(); }
  static V load(const T* p) { return _mm512_loadu_ps(p); }
  static V load(const T* p, Mask m) { return _mm512_maskz_loadu_ps(m, p); }
  static void store(T* p, V v, Mask m) { _mm512_mask_storeu_ps(p, m, v); }
  static void store(T* p, V v) { _mm512_storeu_ps(p, v); }
  static V bcast(const T* p) { return _mm512_set1_ps(*p); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
};

struct F64 {
  using T = double;
  using V = __m512d;
  using Mask = __mmask8;
  static constexpr int W = 8;
  static V zero() { return _mm512_setzero_pd(); }
  static V load(const T* p) { return _mm512_loadu_pd(p); }
  static V load(const T* p, Mask m) { return _mm512_maskz_loadu_pd(m, p); }
  static void store(T* p, V v, Mask m) { _mm512_mask_storeu_pd(p, m, v); }
  static void store(T* p, V v) { _mm512_storeu_pd(p, v); }
  static V bcast(const T* p) { return _mm512_set1_pd(*p); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_pd(a, b, c); }
  static V add(V a, V b) { return _mm512_add_pd(a, b); }
};

// Where the operands of reduction step k lie. A: a packed panel (PackedA: kMR values per step) or
// one pointer per row plus a per-step offset (PointerA: P[i] + offs[k], values broadcast from
// wherever they are). B: a packed panel (PackedRows: NR values per step) or a row read in place
// (OffsetRows: base + offs[k]).
template <class S>
struct PackedA {
  const typename S::T* A;
  const typename S::T* operator()(int i, int64_t k) const { return A + k * kMR + i; }
};
template <class S>
struct PointerA {
  const typename S::T* const* P;
  const int64_t* offs;
  const typename S::T* operator()(int i, int64_t k) const { return P[i] + offs[k]; }
};
template <class S>
struct PackedRows {
  const typename S::T* B;
  const typename S::T* operator()(int64_t k) const { return B + k * (kNV * S::W); }
};
template <class S>
struct OffsetRows {
  const typename S::T* base;
  const int64_t* offs;
  const typename S::T* operator()(int64_t k) const { return base + offs[k]; }
};

// M rows x NV vectors of C from A rows and B rows found by `a` and `rows`. The accumulator array
// is indexed only by constants after full unrolling, so it lives in registers (checked in the
// disassembly: no stack traffic in the loop). `last` masks the columns of the last vector (all
// ones for a full tile).
template <class S, int M, int NV, bool Masked, class ARows, class Rows>
static void tile_body(int64_t kc, ARows a, Rows rows, typename S::T* C, int64_t ldc, bool accumulate,
                      typename S::Mask last) {
  using V = typename S::V;
  V acc[M][NV];
#pragma GCC unroll 32
  for (int i = 0; i < M; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[i][v] = S::zero();
  for (int64_t k = 0; k < kc; ++k) {
    const typename S::T* B = rows(k);
    V b[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) b[v] = S::load(B + v * S::W);
#pragma GCC unroll 32
    for (int i = 0; i < M; ++i) {
      const V av = S::bcast(a(i, k));
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[i][v] = S::fma(av, b[v], acc[i][v]);
    }
  }
#pragma GCC unroll 32
  for (int i = 0; i < M; ++i) {
    typename S::T* c = C + i * ldc;
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      const bool masked = Masked && v == NV - 1;
      V r = acc[i][v];
      if (accumulate) r = S::add(r, masked ? S::load(c + v * S::W, last) : S::load(c + v * S::W));
      if (masked) S::store(c + v * S::W, r, last);
      else S::store(c + v * S::W, r);
    }
  }
}

template <class S, int M, int NV, bool Masked>
static void tile_kernel(int64_t kc, const typename S::T* A, const typename S::T* B, typename S::T* C, int64_t ldc,
                        bool accumulate, typename S::Mask last) {
  tile_body<S, M, NV, Masked>(kc, PackedA<S>{A}, PackedRows<S>{B}, C, ldc, accumulate, last);
}

template <class S>
static void full_tile(int64_t kc, const typename S::T* A, const typename S::T* B, typename S::T* C, int64_t ldc,
                      bool accumulate) {
  tile_kernel<S, kMR, kNV, false>(kc, A, B, C, ldc, accumulate, 0);
}

template <class S>
using EdgeFn = void (*)(int64_t, const typename S::T*, const typename S::T*, typename S::T*, int64_t, bool,
                        typename S::Mask);

// Edge kernels by [rows - 1][vectors - 1].
template <class S, int M, int... V>
static constexpr std::array<EdgeFn<S>, kNV> edge_row(std::integer_sequence<int, V...>) {
  return {tile_kernel<S, M, V + 1, true>...};
}
template <class S, int... M>
static constexpr std::array<std::array<EdgeFn<S>, kNV>, kMR> edge_table(std::integer_sequence<int, M...>) {
  return {edge_row<S, M + 1>(std::make_integer_sequence<int, kNV>())...};
}

template <class S>
static void edge_tile(int64_t kc, const typename S::T* A, const typename S::T* B, typename S::T* C, int64_t ldc,
                      bool accumulate, int m, int n) {
  static constexpr auto table = edge_table<S>(std::make_integer_sequence<int, kMR>());
  const int nv = (n + S::W - 1) / S::W, cols = n - (nv - 1) * S::W;
  const auto last = static_cast<typename S::Mask>((1u << cols) - 1u);
  table[m - 1][nv - 1](kc, A, B, C, ldc, accumulate, last);
}

// Offset kernel (gemm.h; the slab convolution and the Winograd products): Tile<T> = 6 rows x one
// zmm vector (16 floats / 8 doubles); row kk of B read in place at base + offs[kk].
template <class S, int M>
static void offs_tile(int64_t kc, const typename S::T* A, const typename S::T* base, const int64_t* offs,
                      typename S::T* C, int64_t ldc, bool accumulate, const typename S::T* bias) {
  using V = typename S::V;
  static_assert(Tile<typename S::T>::NR == S::W, "one vector per row");
  V acc[M];
#pragma GCC unroll 16
  for (int i = 0; i < M; ++i) acc[i] = bias ? S::bcast(bias + i) : S::zero();
  for (int64_t k = 0; k < kc; ++k) {
    const V b = S::load(base + offs[k]);
#pragma GCC unroll 16
    for (int i = 0; i < M; ++i) acc[i] = S::fma(S::bcast(A + i), b, acc[i]);
    A += M;
  }
#pragma GCC unroll 16
  for (int i = 0; i < M; ++i) S::store(C + i * ldc, accumulate ? S::add(acc[i], S::load(C + i * ldc)) : acc[i]);
}

// Broadcast kernel (gemm.h): 6 pixels (values broadcast from P[j] + offs[kk]) x one zmm vector of
// output channels (the packed panel B); C is a plain 6 x NR block.
template <class S>
static void bcast_tile(int64_t kc, const typename S::T* const* P, const int64_t* offs, const typename S::T* B,
                       typename S::T* C) {
  using V = typename S::V;
  constexpr int M = Tile<typename S::T>::MR;
  V acc[M];
#pragma GCC unroll 8
  for (int j = 0; j < M; ++j) acc[j] = S::zero();
  for (int64_t k = 0; k < kc; ++k) {
    const int64_t o = offs[k];
    const V b = S::load(B);
#pragma GCC unroll 8
    for (int j = 0; j < M; ++j) acc[j] = S::fma(S::bcast(P[j] + o), b, acc[j]);
    B += S::W;
  }
#pragma GCC unroll 8
  for (int j = 0; j < M; ++j) S::store(C + j * S::W, acc[j]);
}

// Offset-B kernel of the packed tile (gemm.h): the 14 x 2-vector tile with row kk of B read in
// place at base + offs[kk], the A panel packed as for full_tile. C is a full tile.
template <class S>
static void offsb_tile(int64_t kc, const typename S::T* A, const typename S::T* base, const int64_t* offs,
                       typename S::T* C, int64_t ldc, bool accumulate) {
  tile_body<S, kMR, kNV, false>(kc, PackedA<S>{A}, OffsetRows<S>{base, offs}, C, ldc, accumulate, 0);
}

// Pointer-A kernel (gemm.h): the 14 x 2-vector tile with row i of A broadcast from P[i] + offs[kk]
// and B a packed panel. C is a full tile.
template <class S>
static void ptra_tile(int64_t kc, const typename S::T* const* P, const int64_t* offs, const typename S::T* B,
                      typename S::T* C, int64_t ldc, bool accumulate) {
  tile_body<S, kMR, kNV, false>(kc, PointerA<S>{P, offs}, PackedRows<S>{B}, C, ldc, accumulate, 0);
}

}  // namespace

template <>
UKernelOffsB<float> ukernel_offsb_avx512<float>() {
  return offsb_tile<F32>;
}
template <>
UKernelOffsB<double> ukernel_offsb_avx512<double>() {
  return offsb_tile<F64>;
}
template <>
UKernelPtrA<float> ukernel_ptra_avx512<float>() {
  return ptra_tile<F32>;
}
template <>
UKernelPtrA<double> ukernel_ptra_avx512<double>() {
  return ptra_tile<F64>;
}

void ukernel_offs_f32_avx512(int64_t kc, const float* A, const float* base, const int64_t* offs, float* C, int64_t ldc,
                             bool accumulate, const float* bias) {
  offs_tile<F32, Tile<float>::MR>(kc, A, base, offs, C, ldc, accumulate, bias);
}
void ukernel_offs_f64_avx512(int64_t kc, const double* A, const double* base, const int64_t* offs, double* C,
                             int64_t ldc, bool accumulate, const double* bias) {
  offs_tile<F64, Tile<double>::MR>(kc, A, base, offs, C, ldc, accumulate, bias);
}
template <>
UKernelOffs<float> ukernel_offs16_avx512<float>() {
  return offs_tile<F32, 16>;
}
template <>
UKernelOffs<double> ukernel_offs16_avx512<double>() {
  return offs_tile<F64, 16>;
}
void ukernel_bcast_f32_avx512(int64_t kc, const float* const* P, const int64_t* offs, const float* B, float* C) {
  bcast_tile<F32>(kc, P, offs, B, C);
}
void ukernel_bcast_f64_avx512(int64_t kc, const double* const* P, const int64_t* offs, const double* B, double* C) {
  bcast_tile<F64>(kc, P, offs, B, C);
}

GemmKernels<float> gemm_kernels_f32_avx512() {
  return GemmKernels<float>{kMR, kNV * F32::W, full_tile<F32>, edge_tile<F32>};
}

GemmKernels<double> gemm_kernels_f64_avx512() {
  return GemmKernels<double>{kMR, kNV * F64::W, full_tile<F64>, edge_tile<F64>};
}

}  // namespace cpu
}  // namespace cnnops
