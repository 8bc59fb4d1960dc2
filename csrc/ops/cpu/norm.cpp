// CPU kernels of batch normalisation over contiguous (N, C, S) data.
//
// Work split: one task per channel (parallel_for, handed out dynamically), each streaming the N
// planes of S elements that hold its channel. Batch normalisation does a few operations per
// element, so it is bound by memory traffic: a channel's data is read from memory once and the
// later passes over it mostly hit the cache (16 x 56 x 56 float32 = 200 KB per channel for a
// ResNet stage at batch 16). Forward in training mode: the sum, then the centred sum of squares
// (accurate where E[x^2] - E[x]^2 would cancel), then the output. Backward: the sums of dy and of
// dy * (x - mean) in one pass, then grad_input. Sums are accumulated in T over blocks of
// kBlock elements with kLanes independent accumulators (vectorised by the compiler), and the
// block sums in double; the result does not depend on the thread count.
#include "ops/cpu/norm.h"

#include <algorithm>
#include <cmath>

#include "core/parallel.h"

namespace cnnops {
namespace cpu {
namespace {

constexpr int kLanes = 16;
constexpr int64_t kBlock = 1024;

// sum over i in [0, n) of term(i), as described in the file header.
template <typename T, typename F>
double lane_sum(int64_t n, F&& term) {
  double total = 0.0;
  for (int64_t b0 = 0; b0 < n; b0 += kBlock) {
    const int64_t e = std::min(n, b0 + kBlock);
    T acc[kLanes] = {};
    int64_t i = b0;
    for (; i + kLanes <= e; i += kLanes)
      for (int l = 0; l < kLanes; ++l) acc[l] += term(i + l);
    double s = 0.0;
    for (; i < e; ++i) s += static_cast<double>(term(i));
    for (int l = 0; l < kLanes; ++l) s += static_cast<double>(acc[l]);
    total += s;
  }
  return total;
}

}  // namespace

template <typename T>
void batch_norm_forward(const T* x, T* y, int64_t N, int64_t C, int64_t S, const T* w, const T* b, const T* mean_in,
                        const T* var_in, T* mean, T* var, double eps) {
  const double M = static_cast<double>(N) * static_cast<double>(S);
  parallel_for(C, [&](int64_t c) {
    double mu, v;
    if (mean_in) {
      mu = static_cast<double>(mean_in[c]);
      v = static_cast<double>(var_in[c]);
    } else {
      double s = 0.0;
      for (int64_t n = 0; n < N; ++n) {
        const T* p = x + (n * C + c) * S;
        s += lane_sum<T>(S, [p](int64_t i) { return p[i]; });
      }
      mu = s / M;
      const T mt = static_cast<T>(mu);
      double ss = 0.0;
      for (int64_t n = 0; n < N; ++n) {
        const T* p = x + (n * C + c) * S;
        ss += lane_sum<T>(S, [p, mt](int64_t i) {
          const T d = p[i] - mt;
          return d * d;
        });
      }
      v = ss / M;
    }
    mean[c] = static_cast<T>(mu);
    var[c] = static_cast<T>(v);
    const double inv = 1.0 / std::sqrt(v + eps);
    const double scale = (w ? static_cast<double>(w[c]) : 1.0) * inv;
    // (x - mean) first: folding the mean into the shift (x * a + (b - mean * a)) would cancel
    // catastrophically where |mean * a| is much larger than the output
    const T a = static_cast<T>(scale), m = static_cast<T>(mu), sh = b ? b[c] : T(0);
    for (int64_t n = 0; n < N; ++n) {
      const T* p = x + (n * C + c) * S;
      T* q = y + (n * C + c) * S;
      for (int64_t i = 0; i < S; ++i) q[i] = (p[i] - m) * a + sh;
    }
  });
}

template <typename T>
void batch_norm_backward(const T* dy, const T* x, T* dx, T* dw, T* db, int64_t N, int64_t C, int64_t S, const T* w,
                         const T* mean, const T* var, double eps, bool batch_stats) {
  const double M = static_cast<double>(N) * static_cast<double>(S);
  parallel_for(C, [&](int64_t c) {
    const T m = mean[c];
    double sdy = 0.0, sdyx = 0.0;
    for (int64_t n = 0; n < N; ++n) {
      const T* g = dy + (n * C + c) * S;
      const T* p = x + (n * C + c) * S;
      sdy += lane_sum<T>(S, [g](int64_t i) { return g[i]; });
      sdyx += lane_sum<T>(S, [g, p, m](int64_t i) { return g[i] * (p[i] - m); });
    }
    const double inv = 1.0 / std::sqrt(static_cast<double>(var[c]) + eps);
    if (dw) dw[c] = static_cast<T>(sdyx * inv);
    if (db) db[c] = static_cast<T>(sdy);
    if (!dx) return;
    const double k = (w ? static_cast<double>(w[c]) : 1.0) * inv;
    // batch statistics: dx = k * (dy - mean(dy) - (x - mean) * inv^2 * mean(dy * (x - mean)))
    const T a = static_cast<T>(k);
    const T off = static_cast<T>(batch_stats ? -k * sdy / M : 0.0);
    const T cx = static_cast<T>(batch_stats ? -k * inv * inv * sdyx / M : 0.0);
    for (int64_t n = 0; n < N; ++n) {
      const T* g = dy + (n * C + c) * S;
      const T* p = x + (n * C + c) * S;
      T* q = dx + (n * C + c) * S;
      for (int64_t i = 0; i < S; ++i) q[i] = g[i] * a + off + (p[i] - m) * cx;
    }
  });
}

template void batch_norm_forward<float>(const float*, float*, int64_t, int64_t, int64_t, const float*, const float*,
                                        const float*, const float*, float*, float*, double);
template void batch_norm_forward<double>(const double*, double*, int64_t, int64_t, int64_t, const double*,
                                         const double*, const double*, const double*, double*, double*, double);
template void batch_norm_backward<float>(const float*, const float*, float*, float*, float*, int64_t, int64_t, int64_t,
                                         const float*, const float*, const float*, double, bool);
template void batch_norm_backward<double>(const double*, const double*, double*, double*, double*, int64_t, int64_t,
                                          int64_t, const double*, const double*, const double*, double, bool);

}  // namespace cpu
}  // namespace cnnops
