// CUDA pooling (max, average, LP; adaptive and global are window tables too), forward and
// backward, 1-D/2-D/3-D, channels first or last, float32/float64/float16/bfloat16.
//
// Work split: one thread per output element (forward) or per input element (backward), in a
// grid-stride loop over the tensor in memory order, so consecutive threads touch consecutive
// addresses in both layouts (along W channels first, along C channels last). The windows come
// from the device-neutral layer as per-dimension tables (first valid tap, tap count, divisor
// factor); they are uploaded once per call (a few KB) and read through the cache.
//
// Forward walks the window in row-major order with the CPU kernels' rule (a tap wins when it is
// greater or NaN; ties keep the first), so max values and indices equal the CPU's bit for bit.
// Backward is a gather, never a scatter: each input element sums, in increasing output order,
// the outputs whose window holds it (the candidates per dimension come from an inverse table
// built on the host), so there are no atomics and every run gives the same bits; for max pooling
// with indices that order is the CPU's, so float32/float64 gradients equal the CPU's exactly.
// Indices a caller made up (inside the plane but outside their window) cannot be found by the
// gather: a validation pass detects them and a per-plane sequential kernel handles that call.
// float16/bfloat16 accumulate in float32.
#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "core/cuda_kernel.h"
#include "ops/cuda/pool.h"

namespace cnnops {
namespace cuda {

namespace {

// What every kernel needs, by value. Tables point into one device buffer: begin/count/size per
// dimension (length out[s]) and, for the backward, the inverse candidate ranges lo/hi per
// dimension (length in[s]).
// I: the index type of the kernels, int32_t when every tensor of the call has fewer than 2^30
// elements (integer division is several times cheaper than in int64_t), else int64_t.
template <typename I>
struct Dims {
  I N, C, in[3], out[3], dil[3];
  bool cl;
  int kind;  // PoolKind
  I divisor_override;
  double norm_type, kprod;
  const int64_t *begin[3], *count[3], *size[3], *lo[3], *hi[3];
};

template <typename I>
Dims<I> narrow(const Dims<int64_t>& d) {
  Dims<I> r;
  r.N = static_cast<I>(d.N);
  r.C = static_cast<I>(d.C);
  for (int k = 0; k < 3; ++k) {
    r.in[k] = static_cast<I>(d.in[k]);
    r.out[k] = static_cast<I>(d.out[k]);
    r.dil[k] = static_cast<I>(d.dil[k]);
    r.begin[k] = d.begin[k];
    r.count[k] = d.count[k];
    r.size[k] = d.size[k];
    r.lo[k] = d.lo[k];
    r.hi[k] = d.hi[k];
  }
  r.cl = d.cl;
  r.kind = d.kind;
  r.divisor_override = static_cast<I>(d.divisor_override);
  r.norm_type = d.norm_type;
  r.kprod = d.kprod;
  return r;
}

// Inverse of one dimension's windows: lo[i] / hi[i] are the first / last output whose tap range
// [begin, begin + (count - 1) * dil] holds input i (lo > hi when none does). Each input is
// assigned once per direction: positions already assigned are skipped with a next-pointer forest.
void inverse_ranges(const std::vector<int64_t>& begin, const std::vector<int64_t>& count, int64_t dil, int64_t in,
                    int64_t* lo, int64_t* hi) {
  const int64_t out = static_cast<int64_t>(begin.size());
  std::vector<int64_t> next(in + 1);
  auto find = [&](int64_t i) {
    int64_t r = i;
    while (next[r] != r) r = next[r];
    while (next[i] != r) {
      const int64_t n = next[i];
      next[i] = r;
      i = n;
    }
    return r;
  };
  for (int64_t i = 0; i < in; ++i) lo[i] = 1, hi[i] = 0;
  for (int pass = 0; pass < 2; ++pass) {
    for (int64_t i = 0; i <= in; ++i) next[i] = i;
    for (int64_t k = 0; k < out; ++k) {
      const int64_t o = pass == 0 ? k : out - 1 - k;
      if (count[o] <= 0) continue;
      const int64_t a = begin[o], b = std::min(in - 1, begin[o] + (count[o] - 1) * dil);
      for (int64_t i = find(a); i <= b; i = find(i)) {
        (pass == 0 ? lo : hi)[i] = o;
        next[i] = i + 1;
      }
    }
  }
}

// Tables on the device. `inverse`: also the candidate ranges for a backward gather.
struct Tables {
  DeviceBuffer buf;
  Dims<int64_t> d{};
};

Tables make_tables(const PoolGeom& g, bool inverse, int device, Stream s, const char* op) {
  std::vector<int64_t> h;
  int64_t off[3][5];
  for (int k = 0; k < 3; ++k) {
    off[k][0] = static_cast<int64_t>(h.size());
    h.insert(h.end(), g.begin[k].begin(), g.begin[k].end());
    off[k][1] = static_cast<int64_t>(h.size());
    h.insert(h.end(), g.count[k].begin(), g.count[k].end());
    off[k][2] = static_cast<int64_t>(h.size());
    h.insert(h.end(), g.size[k].begin(), g.size[k].end());
    off[k][3] = off[k][4] = static_cast<int64_t>(h.size());
    if (inverse) {
      h.resize(h.size() + 2 * g.in[k]);
      off[k][4] = off[k][3] + g.in[k];
      inverse_ranges(g.begin[k], g.count[k], g.dil[k], g.in[k], h.data() + off[k][3], h.data() + off[k][4]);
    }
  }
  Tables t;
  t.buf = upload(h, device, s, op);
  Dims<int64_t>& d = t.d;
  d.N = g.N;
  d.C = g.C;
  for (int k = 0; k < 3; ++k) {
    d.in[k] = g.in[k];
    d.out[k] = g.out[k];
    d.dil[k] = g.dil[k];
    const int64_t* base = t.buf.as<int64_t>();
    d.begin[k] = base + off[k][0];
    d.count[k] = base + off[k][1];
    d.size[k] = base + off[k][2];
    d.lo[k] = base + off[k][3];
    d.hi[k] = base + off[k][4];
  }
  d.cl = g.channels_last;
  d.kind = static_cast<int>(g.kind);
  d.divisor_override = g.divisor_override;
  d.norm_type = g.norm_type;
  d.kprod = g.kprod;
  return t;
}

// ---- device helpers ----

template <typename A>
__device__ __forceinline__ A pow_a(A v, double p) {
  if (p == 1.0) return v;
  if (p == 2.0) return v * v;
  return static_cast<A>(pow(v, static_cast<A>(p)));
}
template <typename A>
__device__ __forceinline__ A root_a(A s, double p) {
  if (p == 1.0) return s;
  if (p == 2.0) return sqrt(s);
  return static_cast<A>(pow(s, static_cast<A>(1.0 / p)));
}
template <typename A>
__device__ __forceinline__ A pow_pm1(A v, double p) {
  if (p == 1.0) return A(1);
  if (p == 2.0) return v;
  return static_cast<A>(pow(v, static_cast<A>(p - 1.0)));
}

// Element (n, c, spatial q) of a (N, C, Q) or (N, Q, C) tensor.
template <typename I>
__device__ __forceinline__ I at(const Dims<I>& d, I n, I c, I q, I Q) {
  return d.cl ? (n * Q + q) * d.C + c : (n * d.C + c) * Q + q;
}

// Memory-order index -> (n, c, q) for a tensor of Q spatial positions per plane.
template <typename I>
__device__ __forceinline__ void decode(const Dims<I>& d, I i, I Q, I& n, I& c, I& q) {
  if (d.cl) {
    c = i % d.C;
    const I t = i / d.C;
    q = t % Q;
    n = t / Q;
  } else {
    q = i % Q;
    const I t = i / Q;
    c = t % d.C;
    n = t / d.C;
  }
}

template <typename I>
__device__ __forceinline__ I divisor_of(const Dims<I>& d, I od, I oh, I ow) {
  return d.divisor_override > 0 ? d.divisor_override : d.size[0][od] * d.size[1][oh] * d.size[2][ow];
}

// Whether input coordinate i of dimension k is a tap of output o's window.
template <typename I>
__device__ __forceinline__ bool holds(const Dims<I>& d, int k, I o, I i) {
  const I t = i - static_cast<I>(d.begin[k][o]);
  if (d.dil[k] == 1) return t >= 0 && t < d.count[k][o];
  return t >= 0 && t % d.dil[k] == 0 && t / d.dil[k] < d.count[k][o];
}

// The window of output (od, oh, ow): its first tap (flat spatial index; where the argmax starts)
// and f(i) for every valid tap i in row-major order.
template <typename I>
__device__ __forceinline__ I first_tap(const Dims<I>& d, I od, I oh, I ow) {
  return (static_cast<I>(d.begin[0][od]) * d.in[1] + static_cast<I>(d.begin[1][oh])) * d.in[2] +
         static_cast<I>(d.begin[2][ow]);
}
template <typename I, typename F>
__device__ __forceinline__ void for_taps(const Dims<I>& d, I od, I oh, I ow, F&& f) {
  const I H = d.in[1], W = d.in[2];
  const I bd = d.begin[0][od], cd = d.count[0][od], bh = d.begin[1][oh], ch = d.count[1][oh];
  const I bw = d.begin[2][ow], cw = d.count[2][ow];
  for (I jd = 0; jd < cd; ++jd)
    for (I jh = 0; jh < ch; ++jh) {
      const I row = ((bd + jd * d.dil[0]) * H + bh + jh * d.dil[1]) * W + bw;
      for (I jw = 0; jw < cw; ++jw) f(row + jw * d.dil[2]);
    }
}

// ---- forward ----

template <typename T, typename I>
__global__ void max_forward_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t* __restrict__ idx, Dims<I> d,
                                   bool tf) {
  using A = typename Acc<T>::type;
  const I P = d.in[0] * d.in[1] * d.in[2], Q = d.out[0] * d.out[1] * d.out[2];
  const I total = d.N * d.C * Q;
  const I es = d.cl ? d.C : 1;
  for (I o = blockIdx.x * I(blockDim.x) + threadIdx.x; o < total; o += I(gridDim.x) * blockDim.x) {
    I n, c, q;
    decode(d, o, Q, n, c, q);
    const I ow = q % d.out[2], oh = (q / d.out[2]) % d.out[1], od = q / (d.out[2] * d.out[1]);
    const T* xp = x + (d.cl ? n * P * d.C + c : (n * d.C + c) * P);
    A best = static_cast<A>(-INFINITY);
    I bi = first_tap(d, od, oh, ow);
    for_taps(d, od, oh, ow, [&](I i) {
      const A v = to_acc(xp[i * es]);
      if (v > best || is_nan(v)) {
        best = v;
        bi = i;
      }
    });
    y[o] = from_acc<T>(best);
    if (idx) idx[o] = tf ? bi * d.C + c : bi;
  }
}

template <typename T, typename I>
__global__ void sum_forward_kernel(const T* __restrict__ x, T* __restrict__ y, Dims<I> d) {
  using A = typename Acc<T>::type;
  const I P = d.in[0] * d.in[1] * d.in[2], Q = d.out[0] * d.out[1] * d.out[2];
  const I total = d.N * d.C * Q;
  const I es = d.cl ? d.C : 1;
  const bool lp = d.kind == static_cast<int>(PoolKind::Lp);
  for (I o = blockIdx.x * I(blockDim.x) + threadIdx.x; o < total; o += I(gridDim.x) * blockDim.x) {
    I n, c, q;
    decode(d, o, Q, n, c, q);
    const I ow = q % d.out[2], oh = (q / d.out[2]) % d.out[1], od = q / (d.out[2] * d.out[1]);
    const T* xp = x + (d.cl ? n * P * d.C + c : (n * d.C + c) * P);
    A s = 0;
    for_taps(d, od, oh, ow, [&](I i) {
      const A v = to_acc(xp[i * es]);
      s += lp ? pow_a(v, d.norm_type) : v;
    });
    const A a = s / static_cast<A>(divisor_of(d, od, oh, ow));
    y[o] = from_acc<T>(lp ? root_a(a * static_cast<A>(d.kprod), d.norm_type) : a);
  }
}

// ---- backward ----

// Calls f(o_flat, od, oh, ow) for every output whose window holds input (id, ih, iw), in
// increasing output order.
template <typename I, typename F>
__device__ __forceinline__ void for_outputs_holding(const Dims<I>& d, I id, I ih, I iw, F&& f) {
  const I d0 = d.lo[0][id], d1 = d.hi[0][id], h0 = d.lo[1][ih], h1 = d.hi[1][ih];
  const I w0 = d.lo[2][iw], w1 = d.hi[2][iw];
  for (I od = d0; od <= d1; ++od) {
    if (!holds(d, 0, od, id)) continue;
    for (I oh = h0; oh <= h1; ++oh) {
      if (!holds(d, 1, oh, ih)) continue;
      for (I ow = w0; ow <= w1; ++ow)
        if (holds(d, 2, ow, iw)) f((od * d.out[1] + oh) * d.out[2] + ow, od, oh, ow);
    }
  }
}

// Max backward by gather: input i collects dy[o] of every candidate output whose index is i.
template <typename T, typename I>
__global__ void max_backward_gather_kernel(const T* __restrict__ dy, const int64_t* __restrict__ idx,
                                           T* __restrict__ dx, Dims<I> d) {
  using A = typename Acc<T>::type;
  const I P = d.in[0] * d.in[1] * d.in[2], Q = d.out[0] * d.out[1] * d.out[2];
  const I total = d.N * d.C * P;
  for (I i = blockIdx.x * I(blockDim.x) + threadIdx.x; i < total; i += I(gridDim.x) * blockDim.x) {
    I n, c, p;
    decode(d, i, P, n, c, p);
    const I iw = p % d.in[2], ih = (p / d.in[2]) % d.in[1], id = p / (d.in[2] * d.in[1]);
    A s = 0;
    for_outputs_holding(d, id, ih, iw, [&](I q, I, I, I) {
      const I o = at(d, n, c, q, Q);
      if (idx[o] == p) s += to_acc(dy[o]);
    });
    dx[i] = from_acc<T>(s);
  }
}

// flags[0]: an index outside its plane; flags[1]: an index inside the plane but outside its
// window (the gather cannot find it). Every writer stores the same value.
template <typename I>
__global__ void check_indices_kernel(const int64_t* __restrict__ idx, Dims<I> d, int* flags) {
  const I P = d.in[0] * d.in[1] * d.in[2], Q = d.out[0] * d.out[1] * d.out[2];
  const I total = d.N * d.C * Q;
  for (I o = blockIdx.x * I(blockDim.x) + threadIdx.x; o < total; o += I(gridDim.x) * blockDim.x) {
    I n, c, q;
    decode(d, o, Q, n, c, q);
    const int64_t raw = idx[o];
    if (raw < 0 || raw >= P) {
      flags[0] = 1;
      continue;
    }
    const I i = static_cast<I>(raw);
    const I ow = q % d.out[2], oh = (q / d.out[2]) % d.out[1], od = q / (d.out[2] * d.out[1]);
    const I iw = i % d.in[2], ih = (i / d.in[2]) % d.in[1], id = i / (d.in[2] * d.in[1]);
    if (!(holds(d, 0, od, id) && holds(d, 1, oh, ih) && holds(d, 2, ow, iw))) flags[1] = 1;
  }
}

// Max backward for arbitrary in-plane indices: one thread per (n, c) plane adds its outputs in
// order, as the CPU does (slow for few planes; only calls with hand-made indices come here).
template <typename T, typename I>
__global__ void max_backward_planes_kernel(const T* __restrict__ dy, const int64_t* __restrict__ idx,
                                           typename Acc<T>::type* __restrict__ acc, Dims<I> d) {
  const I P = d.in[0] * d.in[1] * d.in[2], Q = d.out[0] * d.out[1] * d.out[2];
  for (I pl = blockIdx.x * I(blockDim.x) + threadIdx.x; pl < d.N * d.C; pl += I(gridDim.x) * blockDim.x) {
    const I n = pl / d.C, c = pl % d.C;
    for (I p = 0; p < P; ++p) acc[at(d, n, c, p, P)] = 0;
    for (I q = 0; q < Q; ++q) {
      const I o = at(d, n, c, q, Q);
      acc[at(d, n, c, static_cast<I>(idx[o]), P)] += to_acc(dy[o]);
    }
  }
}

template <typename T>
__global__ void convert_kernel(const typename Acc<T>::type* __restrict__ a, T* __restrict__ y, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = from_acc<T>(a[i]);
}

// LP backward, first pass: per output, the factor its grad spreads with (dy * k * y / y^p, 0
// where y^p is 0), from the window's sum of x^p.
template <typename T, typename I>
__global__ void lp_coef_kernel(const T* __restrict__ x, const T* __restrict__ dy,
                               typename Acc<T>::type* __restrict__ coef, Dims<I> d) {
  using A = typename Acc<T>::type;
  const I P = d.in[0] * d.in[1] * d.in[2], Q = d.out[0] * d.out[1] * d.out[2];
  const I total = d.N * d.C * Q;
  const I es = d.cl ? d.C : 1;
  for (I o = blockIdx.x * I(blockDim.x) + threadIdx.x; o < total; o += I(gridDim.x) * blockDim.x) {
    I n, c, q;
    decode(d, o, Q, n, c, q);
    const I ow = q % d.out[2], oh = (q / d.out[2]) % d.out[1], od = q / (d.out[2] * d.out[1]);
    const T* xp = x + (d.cl ? n * P * d.C + c : (n * d.C + c) * P);
    A s = 0;
    for_taps(d, od, oh, ow, [&](I i) { s += pow_a(to_acc(xp[i * es]), d.norm_type); });
    const A div = static_cast<A>(divisor_of(d, od, oh, ow));
    const A k = static_cast<A>(d.kprod) / div;
    const A a = s / div * static_cast<A>(d.kprod);
    coef[o] = a == A(0) ? A(0) : to_acc(dy[o]) * k * (root_a(a, d.norm_type) / a);
  }
}

// Average / LP backward by gather: input i sums dy[o] / divisor (average) or coef[o] * x^(p-1)
// (LP) over the outputs whose window holds it.
template <typename T, typename I>
__global__ void sum_backward_gather_kernel(const T* __restrict__ dy, const T* __restrict__ x,
                                           const typename Acc<T>::type* __restrict__ coef, T* __restrict__ dx,
                                           Dims<I> d) {
  using A = typename Acc<T>::type;
  const I P = d.in[0] * d.in[1] * d.in[2], Q = d.out[0] * d.out[1] * d.out[2];
  const I total = d.N * d.C * P;
  for (I i = blockIdx.x * I(blockDim.x) + threadIdx.x; i < total; i += I(gridDim.x) * blockDim.x) {
    I n, c, p;
    decode(d, i, P, n, c, p);
    const I iw = p % d.in[2], ih = (p / d.in[2]) % d.in[1], id = p / (d.in[2] * d.in[1]);
    A s = 0;
    if (coef) {
      for_outputs_holding(d, id, ih, iw, [&](I q, I, I, I) { s += coef[at(d, n, c, q, Q)]; });
      s *= pow_pm1(to_acc(x[i]), d.norm_type);
    } else {
      for_outputs_holding(d, id, ih, iw, [&](I q, I od, I oh, I ow) {
        s += to_acc(dy[at(d, n, c, q, Q)]) / static_cast<A>(divisor_of(d, od, oh, ow));
      });
    }
    dx[i] = from_acc<T>(s);
  }
}

// Launches run with int32_t indices when every tensor of the call is small enough.
bool small_indices(const PoolGeom& g) {
  constexpr int64_t kLimit = int64_t(1) << 30;
  const int64_t planes = g.N * g.C;
  return g.in_plane() < kLimit / planes && g.out_plane() < kLimit / planes;
}

template <typename T, typename I>
void forward_with(const Tensor& x, PoolResult& r, const PoolGeom& g, const Dims<I>& d, bool tf, Stream s,
                  const char* op) {
  const int64_t total = r.output.numel();
  if (g.kind == PoolKind::Max)
    launch(op, max_forward_kernel<T, I>, dim3(grid_for(total)), dim3(kThreads), 0, s, x.ptr<T>(), r.output.ptr<T>(),
           r.has_indices ? r.indices.ptr<int64_t>() : nullptr, d, tf);
  else
    launch(op, sum_forward_kernel<T, I>, dim3(grid_for(total)), dim3(kThreads), 0, s, x.ptr<T>(), r.output.ptr<T>(), d);
}

template <typename T>
void run_forward(const PoolGeom& g, const Tensor& x, PoolResult& r, bool tf) {
  const char* op = current_op();
  const Stream s = current_stream();
  if (r.output.numel() == 0) return;
  Tables t = make_tables(g, false, x.device.index, s, op);
  if (small_indices(g)) forward_with<T, int32_t>(x, r, g, narrow<int32_t>(t.d), tf, s, op);
  else forward_with<T, int64_t>(x, r, g, t.d, tf, s, op);
}

template <typename T, typename I>
bool backward_with(const PoolGeom& g, const Tensor& dy, const Tensor& x, const Tensor* indices, Tensor& dx,
                   const Dims<I>& d, Stream s, const char* op) {
  using A = typename Acc<T>::type;
  const int dev = x.device.index;
  const int64_t total = dx.numel(), outs = dy.numel();
  const dim3 block(kThreads);
  if (g.kind != PoolKind::Max) {
    DeviceBuffer coef;
    if (g.kind == PoolKind::Lp && outs > 0) {
      coef = DeviceBuffer(outs * sizeof(A), dev, s);
      launch(op, lp_coef_kernel<T, I>, dim3(grid_for(outs)), block, 0, s, x.ptr<T>(), dy.ptr<T>(), coef.as<A>(), d);
    }
    launch(op, sum_backward_gather_kernel<T, I>, dim3(grid_for(total)), block, 0, s, dy.ptr<T>(), x.ptr<T>(),
           g.kind == PoolKind::Lp ? coef.as<A>() : static_cast<A*>(nullptr), dx.ptr<T>(), d);
    return true;
  }
  Tensor computed;
  const int64_t* idx = nullptr;
  bool sequential = false;
  if (indices) {
    idx = indices->ptr<int64_t>();
    int flags[2] = {0, 0};
    DeviceBuffer fb(sizeof(flags), dev, s);
    copy_to_device(fb.as<int>(), flags, sizeof(flags), s, op);
    if (outs > 0) launch(op, check_indices_kernel<I>, dim3(grid_for(outs)), block, 0, s, idx, d, fb.as<int>());
    copy_to_host(flags, fb.as<int>(), sizeof(flags), s, op);
    if (flags[0]) return false;
    sequential = flags[1] != 0;
  } else {
    // the argmax, recomputed into a workspace
    computed = empty(dy.shape, DType::Int64, dy.device);
    Tensor y = empty(dy.shape, dy.dtype, dy.device);
    if (outs > 0)
      launch(op, max_forward_kernel<T, I>, dim3(grid_for(outs)), block, 0, s, x.ptr<T>(), y.ptr<T>(),
             computed.ptr<int64_t>(), d, false);
    idx = computed.ptr<int64_t>();
  }
  if (!sequential) {
    launch(op, max_backward_gather_kernel<T, I>, dim3(grid_for(total)), block, 0, s, dy.ptr<T>(), idx, dx.ptr<T>(), d);
    return true;
  }
  DeviceBuffer acc;
  A* ap = reinterpret_cast<A*>(dx.ptr<T>());
  if (!std::is_same<A, T>::value) {
    acc = DeviceBuffer(total * sizeof(A), dev, s);
    ap = acc.as<A>();
  }
  launch(op, max_backward_planes_kernel<T, I>, dim3(grid_for(g.N * g.C)), block, 0, s, dy.ptr<T>(), idx, ap, d);
  if (!std::is_same<A, T>::value)
    launch(op, convert_kernel<T>, dim3(grid_for(total)), block, 0, s, static_cast<const A*>(ap), dx.ptr<T>(), total);
  return true;
}

template <typename T>
bool run_backward(const PoolGeom& g, const Tensor& dy, const Tensor& x, const Tensor* indices, Tensor& dx) {
  const char* op = current_op();
  const Stream s = current_stream();
  if (dx.numel() == 0) return true;
  Tables t = make_tables(g, true, x.device.index, s, op);
  if (small_indices(g)) return backward_with<T, int32_t>(g, dy, x, indices, dx, narrow<int32_t>(t.d), s, op);
  return backward_with<T, int64_t>(g, dy, x, indices, dx, t.d, s, op);
}

}  // namespace

void pool_forward(const PoolGeom& g, const Tensor& x, PoolResult& r, bool tf_indices) {
  DeviceGuard guard(x.device.index, current_op());
  dispatch_floating(x.dtype, current_op(), [&](auto tag) { run_forward<decltype(tag)>(g, x, r, tf_indices); });
}

bool pool_backward(const PoolGeom& g, const Tensor& dy, const Tensor& x, const Tensor* indices, Tensor& dx) {
  DeviceGuard guard(x.device.index, current_op());
  return dispatch_floating(x.dtype, current_op(),
                           [&](auto tag) { return run_backward<decltype(tag)>(g, dy, x, indices, dx); });
}

}  // namespace cuda
}  // namespace cnnops
