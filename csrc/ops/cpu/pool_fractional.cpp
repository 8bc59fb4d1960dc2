// Fractional max pooling kernels.
//
// Forward, NC...: one task per (n, c) plane (parallel_for, dynamic). Each output element scans its
// window rows in order (d, h, w ascending) and keeps the first maximum, a NaN replacing any number
// (the rule of PyTorch's kernel: take v when v > max or v is NaN, starting from -inf). Windows
// of the sqrt(2) case are 2x2 or so, so the work is a read of the input and a write of the output
// and indices: memory bound.
// Forward, N...C: one task per image n; for each output pixel the window is scanned with C-long
// vectors (contiguous channels), keeping per-channel maxima and indices in small buffers.
// Backward: a gather per plane (NC...) or per image (N...C): the owning task zero-fills its
// gradient plane, then adds the output gradients at their indices in output order. Only the task
// owning a plane touches it, so the sums are bitwise identical for any thread count.
// Measured fraction of streaming copy bandwidth: MEASURED_PLACEHOLDER
#include "ops/cpu/pool_fractional.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/parallel.h"

namespace cnnops {
namespace cpu {

template <typename T>
void fractional_max_pool_forward(const T* x, T* y, int64_t* idx, const Geom5& in, const Geom5& out,
                                 const int64_t* win, bool per_plane) {
  const int64_t Do = out.D, Ho = out.H, Wo = out.W, H = in.H, W = in.W, C = in.C;
  const int64_t IS = in.spatial(), OS = out.spatial();
  const int64_t wstride = 2 * (Do + Ho + Wo);
  if (!in.cl) {
    parallel_for(in.N * C, [&](int64_t p) {
      const int64_t* t = win + (per_plane ? p * wstride : 0);
      const int64_t *ds = t, *de = t + Do, *hs = t + 2 * Do, *he = hs + Ho, *ws = t + 2 * (Do + Ho), *we = ws + Wo;
      const T* xp = x + p * IS;
      T* yp = y + p * OS;
      int64_t* ip = idx + p * OS;
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
  std::vector<char> hit(tasks, 0);
  std::vector<int64_t> first(tasks, 0);
  parallel_for(tasks, [&](int64_t t) {
    if (!in.cl) {
      T* dp = dx + t * IS;
      const T* gp = dy + t * OS;
      const int64_t* ip = idx + t * OS;
      std::fill(dp, dp + IS, T(0));
      for (int64_t o = 0; o < OS; ++o) {
        const int64_t k = ip[o];
        if (static_cast<uint64_t>(k) >= limit) {
          if (!hit[t]) { hit[t] = 1; first[t] = k; }
          continue;
        }
        dp[k] += gp[o];
      }
    } else {
      T* dp = dx + t * IS * C;
      const T* gp = dy + t * OS * C;
      const int64_t* ip = idx + t * OS * C;
      std::fill(dp, dp + IS * C, T(0));
      for (int64_t o = 0; o < OS; ++o)
        for (int64_t c = 0; c < C; ++c) {
          const int64_t k = ip[o * C + c];
          if (static_cast<uint64_t>(k) >= limit) {
            if (!hit[t]) { hit[t] = 1; first[t] = k; }
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
template bool fractional_max_pool_backward<double>(const double*, const int64_t*, double*, const Geom5&,
                                                   const Geom5&, int64_t*);

}  // namespace cpu
}  // namespace cnnops
