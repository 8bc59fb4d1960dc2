// Implicit-GEMM convolution on tensor cores (mma.sync, sm_80 and later): float32 as tf32
// (m16n8k8), float16 and bfloat16 as themselves (m16n8k16), accumulated in float32. The problems
// are the SIMT kernels' (conv_gemm.cuh); only the arithmetic and the staging differ.
//
// Work split: a block of 4 warps (2 x 2) computes a 128 x 64 tile of C; each warp a 64 x 32
// sub-tile as 4 x 4 mma tiles of 16 x 8 (64 float accumulators per thread). Shared tiles are
// stored k-contiguous for both operands (A as [row][k], B as [col][k]), rows padded so that the
// fragment loads hit distinct banks: tf32 rows of 16 + 4 floats (lane (g, t) reads bank
// 20g + t mod 32: all distinct), f16/bf16 rows of 16 + 8 halves (48 bytes: the eight 16-byte
// rows of an ldmatrix start at banks 12r mod 32, distinct quads). k steps of 16 in every type
// keep the staging registers of the half kernels low enough (with 64 accumulators) to avoid
// spills.
//   tf32 gather (forward, input gradient): a 3-stage cp.async pipeline of 4-byte copies (the
//     gathered elements of a convolution are not 16-byte runs in general); zero padding is a
//     zero-filling copy (source size 0). Fragments are read with scalar loads and rounded with
//     cvt.rna.tf32 (3 x 15 KB of tiles + 2.5 KB of row data: under the 48 KB static limit).
//   f16/bf16 gather: 2-byte elements cannot be cp.async'd one by one, so the next tile is staged
//     through registers while the current one is multiplied (double-buffered shared tiles);
//     fragments come from ldmatrix (x4 for A, x2 for B).
//   weight gradient (all three types): register-staged double buffering like the SIMT kernel
//     (the positions of the next step are decoded into shared memory a step ahead).
//
// Performance: not measured on a GPU yet (the kernels run in CI through the SIMT emulator, whose
// mma/ldmatrix/cp.async follow the PTX ISA's fragment layouts); `benchmarks/gpu/run.sh` measures
// them against cuDNN on the first GPU it runs on.
// Registers and shared memory of every instantiation (ptxas, sm_90; no spills):
// benchmarks/results/conv_ptxas_sm90.md (benchmarks/gpu/ptxas_report.py).
#include "ops/cuda/conv_gemm.cuh"  // first: brings the CUDA (or emulator) spellings

#include <type_traits>

#include "core/simt/async.h"
#include "core/simt/mma.h"

namespace cnnops {
namespace cuda {
namespace igemm {

namespace {

constexpr int BM = 128, BN = 64, kThreadsMma = 128;

// Shared element type and k step per storage type.
template <typename T>
struct MmaTraits {  // float -> tf32
  using S = float;
  static constexpr int BK = 16, LD = BK + 4;
};
template <>
struct MmaTraits<__half> {
  using S = __half;
  static constexpr int BK = 16, LD = BK + 8;
};
template <>
struct MmaTraits<__nv_bfloat16> {
  using S = __nv_bfloat16;
  static constexpr int BK = 16, LD = BK + 8;
};

// acc[mi][ni] += the warp's 64 x 32 product of one BK slice: A rows wm.., B columns wn...
template <typename T>
__device__ __forceinline__ void warp_mma(const typename MmaTraits<T>::S* As, const typename MmaTraits<T>::S* Bs, int wm,
                                         int wn, int lane, float acc[4][4][4]) {
  using Tr = MmaTraits<T>;
  const int g = lane / 4, t = lane % 4;
  if constexpr (sizeof(T) == 4) {
#pragma unroll
    for (int k = 0; k < Tr::BK; k += 8) {
      unsigned a[4][4], b[4][2];
#pragma unroll
      for (int mi = 0; mi < 4; ++mi) {
        const float* r0 = As + (wm + mi * 16 + g) * Tr::LD + k;
        const float* r1 = r0 + 8 * Tr::LD;
        a[mi][0] = __float_as_uint(cnnops_to_tf32(r0[t]));
        a[mi][1] = __float_as_uint(cnnops_to_tf32(r1[t]));
        a[mi][2] = __float_as_uint(cnnops_to_tf32(r0[t + 4]));
        a[mi][3] = __float_as_uint(cnnops_to_tf32(r1[t + 4]));
      }
#pragma unroll
      for (int ni = 0; ni < 4; ++ni) {
        const float* c0 = Bs + (wn + ni * 8 + g) * Tr::LD + k;
        b[ni][0] = __float_as_uint(cnnops_to_tf32(c0[t]));
        b[ni][1] = __float_as_uint(cnnops_to_tf32(c0[t + 4]));
      }
#pragma unroll
      for (int mi = 0; mi < 4; ++mi)
#pragma unroll
        for (int ni = 0; ni < 4; ++ni) cnnops_mma_m16n8k8_tf32(acc[mi][ni], a[mi], b[ni], acc[mi][ni]);
    }
  } else {
#pragma unroll
    for (int k = 0; k < Tr::BK; k += 16) {
      unsigned a[4][4], b[4][2];
#pragma unroll
      for (int mi = 0; mi < 4; ++mi)
        cnnops_ldmatrix_x4(a[mi], As + (wm + mi * 16 + lane % 16) * Tr::LD + k + lane / 16 * 8);
#pragma unroll
      for (int ni = 0; ni < 4; ++ni)
        cnnops_ldmatrix_x2(b[ni], Bs + (wn + ni * 8 + lane % 8) * Tr::LD + k + lane / 8 % 2 * 8);
#pragma unroll
      for (int mi = 0; mi < 4; ++mi)
#pragma unroll
        for (int ni = 0; ni < 4; ++ni) {
          if constexpr (std::is_same<T, __half>::value) cnnops_mma_m16n8k16_f16(acc[mi][ni], a[mi], b[ni], acc[mi][ni]);
          else cnnops_mma_m16n8k16_bf16(acc[mi][ni], a[mi], b[ni], acc[mi][ni]);
        }
    }
  }
}

// Offset of a gathered A element, or -1 for a zero (outside the tensor, zeros padding).
__device__ __forceinline__ int64_t a_offset(const GatherArgs& p, int64_t a_off, int z, int y, int x, const KTab& e) {
  const int zz = pad_coord(z + e.dz, p.adim[0], p.mode), yy = pad_coord(y + e.dy, p.adim[1], p.mode),
            xx = pad_coord(x + e.dx, p.adim[2], p.mode);
  if ((zz | yy | xx) < 0) return -1;
  return a_off + e.c * p.as[1] + zz * p.as[2] + yy * p.as[3] + xx * p.as[4];
}

template <typename T>
__global__ void __launch_bounds__(kThreadsMma) gather_mma_kernel(GatherArgs p) {
  using Tr = MmaTraits<T>;
  using S = typename Tr::S;
  constexpr int BK = Tr::BK, LD = Tr::LD;
  constexpr int STAGES = sizeof(T) == 4 ? 3 : 2;
  constexpr int APT = BM * BK / kThreadsMma, BPT = BN * BK / kThreadsMma;
  __shared__ __align__(16) S As[STAGES][BM * LD];
  __shared__ __align__(16) S Bs[STAGES][BN * LD];
  __shared__ int64_t row_a[BM];
  __shared__ int row_z[BM], row_y[BM], row_x[BM];
  __shared__ bool row_v[BM];

  const int zi = static_cast<int>(blockIdx.z) + p.z_base;
  const int ph = zi / p.G, g = zi % p.G;
  const Phase P = p.phases[ph];
  const int64_t m0 = static_cast<int64_t>(blockIdx.x) * BM;
  if (m0 >= P.M) return;
  const int n0 = static_cast<int>(blockIdx.y) * BN;
  const int tid = static_cast<int>(threadIdx.x), lane = tid % 32, warp = tid / 32;
  for (int i = tid; i < BM; i += kThreadsMma) {
    RowInfo r;
    row_v[i] = decode_row(p, P, g, m0 + i, r);
    row_a[i] = r.a_off;
    row_z[i] = r.z;
    row_y[i] = r.y;
    row_x[i] = r.x;
  }
  __syncthreads();

  const KTab* tab = p.tab + P.tab;
  const int ntab = P.ntab;
  const T* a = static_cast<const T*>(p.a);
  const T* w = static_cast<const T*>(p.w) + g * p.w_group;
  const int steps = (ntab + BK - 1) / BK;
  // A: thread = row (consecutive rows: consecutive positions), k = e; B: consecutive k per column.
  auto a_src = [&](int k0, int e) -> int64_t {
    const int idx = tid + e * kThreadsMma, am = idx % BM, kk = k0 + idx / BM;
    if (kk >= ntab || !row_v[am]) return -1;
    return a_offset(p, row_a[am], row_z[am], row_y[am], row_x[am], tab[kk]);
  };
  auto b_src = [&](int k0, int e) -> int64_t {
    const int idx = tid + e * kThreadsMma, kk = k0 + idx % BK, col = n0 + idx / BK;
    if (kk >= ntab || col >= p.ncols) return -1;
    return tab[kk].woff + static_cast<int64_t>(col) * p.w_col;
  };
  auto a_dst = [&](int st, int e) -> S* {
    const int idx = tid + e * kThreadsMma;
    return &As[st][(idx % BM) * LD + idx / BM];
  };
  auto b_dst = [&](int st, int e) -> S* {
    const int idx = tid + e * kThreadsMma;
    return &Bs[st][(idx / BK) * LD + idx % BK];
  };

  float acc[4][4][4] = {};
  const int wm = warp / 2 * 64, wn = warp % 2 * 32;

  if constexpr (sizeof(T) == 4) {
    // tf32: cp.async pipeline, STAGES - 1 tiles in flight.
    auto issue = [&](int s, int st) {
      const int k0 = s * BK;
#pragma unroll
      for (int e = 0; e < APT; ++e) {
        const int64_t o = a_src(k0, e);
        cnnops_cp_async_zfill(a_dst(st, e), o >= 0 ? a + o : a, 4, o >= 0 ? 4 : 0);
      }
#pragma unroll
      for (int e = 0; e < BPT; ++e) {
        const int64_t o = b_src(k0, e);
        cnnops_cp_async_zfill(b_dst(st, e), o >= 0 ? w + o : w, 4, o >= 0 ? 4 : 0);
      }
    };
#pragma unroll
    for (int s = 0; s < STAGES - 1; ++s) {
      if (s < steps) issue(s, s);
      cnnops_cp_async_commit();
    }
    for (int s = 0; s < steps; ++s) {
      cnnops_cp_async_wait<STAGES - 2>();
      __syncthreads();  // tile s visible to all; the stage refilled below was consumed at s - 1
      if (s + STAGES - 1 < steps) issue(s + STAGES - 1, (s + STAGES - 1) % STAGES);
      cnnops_cp_async_commit();
      warp_mma<T>(As[s % STAGES], Bs[s % STAGES], wm, wn, lane, acc);
    }
    cnnops_cp_async_wait<0>();
  } else {
    // f16/bf16: the next tile staged through registers.
    S ra[APT], rb[BPT];
    const S zero = from_acc<T>(0.f);
    auto load = [&](int s) {
      const int k0 = s * BK;
#pragma unroll
      for (int e = 0; e < APT; ++e) {
        const int64_t o = a_src(k0, e);
        ra[e] = o >= 0 ? a[o] : zero;
      }
#pragma unroll
      for (int e = 0; e < BPT; ++e) {
        const int64_t o = b_src(k0, e);
        rb[e] = o >= 0 ? w[o] : zero;
      }
    };
    auto store = [&](int st) {
#pragma unroll
      for (int e = 0; e < APT; ++e) *a_dst(st, e) = ra[e];
#pragma unroll
      for (int e = 0; e < BPT; ++e) *b_dst(st, e) = rb[e];
    };
    if (steps > 0) {
      load(0);
      store(0);
    }
    __syncthreads();
    for (int s = 0; s < steps; ++s) {
      if (s + 1 < steps) load(s + 1);
      warp_mma<T>(As[s & 1], Bs[s & 1], wm, wn, lane, acc);
      if (s + 1 < steps) store((s + 1) & 1);
      __syncthreads();
    }
  }

  // Epilogue: lane (g, t) holds rows g and g + 8, columns 2t and 2t + 1 of each 16 x 8 tile.
  T* o = static_cast<T*>(p.o);
  const T* bias = static_cast<const T*>(p.bias);
  const int gq = lane / 4, tq = lane % 4;
#pragma unroll
  for (int mi = 0; mi < 4; ++mi)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int r = wm + mi * 16 + gq + 8 * h;
      RowInfo ri;
      if (!decode_row(p, P, g, m0 + r, ri)) continue;
#pragma unroll
      for (int ni = 0; ni < 4; ++ni)
#pragma unroll
        for (int c2 = 0; c2 < 2; ++c2) {
          const int col = n0 + wn + ni * 8 + 2 * tq + c2;
          if (col >= p.ncols) continue;
          const int64_t ch = g * p.o_group + col;
          const float bv = bias ? to_acc(bias[ch]) : 0.f;
          o[ri.o_off + ch * p.os[1]] = from_acc<T>(acc[mi][ni][2 * h + c2] + bv);
        }
    }
}

// Weight gradient: rows = output channels of the group, columns = (c, tap), k = positions.
template <typename T>
__global__ void __launch_bounds__(kThreadsMma) wgrad_mma_kernel(WgradArgs p) {
  using Tr = MmaTraits<T>;
  using S = typename Tr::S;
  constexpr int BK = Tr::BK, LD = Tr::LD;
  constexpr int APT = BM * BK / kThreadsMma, BPT = BN * BK / kThreadsMma;
  __shared__ __align__(16) S As[2][BM * LD];
  __shared__ __align__(16) S Bs[2][BN * LD];
  __shared__ PosInfo pos[2][BK];

  const int zi = static_cast<int>(blockIdx.z) + p.z_base;
  const int split = zi / p.G, g = zi % p.G;
  const int m0 = static_cast<int>(blockIdx.x) * BM, n0 = static_cast<int>(blockIdx.y) * BN;
  const int tid = static_cast<int>(threadIdx.x), lane = tid % 32, warp = tid / 32;
  const int64_t q_begin = split * p.qchunk;
  const int64_t q_end = q_begin + p.qchunk < p.Q ? q_begin + p.qchunk : p.Q;
  const int steps = q_end > q_begin ? static_cast<int>((q_end - q_begin + BK - 1) / BK) : 0;
  const T* dy = static_cast<const T*>(p.dy);
  const T* x = static_cast<const T*>(p.x);

  auto decode = [&](int s, int buf) {
    if (tid < BK) {
      const int64_t q = q_begin + static_cast<int64_t>(s) * BK + tid;
      PosInfo r;
      if (q < q_end) decode_pos(p, q, r);
      else r.d_off = -1;
      pos[buf][tid] = r;
    }
  };
  S ra[APT], rb[BPT];
  const S zero = from_acc<T>(0.f);
  // consecutive threads take consecutive positions (contiguous along x in NCHW)
  auto load = [&](int buf) {
#pragma unroll
    for (int e = 0; e < APT; ++e) {
      const int idx = tid + e * kThreadsMma, ak = idx % BK, row = m0 + idx / BK;
      const PosInfo& q = pos[buf][ak];
      ra[e] = (q.d_off >= 0 && row < p.Kg) ? dy[q.d_off + (g * p.Kg + row) * p.ds[1]] : zero;
    }
#pragma unroll
    for (int e = 0; e < BPT; ++e) {
      const int idx = tid + e * kThreadsMma, bk = idx % BK, col = n0 + idx / BK;
      const PosInfo& q = pos[buf][bk];
      S v = zero;
      if (q.d_off >= 0 && col < p.ncols) {
        const KTab& t = p.tab[col];
        const int zz = pad_coord(q.z + t.dz, p.xdim[0], p.mode), yy = pad_coord(q.y + t.dy, p.xdim[1], p.mode),
                  xx = pad_coord(q.x + t.dx, p.xdim[2], p.mode);
        if ((zz | yy | xx) >= 0)
          v = x[q.x_off + (g * p.Cg + t.c) * p.xs[1] + zz * p.xs[2] + yy * p.xs[3] + xx * p.xs[4]];
      }
      rb[e] = v;
    }
  };
  auto store = [&](int buf) {
#pragma unroll
    for (int e = 0; e < APT; ++e) {
      const int idx = tid + e * kThreadsMma;
      As[buf][(idx / BK) * LD + idx % BK] = ra[e];
    }
#pragma unroll
    for (int e = 0; e < BPT; ++e) {
      const int idx = tid + e * kThreadsMma;
      Bs[buf][(idx / BK) * LD + idx % BK] = rb[e];
    }
  };

  float acc[4][4][4] = {};
  const int wm = warp / 2 * 64, wn = warp % 2 * 32;

  wgrad_k_loop(steps, decode, load, store, [&](int buf) { warp_mma<T>(As[buf], Bs[buf], wm, wn, lane, acc); });

  const int gq = lane / 4, tq = lane % 4;
#pragma unroll
  for (int mi = 0; mi < 4; ++mi)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int row = m0 + wm + mi * 16 + gq + 8 * h;
      if (row >= p.Kg) continue;
#pragma unroll
      for (int ni = 0; ni < 4; ++ni)
#pragma unroll
        for (int c2 = 0; c2 < 2; ++c2) {
          const int col = n0 + wn + ni * 8 + 2 * tq + c2;
          if (col >= p.ncols) continue;
          const int64_t w_off = (g * p.Kg + row) * static_cast<int64_t>(p.ncols) + p.tab[col].woff;
          const float v = acc[mi][ni][2 * h + c2];
          if (p.partial) static_cast<float*>(p.out)[split * p.G * p.Kg * static_cast<int64_t>(p.ncols) + w_off] = v;
          else static_cast<T*>(p.out)[w_off] = from_acc<T>(v);
        }
    }
}

}  // namespace

template <typename T>
void gather_gemm_mma(const GatherArgs& a, int nphase, Stream s, const char* op) {
  launch_z_slices(op, gather_mma_kernel<T>, static_cast<unsigned>((a.max_rows + BM - 1) / BM), (a.ncols + BN - 1) / BN,
                  static_cast<int64_t>(nphase) * a.G, kThreadsMma, s, a);
}

template <typename T>
void wgrad_gemm_mma(const WgradArgs& a, Stream s, const char* op) {
  launch_z_slices(op, wgrad_mma_kernel<T>, static_cast<unsigned>((a.Kg + BM - 1) / BM), (a.ncols + BN - 1) / BN,
                  static_cast<int64_t>(a.splits) * a.G, kThreadsMma, s, a);
}

#define CNNOPS_CONV_GEMM_MMA(T)                                                  \
  template void gather_gemm_mma<T>(const GatherArgs&, int, Stream, const char*); \
  template void wgrad_gemm_mma<T>(const WgradArgs&, Stream, const char*);
CNNOPS_CONV_GEMM_MMA(float)
CNNOPS_CONV_GEMM_MMA(__half)
CNNOPS_CONV_GEMM_MMA(__nv_bfloat16)
#undef CNNOPS_CONV_GEMM_MMA

}  // namespace igemm
}  // namespace cuda
}  // namespace cnnops
