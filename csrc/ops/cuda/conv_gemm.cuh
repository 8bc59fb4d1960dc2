// The convolution family's GEMM problems on CUDA, shared by the fp32 SIMT kernels
// (conv_gemm.cu), the tensor-core kernels (conv_mma.cu) and the drivers (conv.cu).
//
// Every pass is an implicit GEMM over a 3-D view of the tensors (1-D and 2-D problems have depth
// and height 1); tensors are read and written through their element strides (n, c, z, y, x), so
// NCHW and channels-last (NHWC) arrays need no layout copy.
//
// Gather GEMM (forward, and the input gradient):
//   C[m, col] = sum_kk A[m, kk] * B[kk, col], per group g,
//   row m      = an output position (n, i0, i1, i2) on the row grid `rdim`;
//   A[m, kk]   = a[n, g*a_group + tab[kk].c, i*ra_mul + ra_add + tab[kk].d] (per dimension; outside
//                the tensor: zero, or the padding mode's mirror/clamp/wrap of the coordinate),
//   B[kk, col] = w[g*w_group + tab[kk].woff + col*w_col],
//   output     = o[n, g*o_group + col, i*ro_mul + ro_add] (+ bias[g*o_group + col]).
// Forward: a = x, rows = output positions, kk = (c, t, r, s) with d = tap * dilation,
//   B = the weight row of output channel col. Input gradient: split by stride phase (phi per
//   dimension, 0 <= phi < stride): rows = the input positions phi + i*stride, kk = (k, taps with
//   (phi + pad - tap*dilation) divisible by the stride), d = (phi + pad - tap*dilation) / stride,
//   a = grad_output: only taps that reach an output are in the table, so no zero is inserted and
//   no multiply is wasted. One launch covers every phase (grid.z = phase * G + g).
//
// Weight gradient: C[m, col] = sum over output positions q of dy[q, g*Kg + m] * x(q, tab[col]),
//   m = output channel in the group, col = (c, t, r, s) from the forward table, split along q
//   into `splits` ranges whose partial sums a second kernel adds in a fixed order (no atomics:
//   the same bits on every run).
#pragma once
#include <cstdint>

#include "core/cuda_kernel.h"

namespace cnnops {
namespace cuda {
namespace igemm {

// One reduction index of a gather GEMM: A channel, A coordinate offsets (z, y, x), and the
// weight offset (plus col * w_col).
struct KTab {
  int c, dz, dy, dx, woff;
};

// One stride phase of a gather GEMM (the forward has one).
struct Phase {
  int64_t M;                   // rows: N * rdim[0] * rdim[1] * rdim[2]
  int rdim[3];                 // row grid
  int ra_mul[3], ra_add[3];    // A coordinate of row index i: i * ra_mul + ra_add (+ tab.d)
  int ro_mul[3], ro_add[3];    // output coordinate of row index i
  int tab, ntab;               // this phase's entries in the table
};

struct GatherArgs {
  const void* a;
  int64_t as[5];               // A strides (n, c, z, y, x), elements
  int adim[3];                 // A spatial sizes (z, y, x)
  int64_t a_group;             // A channels per group
  const void* w;
  int64_t w_group, w_col;      // weight: elements per group, between columns
  void* o;
  int64_t os[5];               // output strides
  int64_t o_group;             // output channels per group
  const void* bias;            // null or one value per output channel
  const KTab* tab;
  const Phase* phases;
  int ncols;                   // columns per group
  int G;                       // groups
  int z_base;                  // blockIdx.z + z_base = phase * G + g (launches of at most 65535)
  int mode;                    // PadMode of A coordinates
  int max_rows;                // the largest phase's M (grid.x covers it)
};

struct WgradArgs {
  const void* dy;
  int64_t ds[5];               // grad_output strides
  int odim[3];                 // grad_output spatial sizes (the positions summed over)
  int64_t N;                   // batch
  int64_t Q;                   // positions: N * odim[0] * odim[1] * odim[2]
  int64_t qchunk;              // positions per split (a multiple of the kernel's K step)
  const void* x;
  int64_t xs[5];
  int xdim[3];
  int stride[3], pad[3];       // x coordinate of output coordinate i: i * stride - pad + tab.d
  int64_t Kg, Cg;              // rows per group (output channels), x channels per group
  int ncols;                   // columns per group: Cg * taps
  int G, splits, z_base;
  int mode;
  const KTab* tab;             // forward table: col -> (c, tap offsets); woff = column in dw
  void* out;                   // splits == 1 and T == Acc<T>: dw itself; else the partials
  bool partial;                // out is float/double partials [split][G][Kg][ncols]
};

// A coordinate of a padded axis of size n: itself inside, else the padding mode's image
// (zeros: -1, no value). Pads are at most n (reflect: < n), so one reflection or wrap suffices.
__device__ __forceinline__ int pad_coord(int i, int n, int mode) {
  if (i >= 0 && i < n) return i;
  if (mode == 0) return -1;                          // zeros
  if (mode == 1) return i < 0 ? -i : 2 * (n - 1) - i;  // reflect
  if (mode == 2) return i < 0 ? 0 : n - 1;           // replicate
  return i < 0 ? i + n : i - n;                      // circular
}

// Gather-GEMM and weight-gradient launches, by storage type, on stream s. `big` picks the
// 128x128 tile (large problems) over the 64x64 / 128x32 ones.
template <typename T>
void gather_gemm_simt(const GatherArgs& a, int nphase, Stream s, const char* op);
template <typename T>
void wgrad_gemm_simt(const WgradArgs& a, Stream s, const char* op);

// Tensor-core versions (conv_mma.cu): float32 computed in tf32, float16/bfloat16 in their type,
// all accumulated in float32.
template <typename T>
void gather_gemm_mma(const GatherArgs& a, int nphase, Stream s, const char* op);
template <typename T>
void wgrad_gemm_mma(const WgradArgs& a, Stream s, const char* op);

// The K loop of the weight-gradient kernels: two shared buffers of tiles and two slots of
// decoded positions; the positions of step s + 2 are decoded, and the tiles of step s + 1
// loaded into registers, while step s is multiplied. decode(step, slot) fills a slot, load(slot)
// reads the next tiles' values with that slot's positions, store(buf) writes them to a shared
// buffer, compute(buf) multiplies a buffer. One barrier per step.
template <typename Decode, typename Load, typename Store, typename Compute>
__device__ __forceinline__ void wgrad_k_loop(int steps, Decode&& decode, Load&& load, Store&& store,
                                             Compute&& compute) {
  if (steps > 0) decode(0, 0);
  __syncthreads();
  if (steps > 0) {
    load(0);
    store(0);
  }
  if (steps > 1) decode(1, 1);
  __syncthreads();
  for (int s = 0; s < steps; ++s) {
    const int buf = s & 1;
    if (s + 2 < steps) decode(s + 2, buf);  // slot buf held step s's positions, read before the last barrier
    if (s + 1 < steps) load(buf ^ 1);
    compute(buf);
    if (s + 1 < steps) store(buf ^ 1);
    __syncthreads();
  }
}

// Launches kernel(args) over the grid (gx, gy, zs) in slices of at most 65535 along z (the CUDA
// limit), each slice with args.z_base set to its first z.
template <typename Args>
void launch_z_slices(const char* op, void (*kernel)(Args), unsigned gx, unsigned gy, int64_t zs, unsigned threads,
                     Stream s, const Args& args) {
  for (int64_t z0 = 0; z0 < zs; z0 += 65535) {
    Args b = args;
    b.z_base = static_cast<int>(z0);
    const unsigned gz = static_cast<unsigned>(zs - z0 < 65535 ? zs - z0 : 65535);
    launch(op, kernel, dim3(gx, gy, gz), dim3(threads), 0, s, b);
  }
}

// Row decode of a gather GEMM: the A offset (batch and group), the A coordinates before the tap
// offsets and the output offset (without the channel) of row m of phase P; false past its end.
struct RowInfo {
  int64_t a_off, o_off;
  int z, y, x;
};
__device__ __forceinline__ bool decode_row(const GatherArgs& p, const Phase& P, int g, int64_t m, RowInfo& r) {
  if (m >= P.M) return false;
  const int64_t i2 = m % P.rdim[2];
  int64_t t = m / P.rdim[2];
  const int64_t i1 = t % P.rdim[1];
  t /= P.rdim[1];
  const int64_t i0 = t % P.rdim[0];
  const int64_t n = t / P.rdim[0];
  r.a_off = n * p.as[0] + g * p.a_group * p.as[1];
  r.z = static_cast<int>(i0 * P.ra_mul[0] + P.ra_add[0]);
  r.y = static_cast<int>(i1 * P.ra_mul[1] + P.ra_add[1]);
  r.x = static_cast<int>(i2 * P.ra_mul[2] + P.ra_add[2]);
  r.o_off = n * p.os[0] + (i0 * P.ro_mul[0] + P.ro_add[0]) * p.os[2] + (i1 * P.ro_mul[1] + P.ro_add[1]) * p.os[3] +
            (i2 * P.ro_mul[2] + P.ro_add[2]) * p.os[4];
  return true;
}

// A element of a row (a_off, z, y, x) and table entry e; zero outside the tensor (zeros mode).
template <typename T>
__device__ __forceinline__ typename Acc<T>::type gather_a(const GatherArgs& p, int64_t a_off, int z, int y, int x,
                                                          const KTab& e) {
  const int zz = pad_coord(z + e.dz, p.adim[0], p.mode), yy = pad_coord(y + e.dy, p.adim[1], p.mode),
            xx = pad_coord(x + e.dx, p.adim[2], p.mode);
  if ((zz | yy | xx) < 0) return 0;
  return to_acc(static_cast<const T*>(p.a)[a_off + e.c * p.as[1] + zz * p.as[2] + yy * p.as[3] + xx * p.as[4]]);
}

// Decoded output position q of a weight-gradient problem: grad_output offset (without the
// channel), x offset (batch only) and x coordinates before the tap offsets.
struct PosInfo {
  int64_t d_off, x_off;
  int z, y, x;
};
// Positions are counted in 32 bits (the drivers send problems with 2^31 or more positions to the
// direct kernel): 32-bit division is inline code, 64-bit division a call whose register saves
// would spill in the register-heavy tensor-core kernels.
__device__ __forceinline__ void decode_pos(const WgradArgs& p, int64_t q, PosInfo& r) {
  const unsigned uq = static_cast<unsigned>(q), d2 = static_cast<unsigned>(p.odim[2]),
                 d1 = static_cast<unsigned>(p.odim[1]), d0 = static_cast<unsigned>(p.odim[0]);
  const int64_t i2 = uq % d2;
  unsigned t = uq / d2;
  const int64_t i1 = t % d1;
  t /= d1;
  const int64_t i0 = t % d0;
  const int64_t n = t / d0;
  r.d_off = n * p.ds[0] + i0 * p.ds[2] + i1 * p.ds[3] + i2 * p.ds[4];
  r.x_off = n * p.xs[0];
  r.z = static_cast<int>(i0 * p.stride[0] - p.pad[0]);
  r.y = static_cast<int>(i1 * p.stride[1] - p.pad[1]);
  r.x = static_cast<int>(i2 * p.stride[2] - p.pad[2]);
}

template <typename T>
__device__ __forceinline__ typename Acc<T>::type gather_x(const WgradArgs& p, const PosInfo& q, int g, const KTab& e) {
  const int zz = pad_coord(q.z + e.dz, p.xdim[0], p.mode), yy = pad_coord(q.y + e.dy, p.xdim[1], p.mode),
            xx = pad_coord(q.x + e.dx, p.xdim[2], p.mode);
  if ((zz | yy | xx) < 0) return 0;
  return to_acc(
      static_cast<const T*>(p.x)[q.x_off + (g * p.Cg + e.c) * p.xs[1] + zz * p.xs[2] + yy * p.xs[3] + xx * p.xs[4]]);
}

}  // namespace igemm
}  // namespace cuda
}  // namespace cnnops
