// Row kernels of the depthwise convolution, written once and compiled twice: by
// conv_depthwise.cpp for the portable baseline and by conv_depthwise_avx2.cpp with -mavx2 -mfma.
// The includer defines CNNOPS_ISA (the namespace that keeps the two copies apart).
//
// Work split: one task = one (image, channel) plane; planes are independent, so forward, both
// gradients and their summation order are fixed per plane (deterministic for any thread count).
// Inside a plane the loops run over output rows; for each tap (r, s) the columns whose input lies
// inside the image form one interval [lo, hi) computed up front, and that interval is a plain
// unit-stride multiply-add the compiler vectorises; the few border columns go through pad_index
// (zeros / reflect / replicate / circular). The forward pads each input plane once into scratch
// (phase-split, so any stride reads unit-stride) and, in the AVX2 build, accumulates 32 outputs
// of a row in registers over all taps before storing them once.
#include <algorithm>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

#include "ops/cpu/conv.h"
#include "ops/cpu/gemm.h"

namespace cnnops {
namespace cpu {
namespace CNNOPS_ISA {

// One output row from the padded, phase-split plane (see fill_padded_rows): out[ow] = bias +
// sum over taps of w[r][s] * row_r[toff[s] + ow]. Generic version: one pass per tap over the row,
// unit stride for any convolution stride, vectorised by the compiler.
template <typename T>
static inline void dw_row(const T* base, int64_t Ws, const int64_t* toff, const T* wk, const Conv2dGeom& g, T bias,
                          T* yr) {
  for (int64_t a = 0; a < g.Q; ++a) yr[a] = bias;
  for (int64_t r = 0; r < g.R; ++r) {
    const T* rr = base + r * g.dh * Ws;
    for (int64_t s = 0; s < g.S; ++s) {
      const T wv = wk[r * g.S + s];
      const T* src = rr + toff[s];
      for (int64_t a = 0; a < g.Q; ++a) yr[a] += wv * src[a];
    }
  }
}

#if defined(__AVX2__) && defined(__FMA__)
// float on AVX2: 32 outputs (4 vectors) accumulate in registers over all taps, 1 load per FMA,
// then 8-wide steps and a masked store for the tail (the padded row has slack to read past Q).
static inline void dw_row(const float* base, int64_t Ws, const int64_t* toff, const float* wk, const Conv2dGeom& g,
                          float bias, float* yr) {
  const int64_t R = g.R, S = g.S, rstep = g.dh * Ws;
  int64_t a = 0;
  for (; a + 32 <= g.Q; a += 32) {
    __m256 c0 = _mm256_set1_ps(bias), c1 = c0, c2 = c0, c3 = c0;
    for (int64_t r = 0; r < R; ++r) {
      const float* rr = base + r * rstep + a;
      for (int64_t s = 0; s < S; ++s) {
        const __m256 wv = _mm256_broadcast_ss(wk + r * S + s);
        const float* p = rr + toff[s];
        c0 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(p), c0);
        c1 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(p + 8), c1);
        c2 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(p + 16), c2);
        c3 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(p + 24), c3);
      }
    }
    _mm256_storeu_ps(yr + a, c0);
    _mm256_storeu_ps(yr + a + 8, c1);
    _mm256_storeu_ps(yr + a + 16, c2);
    _mm256_storeu_ps(yr + a + 24, c3);
  }
  for (; a < g.Q; a += 8) {
    __m256 c0 = _mm256_set1_ps(bias);
    for (int64_t r = 0; r < R; ++r) {
      const float* rr = base + r * rstep + a;
      for (int64_t s = 0; s < S; ++s)
        c0 = _mm256_fmadd_ps(_mm256_broadcast_ss(wk + r * S + s), _mm256_loadu_ps(rr + toff[s]), c0);
    }
    if (a + 8 <= g.Q) {
      _mm256_storeu_ps(yr + a, c0);
    } else {
      const int left = static_cast<int>(g.Q - a);
      const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(left), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
      _mm256_maskstore_ps(yr + a, mask, c0);
    }
  }
}
#endif

// Forward of one (image, output channel) plane: pad the input plane once into per-thread scratch
// (it is the only read of the input), then one row kernel call per output row.
template <typename T>
void dw_forward_plane(const T* xc, const T* wk, T bias, T* yk, const Conv2dGeom& g) {
  const int64_t Wph = padded_phase_width(g, (g.Q + 31) / 32 * 32);
  const int64_t Ws = g.sw * Wph, rows = (g.P - 1) * g.sh + (g.R - 1) * g.dh + 1;
  T* plane = static_cast<T*>(thread_scratch(0, sizeof(T) * rows * Ws));
  int64_t* toff = static_cast<int64_t*>(thread_scratch(1, sizeof(int64_t) * g.S));
  fill_padded_rows(xc, g, 0, rows, plane, Wph);
  for (int64_t s = 0; s < g.S; ++s) toff[s] = tap_offset(g, s, Wph);
  for (int64_t oh = 0; oh < g.P; ++oh) dw_row(plane + oh * g.sh * Ws, Ws, toff, wk, g, bias, yk + oh * g.Q);
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
