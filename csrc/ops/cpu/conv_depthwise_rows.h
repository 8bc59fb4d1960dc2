// Row kernels of the depthwise convolution, written once and compiled twice: by
// conv_depthwise.cpp for the portable baseline and by conv_depthwise_avx2.cpp with -mavx2 -mfma.
// The includer defines CNNOPS_ISA (the namespace that keeps the two copies apart).
//
// Work split: one task = one (image, channel) plane; planes are independent, so forward, both
// gradients and their summation order are fixed per plane (deterministic for any thread count).
// Inside a plane the loops run over output rows; for each tap (r, s) the columns whose input lies
// inside the image form one interval [lo, hi) computed up front, and that interval is a plain
// unit-stride multiply-add the compiler vectorises; the few border columns go through pad_index
// (zeros / reflect / replicate / circular). For stride 1 the interior of an output row is
// accumulated over all taps in a block of 32 outputs held in registers, then stored once.
#include <algorithm>

#include "ops/cpu/conv.h"

namespace cnnops {
namespace cpu {
namespace CNNOPS_ISA {

template <typename T>
static inline void border_taps(const T* xr, const T* wr, T* yr, int64_t a0, int64_t a1, const Conv2dGeom& g) {
  for (int64_t a = a0; a < a1; ++a) {
    T acc = T(0);
    for (int64_t s = 0; s < g.S; ++s) {
      const int64_t iw = pad_index(a * g.sw - g.pl + s * g.dw, g.W, g.mode);
      if (iw >= 0) acc += wr[s] * xr[iw];
    }
    yr[a] += acc;
  }
}

template <typename T>
void dw_forward_plane(const T* xc, const T* wk, T bias, T* yk, const Conv2dGeom& g) {
  // Columns where every tap s is inside the row: [lo, hi).
  int64_t lo = 0, hi = g.Q;
  for (int64_t s = 0; s < g.S; ++s) {
    int64_t l, h;
    interior_range(g.W, g.sw, s * g.dw - g.pl, g.Q, l, h);
    lo = std::max(lo, l);
    hi = std::min(hi, h);
  }
  if (hi < lo) hi = lo;
  constexpr int64_t B = 32;
  for (int64_t oh = 0; oh < g.P; ++oh) {
    T* yr = yk + oh * g.Q;
    std::fill(yr, yr + g.Q, bias);
    if (g.sw == 1) {
      // Valid rows for this output row.
      const T* rows[64];
      T wts[64 * 16];
      int64_t nr = 0;
      bool small = g.R <= 64 && g.S <= 16;
      if (small) {
        for (int64_t r = 0; r < g.R; ++r) {
          const int64_t ih = pad_index(oh * g.sh - g.pt + r * g.dh, g.H, g.mode);
          if (ih < 0) continue;
          rows[nr] = xc + ih * g.W;
          for (int64_t s = 0; s < g.S; ++s) wts[nr * 16 + s] = wk[r * g.S + s];
          ++nr;
        }
        int64_t a = lo;
        for (; a + B <= hi; a += B) {
          T acc[B];
          for (int64_t j = 0; j < B; ++j) acc[j] = yr[a + j];
          for (int64_t q = 0; q < nr; ++q) {
            const T* xr = rows[q] + a - g.pl;
            for (int64_t s = 0; s < g.S; ++s) {
              const T wv = wts[q * 16 + s];
              const T* xs = xr + s * g.dw;
              for (int64_t j = 0; j < B; ++j) acc[j] += wv * xs[j];
            }
          }
          for (int64_t j = 0; j < B; ++j) yr[a + j] = acc[j];
        }
        for (int64_t q = 0; q < nr; ++q) {
          const T* xr = rows[q] + a - g.pl;
          for (int64_t s = 0; s < g.S; ++s) {
            const T wv = wts[q * 16 + s];
            const T* xs = xr + s * g.dw;
            for (int64_t j = 0; j < hi - a; ++j) yr[a + j] += wv * xs[j];
          }
        }
        for (int64_t r = 0; r < g.R; ++r) {
          const int64_t ih = pad_index(oh * g.sh - g.pt + r * g.dh, g.H, g.mode);
          if (ih < 0) continue;
          border_taps(xc + ih * g.W, wk + r * g.S, yr, 0, lo, g);
          border_taps(xc + ih * g.W, wk + r * g.S, yr, std::max(lo, hi), g.Q, g);
        }
        continue;
      }
    }
    for (int64_t r = 0; r < g.R; ++r) {
      const int64_t ih = pad_index(oh * g.sh - g.pt + r * g.dh, g.H, g.mode);
      if (ih < 0) continue;
      const T* xr = xc + ih * g.W;
      for (int64_t s = 0; s < g.S; ++s) {
        const T wv = wk[r * g.S + s];
        const int64_t off = s * g.dw - g.pl;
        if (g.sw == 1)
          for (int64_t a = lo; a < hi; ++a) yr[a] += wv * xr[a + off];
        else
          for (int64_t a = lo; a < hi; ++a) yr[a] += wv * xr[a * g.sw + off];
      }
      border_taps(xr, wk + r * g.S, yr, 0, lo, g);
      border_taps(xr, wk + r * g.S, yr, std::max(lo, hi), g.Q, g);
    }
  }
}

// dx plane += transposed convolution of one dy plane (scatter inside a plane this thread owns).
template <typename T>
void dw_backward_input_plane(const T* dyk, const T* wk, T* dxc, const Conv2dGeom& g) {
  for (int64_t oh = 0; oh < g.P; ++oh) {
    const T* dyr = dyk + oh * g.Q;
    for (int64_t r = 0; r < g.R; ++r) {
      const int64_t ih = pad_index(oh * g.sh - g.pt + r * g.dh, g.H, g.mode);
      if (ih < 0) continue;
      T* xr = dxc + ih * g.W;
      for (int64_t s = 0; s < g.S; ++s) {
        const T wv = wk[r * g.S + s];
        const int64_t off = s * g.dw - g.pl;
        int64_t lo, hi;
        interior_range(g.W, g.sw, off, g.Q, lo, hi);
        for (int64_t a = 0; a < lo; ++a) {
          const int64_t iw = pad_index(a * g.sw + off, g.W, g.mode);
          if (iw >= 0) xr[iw] += wv * dyr[a];
        }
        if (g.sw == 1) {
          T* dst = xr + off;
          for (int64_t a = lo; a < hi; ++a) dst[a] += wv * dyr[a];
        } else {
          for (int64_t a = lo; a < hi; ++a) xr[a * g.sw + off] += wv * dyr[a];
        }
        for (int64_t a = std::max(lo, hi); a < g.Q; ++a) {
          const int64_t iw = pad_index(a * g.sw + off, g.W, g.mode);
          if (iw >= 0) xr[iw] += wv * dyr[a];
        }
      }
    }
  }
}

// dw[r*S + s] += sum over the plane of dy * (input seen by tap (r, s)).
template <typename T>
void dw_backward_weight_plane(const T* dyk, const T* xc, T* dwk, const Conv2dGeom& g) {
  for (int64_t r = 0; r < g.R; ++r) {
    for (int64_t s = 0; s < g.S; ++s) {
      const int64_t off = s * g.dw - g.pl;
      int64_t lo, hi;
      interior_range(g.W, g.sw, off, g.Q, lo, hi);
      T part[8] = {};
      T edge = T(0);
      for (int64_t oh = 0; oh < g.P; ++oh) {
        const int64_t ih = pad_index(oh * g.sh - g.pt + r * g.dh, g.H, g.mode);
        if (ih < 0) continue;
        const T* xr = xc + ih * g.W;
        const T* dyr = dyk + oh * g.Q;
        int64_t a = lo;
        if (g.sw == 1) {
          const T* xs = xr + off;
          for (; a + 8 <= hi; a += 8)
            for (int j = 0; j < 8; ++j) part[j] += dyr[a + j] * xs[a + j];
        }
        for (; a < hi; ++a) edge += dyr[a] * xr[a * g.sw + off];
        for (int64_t b = 0; b < lo; ++b) {
          const int64_t iw = pad_index(b * g.sw + off, g.W, g.mode);
          if (iw >= 0) edge += dyr[b] * xr[iw];
        }
        for (int64_t b = std::max(lo, hi); b < g.Q; ++b) {
          const int64_t iw = pad_index(b * g.sw + off, g.W, g.mode);
          if (iw >= 0) edge += dyr[b] * xr[iw];
        }
      }
      T total = edge;
      for (int j = 0; j < 8; ++j) total += part[j];
      dwk[r * g.S + s] += total;
    }
  }
}

template void dw_forward_plane<float>(const float*, const float*, float, float*, const Conv2dGeom&);
template void dw_forward_plane<double>(const double*, const double*, double, double*, const Conv2dGeom&);
template void dw_backward_input_plane<float>(const float*, const float*, float*, const Conv2dGeom&);
template void dw_backward_input_plane<double>(const double*, const double*, double*, const Conv2dGeom&);
template void dw_backward_weight_plane<float>(const float*, const float*, float*, const Conv2dGeom&);
template void dw_backward_weight_plane<double>(const double*, const double*, double*, const Conv2dGeom&);

}  // namespace CNNOPS_ISA
}  // namespace cpu
}  // namespace cnnops
