// Packed GEMM building blocks shared by the convolution kernels.
//
// C (M x N) = A (M x K) * B (K x N) is computed BLIS-style: B is packed into panels of nr columns
// (row kk of a panel = nr consecutive values), A into panels of mr rows (row kk = mr values), and
// a register-blocked micro-kernel multiplies one A panel by one B panel, holding the mr x nr block
// of C in registers for the whole kc-long reduction.
//
// The register tile (mr x nr) is a property of the SIMD level, chosen at run time with the
// kernels (gemm_kernels<T>()); a driver takes it once per call and packs and multiplies with it:
//   AVX-512 (gemm_avx512.cpp): float 14 x 32, double 14 x 16 -> 28 zmm accumulators (14 rows x 2
//           vectors), 2 loads of B and 14 broadcasts of A per 28 FMAs, 30 of 32 registers;
//           edges (m < 14 rows, n < nr columns) by kernels of fewer rows / one vector and masked
//           loads and stores of C.
//   AVX2 (gemm_avx2.cpp): float 6 x 16, double 6 x 8 -> 12 ymm accumulators (6 rows x 2 vectors),
//           2 loads of B and 6 broadcasts of A per 12 FMAs: the classic AVX2 shape, 12 of 16
//           registers; edges through a full tile in scratch.
//   portable (gemm.cpp): the AVX2 shapes as plain loops.
//
// The offset and broadcast kernels below (the slab convolution and the Winograd products) keep
// the fixed tile Tile<T> on every level (with AVX-512: one zmm per row, gemm_avx512.cpp); the
// Winograd products take a 16-row offset kernel with AVX-512 (conv_winograd.cpp).
//
// A perf profile of resnet50_3x3 through the packed path (AMD EPYC, 2 cores, fp32 FMA peak 191
// GFLOP/s by cnnops._C.measure_fma_peak_gflops) puts 68% of the time in ukernel_f32_avx2, i.e.
// ~160 GFLOP/s (~83% of peak) while it runs; the rest is im2col packing. The accumulators are named variables rather
// than an array: GCC spills an array of accumulators to the stack on every iteration (10 stores per 12 FMAs).
#pragma once
#include <cstddef>
#include <cstdint>

namespace cnnops {
namespace cpu {

// The offset and broadcast kernels' register tile (all levels).
template <typename T> struct Tile;
template <> struct Tile<float> {
  static constexpr int MR = 6, NR = 16;
};
template <> struct Tile<double> {
  static constexpr int MR = 6, NR = 8;
};

// The largest packed-GEMM tile of any level (bounds for stack scratch).
constexpr int kMaxMR = 14, kMaxNR = 32;

// C[i*ldc + j] (i < MR, j < NR) = (accumulate ? C : 0) + sum_kk A[kk*MR + i] * B[kk*NR + j]
template <typename T>
using UKernel = void (*)(int64_t kc, const T* A, const T* B, T* C, int64_t ldc, bool accumulate);

// The first m <= mr rows and n <= nr columns of the same product (the rest not stored).
template <typename T>
using UKernelEdge = void (*)(int64_t kc, const T* A, const T* B, T* C, int64_t ldc, bool accumulate, int m, int n);

// The packed GEMM of one SIMD level: its register tile and kernels.
template <typename T>
struct GemmKernels {
  int mr, nr;           // A panels of mr rows, B panels of nr columns
  UKernel<T> full;      // a whole mr x nr tile
  UKernelEdge<T> edge;  // a partial tile
  // Runs the tile at (m, n) valid rows / columns through whichever of the two fits.
  void tile(int64_t kc, const T* A, const T* B, T* C, int64_t ldc, bool accumulate, int m, int n) const {
    if (m == mr && n == nr) full(kc, A, B, C, ldc, accumulate);
    else edge(kc, A, B, C, ldc, accumulate, m, n);
  }
};
template <typename T> GemmKernels<T> gemm_kernels();  // for the current SIMD level

// "Offset" variant for the small-channel convolution: row kk of the B panel is read in place at
// base + offs[kk] (NR consecutive values) instead of from a packed panel. A non-null `bias` (MR
// values) starts row i's accumulators at bias[i], so the convolution's bias costs no extra pass.
template <typename T>
using UKernelOffs = void (*)(int64_t kc, const T* A, const T* base, const int64_t* offs, T* C, int64_t ldc,
                             bool accumulate, const T* bias);
template <typename T> UKernelOffs<T> ukernel_offs();

// "Broadcast" variant, vectorised over output channels instead of pixels: 6 pixels x NR output
// channels. C[j*NR + i] = sum_kk P[j][offs[kk]] * B[kk*NR + i]: each pixel's input values are
// broadcast from wherever they lie (any 6 output positions, so rows of any width waste nothing),
// and B is a packed NR-channel weight panel. C is a plain 6 x NR block (no accumulate).
template <typename T>
using UKernelBcast = void (*)(int64_t kc, const T* const* P, const int64_t* offs, const T* B, T* C);
template <typename T> UKernelBcast<T> ukernel_bcast();
// The float broadcast kernel for a full tile of six consecutive output pixels, storing straight
// into the NCHW output: y[i * ycs + j] = sum + bias[i] for channels i < kn (<= NR) and pixels j < 6;
// `bias` is null or NR readable values. Null without AVX2 (callers store from the plain tile).
using UKernelBcastStore = void (*)(int64_t kc, const float* const* P, const int64_t* offs, const float* B,
                                   const float* bias, float* y, int64_t ycs, int kn);
UKernelBcastStore ukernel_bcast_store_f32();

// "Flat-row" variant for stride-1 convolutions with short rows (conv_smallc.cpp): MRF output
// channels x NV vectors of 8 consecutive positions of a block's flattened slab, where a slab row
// is wider than an output row by a few padding columns (Ws - Q), so a vector may hold the end of
// one output row, a padding lane or two and the start of the next. Each vector is stored by its
// FlatStore entry: the valid lanes (ascending) go to consecutive output positions from `dst` (the
// end of row p and the start of row p + 1 are adjacent in NCHW), compacted by a lane permutation.
//   mode 0: all 8 lanes valid, a plain store;
//   mode 1: n < 8 valid, permuted and stored 8-wide: the n values land at dst..dst+n-1 and the
//           spare lanes spill onto the next 8 - n positions, which a later vector of the same
//           block (same thread, stored later) overwrites;
//   mode 2: like 1 but a masked store of n lanes (the block's last vectors: no spill past it);
//   mode 3: no valid lane (past the block), nothing stored.
// Channel a < mr of the panel goes to y + a * ycs; bias (MRF values, or null) seeds the sums.
// One call runs `ns` strips in order: strip i at base + i * 8 * NV, stored by st[i * NV ..].
struct alignas(32) FlatStore {
  int32_t perm[8];
  int64_t dst;
  int32_t n, mode;
};
using UKernelFlat = void (*)(int64_t ns, int64_t kc, const float* A, const float* base, const int64_t* offs,
                             const float* bias, float* y, int64_t ycs, int mr, const FlatStore* st);
// The flat kernel with MRF = 4 (NV = 3) or MRF = 6 (NV = 2); null without AVX2 (callers then
// take the row-strip path).
UKernelFlat ukernel_flat_f32(int mrf);

// Pack rows [i0, i0+m) x cols [k0, k0+kc) of A (element (i,k) at A[i*rs + k*cs]) into mr-row
// panels: out[p*kc*mr + kk*mr + i]; rows past m are zero.
template <typename T>
void pack_a(int mr, const T* A, int64_t rs, int64_t cs, int64_t m, int64_t kc, T* out);
// Pack B (element (k,j) at B[k*rs + j*cs]) rows [0,kc) x cols [0,n) into nr-column panels:
// out[p*kc*nr + kk*nr + j]; columns past n are zero.
template <typename T>
void pack_b(int nr, const T* B, int64_t rs, int64_t cs, int64_t kc, int64_t n, T* out);

// Serial strided GEMM: C (M x N, row stride ldc) (+)= A * B with A, B described by strides.
// Packs internally (scratch from the thread-local pool). Used by the backward passes.
template <typename T>
void gemm(int64_t M, int64_t N, int64_t K, const T* A, int64_t rsa, int64_t csa, const T* B, int64_t rsb, int64_t csb,
          T* C, int64_t ldc, bool accumulate);

// Reduction chunk of the packed GEMMs: A panels hold KC columns at a time.
constexpr int64_t kGemmKC = 256;
// Pack all of A (M x K) chunk by chunk (KC columns each; chunk k0 at out + k0 * Mp with Mp = M
// rounded up to mr), so one packing serves many GEMMs with the same A.
template <typename T>
void pack_a_full(int mr, const T* A, int64_t rs, int64_t cs, int64_t M, int64_t K, T* out);
// The serial GEMM with A already packed by pack_a_full (with gk.mr).
template <typename T>
void gemm_packed_a(const GemmKernels<T>& gk, int64_t M, int64_t N, int64_t K, const T* apack, const T* B, int64_t rsb,
                   int64_t csb, T* C, int64_t ldc, bool accumulate);

// Per-thread scratch that grows and is reused across calls (no allocation in hot loops), in
// slots 0 .. kScratchSlots - 1. The block stays valid until the next call with the same slot on
// the same thread. A CNNOPS_SANITIZE
// build allocates a fresh block of exactly `bytes` on every call instead.
constexpr int kScratchSlots = 6;
void* thread_scratch(int slot, size_t bytes);

// The AVX-512 packed GEMM (defined only when the AVX-512 translation unit is compiled).
GemmKernels<float> gemm_kernels_f32_avx512();
GemmKernels<double> gemm_kernels_f64_avx512();
void ukernel_offs_f32_avx512(int64_t kc, const float* A, const float* base, const int64_t* offs, float* C, int64_t ldc,
                             bool accumulate, const float* bias);
void ukernel_offs_f64_avx512(int64_t kc, const double* A, const double* base, const int64_t* offs, double* C,
                             int64_t ldc, bool accumulate, const double* bias);
// The offset kernel with 16 rows x one zmm vector (the Winograd products' AVX-512 kernel; A
// panels of 16 rows).
template <typename T> UKernelOffs<T> ukernel_offs16_avx512();
// The packed tile with B read in place (AVX-512: 14 rows x 2 zmm vectors): C (14 x NR, row stride
// ldc) (+)= A (a 14-row packed panel, pack_a layout) x B, row kk of B the NR values at
// base + offs[kk]. Full tiles only (callers pad A's rows and B's columns).
template <typename T>
using UKernelOffsB = void (*)(int64_t kc, const T* A, const T* base, const int64_t* offs, T* C, int64_t ldc,
                              bool accumulate);
template <typename T> UKernelOffsB<T> ukernel_offsb_avx512();
// The same tile with A's rows broadcast from anywhere: row i's value at step kk is
// P[i][offs[kk]]; B is a packed panel (pack_b layout, 2 vectors per step). Full tiles only.
template <typename T>
using UKernelPtrA = void (*)(int64_t kc, const T* const* P, const int64_t* offs, const T* B, T* C, int64_t ldc,
                             bool accumulate);
template <typename T> UKernelPtrA<T> ukernel_ptra_avx512();
void ukernel_bcast_f32_avx512(int64_t kc, const float* const* P, const int64_t* offs, const float* B, float* C);
void ukernel_bcast_f64_avx512(int64_t kc, const double* const* P, const int64_t* offs, const double* B, double* C);

// The AVX2 variants (defined only when the AVX2 translation unit is compiled).
void ukernel_f32_avx2(int64_t kc, const float* A, const float* B, float* C, int64_t ldc, bool accumulate);
void ukernel_f64_avx2(int64_t kc, const double* A, const double* B, double* C, int64_t ldc, bool accumulate);
void ukernel_offs_f32_avx2(int64_t kc, const float* A, const float* base, const int64_t* offs, float* C, int64_t ldc,
                           bool accumulate, const float* bias);
void ukernel_offs_f64_avx2(int64_t kc, const double* A, const double* base, const int64_t* offs, double* C, int64_t ldc,
                           bool accumulate, const double* bias);
void ukernel_flat_f32_avx2_4x3(int64_t ns, int64_t kc, const float* A, const float* base, const int64_t* offs,
                               const float* bias, float* y, int64_t ycs, int mr, const FlatStore* st);
void ukernel_flat_f32_avx2_6x2(int64_t ns, int64_t kc, const float* A, const float* base, const int64_t* offs,
                               const float* bias, float* y, int64_t ycs, int mr, const FlatStore* st);
void ukernel_bcast_f32_avx2(int64_t kc, const float* const* P, const int64_t* offs, const float* B, float* C);
void ukernel_bcast_store_f32_avx2(int64_t kc, const float* const* P, const int64_t* offs, const float* B,
                                  const float* bias, float* y, int64_t ycs, int kn);
void ukernel_bcast_f64_avx2(int64_t kc, const double* const* P, const int64_t* offs, const double* B, double* C);

}  // namespace cpu
}  // namespace cnnops
