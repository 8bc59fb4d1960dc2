// CUDA region ops (RoI Pool, RoI Align, PS RoI Pool, PS RoI Align), forward and backward,
// channels first or last, float32/float64/float16/bfloat16 (float16/bfloat16 in float32).
//
// Work split. Forward: one thread per output element in a grid-stride loop over memory order, so
// consecutive threads write consecutive addresses in both layouts; each thread walks its bin's
// samples (or window) with the arithmetic of ops/roi_geom.h, shared with the CPU kernels, so
// float32/float64 values equal the CPU's bit for bit (this file is compiled without FMA
// contraction). Backward is a gather, never a scatter: one thread per input row (image, channel,
// h) owns that row of the gradient and adds, for each of the image's regions in region order
// whose rows reach h, the contributions of the bins and samples that read row h, in bin, sample
// and tap order. That is the CPU kernels' order, so there are no atomics on values, every run
// gives the same bits, and float32/float64 gradients equal the CPU's exactly. The regions (a few
// numbers each, computed on the host) and each image's region list are uploaded once per call.
#include <algorithm>
#include <cfloat>
#include <type_traits>
#include <vector>

#include "core/cuda_kernel.h"
#include "ops/cuda/roi.h"

namespace cnnops {
namespace cuda {

namespace {

using roigeom::Region;

// Sizes every kernel needs, by value; the tables point into one device buffer.
struct Dims {
  int64_t N, C, H, W, K, Co, PH, PW;
  int kind;
  bool cl;
  const Region* regions;
  const int64_t* image_start;  // N + 1
  const int64_t* order;        // K
};

__device__ __forceinline__ bool is_ps(const Dims& d) { return d.kind == roigeom::PsPool || d.kind == roigeom::PsAlign; }

// input channel read by output channel c at bin (ph, pw)
__device__ __forceinline__ int64_t cin_of(const Dims& d, int64_t c, int64_t ph, int64_t pw) {
  return is_ps(d) ? (c * d.PH + ph) * d.PW + pw : c;
}
// element of channel ci, pixel q of image n
__device__ __forceinline__ int64_t in_at(const Dims& d, int64_t n, int64_t ci, int64_t q) {
  return d.cl ? (n * d.H * d.W + q) * d.C + ci : (n * d.C + ci) * d.H * d.W + q;
}
__device__ __forceinline__ int64_t out_at(const Dims& d, int64_t k, int64_t c, int64_t ph, int64_t pw) {
  return d.cl ? ((k * d.PH + ph) * d.PW + pw) * d.Co + c : ((k * d.Co + c) * d.PH + ph) * d.PW + pw;
}
// memory-order output index -> (k, c, ph, pw)
__device__ __forceinline__ void out_decode(const Dims& d, int64_t o, int64_t& k, int64_t& c, int64_t& ph, int64_t& pw) {
  if (d.cl) {
    c = o % d.Co;
    int64_t t = o / d.Co;
    pw = t % d.PW;
    t /= d.PW;
    ph = t % d.PH;
    k = t / d.PH;
  } else {
    pw = o % d.PW;
    int64_t t = o / d.PW;
    ph = t % d.PH;
    t /= d.PH;
    c = t % d.Co;
    k = t / d.Co;
  }
}
// memory-order row index -> (n, ci, h); rows are (N, C, H) channels first, (N, H, C) channels last
__device__ __forceinline__ void row_decode(const Dims& d, int64_t i, int64_t& n, int64_t& ci, int64_t& h) {
  if (d.cl) {
    ci = i % d.C;
    const int64_t t = i / d.C;
    h = t % d.H;
    n = t / d.H;
  } else {
    h = i % d.H;
    const int64_t t = i / d.H;
    ci = t % d.C;
    n = t / d.C;
  }
}

// ---- forward ----

template <typename T>
__global__ void align_forward_kernel(const T* __restrict__ x, T* __restrict__ y, Dims d) {
  using A = typename Acc<T>::type;
  const int64_t total = d.K * d.Co * d.PH * d.PW;
  for (int64_t o = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; o < total; o += int64_t(gridDim.x) * blockDim.x) {
    int64_t k, c, ph, pw;
    out_decode(d, o, k, c, ph, pw);
    const Region& r = d.regions[k];
    const A sh = static_cast<A>(r.start_h), sw = static_cast<A>(r.start_w);
    const A bh = static_cast<A>(r.bin_h), bw = static_cast<A>(r.bin_w);
    int64_t y0, y1, x0, x1;
    roigeom::sample_range(sh, ph, bh, r.grid_h, d.H, &y0, &y1);
    roigeom::sample_range(sw, pw, bw, r.grid_w, d.W, &x0, &x1);
    const int64_t ci = cin_of(d, c, ph, pw);
    A acc = A(0);
    for (int64_t iy = y0; iy < y1; ++iy) {
      const roigeom::AxisTap<A> ty = roigeom::axis_tap(roigeom::sample_pos(sh, ph, bh, iy, r.grid_h), d.H);
      for (int64_t ix = x0; ix < x1; ++ix) {
        const roigeom::AxisTap<A> tx = roigeom::axis_tap(roigeom::sample_pos(sw, pw, bw, ix, r.grid_w), d.W);
        const A w1 = ty.h * tx.h, w2 = ty.h * tx.l, w3 = ty.l * tx.h, w4 = ty.l * tx.l;
        const A v1 = to_acc(x[in_at(d, r.batch, ci, ty.lo * d.W + tx.lo)]);
        const A v2 = to_acc(x[in_at(d, r.batch, ci, ty.lo * d.W + tx.hi)]);
        const A v3 = to_acc(x[in_at(d, r.batch, ci, ty.hi * d.W + tx.lo)]);
        const A v4 = to_acc(x[in_at(d, r.batch, ci, ty.hi * d.W + tx.hi)]);
        acc += w1 * v1 + w2 * v2 + w3 * v3 + w4 * v4;
      }
    }
    y[o] = from_acc<T>(acc / static_cast<A>(r.count));
  }
}

template <typename T>
__global__ void pool_forward_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t* __restrict__ idx, Dims d) {
  using A = typename Acc<T>::type;
  const int64_t total = d.K * d.Co * d.PH * d.PW;
  const bool ps = is_ps(d);
  const int64_t ch = ps ? d.H - 1 : d.H, cw = ps ? d.W - 1 : d.W;
  for (int64_t o = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; o < total; o += int64_t(gridDim.x) * blockDim.x) {
    int64_t k, c, ph, pw;
    out_decode(d, o, k, c, ph, pw);
    const Region& r = d.regions[k];
    int64_t hs, he, ws, we;
    roigeom::pool_window(r.istart_h, static_cast<A>(r.bin_h), ph, ch, &hs, &he);
    roigeom::pool_window(r.istart_w, static_cast<A>(r.bin_w), pw, cw, &ws, &we);
    const bool empty = he <= hs || we <= ws;
    const int64_t ci = cin_of(d, c, ph, pw);
    if (!ps) {
      A best = empty ? A(0) : static_cast<A>(-FLT_MAX);
      int64_t bi = -1;
      for (int64_t h = hs; h < he; ++h)
        for (int64_t q = h * d.W + ws; q < h * d.W + we; ++q) {
          const A v = to_acc(x[in_at(d, r.batch, ci, q)]);
          if (v > best) {
            best = v;
            bi = q;
          }
        }
      y[o] = from_acc<T>(best);
      idx[o] = bi;
    } else {
      A sum = A(0);
      for (int64_t h = hs; h < he; ++h)
        for (int64_t q = h * d.W + ws; q < h * d.W + we; ++q) sum += to_acc(x[in_at(d, r.batch, ci, q)]);
      y[o] = from_acc<T>(empty ? A(0) : sum / static_cast<A>((he - hs) * (we - ws)));
    }
  }
}

// ---- backward: one thread per gradient row ----

// acc: the gradient (A == T) or a float workspace of its shape; each thread zeroes and fills its row.
template <typename T>
__global__ void align_backward_kernel(const T* __restrict__ dy, typename Acc<T>::type* __restrict__ acc, Dims d) {
  using A = typename Acc<T>::type;
  const int64_t rows = d.N * d.C * d.H;
  const bool ps = is_ps(d);
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < rows; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t n, ci, h;
    row_decode(d, i, n, ci, h);
    A* row = acc + in_at(d, n, ci, h * d.W);
    const int64_t es = d.cl ? d.C : 1;
    for (int64_t w = 0; w < d.W; ++w) row[w * es] = A(0);
    // the output channel and bins that read input channel ci
    const int64_t bins = d.PH * d.PW;
    const int64_t c = ps ? ci / bins : ci;
    const int64_t ph_lo = ps ? (ci % bins) / d.PW : 0, ph_hi = ps ? ph_lo + 1 : d.PH;
    const int64_t pw_lo = ps ? ci % d.PW : 0, pw_hi = ps ? pw_lo + 1 : d.PW;
    for (int64_t j = d.image_start[n]; j < d.image_start[n + 1]; ++j) {
      const int64_t k = d.order[j];
      const Region& r = d.regions[k];
      if (h < r.row0 || h >= r.row1) continue;
      const A sh = static_cast<A>(r.start_h), sw = static_cast<A>(r.start_w);
      const A bh = static_cast<A>(r.bin_h), bw = static_cast<A>(r.bin_w), count = static_cast<A>(r.count);
      for (int64_t ph = ph_lo; ph < ph_hi; ++ph) {
        int64_t y0, y1;
        roigeom::sample_range(sh, ph, bh, r.grid_h, d.H, &y0, &y1);
        if (y0 >= y1) continue;
        for (int64_t pw = pw_lo; pw < pw_hi; ++pw) {
          int64_t x0, x1;
          roigeom::sample_range(sw, pw, bw, r.grid_w, d.W, &x0, &x1);
          if (x0 >= x1) continue;
          const A g = to_acc(dy[out_at(d, k, c, ph, pw)]);
          for (int64_t iy = y0; iy < y1; ++iy) {
            const roigeom::AxisTap<A> ty = roigeom::axis_tap(roigeom::sample_pos(sh, ph, bh, iy, r.grid_h), d.H);
            if (ty.lo != h && ty.hi != h) continue;
            for (int64_t ix = x0; ix < x1; ++ix) {
              const roigeom::AxisTap<A> tx = roigeom::axis_tap(roigeom::sample_pos(sw, pw, bw, ix, r.grid_w), d.W);
              const A w1 = ty.h * tx.h, w2 = ty.h * tx.l, w3 = ty.l * tx.h, w4 = ty.l * tx.l;
              const A g1 = g * w1 / count, g2 = g * w2 / count, g3 = g * w3 / count, g4 = g * w4 / count;
              if (ty.lo == h) {
                row[tx.lo * es] += g1;
                row[tx.hi * es] += g2;
              }
              if (ty.hi == h) {
                row[tx.lo * es] += g3;
                row[tx.hi * es] += g4;
              }
            }
          }
        }
      }
    }
  }
}

template <typename T>
__global__ void pool_backward_kernel(const T* __restrict__ dy, const int64_t* __restrict__ idx,
                                     typename Acc<T>::type* __restrict__ acc, Dims d) {
  using A = typename Acc<T>::type;
  const int64_t rows = d.N * d.C * d.H;
  const bool ps = is_ps(d);
  const int64_t ch = ps ? d.H - 1 : d.H, cw = ps ? d.W - 1 : d.W;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < rows; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t n, ci, h;
    row_decode(d, i, n, ci, h);
    A* row = acc + in_at(d, n, ci, h * d.W);
    const int64_t es = d.cl ? d.C : 1;
    for (int64_t w = 0; w < d.W; ++w) row[w * es] = A(0);
    const int64_t bins = d.PH * d.PW;
    const int64_t c = ps ? ci / bins : ci;
    const int64_t ph_lo = ps ? (ci % bins) / d.PW : 0, ph_hi = ps ? ph_lo + 1 : d.PH;
    const int64_t pw_lo = ps ? ci % d.PW : 0, pw_hi = ps ? pw_lo + 1 : d.PW;
    for (int64_t j = d.image_start[n]; j < d.image_start[n + 1]; ++j) {
      const int64_t k = d.order[j];
      const Region& r = d.regions[k];
      if (h < r.row0 || h >= r.row1) continue;
      for (int64_t ph = ph_lo; ph < ph_hi; ++ph) {
        int64_t hs, he;
        roigeom::pool_window(r.istart_h, static_cast<A>(r.bin_h), ph, ch, &hs, &he);
        if (h < hs || h >= he) continue;
        for (int64_t pw = pw_lo; pw < pw_hi; ++pw) {
          const int64_t o = out_at(d, k, c, ph, pw);
          if (!ps) {
            const int64_t a = idx[o];
            if (a >= 0 && a / d.W == h) row[(a % d.W) * es] += to_acc(dy[o]);
            continue;
          }
          int64_t ws, we;
          roigeom::pool_window(r.istart_w, static_cast<A>(r.bin_w), pw, cw, &ws, &we);
          if (we <= ws) continue;
          const A diff = to_acc(dy[o]) / static_cast<A>((he - hs) * (we - ws));
          for (int64_t w = ws; w < we; ++w) row[w * es] += diff;
        }
      }
    }
  }
}

// bad[0]: the first output position (memory order) whose roi_pool index is neither -1 nor inside
// its bin's window (integer atomicMin: the result does not depend on the order).
template <typename A>
__global__ void check_indices_kernel(const int64_t* __restrict__ idx, Dims d, unsigned long long* bad) {
  const int64_t total = d.K * d.Co * d.PH * d.PW;
  for (int64_t o = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; o < total; o += int64_t(gridDim.x) * blockDim.x) {
    const int64_t a = idx[o];
    if (a == -1) continue;
    int64_t k, c, ph, pw;
    out_decode(d, o, k, c, ph, pw);
    const Region& r = d.regions[k];
    int64_t hs, he, ws, we;
    roigeom::pool_window(r.istart_h, static_cast<A>(r.bin_h), ph, d.H, &hs, &he);
    roigeom::pool_window(r.istart_w, static_cast<A>(r.bin_w), pw, d.W, &ws, &we);
    const bool inside = a >= 0 && a < d.H * d.W && a / d.W >= hs && a / d.W < he && a % d.W >= ws && a % d.W < we;
    if (!inside) atomicMin(bad, static_cast<unsigned long long>(o));
  }
}

template <typename T>
__global__ void convert_kernel(const typename Acc<T>::type* __restrict__ a, T* __restrict__ y, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = from_acc<T>(a[i]);
}

// The plan's tables on the device: regions, image_start, order.
struct Tables {
  DeviceBuffer regions, index;
  Dims d{};
};

Tables make_tables(const RoiPlan& P, int device, Stream s, const char* op) {
  Tables t;
  std::vector<Region> regs = P.regions;
  if (regs.empty()) regs.push_back(Region{});  // a non-empty buffer keeps the pointer valid
  t.regions = DeviceBuffer(regs.size() * sizeof(Region), device, s);
  copy_to_device(t.regions.as<Region>(), regs.data(), regs.size() * sizeof(Region), s, op);
  std::vector<int64_t> ix(P.image_start);
  ix.insert(ix.end(), P.order.begin(), P.order.end());
  t.index = upload(ix, device, s, op);
  Dims& d = t.d;
  d.N = P.N;
  d.C = P.C;
  d.H = P.H;
  d.W = P.W;
  d.K = P.K;
  d.Co = P.C_out;
  d.PH = P.p.out_h;
  d.PW = P.p.out_w;
  d.kind = static_cast<int>(P.p.kind);
  d.cl = P.p.channels_last;
  d.regions = t.regions.as<Region>();
  d.image_start = t.index.as<int64_t>();
  d.order = d.image_start + (P.N + 1);
  return t;
}

bool is_align(const RoiPlan& P) { return P.p.kind == roigeom::Align || P.p.kind == roigeom::PsAlign; }

template <typename T>
void run_forward(const RoiPlan& P, const Tensor& x, Tensor& y, Tensor* idx) {
  const char* op = current_op();
  const Stream s = current_stream();
  const int64_t total = y.numel();
  if (total == 0) return;
  Tables t = make_tables(P, x.device.index, s, op);
  if (is_align(P))
    launch(op, align_forward_kernel<T>, dim3(grid_for(total)), dim3(kThreads), 0, s, x.ptr<T>(), y.ptr<T>(), t.d);
  else
    launch(op, pool_forward_kernel<T>, dim3(grid_for(total)), dim3(kThreads), 0, s, x.ptr<T>(), y.ptr<T>(),
           idx ? idx->ptr<int64_t>() : static_cast<int64_t*>(nullptr), t.d);
}

template <typename T>
bool run_backward(const RoiPlan& P, const Tensor& dy, const Tensor* idx, Tensor& dx, int64_t* bad) {
  using A = typename Acc<T>::type;
  const char* op = current_op();
  const Stream s = current_stream();
  const int dev = dy.device.index;
  const int64_t total = dx.numel();
  if (total == 0) return true;
  Tables t = make_tables(P, dev, s, op);
  const int64_t outs = dy.numel();
  if (P.p.kind == roigeom::Pool && outs > 0) {
    unsigned long long first = ~0ull;
    DeviceBuffer b(sizeof(first), dev, s);
    copy_to_device(b.as<unsigned long long>(), &first, sizeof(first), s, op);
    launch(op, check_indices_kernel<A>, dim3(grid_for(outs)), dim3(kThreads), 0, s, idx->ptr<int64_t>(), t.d,
           b.as<unsigned long long>());
    copy_to_host(&first, b.as<unsigned long long>(), sizeof(first), s, op);
    if (first != ~0ull) {
      *bad = static_cast<int64_t>(first);
      return false;
    }
  }
  DeviceBuffer work;
  A* ap = reinterpret_cast<A*>(dx.ptr<T>());
  if (!std::is_same<A, T>::value) {
    work = DeviceBuffer(total * sizeof(A), dev, s);
    ap = work.as<A>();
  }
  const int64_t rows = P.N * P.C * P.H;
  if (is_align(P))
    launch(op, align_backward_kernel<T>, dim3(grid_for(rows)), dim3(kThreads), 0, s, dy.ptr<T>(), ap, t.d);
  else
    launch(op, pool_backward_kernel<T>, dim3(grid_for(rows)), dim3(kThreads), 0, s, dy.ptr<T>(),
           idx ? idx->ptr<int64_t>() : static_cast<const int64_t*>(nullptr), ap, t.d);
  if (!std::is_same<A, T>::value)
    launch(op, convert_kernel<T>, dim3(grid_for(total)), dim3(kThreads), 0, s, static_cast<const A*>(ap), dx.ptr<T>(),
           total);
  return true;
}

}  // namespace

void roi_forward(const RoiPlan& plan, const Tensor& x, Tensor& y, Tensor* idx) {
  DeviceGuard guard(x.device.index, current_op());
  dispatch_floating(x.dtype, current_op(), [&](auto tag) { run_forward<decltype(tag)>(plan, x, y, idx); });
}

bool roi_backward(const RoiPlan& plan, const Tensor& dy, const Tensor* idx, Tensor& dx, int64_t* bad) {
  DeviceGuard guard(dy.device.index, current_op());
  return dispatch_floating(dy.dtype, current_op(),
                           [&](auto tag) { return run_backward<decltype(tag)>(plan, dy, idx, dx, bad); });
}

}  // namespace cuda
}  // namespace cnnops
