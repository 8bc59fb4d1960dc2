// CUDA fractional max pooling (2-D/3-D, channels first or last, float32/float64/float16/bfloat16),
// forward and backward, for both conventions (the window table is built on the host).
//
// Forward: one thread per output element, in a grid-stride loop over the output in memory order,
// so the value and index writes of consecutive threads are consecutive (along W channels first,
// along C channels last, where the window reads of a warp are coalesced too). Each thread scans
// its window in (d, h, w) order with the CPU's rule (start from -inf at the window's first
// element; a later element wins when it is greater or NaN), so values and indices equal the CPU's
// bit for bit. float16/bfloat16 compare in float32 (exact: the widening is).
//
// Backward: the backward has only the indices, not the windows, so the gather's candidates come
// from the indices themselves. Pass 1 (one thread per output) records, per (n, c) plane, spatial
// dimension and input coordinate x, the first and last output coordinate along that dimension of
// the outputs whose index has coordinate x there (integer atomicMin/atomicMax, which commute);
// it also keeps the first out-of-plane index (atomicMin of its flat position). Every output
// naming input s then lies in the box of those three ranges, so pass 2 (one thread per input
// element, coalesced writes) sums, over that box in increasing output order, the gradients whose
// index is s: the CPU's order, so float32/float64 results equal the CPU's bit for bit, and no
// float atomics. For real fractional windows the box is a few outputs per dimension. Indices a
// caller made up can make it wide: when the widest box (the product of the widest range per
// dimension) exceeds kMaxCandidates, a per-plane kernel runs instead: one thread per (n, c) plane
// adds its outputs in order, as the CPU's task does (float16/bfloat16 into a float32 buffer).
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "core/cuda_kernel.h"
#include "ops/cuda/geom5.h"
#include "ops/cuda/pool_fractional.h"

namespace cnnops {
namespace cuda {

namespace {

// Above this many candidates per input element the backward takes the per-plane kernel.
constexpr unsigned long long kMaxCandidates = 64;

// The flat offset of element `sp` (flat over the spatial positions) of plane (n, c).
__device__ __forceinline__ int64_t offset_of(const Shape& s, int64_t n, int64_t c, int64_t sp) {
  const int64_t plane = s.D * s.H * s.W;
  return s.cl ? (n * plane + sp) * s.C + c : (n * s.C + c) * plane + sp;
}

__device__ __forceinline__ int64_t first_index() { return blockIdx.x * int64_t(blockDim.x) + threadIdx.x; }
__device__ __forceinline__ int64_t index_step() { return int64_t(gridDim.x) * blockDim.x; }

template <typename T>
__global__ void fmp_forward_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t* __restrict__ idx, Shape in,
                                   Shape out, const int64_t* __restrict__ win, bool per_plane, int64_t n) {
  using A = typename Acc<T>::type;
  const int64_t wstride = 2 * (out.D + out.H + out.W);
  const int64_t step = in.cl ? in.C : 1;  // between spatial neighbours of one plane
  for (int64_t o = first_index(); o < n; o += index_step()) {
    const Coord q = coord_of(o, out);
    const int64_t* t = win + (per_plane ? (q.n * in.C + q.c) * wstride : 0);
    const int64_t* hs = t + 2 * out.D;
    const int64_t* ws = hs + 2 * out.H;
    const int64_t d0 = t[q.d], d1 = t[out.D + q.d], h0 = hs[q.h], h1 = hs[out.H + q.h];
    const int64_t w0 = ws[q.w], w1 = ws[out.W + q.w];
    const T* xp = x + offset_of(in, q.n, q.c, 0);
    A best = static_cast<A>(-INFINITY);
    int64_t bi = (d0 * in.H + h0) * in.W + w0;
    for (int64_t d = d0; d < d1; ++d)
      for (int64_t h = h0; h < h1; ++h) {
        const int64_t row = (d * in.H + h) * in.W;
        for (int64_t w = w0; w < w1; ++w) {
          const A v = to_acc(xp[(row + w) * step]);
          if (v > best || is_nan(v)) {
            best = v;
            bi = row + w;
          }
        }
      }
    y[o] = from_acc<T>(best);
    idx[o] = bi;
  }
}

// Pass 1: lo/hi (planes x (D + H + W) each) get, per plane and input coordinate, the first/last
// output coordinate along that dimension of the outputs pointing there; stats[0] the first flat
// position of an out-of-plane index.
__global__ void fmp_ranges_kernel(const int64_t* __restrict__ idx, long long* __restrict__ lo,
                                  long long* __restrict__ hi, unsigned long long* __restrict__ stats, Shape in,
                                  Shape out, int64_t n) {
  const int64_t IS = in.D * in.H * in.W, L = in.D + in.H + in.W;
  for (int64_t o = first_index(); o < n; o += index_step()) {
    const int64_t k = idx[o];
    if (k < 0 || k >= IS) {
      atomicMin(stats, static_cast<unsigned long long>(o));
      continue;
    }
    const Coord q = coord_of(o, out);
    const int64_t base = (q.n * in.C + q.c) * L;
    const int64_t d = k / (in.H * in.W), h = (k / in.W) % in.H, w = k % in.W;
    long long* l = lo + base;
    long long* u = hi + base;
    atomicMin(l + d, static_cast<long long>(q.d));
    atomicMax(u + d, static_cast<long long>(q.d));
    atomicMin(l + in.D + h, static_cast<long long>(q.h));
    atomicMax(u + in.D + h, static_cast<long long>(q.h));
    atomicMin(l + in.D + in.H + w, static_cast<long long>(q.w));
    atomicMax(u + in.D + in.H + w, static_cast<long long>(q.w));
  }
}

// stats[1 + dim] = the widest range of dimension dim over all planes and coordinates.
__global__ void fmp_widths_kernel(const long long* __restrict__ lo, const long long* __restrict__ hi,
                                  unsigned long long* __restrict__ stats, int64_t D, int64_t H, int64_t L, int64_t n) {
  for (int64_t e = first_index(); e < n; e += index_step()) {
    if (hi[e] < lo[e]) continue;
    const int64_t x = e % L;
    const int dim = x < D ? 0 : (x < D + H ? 1 : 2);
    atomicMax(stats + 1 + dim, static_cast<unsigned long long>(hi[e] - lo[e] + 1));
  }
}

// Pass 2: each input element sums the gradients of the outputs in its candidate box that name it.
template <typename T>
__global__ void fmp_gather_kernel(const T* __restrict__ dy, const int64_t* __restrict__ idx, T* __restrict__ dx,
                                  const long long* __restrict__ lo, const long long* __restrict__ hi, Shape in,
                                  Shape out, int64_t n) {
  using A = typename Acc<T>::type;
  const int64_t L = in.D + in.H + in.W;
  for (int64_t i = first_index(); i < n; i += index_step()) {
    const Coord q = coord_of(i, in);
    const int64_t base = (q.n * in.C + q.c) * L, s = (q.d * in.H + q.h) * in.W + q.w;
    const long long* l = lo + base;
    const long long* u = hi + base;
    const int64_t d0 = l[q.d], d1 = u[q.d], h0 = l[in.D + q.h], h1 = u[in.D + q.h];
    const int64_t w0 = l[in.D + in.H + q.w], w1 = u[in.D + in.H + q.w];
    A acc = A(0);
    for (int64_t od = d0; od <= d1; ++od)
      for (int64_t oh = h0; oh <= h1; ++oh)
        for (int64_t ow = w0; ow <= w1; ++ow) {
          const int64_t o = offset_of(out, q.n, q.c, (od * out.H + oh) * out.W + ow);
          if (idx[o] == s) acc += to_acc(dy[o]);
        }
    dx[i] = from_acc<T>(acc);
  }
}

// The per-plane path: one thread per (n, c) plane adds its outputs' gradients, in output order,
// into acc (zeroed; indices already checked).
template <typename T>
__global__ void fmp_plane_kernel(const T* __restrict__ dy, const int64_t* __restrict__ idx,
                                 typename Acc<T>::type* __restrict__ acc, Shape in, Shape out, int64_t planes) {
  const int64_t OS = out.D * out.H * out.W;
  for (int64_t p = first_index(); p < planes; p += index_step()) {
    const int64_t nn = p / in.C, c = p % in.C;
    for (int64_t o = 0; o < OS; ++o) {
      const int64_t oo = offset_of(out, nn, c, o);
      acc[offset_of(in, nn, c, idx[oo])] += to_acc(dy[oo]);
    }
  }
}

template <typename T>
__global__ void narrow_kernel(const typename Acc<T>::type* __restrict__ acc, T* __restrict__ dx, int64_t n) {
  for (int64_t i = first_index(); i < n; i += index_step()) dx[i] = from_acc<T>(acc[i]);
}

template <typename T>
void plane_backward(const Tensor& dy, const Tensor& idx, Tensor& dx, const Shape& in, const Shape& out, Stream s,
                    const char* op) {
  using A = typename Acc<T>::type;
  const int64_t n = dx.numel(), planes = in.N * in.C;
  DeviceBuffer wide;
  A* acc = reinterpret_cast<A*>(dx.data);
  if (!std::is_same<A, T>::value) {
    wide = DeviceBuffer(n * sizeof(A), dx.device.index, s);
    acc = wide.as<A>();
  }
  rt::memset_async(acc, 0, n * sizeof(A), s, op);
  launch(op, fmp_plane_kernel<T>, dim3(grid_for(planes)), dim3(kThreads), 0, s, dy.ptr<T>(), idx.ptr<int64_t>(), acc,
         in, out, planes);
  if (!std::is_same<A, T>::value)
    launch(op, narrow_kernel<T>, dim3(grid_for(n)), dim3(kThreads), 0, s, static_cast<const A*>(acc), dx.ptr<T>(), n);
}

}  // namespace

void fractional_max_pool_forward(const Tensor& x, Tensor& y, Tensor& idx, const Geom5& in, const Geom5& out,
                                 const int64_t* win, bool per_plane) {
  DeviceGuard guard(x.device.index, current_op());
  const int64_t n = y.numel();
  if (n == 0) return;
  const char* op = current_op();
  const Stream s = current_stream();
  const int64_t wstride = 2 * (out.D + out.H + out.W);
  const std::vector<int64_t> tab(win, win + (per_plane ? in.N * in.C : 1) * wstride);
  const DeviceBuffer t = upload(tab, x.device.index, s, op);
  dispatch_floating(x.dtype, op, [&](auto tag) {
    using T = decltype(tag);
    launch(op, fmp_forward_kernel<T>, dim3(grid_for(n)), dim3(kThreads), 0, s, x.ptr<T>(), y.ptr<T>(),
           idx.ptr<int64_t>(), shape_of(in), shape_of(out), t.as<const int64_t>(), per_plane, n);
  });
}

bool fractional_max_pool_backward(const Tensor& dy, const Tensor& idx, Tensor& dx, const Geom5& in, const Geom5& out,
                                  int64_t* bad) {
  DeviceGuard guard(dy.device.index, current_op());
  const int64_t n_in = dx.numel(), n_out = dy.numel();
  if (n_in == 0) return true;
  const char* op = current_op();
  const Stream s = current_stream();
  const int dev = dy.device.index;
  const Shape si = shape_of(in), so = shape_of(out);
  const int64_t L = in.D + in.H + in.W, entries = in.N * in.C * L;
  DeviceBuffer lo(entries * sizeof(long long), dev, s), hi(entries * sizeof(long long), dev, s);
  DeviceBuffer stats(4 * sizeof(unsigned long long), dev, s);
  rt::memset_async(lo.as<void>(), 0x7F, entries * sizeof(long long), s, op);  // 0x7F7F...: above any coordinate
  rt::memset_async(hi.as<void>(), 0xFF, entries * sizeof(long long), s, op);  // -1: below any coordinate
  rt::memset_async(stats.as<void>(), 0xFF, sizeof(unsigned long long), s, op);
  rt::memset_async(stats.as<unsigned long long>() + 1, 0, 3 * sizeof(unsigned long long), s, op);
  if (n_out > 0)
    launch(op, fmp_ranges_kernel, dim3(grid_for(n_out)), dim3(kThreads), 0, s, idx.ptr<int64_t>(), lo.as<long long>(),
           hi.as<long long>(), stats.as<unsigned long long>(), si, so, n_out);
  launch(op, fmp_widths_kernel, dim3(grid_for(entries)), dim3(kThreads), 0, s, lo.as<const long long>(),
         hi.as<const long long>(), stats.as<unsigned long long>(), in.D, in.H, L, entries);
  unsigned long long st[4];
  copy_to_host(st, stats.as<unsigned long long>(), sizeof(st), s, op);
  if (st[0] != ~0ull) {
    copy_to_host(bad, idx.ptr<int64_t>() + st[0], sizeof(int64_t), s, op);
    return false;
  }
  const bool gather = st[1] * st[2] * st[3] <= kMaxCandidates;
  dispatch_floating(dy.dtype, op, [&](auto tag) {
    using T = decltype(tag);
    if (gather)
      launch(op, fmp_gather_kernel<T>, dim3(grid_for(n_in)), dim3(kThreads), 0, s, dy.ptr<T>(), idx.ptr<int64_t>(),
             dx.ptr<T>(), lo.as<const long long>(), hi.as<const long long>(), si, so, n_in);
    else plane_backward<T>(dy, idx, dx, si, so, s, op);
  });
  return true;
}

}  // namespace cuda
}  // namespace cnnops
