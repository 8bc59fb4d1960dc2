// Implicit-GEMM convolution kernels on CUDA cores (fp32 SIMT; float64 in double; float16 and
// bfloat16 loaded and accumulated in float32). The problems are described in conv_gemm.cuh.
//
// Work split: a block computes a BM x BN tile of C (rows = output positions, or output channels
// for the weight gradient; columns = channels, or (c, tap) for the weight gradient) with
// (BM/TM) x (BN/TN) threads, each holding a TM x TN register tile. A thread's rows are groups of
// four consecutive rows spaced BM/(TM/4) apart (likewise columns), so a warp's shared-memory
// reads of a k-slice are float4s on distinct banks (columns) or broadcasts (rows).
// The K loop is double-buffered through registers: the global loads of step s+1 are issued
// before the FMAs of step s and stored to the other shared buffer after them, one barrier per
// step. Tiles are built on the fly from the tensors (no im2col buffer): the block decodes its
// BM rows once into shared memory (batch offset, base coordinates, output offset), and each
// reduction index comes from a per-call table (channel, tap offsets, weight offset) read with
// broadcast loads, so the inner gather is one add per dimension, a bounds test and a load.
// Shared layouts are [k][row] with 4 padding words, so the stores of a tile (consecutive rows
// per thread group) and the float4 reads hit distinct banks.
//
// Tiles: 128x128 (8x8 per thread, 256 threads) for large problems, 64x64 (4x4) otherwise, and
// 128x32 (4x4) when a group has at most 32 columns; float64 uses the two smaller ones (an 8x8
// double tile needs 128 registers for the accumulators alone).
//
// Performance: not measured on a GPU yet (no device was available to this code's tests; the
// kernels run in CI through the SIMT emulator). `benchmarks/gpu/run.sh` measures them against
// cuDNN on the first GPU it runs on.
// Registers and shared memory of every instantiation (ptxas, sm_90; no spills):
// benchmarks/results/conv_ptxas_sm90.md (benchmarks/gpu/ptxas_report.py).
#include "ops/cuda/conv_gemm.cuh"

namespace cnnops {
namespace cuda {
namespace igemm {

namespace {

// Row r (0 <= r < TM) of a thread at position ty of the thread grid, in a tile of BM rows.
template <int BM, int TM>
__device__ __forceinline__ int tile_index(int t, int r) {
  return (r / 4) * (BM / (TM / 4)) + t * 4 + (r % 4);
}

// acc += the thread's TM x TN share of one BK slice of shared tiles As [k][row], Bs [k][col].
template <int BK, int BM, int BN, int TM, int TN, typename A>
__device__ __forceinline__ void tile_fma(const A (*As)[BM + 4], const A (*Bs)[BN + 4], int ty, int tx,
                                         A (&acc)[TM][TN]) {
#pragma unroll
  for (int k = 0; k < BK; ++k) {
    A av[TM], bv[TN];
#pragma unroll
    for (int i = 0; i < TM; ++i) av[i] = As[k][tile_index<BM, TM>(ty, i)];
#pragma unroll
    for (int j = 0; j < TN; ++j) bv[j] = Bs[k][tile_index<BN, TN>(tx, j)];
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
      for (int j = 0; j < TN; ++j) acc[i][j] += av[i] * bv[j];
  }
}

template <typename T, int BM, int BN, int TM, int TN>
__global__ void __launch_bounds__((BM / TM) * (BN / TN), 1) gather_gemm_kernel(GatherArgs p) {
  using A = typename Acc<T>::type;
  constexpr int NT = (BM / TM) * (BN / TN), BK = 8;
  constexpr int APT = BM * BK / NT, BPT = BN * BK / NT;
  static_assert(APT * NT == BM * BK && BPT * NT == BN * BK, "tile loads must divide evenly");
  __shared__ A As[2][BK][BM + 4];
  __shared__ A Bs[2][BK][BN + 4];
  __shared__ int64_t row_a[BM], row_o[BM];
  __shared__ int row_z[BM], row_y[BM], row_x[BM];

  const int zi = static_cast<int>(blockIdx.z) + p.z_base;
  const int ph = zi / p.G, g = zi % p.G;
  const Phase P = p.phases[ph];
  const int64_t m0 = static_cast<int64_t>(blockIdx.x) * BM;
  if (m0 >= P.M) return;  // a shorter phase: the whole block leaves together
  const int n0 = static_cast<int>(blockIdx.y) * BN;
  const int tid = static_cast<int>(threadIdx.x);
  for (int i = tid; i < BM; i += NT) {
    RowInfo r;
    if (decode_row(p, P, g, m0 + i, r)) {
      row_a[i] = r.a_off;
      row_o[i] = r.o_off;
      row_z[i] = r.z;
      row_y[i] = r.y;
      row_x[i] = r.x;
    } else {
      row_o[i] = -1;
    }
  }
  __syncthreads();

  const KTab* tab = p.tab + P.tab;
  const int ntab = P.ntab;
  const T* w = static_cast<const T*>(p.w) + g * p.w_group;
  A ra[APT], rb[BPT];
  // A: consecutive threads take consecutive rows (consecutive positions: coalesced along x in
  // NCHW); B: consecutive threads take consecutive k (contiguous weights).
  auto load = [&](int k0) {
#pragma unroll
    for (int e = 0; e < APT; ++e) {
      const int idx = tid + e * NT, am = idx % BM, ak = idx / BM;
      const int kk = k0 + ak;
      A v = 0;
      if (kk < ntab && row_o[am] >= 0) v = gather_a<T>(p, row_a[am], row_z[am], row_y[am], row_x[am], tab[kk]);
      ra[e] = v;
    }
#pragma unroll
    for (int e = 0; e < BPT; ++e) {
      const int idx = tid + e * NT, bk = idx % BK, bn = idx / BK;
      const int kk = k0 + bk, col = n0 + bn;
      A v = 0;
      if (kk < ntab && col < p.ncols) v = to_acc(w[tab[kk].woff + col * p.w_col]);
      rb[e] = v;
    }
  };
  auto store = [&](int buf) {
#pragma unroll
    for (int e = 0; e < APT; ++e) {
      const int idx = tid + e * NT;
      As[buf][idx / BM][idx % BM] = ra[e];
    }
#pragma unroll
    for (int e = 0; e < BPT; ++e) {
      const int idx = tid + e * NT;
      Bs[buf][idx % BK][idx / BK] = rb[e];
    }
  };

  const int tx = tid % (BN / TN), ty = tid / (BN / TN);
  A acc[TM][TN] = {};

  const int steps = (ntab + BK - 1) / BK;
  if (steps > 0) {
    load(0);
    store(0);
  }
  __syncthreads();
  for (int s = 0; s < steps; ++s) {
    const int buf = s & 1;
    if (s + 1 < steps) load((s + 1) * BK);
    tile_fma<BK, BM, BN, TM, TN>(As[buf], Bs[buf], ty, tx, acc);
    if (s + 1 < steps) store(buf ^ 1);
    __syncthreads();
  }

  T* o = static_cast<T*>(p.o);
  const T* bias = static_cast<const T*>(p.bias);
#pragma unroll
  for (int j = 0; j < TN; ++j) {
    const int col = n0 + tile_index<BN, TN>(tx, j);
    if (col >= p.ncols) continue;
    const int64_t ch = g * p.o_group + col;
    const A bv = bias ? to_acc(bias[ch]) : A(0);
#pragma unroll
    for (int i = 0; i < TM; ++i) {
      const int r = tile_index<BM, TM>(ty, i);
      const int64_t off = row_o[r];
      if (off >= 0) o[off + ch * p.os[1]] = from_acc<T>(acc[i][j] + bv);
    }
  }
}

// Weight gradient: rows = output channels of the group, columns = (c, tap), K = positions.
template <typename T, int BM, int BN, int TM, int TN>
__global__ void __launch_bounds__((BM / TM) * (BN / TN), 1) wgrad_gemm_kernel(WgradArgs p) {
  using A = typename Acc<T>::type;
  constexpr int NT = (BM / TM) * (BN / TN), BK = 16;
  constexpr int APT = BM * BK / NT, BPT = BN * BK / NT;
  static_assert(APT * NT == BM * BK && BPT * NT == BN * BK, "tile loads must divide evenly");
  __shared__ A As[2][BK][BM + 4];
  __shared__ A Bs[2][BK][BN + 4];
  __shared__ PosInfo pos[2][BK];

  const int zi = static_cast<int>(blockIdx.z) + p.z_base;
  const int split = zi / p.G, g = zi % p.G;
  const int m0 = static_cast<int>(blockIdx.x) * BM, n0 = static_cast<int>(blockIdx.y) * BN;
  const int tid = static_cast<int>(threadIdx.x);
  const int64_t q_begin = split * p.qchunk;
  const int64_t q_end = q_begin + p.qchunk < p.Q ? q_begin + p.qchunk : p.Q;
  const int steps = q_end > q_begin ? static_cast<int>((q_end - q_begin + BK - 1) / BK) : 0;
  const T* dy = static_cast<const T*>(p.dy);

  auto decode = [&](int s, int buf) {
    if (tid < BK) {
      const int64_t q = q_begin + static_cast<int64_t>(s) * BK + tid;
      PosInfo r;
      if (q < q_end) {
        decode_pos(p, q, r);
      } else {
        r.d_off = -1;
      }
      pos[buf][tid] = r;
    }
  };
  A ra[APT], rb[BPT];
  // A (grad_output): consecutive threads take consecutive positions; B (x): consecutive columns.
  auto load = [&](int buf) {
#pragma unroll
    for (int e = 0; e < APT; ++e) {
      const int idx = tid + e * NT, ak = idx % BK, am = idx / BK;
      const PosInfo& q = pos[buf][ak];
      const int row = m0 + am;
      A v = 0;
      if (q.d_off >= 0 && row < p.Kg) v = to_acc(dy[q.d_off + (g * p.Kg + row) * p.ds[1]]);
      ra[e] = v;
    }
#pragma unroll
    for (int e = 0; e < BPT; ++e) {
      const int idx = tid + e * NT, bn = idx % BN, bk = idx / BN;
      const PosInfo& q = pos[buf][bk];
      const int col = n0 + bn;
      A v = 0;
      if (q.d_off >= 0 && col < p.ncols) v = gather_x<T>(p, q, g, p.tab[col]);
      rb[e] = v;
    }
  };
  auto store = [&](int buf) {
#pragma unroll
    for (int e = 0; e < APT; ++e) {
      const int idx = tid + e * NT;
      As[buf][idx % BK][idx / BK] = ra[e];
    }
#pragma unroll
    for (int e = 0; e < BPT; ++e) {
      const int idx = tid + e * NT;
      Bs[buf][idx / BN][idx % BN] = rb[e];
    }
  };

  const int tx = tid % (BN / TN), ty = tid / (BN / TN);
  A acc[TM][TN] = {};

  wgrad_k_loop(steps, decode, load, store,
               [&](int buf) { tile_fma<BK, BM, BN, TM, TN>(As[buf], Bs[buf], ty, tx, acc); });

#pragma unroll
  for (int i = 0; i < TM; ++i) {
    const int row = m0 + tile_index<BM, TM>(ty, i);
    if (row >= p.Kg) continue;
#pragma unroll
    for (int j = 0; j < TN; ++j) {
      const int col = n0 + tile_index<BN, TN>(tx, j);
      if (col >= p.ncols) continue;
      const int64_t w_off = (g * p.Kg + row) * static_cast<int64_t>(p.ncols) + p.tab[col].woff;
      if (p.partial) {
        static_cast<A*>(p.out)[split * p.G * p.Kg * static_cast<int64_t>(p.ncols) + w_off] = acc[i][j];
      } else {
        static_cast<T*>(p.out)[w_off] = from_acc<T>(acc[i][j]);
      }
    }
  }
}

template <typename T, int BM, int BN, int TM, int TN>
void launch_gather(const GatherArgs& a, int nphase, Stream s, const char* op) {
  launch_z_slices(op, gather_gemm_kernel<T, BM, BN, TM, TN>, static_cast<unsigned>((a.max_rows + BM - 1) / BM),
                  (a.ncols + BN - 1) / BN, static_cast<int64_t>(nphase) * a.G, (BM / TM) * (BN / TN), s, a);
}

template <typename T, int BM, int BN, int TM, int TN>
void launch_wgrad(const WgradArgs& a, Stream s, const char* op) {
  launch_z_slices(op, wgrad_gemm_kernel<T, BM, BN, TM, TN>, static_cast<unsigned>((a.Kg + BM - 1) / BM),
                  (a.ncols + BN - 1) / BN, static_cast<int64_t>(a.splits) * a.G, (BM / TM) * (BN / TN), s, a);
}

// A problem is "big" when the 128x128 tiles still give a few blocks per SM of a large GPU.
bool big_problem(int64_t rows, int64_t cols, int64_t groups) {
  return ((rows + 127) / 128) * ((cols + 127) / 128) * groups >= 264 && cols > 64;
}

}  // namespace

template <typename T>
void gather_gemm_simt(const GatherArgs& a, int nphase, Stream s, const char* op) {
  if (a.ncols <= 32) {
    launch_gather<T, 128, 32, 4, 4>(a, nphase, s, op);
    return;
  }
  if constexpr (sizeof(T) != 8) {
    if (big_problem(a.max_rows * nphase, a.ncols, a.G)) {
      launch_gather<T, 128, 128, 8, 8>(a, nphase, s, op);
      return;
    }
  }
  launch_gather<T, 64, 64, 4, 4>(a, nphase, s, op);
}

template <typename T>
void wgrad_gemm_simt(const WgradArgs& a, Stream s, const char* op) {
  if (a.Kg <= 32) {
    launch_wgrad<T, 32, 128, 4, 4>(a, s, op);
    return;
  }
  if constexpr (sizeof(T) != 8) {
    if (big_problem(a.Kg, a.ncols, static_cast<int64_t>(a.G) * a.splits)) {
      launch_wgrad<T, 128, 128, 8, 8>(a, s, op);
      return;
    }
  }
  launch_wgrad<T, 64, 64, 4, 4>(a, s, op);
}

#define CNNOPS_CONV_GEMM_SIMT(T)                                                  \
  template void gather_gemm_simt<T>(const GatherArgs&, int, Stream, const char*); \
  template void wgrad_gemm_simt<T>(const WgradArgs&, Stream, const char*);
CNNOPS_CONV_GEMM_SIMT(float)
CNNOPS_CONV_GEMM_SIMT(double)
CNNOPS_CONV_GEMM_SIMT(__half)
CNNOPS_CONV_GEMM_SIMT(__nv_bfloat16)
#undef CNNOPS_CONV_GEMM_SIMT

}  // namespace igemm
}  // namespace cuda
}  // namespace cnnops
