// Fractional max pooling kernels.
//
// Forward, NC...: one task per (n, c) plane (parallel_for, dynamic). Each output element takes the
// first maximum of its window in order (d, h, w ascending), a NaN replacing any number (PyTorch's
// rule: take v when v > max or v is NaN, starting from -inf). 2x2 windows (the sqrt(2) case) run
// in two passes per output row: a branch-free vertical pass over the two input rows (vectorised),
// then one select per output; 3x3 windows use an unrolled scan with selects, other shapes the
// generic loops. A plane's outputs and indices are assembled in per-thread buffers and streamed
// out (no read-for-ownership of the output lines).
// Forward, N...C: one task per image n; for each output pixel the window is scanned with C-long
// vectors (contiguous channels), keeping per-channel maxima and indices in small buffers.
// Backward: a gather per plane (NC...) or per image (N...C): the owning task zero-fills its
// gradient plane, then adds the output gradients at their indices in output order. Only the task
// owning a plane touches it, so the sums are bitwise identical for any thread count.
// The forward is bound by the per-output selects, not by bytes.
// (32, 64, 112, 112) to 79x79: forward 16%, backward 74% of copy bandwidth (benchmarks/results/unpool_cpu.md).
#include "ops/cpu/pool_fractional.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/dispatch.h"
#include "core/parallel.h"
#include "ops/cpu/unpool_rows.h"

namespace cnnops {
namespace cpu {

// Makes a per-thread buffer, kept between calls, hold at least n elements. A CNNOPS_SANITIZE
// build replaces it by a fresh one of exactly n elements, so AddressSanitizer sees its true end.
template <typename V>
static void fit_buffer(V& v, int64_t n) {
#ifdef CNNOPS_SANITIZE
  V(static_cast<size_t>(n)).swap(v);
#else
  if (static_cast<int64_t>(v.size()) < n) v.resize(n);
#endif
}

// Keeps (best, bi) as the running maximum and its index: v replaces it when v > best or v is NaN.
// Written with selects rather than branches: on random data the outcome is unpredictable.
template <typename T>
static inline void take_max(T v, int64_t i, T& best, int64_t& bi) {
  const bool t = v > best || v != v;
  best = t ? v : best;
  bi = t ? i : bi;
}

// One output row of a 2-D plane with fixed KH x KW windows starting at rows hs and columns ws[ow].
template <typename T, int KH, int KW>
static void fixed_window_row(const T* xp, int64_t W, int64_t h0, const int64_t* ws, int64_t Wo, T* y, int64_t* idx) {
  for (int64_t ow = 0; ow < Wo; ++ow) {
    const int64_t o0 = h0 * W + ws[ow];
    T best = xp[o0];  // the first element: -inf start and index of the first element, as torch
    int64_t bi = o0;
    for (int kh = 0; kh < KH; ++kh)
      for (int kw = (kh == 0 ? 1 : 0); kw < KW; ++kw) take_max(xp[o0 + kh * W + kw], o0 + kh * W + kw, best, bi);
    y[ow] = best;
    idx[ow] = bi;
  }
}

// 2x2 windows of one output row (rows h0, h0+1), in two passes: a vertical pass over all W columns
// (vectorised by the compiler: blends, no branches) keeps per column the value and row (0/1) the
// sequential rule picks, then each output combines its two columns. Equal to the sequential scan
// (h0,c), (h0,c+1), (h1,c), (h1,c+1): without NaN the first maximum in that order (a tie between
// the columns goes to column c when its row is not below column c+1's), with NaN the last NaN.
template <typename T>
static void window2x2_row(const T* xp, int64_t W, int64_t h0, const int64_t* ws, int64_t Wo, T* y, int64_t* idx) {
  thread_local std::vector<T> vb;
  thread_local std::vector<unsigned char> rb;
  fit_buffer(vb, W);
  fit_buffer(rb, W);
  T* v = vb.data();
  unsigned char* r = rb.data();
  const T* r0 = xp + h0 * W;
  const T* r1 = r0 + W;
  for (int64_t w = 0; w < W; ++w) {
    const T a = r0[w], b = r1[w];
    const bool t = b > a || b != b;
    v[w] = t ? b : a;
    r[w] = t;
  }
  for (int64_t ow = 0; ow < Wo; ++ow) {
    const int64_t c = ws[ow];
    const T v0 = v[c], v1 = v[c + 1];
    const int r0c = r[c], r1c = r[c + 1];
    const bool n0 = v0 != v0, n1 = v1 != v1;
    const bool pick1 = n1 ? (!n0 || r1c >= r0c) : (!n0 && (v1 > v0 || (v1 == v0 && r1c < r0c)));
    y[ow] = pick1 ? v1 : v0;
    idx[ow] = (h0 + (pick1 ? r1c : r0c)) * W + c + pick1;
  }
}

template <typename T>
void fractional_max_pool_forward(const T* x, T* y, int64_t* idx, const Geom5& in, const Geom5& out, const int64_t* win,
                                 bool per_plane) {
  const int64_t Do = out.D, Ho = out.H, Wo = out.W, H = in.H, W = in.W, C = in.C;
  const int64_t IS = in.spatial(), OS = out.spatial();
  const int64_t wstride = 2 * (Do + Ho + Wo);
  // Window lengths when every window of a dimension has the same one (all planes), else 0.
  auto fixed_len = [&](int64_t off, int64_t n) -> int64_t {
    const int64_t planes = per_plane ? in.N * C : 1;
    const int64_t len = win[off + n] - win[off];
    for (int64_t p = 0; p < planes; ++p)
      for (int64_t i = 0; i < n; ++i)
        if (win[p * wstride + off + n + i] - win[p * wstride + off + i] != len) return 0;
    return len;
  };
  const int64_t fixed_h = fixed_len(2 * Do, Ho), fixed_w = fixed_len(2 * (Do + Ho), Wo);
  const bool stream_out = static_cast<size_t>(out.numel()) * (sizeof(T) + sizeof(int64_t)) >= kStreamMinBytes;
  if (!in.cl) {
    parallel_for(in.N * C, [&](int64_t p) {
      const int64_t* t = win + (per_plane ? p * wstride : 0);
      const int64_t *ds = t, *de = t + Do, *hs = t + 2 * Do, *he = hs + Ho, *ws = t + 2 * (Do + Ho), *we = ws + Wo;
      const T* xp = x + p * IS;
      // the plane's outputs and indices are assembled in per-thread buffers and streamed out
      // (planes up to 512 KB of results; larger ones are written in place)
      thread_local std::vector<T> ybuf;
      thread_local std::vector<int64_t> ibuf;
      const bool buffered = OS * static_cast<int64_t>(sizeof(T) + sizeof(int64_t)) <= (512 << 10);
      if (buffered) fit_buffer(ybuf, OS);
      if (buffered) fit_buffer(ibuf, OS);
      T* yp = buffered ? ybuf.data() : y + p * OS;
      int64_t* ip = buffered ? ibuf.data() : idx + p * OS;
      struct Flush {  // runs when the task returns, from either path below
        T* ydst;
        int64_t* idst;
        const T* ysrc;
        const int64_t* isrc;
        int64_t n;
        bool on, stream;
        ~Flush() {
          if (!on) return;
          copy_out(ydst, ysrc, sizeof(T) * n, stream);
          copy_out(idst, isrc, sizeof(int64_t) * n, stream);
        }
      } flush{y + p * OS, idx + p * OS, yp, ip, OS, buffered, stream_out};
      // one input plane (2-D pooling, or 3-D with input depth 1): the row kernels read that plane
      if (in.D == 1 && fixed_h > 0 && fixed_w > 0 && fixed_h == fixed_w && (fixed_h == 2 || fixed_h == 3)) {
        for (int64_t oh = 0; oh < Ho; ++oh) {
          if (fixed_h == 2) window2x2_row<T>(xp, W, hs[oh], ws, Wo, yp + oh * Wo, ip + oh * Wo);
          else fixed_window_row<T, 3, 3>(xp, W, hs[oh], ws, Wo, yp + oh * Wo, ip + oh * Wo);
        }
        return;
      }
      for (int64_t od = 0; od < Do; ++od)
        for (int64_t oh = 0; oh < Ho; ++oh)
          for (int64_t ow = 0; ow < Wo; ++ow) {
            T best = -std::numeric_limits<T>::infinity();
            int64_t bi = (ds[od] * H + hs[oh]) * W + ws[ow];
            for (int64_t d = ds[od]; d < de[od]; ++d)
              for (int64_t h = hs[oh]; h < he[oh]; ++h) {
                const int64_t row = (d * H + h) * W;
                for (int64_t w = ws[ow]; w < we[ow]; ++w) {
                  const T v = xp[row + w];
                  if (v > best || std::isnan(v)) {
                    best = v;
                    bi = row + w;
                  }
                }
              }
            const int64_t o = (od * Ho + oh) * Wo + ow;
            yp[o] = best;
            ip[o] = bi;
          }
    });
  } else {
    parallel_for(in.N, [&](int64_t n) {
      const T* xn = x + n * IS * C;
      T* yn = y + n * OS * C;
      int64_t* in_ = idx + n * OS * C;
      for (int64_t od = 0; od < Do; ++od)
        for (int64_t oh = 0; oh < Ho; ++oh)
          for (int64_t ow = 0; ow < Wo; ++ow) {
            const int64_t o = (od * Ho + oh) * Wo + ow;
            T* yo = yn + o * C;
            int64_t* io = in_ + o * C;
            for (int64_t c = 0; c < C; ++c) {
              const int64_t* t = win + (per_plane ? (n * C + c) * wstride : 0);
              const int64_t *ds = t, *de = t + Do, *hs = t + 2 * Do, *he = hs + Ho, *ws = t + 2 * (Do + Ho),
                            *we = ws + Wo;
              T best = -std::numeric_limits<T>::infinity();
              int64_t bi = (ds[od] * H + hs[oh]) * W + ws[ow];
              for (int64_t d = ds[od]; d < de[od]; ++d)
                for (int64_t h = hs[oh]; h < he[oh]; ++h)
                  for (int64_t w = ws[ow]; w < we[ow]; ++w) {
                    const int64_t s = (d * H + h) * W + w;
                    const T v = xn[s * C + c];
                    if (v > best || std::isnan(v)) {
                      best = v;
                      bi = s;
                    }
                  }
              yo[c] = best;
              io[c] = bi;
            }
          }
    });
  }
}

template <typename T>
bool fractional_max_pool_backward(const T* dy, const int64_t* idx, T* dx, const Geom5& in, const Geom5& out,
                                  int64_t* bad) {
  const int64_t IS = in.spatial(), OS = out.spatial(), C = in.C;
  const uint64_t limit = static_cast<uint64_t>(IS);
  const int64_t tasks = in.cl ? in.N : in.N * C;
  const bool stream_out = static_cast<size_t>(in.numel()) * sizeof(T) >= kStreamMinBytes;
  std::vector<char> hit(tasks, 0);
  std::vector<int64_t> first(tasks, 0);
  parallel_for(tasks, [&](int64_t t) {
    if (!in.cl) {
      thread_local std::vector<T> plane;  // accumulated in cache, then streamed out (up to 512 KB)
      const bool buffered = IS * static_cast<int64_t>(sizeof(T)) <= (512 << 10);
      if (buffered) fit_buffer(plane, IS);
      T* dp = buffered ? plane.data() : dx + t * IS;
      const T* gp = dy + t * OS;
      const int64_t* ip = idx + t * OS;
      std::fill(dp, dp + IS, T(0));
      for (int64_t o = 0; o < OS; ++o) {
        const int64_t k = ip[o];
        if (static_cast<uint64_t>(k) >= limit) {
          if (!hit[t]) {
            hit[t] = 1;
            first[t] = k;
          }
          continue;
        }
        dp[k] += gp[o];
      }
      if (buffered) copy_out(dx + t * IS, dp, sizeof(T) * IS, stream_out);
    } else {
      T* dp = dx + t * IS * C;
      const T* gp = dy + t * OS * C;
      const int64_t* ip = idx + t * OS * C;
      std::fill(dp, dp + IS * C, T(0));
      for (int64_t o = 0; o < OS; ++o)
        for (int64_t c = 0; c < C; ++c) {
          const int64_t k = ip[o * C + c];
          if (static_cast<uint64_t>(k) >= limit) {
            if (!hit[t]) {
              hit[t] = 1;
              first[t] = k;
            }
            continue;
          }
          dp[k * C + c] += gp[o * C + c];
        }
    }
  });
  for (int64_t t = 0; t < tasks; ++t)
    if (hit[t]) {
      *bad = first[t];
      return false;
    }
  return true;
}

template void fractional_max_pool_forward<float>(const float*, float*, int64_t*, const Geom5&, const Geom5&,
                                                 const int64_t*, bool);
template void fractional_max_pool_forward<double>(const double*, double*, int64_t*, const Geom5&, const Geom5&,
                                                  const int64_t*, bool);
template bool fractional_max_pool_backward<float>(const float*, const int64_t*, float*, const Geom5&, const Geom5&,
                                                  int64_t*);
template bool fractional_max_pool_backward<double>(const double*, const int64_t*, double*, const Geom5&, const Geom5&,
                                                   int64_t*);

void fractional_max_pool_forward(const Tensor& x, Tensor& y, Tensor& idx, const Geom5& in, const Geom5& out,
                                 const int64_t* win, bool per_plane) {
  dispatch_float(x.dtype, current_op(), [&](auto tag) {
    using T = decltype(tag);
    fractional_max_pool_forward(x.ptr<T>(), y.ptr<T>(), idx.ptr<int64_t>(), in, out, win, per_plane);
  });
}

bool fractional_max_pool_backward(const Tensor& dy, const Tensor& idx, Tensor& dx, const Geom5& in, const Geom5& out,
                                  int64_t* bad) {
  return dispatch_float(dy.dtype, current_op(), [&](auto tag) {
    using T = decltype(tag);
    return fractional_max_pool_backward(dy.ptr<T>(), idx.ptr<int64_t>(), dx.ptr<T>(), in, out, bad);
  });
}

}  // namespace cpu
}  // namespace cnnops
