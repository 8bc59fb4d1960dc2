// Portable micro-kernels, packing routines and the serial strided GEMM driver (see gemm.h).
#include "ops/cpu/gemm.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

#include "core/cpu_features.h"
#include "core/error.h"

namespace cnnops {
namespace cpu {

// Portable kernel: same panel layout, plain loops the compiler can vectorise for the baseline ISA.
template <typename T, int MR, int NR>
static void ukernel_portable(int64_t kc, const T* A, const T* B, T* C, int64_t ldc, bool accumulate) {
  T acc[MR][NR] = {};
  for (int64_t k = 0; k < kc; ++k) {
    for (int i = 0; i < MR; ++i) {
      const T a = A[k * MR + i];
      for (int j = 0; j < NR; ++j) acc[i][j] += a * B[k * NR + j];
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) C[i * ldc + j] = accumulate ? C[i * ldc + j] + acc[i][j] : acc[i][j];
}

template <typename T>
static void ukernel_offs_portable(int64_t kc, const T* A, const T* base, const int64_t* offs, T* C, int64_t ldc,
                                  bool accumulate, const T* bias) {
  constexpr int MR = Tile<T>::MR, NR = Tile<T>::NR;
  T acc[MR][NR] = {};
  if (bias)
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j) acc[i][j] = bias[i];
  for (int64_t k = 0; k < kc; ++k) {
    const T* b = base + offs[k];
    for (int i = 0; i < MR; ++i) {
      const T a = A[k * MR + i];
      for (int j = 0; j < NR; ++j) acc[i][j] += a * b[j];
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) C[i * ldc + j] = accumulate ? C[i * ldc + j] + acc[i][j] : acc[i][j];
}

template <typename T>
static void ukernel_bcast_portable(int64_t kc, const T* const* P, const int64_t* offs, const T* B, T* C) {
  constexpr int MR = Tile<T>::MR, NR = Tile<T>::NR;
  T acc[MR][NR] = {};
  for (int64_t k = 0; k < kc; ++k) {
    const int64_t o = offs[k];
    for (int j = 0; j < MR; ++j) {
      const T a = P[j][o];
      for (int i = 0; i < NR; ++i) acc[j][i] += a * B[k * NR + i];
    }
  }
  for (int j = 0; j < MR; ++j)
    for (int i = 0; i < NR; ++i) C[j * NR + i] = acc[j][i];
}

template <>
UKernelBcast<float> ukernel_bcast<float>() {
#ifdef CNNOPS_HAVE_AVX512_TU
  if (use_avx512()) return ukernel_bcast_f32_avx512;
#endif
#ifdef CNNOPS_HAVE_AVX2_TU
  if (use_avx2()) return ukernel_bcast_f32_avx2;
#endif
  return ukernel_bcast_portable<float>;
}

template <>
UKernelBcast<double> ukernel_bcast<double>() {
#ifdef CNNOPS_HAVE_AVX512_TU
  if (use_avx512()) return ukernel_bcast_f64_avx512;
#endif
#ifdef CNNOPS_HAVE_AVX2_TU
  if (use_avx2()) return ukernel_bcast_f64_avx2;
#endif
  return ukernel_bcast_portable<double>;
}

UKernelBcastStore ukernel_bcast_store_f32() {
#ifdef CNNOPS_HAVE_AVX2_TU
  if (use_avx2()) return ukernel_bcast_store_f32_avx2;
#endif
  return nullptr;
}

UKernelFlat ukernel_flat_f32(int mrf) {
#ifdef CNNOPS_HAVE_AVX2_TU
  if (use_avx2()) return mrf == 4 ? ukernel_flat_f32_avx2_4x3 : ukernel_flat_f32_avx2_6x2;
#endif
  (void)mrf;
  return nullptr;
}

template <>
UKernelOffs<float> ukernel_offs<float>() {
#ifdef CNNOPS_HAVE_AVX512_TU
  if (use_avx512()) return ukernel_offs_f32_avx512;
#endif
#ifdef CNNOPS_HAVE_AVX2_TU
  if (use_avx2()) return ukernel_offs_f32_avx2;
#endif
  return ukernel_offs_portable<float>;
}

template <>
UKernelOffs<double> ukernel_offs<double>() {
#ifdef CNNOPS_HAVE_AVX512_TU
  if (use_avx512()) return ukernel_offs_f64_avx512;
#endif
#ifdef CNNOPS_HAVE_AVX2_TU
  if (use_avx2()) return ukernel_offs_f64_avx2;
#endif
  return ukernel_offs_portable<double>;
}

// A partial tile of a kernel without edge variants: the full tile into scratch, then the valid
// part added or stored.
template <typename T, int MR, int NR, UKernel<T> K>
static void edge_via_scratch(int64_t kc, const T* A, const T* B, T* C, int64_t ldc, bool accumulate, int m, int n) {
  alignas(64) T tmp[MR * NR];
  K(kc, A, B, tmp, NR, false);
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) C[i * ldc + j] = accumulate ? C[i * ldc + j] + tmp[i * NR + j] : tmp[i * NR + j];
}

template <typename T, int MR, int NR, UKernel<T> K>
static GemmKernels<T> kernels_with_scratch_edges() {
  return GemmKernels<T>{MR, NR, K, edge_via_scratch<T, MR, NR, K>};
}

template <>
GemmKernels<float> gemm_kernels<float>() {
#ifdef CNNOPS_HAVE_AVX512_TU
  if (use_avx512()) return gemm_kernels_f32_avx512();
#endif
#ifdef CNNOPS_HAVE_AVX2_TU
  if (use_avx2()) return kernels_with_scratch_edges<float, 6, 16, ukernel_f32_avx2>();
#endif
  return kernels_with_scratch_edges<float, 6, 16, ukernel_portable<float, 6, 16>>();
}

template <>
GemmKernels<double> gemm_kernels<double>() {
#ifdef CNNOPS_HAVE_AVX512_TU
  if (use_avx512()) return gemm_kernels_f64_avx512();
#endif
#ifdef CNNOPS_HAVE_AVX2_TU
  if (use_avx2()) return kernels_with_scratch_edges<double, 6, 8, ukernel_f64_avx2>();
#endif
  return kernels_with_scratch_edges<double, 6, 8, ukernel_portable<double, 6, 8>>();
}

template <typename T>
void pack_a(int MR, const T* A, int64_t rs, int64_t cs, int64_t m, int64_t kc, T* out) {
  for (int64_t i0 = 0; i0 < m; i0 += MR) {
    const int64_t mr = std::min<int64_t>(MR, m - i0);
    for (int64_t k = 0; k < kc; ++k) {
      for (int64_t i = 0; i < mr; ++i) out[k * MR + i] = A[(i0 + i) * rs + k * cs];
      for (int64_t i = mr; i < MR; ++i) out[k * MR + i] = T(0);
    }
    out += kc * MR;
  }
}

template <typename T>
void pack_b(int NR, const T* B, int64_t rs, int64_t cs, int64_t kc, int64_t n, T* out) {
  for (int64_t j0 = 0; j0 < n; j0 += NR) {
    const int64_t nr = std::min<int64_t>(NR, n - j0);
    for (int64_t k = 0; k < kc; ++k) {
      T* o = out + k * NR;
      const T* b = B + k * rs + j0 * cs;
      if (cs == 1) {
        std::memcpy(o, b, sizeof(T) * nr);
      } else {
        for (int64_t j = 0; j < nr; ++j) o[j] = b[j * cs];
      }
      for (int64_t j = nr; j < NR; ++j) o[j] = T(0);
    }
    out += kc * NR;
  }
}

void* thread_scratch(int slot, size_t bytes) {
  struct Pool {
    void* p[kScratchSlots] = {};
    size_t n[kScratchSlots] = {};
    ~Pool() {
      for (void* q : p) std::free(q);
    }
  };
  static thread_local Pool pool;
#ifdef CNNOPS_SANITIZE
  // Sanitizer build: a fresh block of exactly `bytes` on every call, so AddressSanitizer sees
  // its true end and catches a pointer kept from an earlier call.
  std::free(pool.p[slot]);
  pool.p[slot] = nullptr;
  if (posix_memalign(&pool.p[slot], 64, bytes) != 0) throw_alloc_failure(bytes, "kernel scratch memory");
#else
  if (pool.n[slot] < bytes) {
    std::free(pool.p[slot]);
    size_t alloc = ((bytes + 4095) / 4096) * 4096;
    pool.p[slot] = std::aligned_alloc(64, alloc);
    if (!pool.p[slot]) {
      pool.n[slot] = 0;
      throw_alloc_failure(alloc, "kernel scratch memory");
    }
    pool.n[slot] = alloc;
  }
#endif
  return pool.p[slot];
}

// Serial driver: block K by KC (A and B panels stay in L1/L2) and N by NC.
// Layout of a whole packed A (M x K): chunk k0 (KC columns) at apack + k0 * Mp, in it panel i / mr
// at (i / mr) * kc * mr -- pack_a applied chunk by chunk.
template <typename T>
void pack_a_full(int mr, const T* A, int64_t rs, int64_t cs, int64_t M, int64_t K, T* out) {
  const int64_t Mp = (M + mr - 1) / mr * mr;
  for (int64_t k0 = 0; k0 < K; k0 += kGemmKC)
    pack_a(mr, A + k0 * cs, rs, cs, M, std::min(kGemmKC, K - k0), out + k0 * Mp);
}

template <typename T>
void gemm_packed_a(const GemmKernels<T>& gk, int64_t M, int64_t N, int64_t K, const T* apack, const T* B, int64_t rsb,
                   int64_t csb, T* C, int64_t ldc, bool accumulate) {
  const int MR = gk.mr, NR = gk.nr;
  const int64_t NC = 384 / NR * NR;
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    if (!accumulate)
      for (int64_t i = 0; i < M; ++i) std::fill(C + i * ldc, C + i * ldc + N, T(0));
    return;
  }
  const int64_t Mp = (M + MR - 1) / MR * MR;
  T* bpack = static_cast<T*>(thread_scratch(3, sizeof(T) * kGemmKC * (NC + NR)));
  for (int64_t k0 = 0; k0 < K; k0 += kGemmKC) {
    const int64_t kc = std::min(kGemmKC, K - k0);
    const bool acc = accumulate || k0 > 0;
    const T* achunk = apack + k0 * Mp;
    for (int64_t j0 = 0; j0 < N; j0 += NC) {
      const int64_t nc = std::min(NC, N - j0);
      pack_b(NR, B + k0 * rsb + j0 * csb, rsb, csb, kc, nc, bpack);
      for (int64_t i = 0; i < M; i += MR) {
        const int mr = static_cast<int>(std::min<int64_t>(MR, M - i));
        const T* ap = achunk + (i / MR) * kc * MR;
        for (int64_t j = 0; j < nc; j += NR) {
          const int nr = static_cast<int>(std::min<int64_t>(NR, nc - j));
          gk.tile(kc, ap, bpack + (j / NR) * kc * NR, C + i * ldc + j0 + j, ldc, acc, mr, nr);
        }
      }
    }
  }
}

template <typename T>
void gemm(int64_t M, int64_t N, int64_t K, const T* A, int64_t rsa, int64_t csa, const T* B, int64_t rsb, int64_t csb,
          T* C, int64_t ldc, bool accumulate) {
  if (M <= 0 || N <= 0) return;
  const GemmKernels<T> gk = gemm_kernels<T>();
  const int64_t Mp = (M + gk.mr - 1) / gk.mr * gk.mr;
  T* apack = static_cast<T*>(thread_scratch(2, sizeof(T) * Mp * std::max<int64_t>(K, 1)));
  pack_a_full(gk.mr, A, rsa, csa, M, K, apack);
  gemm_packed_a(gk, M, N, K, apack, B, rsb, csb, C, ldc, accumulate);
}

#define CNNOPS_INSTANTIATE(T)                                                                                   \
  template void pack_a<T>(int, const T*, int64_t, int64_t, int64_t, int64_t, T*);                               \
  template void pack_b<T>(int, const T*, int64_t, int64_t, int64_t, int64_t, T*);                               \
  template void gemm<T>(int64_t, int64_t, int64_t, const T*, int64_t, int64_t, const T*, int64_t, int64_t, T*,  \
                        int64_t, bool);                                                                         \
  template void pack_a_full<T>(int, const T*, int64_t, int64_t, int64_t, int64_t, T*);                          \
  template void gemm_packed_a<T>(const GemmKernels<T>&, int64_t, int64_t, int64_t, const T*, const T*, int64_t, \
                                 int64_t, T*, int64_t, bool);
CNNOPS_INSTANTIATE(float)
CNNOPS_INSTANTIATE(double)
#undef CNNOPS_INSTANTIATE

}  // namespace cpu
}  // namespace cnnops
