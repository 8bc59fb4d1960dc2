// CUDA unpooling and nearest upsampling (1-D/2-D/3-D, channels first or last), forward and
// backward: max_unpool with indices, bed-of-nails and nearest upsampling.
//
// Work split: one thread per element of the tensor being written, in a grid-stride loop over it
// in memory order, so consecutive threads write consecutive addresses in both layouts (along W
// channels first, along C channels last) and every write is coalesced; reads follow the index
// tables. Apart from the upsampling backward these kernels only move values, so they copy raw
// 2/4/8-byte words (one kernel per element size, not per dtype; bits, NaN payloads included, equal
// the CPU's).
//
// Nothing is scattered with float atomics, so every run gives the same bits:
//  - upsampling forward and bed-of-nails both ways are gathers through the host's tables;
//  - upsampling backward is a gather: each input sums the contiguous run of outputs that copied
//    it, in the CPU's order (od, oh, ow ascending, and the CPU's pairing for 2x2 cells), so
//    float32/float64 gradients equal the CPU's bit for bit; float16/bfloat16 add in float32;
//  - max_unpool forward resolves duplicate indices as the CPU's in-order writes do (the last
//    input in memory order wins): a first pass takes, per output, the integer atomicMax of
//    1 + the flat position of the inputs naming it into a winner buffer (32-bit when the input
//    has fewer than 2^32 - 1 elements), a second pass gathers each output from its winner (zero
//    when none). Integer atomics commute, so the winner does not depend on the schedule;
//  - max_unpool backward is a gather through the indices.
// Out-of-plane indices: the pass reading the indices keeps the smallest flat position of a bad one
// (an integer atomicMin into one word); the driver reads that word back and the index there,
// which is the index the CPU reports (its first bad one in memory order).
#include <cstdint>
#include <vector>

#include "core/cuda_kernel.h"
#include "ops/cuda/geom5.h"
#include "ops/cuda/unpool.h"

namespace cnnops {
namespace cuda {

namespace {

// The flat offset of (n, c, d, h, w) in a contiguous tensor laid out as s.
__device__ __forceinline__ int64_t offset_of(const Shape& s, int64_t n, int64_t c, int64_t d, int64_t h, int64_t w) {
  const int64_t sp = (d * s.H + h) * s.W + w, plane = s.D * s.H * s.W;
  return s.cl ? (n * plane + sp) * s.C + c : (n * s.C + c) * plane + sp;
}

// The output element input j's index k names (k already inside [0, OS)): the same (n, c) plane.
__device__ __forceinline__ int64_t target_of(int64_t j, int64_t k, const Shape& in, int64_t OS) {
  const int64_t IS = in.D * in.H * in.W;
  if (in.cl) return ((j / (IS * in.C)) * OS + k) * in.C + j % in.C;
  return (j / IS) * OS + k;
}

__device__ __forceinline__ int64_t first_index() { return blockIdx.x * int64_t(blockDim.x) + threadIdx.x; }
__device__ __forceinline__ int64_t index_step() { return int64_t(gridDim.x) * blockDim.x; }

// ---- nearest upsampling ----

template <typename B>
__global__ void upsample_forward_kernel(const B* __restrict__ x, B* __restrict__ y, Shape in, Shape out,
                                        const int64_t* __restrict__ tab, int64_t n) {
  const int64_t* sd = tab;
  const int64_t* sh = tab + out.D;
  const int64_t* sw = sh + out.H;
  for (int64_t i = first_index(); i < n; i += index_step()) {
    const Coord q = coord_of(i, out);
    y[i] = x[offset_of(in, q.n, q.c, sd[q.d], sh[q.h], sw[q.w])];
  }
}

// `pairs`: every input column is read by exactly the output columns 2w and 2w + 1; then a cell of
// one output depth and two output rows is summed as (g00 + g01) + (g10 + g11), as the CPU does.
template <typename T>
__global__ void upsample_backward_kernel(const T* __restrict__ dy, T* __restrict__ dx, Shape in, Shape out,
                                         const int64_t* __restrict__ tab, bool pairs, int64_t n) {
  using A = typename Acc<T>::type;
  const int64_t* rd = tab;
  const int64_t* rh = tab + 2 * in.D;
  const int64_t* rw = rh + 2 * in.H;
  const int64_t cs = out.cl ? out.C : 1, rs = out.W * cs;  // strides of an output column and row
  for (int64_t i = first_index(); i < n; i += index_step()) {
    const Coord q = coord_of(i, in);
    const int64_t d0 = rd[2 * q.d], d1 = rd[2 * q.d + 1], h0 = rh[2 * q.h], h1 = rh[2 * q.h + 1];
    const int64_t w0 = rw[2 * q.w], w1 = rw[2 * q.w + 1];
    A s;
    if (pairs && d1 - d0 == 1 && h1 - h0 == 2) {
      const T* g = dy + offset_of(out, q.n, q.c, d0, h0, w0);
      s = (to_acc(g[0]) + to_acc(g[cs])) + (to_acc(g[rs]) + to_acc(g[rs + cs]));
    } else {
      s = A(0);
      for (int64_t od = d0; od < d1; ++od)
        for (int64_t oh = h0; oh < h1; ++oh) {
          const T* g = dy + offset_of(out, q.n, q.c, od, oh, 0);
          for (int64_t ow = w0; ow < w1; ++ow) s += to_acc(g[ow * cs]);
        }
    }
    dx[i] = from_acc<T>(s);
  }
}

// ---- max_unpool ----

// Winner pass: winner[o] = max over the inputs j naming output o of j + 1 (Wd: unsigned int or
// unsigned long long, the types CUDA's atomicMax takes).
template <typename Wd>
__global__ void unpool_winner_kernel(const int64_t* __restrict__ idx, Wd* __restrict__ winner,
                                     unsigned long long* __restrict__ bad, Shape in, int64_t OS, int64_t n) {
  for (int64_t j = first_index(); j < n; j += index_step()) {
    const int64_t k = idx[j];
    if (k < 0 || k >= OS) {
      atomicMin(bad, static_cast<unsigned long long>(j));
      continue;
    }
    atomicMax(winner + target_of(j, k, in, OS), static_cast<Wd>(j + 1));
  }
}

template <typename B, typename Wd>
__global__ void unpool_gather_kernel(const B* __restrict__ x, const Wd* __restrict__ winner, B* __restrict__ y,
                                     int64_t n) {
  for (int64_t o = first_index(); o < n; o += index_step()) {
    const Wd w = winner[o];
    y[o] = w ? x[w - 1] : B(0);
  }
}

template <typename B>
__global__ void unpool_backward_kernel(const B* __restrict__ dy, const int64_t* __restrict__ idx, B* __restrict__ dx,
                                       unsigned long long* __restrict__ bad, Shape in, int64_t OS, int64_t n) {
  for (int64_t j = first_index(); j < n; j += index_step()) {
    const int64_t k = idx[j];
    if (k < 0 || k >= OS) {
      atomicMin(bad, static_cast<unsigned long long>(j));
      dx[j] = B(0);
      continue;
    }
    dx[j] = dy[target_of(j, k, in, OS)];
  }
}

// ---- bed of nails ----

template <typename B>
__global__ void nails_forward_kernel(const B* __restrict__ x, B* __restrict__ y, Shape in, Shape out, int64_t sd,
                                     int64_t sh, int64_t sw, int64_t n) {
  for (int64_t o = first_index(); o < n; o += index_step()) {
    const Coord q = coord_of(o, out);
    const bool nail = q.d % sd == 0 && q.h % sh == 0 && q.w % sw == 0;
    y[o] = nail ? x[offset_of(in, q.n, q.c, q.d / sd, q.h / sh, q.w / sw)] : B(0);
  }
}

template <typename B>
__global__ void nails_backward_kernel(const B* __restrict__ dy, B* __restrict__ dx, Shape in, Shape out, int64_t sd,
                                      int64_t sh, int64_t sw, int64_t n) {
  for (int64_t i = first_index(); i < n; i += index_step()) {
    const Coord q = coord_of(i, in);
    dx[i] = dy[offset_of(out, q.n, q.c, q.d * sd, q.h * sh, q.w * sw)];
  }
}

// f(word{}) with the unsigned word of the dtype's size: the value-moving kernels copy bits.
template <typename F>
void dispatch_bits(DType dt, F&& f) {
  switch (dtype_size(dt)) {
    case 8: f(static_cast<unsigned long long>(0)); break;
    case 4: f(0u); break;
    default: f(static_cast<unsigned short>(0)); break;
  }
}

// The smallest flat position a kernel flagged (~0 when none) -> the index stored there in *bad.
bool read_bad(const DeviceBuffer& flag, const Tensor& idx, int64_t* bad, Stream s, const char* op) {
  unsigned long long pos = 0;
  copy_to_host(&pos, flag.as<unsigned long long>(), sizeof(pos), s, op);
  if (pos == ~0ull) return true;
  copy_to_host(bad, idx.ptr<int64_t>() + pos, sizeof(int64_t), s, op);
  return false;
}

// A one-word flag buffer holding ~0 (no bad index seen).
DeviceBuffer bad_flag(int device, Stream s, const char* op) {
  DeviceBuffer b(sizeof(unsigned long long), device, s);
  rt::memset_async(b.as<void>(), 0xFF, sizeof(unsigned long long), s, op);
  return b;
}

template <typename Wd, typename B>
bool unpool_forward_with(const Tensor& x, const Tensor& idx, Tensor& y, const Shape& in, int64_t OS, int64_t* bad,
                         Stream s, const char* op) {
  const int dev = x.device.index;
  const int64_t n_in = x.numel(), n_out = y.numel();
  DeviceBuffer winner(n_out * sizeof(Wd), dev, s);
  rt::memset_async(winner.as<void>(), 0, n_out * sizeof(Wd), s, op);
  DeviceBuffer flag = bad_flag(dev, s, op);
  launch(op, unpool_winner_kernel<Wd>, dim3(grid_for(n_in)), dim3(kThreads), 0, s, idx.ptr<int64_t>(), winner.as<Wd>(),
         flag.as<unsigned long long>(), in, OS, n_in);
  if (!read_bad(flag, idx, bad, s, op)) return false;
  launch(op, unpool_gather_kernel<B, Wd>, dim3(grid_for(n_out)), dim3(kThreads), 0, s, x.ptr<B>(),
         winner.as<const Wd>(), y.ptr<B>(), n_out);
  return true;
}

}  // namespace

void upsample_nearest_forward(const Tensor& x, Tensor& y, const Geom5& in, const Geom5& out, const int64_t* sd,
                              const int64_t* sh, const int64_t* sw) {
  DeviceGuard guard(x.device.index, current_op());
  const int64_t n = y.numel();
  if (n == 0) return;
  const char* op = current_op();
  const Stream s = current_stream();
  std::vector<int64_t> tab(sd, sd + out.D);
  tab.insert(tab.end(), sh, sh + out.H);
  tab.insert(tab.end(), sw, sw + out.W);
  const DeviceBuffer t = upload(tab, x.device.index, s, op);
  dispatch_bits(x.dtype, [&](auto word) {
    using B = decltype(word);
    launch(op, upsample_forward_kernel<B>, dim3(grid_for(n)), dim3(kThreads), 0, s, x.ptr<B>(), y.ptr<B>(),
           shape_of(in), shape_of(out), t.as<const int64_t>(), n);
  });
}

void upsample_nearest_backward(const Tensor& dy, Tensor& dx, const Geom5& in, const Geom5& out, const int64_t* rd,
                               const int64_t* rh, const int64_t* rw) {
  DeviceGuard guard(dy.device.index, current_op());
  const int64_t n = dx.numel();
  if (n == 0) return;
  const char* op = current_op();
  const Stream s = current_stream();
  std::vector<int64_t> tab(rd, rd + 2 * in.D);
  tab.insert(tab.end(), rh, rh + 2 * in.H);
  tab.insert(tab.end(), rw, rw + 2 * in.W);
  // the CPU's test for its paired 2x2 sums: output width twice the input's, column w read by 2w, 2w+1
  bool pairs = out.W == 2 * in.W;
  for (int64_t w = 0; w < in.W && pairs; ++w) pairs = rw[2 * w] == 2 * w && rw[2 * w + 1] == 2 * w + 2;
  const DeviceBuffer t = upload(tab, dy.device.index, s, op);
  dispatch_floating(dy.dtype, op, [&](auto tag) {
    using T = decltype(tag);
    launch(op, upsample_backward_kernel<T>, dim3(grid_for(n)), dim3(kThreads), 0, s, dy.ptr<T>(), dx.ptr<T>(),
           shape_of(in), shape_of(out), t.as<const int64_t>(), pairs, n);
  });
}

bool max_unpool_forward(const Tensor& x, const Tensor& idx, Tensor& y, const Geom5& in, const Geom5& out,
                        int64_t* bad) {
  DeviceGuard guard(x.device.index, current_op());
  if (x.numel() == 0) {
    if (y.numel() > 0) rt::memset_async(y.data, 0, y.numel() * dtype_size(y.dtype), current_stream(), current_op());
    return true;
  }
  const char* op = current_op();
  const Stream s = current_stream();
  bool ok = true;
  dispatch_bits(x.dtype, [&](auto word) {
    using B = decltype(word);
    // winners are 1 + a flat input position: 32 bits hold them for inputs below 2^32 - 1 elements
    if (x.numel() < int64_t(0xFFFFFFFFll))
      ok = unpool_forward_with<unsigned, B>(x, idx, y, shape_of(in), out.spatial(), bad, s, op);
    else ok = unpool_forward_with<unsigned long long, B>(x, idx, y, shape_of(in), out.spatial(), bad, s, op);
  });
  return ok;
}

bool max_unpool_backward(const Tensor& dy, const Tensor& idx, Tensor& dx, const Geom5& in, const Geom5& out,
                         int64_t* bad) {
  DeviceGuard guard(dy.device.index, current_op());
  const int64_t n = dx.numel();
  if (n == 0) return true;
  const char* op = current_op();
  const Stream s = current_stream();
  DeviceBuffer flag = bad_flag(dy.device.index, s, op);
  dispatch_bits(dy.dtype, [&](auto word) {
    using B = decltype(word);
    launch(op, unpool_backward_kernel<B>, dim3(grid_for(n)), dim3(kThreads), 0, s, dy.ptr<B>(), idx.ptr<int64_t>(),
           dx.ptr<B>(), flag.as<unsigned long long>(), shape_of(in), out.spatial(), n);
  });
  return read_bad(flag, idx, bad, s, op);
}

void bed_of_nails_forward(const Tensor& x, Tensor& y, const Geom5& in, const Geom5& out, const int64_t* scale) {
  DeviceGuard guard(x.device.index, current_op());
  const int64_t n = y.numel();
  if (n == 0) return;
  const char* op = current_op();
  dispatch_bits(x.dtype, [&](auto word) {
    using B = decltype(word);
    launch(op, nails_forward_kernel<B>, dim3(grid_for(n)), dim3(kThreads), 0, current_stream(), x.ptr<B>(), y.ptr<B>(),
           shape_of(in), shape_of(out), scale[0], scale[1], scale[2], n);
  });
}

void bed_of_nails_backward(const Tensor& dy, Tensor& dx, const Geom5& in, const Geom5& out, const int64_t* scale) {
  DeviceGuard guard(dy.device.index, current_op());
  const int64_t n = dx.numel();
  if (n == 0) return;
  const char* op = current_op();
  dispatch_bits(dy.dtype, [&](auto word) {
    using B = decltype(word);
    launch(op, nails_backward_kernel<B>, dim3(grid_for(n)), dim3(kThreads), 0, current_stream(), dy.ptr<B>(),
           dx.ptr<B>(), shape_of(in), shape_of(out), scale[0], scale[1], scale[2], n);
  });
}

}  // namespace cuda
}  // namespace cnnops
