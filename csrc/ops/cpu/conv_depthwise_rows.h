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
                          T* yr, bool /*stream*/) {
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
// Mask of the first n of 8 float lanes (n in [0, 8]) for masked loads and stores.
static inline __m256i first_lanes(int64_t n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// float on AVX2: 32 outputs (4 vectors, four independent FMA chains) accumulate in registers over
// all taps, 1 load per FMA, then are stored once; a row's last block is computed whole (the
// padded row has slack to read up to the next multiple of 32) and stored up to Q, the partial
// vector through a mask. (An 8-wide tail loop would have one dependent chain of R*S FMAs per
// vector and, on 56-wide rows, take as long as the 32-wide part.) With `stream`, aligned rows get
// streaming stores.
static inline void dw_row(const float* base, int64_t Ws, const int64_t* toff, const float* wk, const Conv2dGeom& g,
                          float bias, float* yr, bool stream) {
  const int64_t R = g.R, S = g.S, rstep = g.dh * Ws;
  const bool nt = stream && reinterpret_cast<uintptr_t>(yr) % 32 == 0;
  for (int64_t a = 0; a < g.Q; a += 32) {
    __m256 c[4];
    c[0] = c[1] = c[2] = c[3] = _mm256_set1_ps(bias);
    for (int64_t r = 0; r < R; ++r) {
      const float* rr = base + r * rstep + a;
      for (int64_t s = 0; s < S; ++s) {
        const __m256 wv = _mm256_broadcast_ss(wk + r * S + s);
        const float* p = rr + toff[s];
        c[0] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(p), c[0]);
        c[1] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(p + 8), c[1]);
        c[2] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(p + 16), c[2]);
        c[3] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(p + 24), c[3]);
      }
    }
    for (int v = 0; v < 4; ++v) {
      const int64_t o = a + 8 * v;
      if (o + 8 <= g.Q) {
        if (nt) _mm256_stream_ps(yr + o, c[v]);
        else _mm256_storeu_ps(yr + o, c[v]);
      } else if (o < g.Q) {
        _mm256_maskstore_ps(yr + o, first_lanes(g.Q - o), c[v]);
      }
    }
  }
}
#endif

// Forward of one (image, output channel) plane: pad the input plane once into per-thread scratch
// (it is the only read of the input), then one row kernel call per output row. `stream`: results
// larger than the cache (kStreamMinBytes) are written with streaming stores (AVX2 build).
template <typename T>
void dw_forward_plane(const T* xc, const T* wk, T bias, T* yk, const Conv2dGeom& g, bool stream) {
  const int64_t Wph = padded_phase_width(g, (g.Q + 31) / 32 * 32);
  const int64_t Ws = g.sw * Wph, rows = slab_rows(g, g.P);
  T* plane = static_cast<T*>(thread_scratch(0, sizeof(T) * rows * Ws));
  int64_t* toff = static_cast<int64_t*>(thread_scratch(1, sizeof(int64_t) * g.S));
  fill_padded_rows(xc, g, 0, rows, plane, Wph);
  for (int64_t s = 0; s < g.S; ++s) toff[s] = tap_offset(g, s, Wph);
  for (int64_t oh = 0; oh < g.P; ++oh) dw_row(plane + oh * g.sh * Ws, Ws, toff, wk, g, bias, yk + oh * g.Q, stream);
#if defined(__AVX2__) && defined(__FMA__)
  if (stream) _mm_sfence();  // the streamed rows are visible before another thread reads them
#endif
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

// dw[r*S + s] += sum over the plane of dy * (input seen by tap (r, s)), from the padded,
// phase-split plane (as the forward reads it): every tap is a fixed offset, no border cases.
// Generic version: per tap and output row, eight lane partials the compiler vectorises.
template <typename T>
static void dw_weight_taps(const T* dyk, const T* plane, int64_t row_step, const int64_t* off, int nt, int64_t P,
                           int64_t Q, T* out) {
  for (int t = 0; t < nt; ++t) {
    T part[8] = {};
    for (int64_t oh = 0; oh < P; ++oh) {
      const T* d = dyk + oh * Q;
      const T* xs = plane + oh * row_step + off[t];
      int64_t a = 0;
      for (; a + 8 <= Q; a += 8)
        for (int j = 0; j < 8; ++j) part[j] += d[a + j] * xs[a + j];
      for (int j = 0; a < Q; ++a, ++j) part[j] += d[a] * xs[a];
    }
    out[t] = ((part[0] + part[4]) + (part[1] + part[5])) + ((part[2] + part[6]) + (part[3] + part[7]));
  }
}

#if defined(__AVX2__) && defined(__FMA__)
// float on AVX2: up to 9 taps at once, one accumulator vector each (independent FMA chains), so
// every 8 values of dy are loaded once for all of them; the row tail of dy through a masked load
// (the padded plane's slack past Q is zero). Each tap's lanes are summed in a fixed order.
template <int NT>
static void dw_weight_taps_avx2(const float* dyk, const float* plane, int64_t row_step, const int64_t* off, int64_t P,
                                int64_t Q, float* out) {
  __m256 acc[NT];
  for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_ps();
  const int64_t qf = Q / 8 * 8;
  const __m256i tail = first_lanes(Q - qf);
  for (int64_t oh = 0; oh < P; ++oh) {
    const float* d = dyk + oh * Q;
    const float* base = plane + oh * row_step;
    for (int64_t a = 0; a < qf; a += 8) {
      const __m256 v = _mm256_loadu_ps(d + a);
      for (int t = 0; t < NT; ++t) acc[t] = _mm256_fmadd_ps(v, _mm256_loadu_ps(base + off[t] + a), acc[t]);
    }
    if (qf < Q) {
      const __m256 v = _mm256_maskload_ps(d + qf, tail);
      for (int t = 0; t < NT; ++t) acc[t] = _mm256_fmadd_ps(v, _mm256_loadu_ps(base + off[t] + qf), acc[t]);
    }
  }
  for (int t = 0; t < NT; ++t) {
    const __m128 h = _mm_add_ps(_mm256_castps256_ps128(acc[t]), _mm256_extractf128_ps(acc[t], 1));
    const __m128 q = _mm_add_ps(h, _mm_movehl_ps(h, h));
    out[t] = _mm_cvtss_f32(_mm_add_ss(q, _mm_shuffle_ps(q, q, 1)));
  }
}

static void dw_weight_taps(const float* dyk, const float* plane, int64_t row_step, const int64_t* off, int nt,
                           int64_t P, int64_t Q, float* out) {
  for (int t0 = 0; t0 < nt; t0 += 9) {
    const int64_t* o = off + t0;
    float* r = out + t0;
    switch (std::min(9, nt - t0)) {
      case 1: dw_weight_taps_avx2<1>(dyk, plane, row_step, o, P, Q, r); break;
      case 2: dw_weight_taps_avx2<2>(dyk, plane, row_step, o, P, Q, r); break;
      case 3: dw_weight_taps_avx2<3>(dyk, plane, row_step, o, P, Q, r); break;
      case 4: dw_weight_taps_avx2<4>(dyk, plane, row_step, o, P, Q, r); break;
      case 5: dw_weight_taps_avx2<5>(dyk, plane, row_step, o, P, Q, r); break;
      case 6: dw_weight_taps_avx2<6>(dyk, plane, row_step, o, P, Q, r); break;
      case 7: dw_weight_taps_avx2<7>(dyk, plane, row_step, o, P, Q, r); break;
      case 8: dw_weight_taps_avx2<8>(dyk, plane, row_step, o, P, Q, r); break;
      default: dw_weight_taps_avx2<9>(dyk, plane, row_step, o, P, Q, r); break;
    }
  }
}
#endif

// Weight gradient of one (image, output channel) plane pair: pad the input plane once (as the
// forward), then all taps as fixed offsets into it.
template <typename T>
void dw_backward_weight_plane(const T* dyk, const T* xc, T* dwk, const Conv2dGeom& g) {
  const int64_t RS = g.R * g.S;
  const int64_t Wph = padded_phase_width(g, (g.Q + 7) / 8 * 8);
  const int64_t Ws = g.sw * Wph, rows = slab_rows(g, g.P);
  T* plane = static_cast<T*>(thread_scratch(0, sizeof(T) * rows * Ws));
  int64_t* off = static_cast<int64_t*>(thread_scratch(1, sizeof(int64_t) * RS));
  T* sums = static_cast<T*>(thread_scratch(2, sizeof(T) * RS));
  fill_padded_rows(xc, g, 0, rows, plane, Wph);
  for (int64_t r = 0; r < g.R; ++r)
    for (int64_t s = 0; s < g.S; ++s) off[r * g.S + s] = r * g.dh * Ws + tap_offset(g, s, Wph);
  dw_weight_taps(dyk, plane, g.sh * Ws, off, static_cast<int>(RS), g.P, g.Q, sums);
  for (int64_t t = 0; t < RS; ++t) dwk[t] += sums[t];
}

template void dw_forward_plane<float>(const float*, const float*, float, float*, const Conv2dGeom&, bool);
template void dw_forward_plane<double>(const double*, const double*, double, double*, const Conv2dGeom&, bool);
template void dw_backward_input_plane<float>(const float*, const float*, float*, const Conv2dGeom&);
template void dw_backward_input_plane<double>(const double*, const double*, double*, const Conv2dGeom&);
template void dw_backward_weight_plane<float>(const float*, const float*, float*, const Conv2dGeom&);
template void dw_backward_weight_plane<double>(const double*, const double*, double*, const Conv2dGeom&);

}  // namespace CNNOPS_ISA
}  // namespace cpu
}  // namespace cnnops
