// conv2d CPU kernels: the direct reference, the packed implicit GEMM, and the backward passes.
//
// Implicit GEMM (forward). Per image and group, Y (Kg x PQ) = W (Kg x Cg*R*S) * col (Cg*R*S x PQ),
// where col is never materialised whole: a task owns one block of `nc` output pixels (nc ~ 256,
// a multiple of NR) and walks the reduction in KC = 256-row chunks. For each chunk it writes the
// im2col rows of its pixels into NR-wide panels (kc x nc, ~256 KB float: it stays in L2), then
// multiplies every MR-row panel of the pre-packed weights (packed once per call, shared read-only
// by all threads) with every B panel through the micro-kernel; the MR x kc weight panel stays in
// L1 across the B panels. MR and NR are the current SIMD level's register tile (gemm.h: 6 x 16
// with AVX2, 14 x 32 with AVX-512). Tasks are (image, group, pixel block [, output-channel slice]) handed
// out dynamically; the channel slice only splits when there are too few tasks for the threads.
// Images with fewer pixels than a block (ResNet's 7x7 and 4x4 layers) are concatenated instead:
// a block is a run of the (image, pixel) sequence, its panels gathered through a per-tap table of
// input offsets, its results written to a buffer and scattered to the images.
// Strided layers build the panels from padded, stride-phase-split copies of the rows the block
// reads (one pass per channel and chunk) instead of gathering every tap with a stride.
// Packing costs O(CRS * nc) per task against O(Kg * CRS * nc) FMAs, so it is amortised unless Kg
// is tiny (that case goes to the small-channel path in conv_smallc.cpp).
//
// Backward. grad_input: for stride 1 and zero padding it is itself a forward convolution of
// grad_output with the flipped, transposed weights (conv_driver.cpp, grad_input_as_forward);
// otherwise dcol = W^T * dY per pixel block through the strided GEMM, then col2im adds dcol into
// grad_input. Tasks own (image, channel block), so every element of grad_input is written by one
// thread in a fixed order: the result is deterministic (small images: a task owns a group of
// images and one GEMM covers them). grad_weight: dW^T = sum_n col_n * dY_n^T over the pixels of
// all images in blocks that cross images, tasks own (group, block of 96 taps, chunk of pixel
// blocks), build the micro-kernel's A panels straight from im2col rows, read dY^T panels packed
// once per call, and write private partial sums that are added in a fixed order at the end.
//
// The micro-kernel alone on L1-resident panels runs at ~95% of peak; in a layer, im2col packing
// and copies take most of the rest of the time, hence the phase-split copies of strided layers
// and the prefetch ahead of the packing (both below).
// Forward: ResNet-50 3x3/2 69%, 1x1 61% of the FMA peak (benchmarks/results/conv_cpu.md).
#include "ops/cpu/conv.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "core/parallel.h"
#include "core/tensor.h"
#include "ops/cpu/gemm.h"

namespace cnnops {
namespace cpu {

static inline int64_t round_up(int64_t a, int64_t b) { return (a + b - 1) / b * b; }
static inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

template <typename T>
struct AlignedBuf {
  T* p = nullptr;
  explicit AlignedBuf(size_t n) {
#ifdef CNNOPS_SANITIZE
    // exact size, so AddressSanitizer sees the buffer's true end (aligned_alloc needs whole lines)
    void* q = nullptr;
    if (posix_memalign(&q, 64, n * sizeof(T)) == 0) p = static_cast<T*>(q);
#else
    p = static_cast<T*>(std::aligned_alloc(64, round_up(static_cast<int64_t>(std::max<size_t>(n, 1) * sizeof(T)), 64)));
#endif
    if (!p) throw std::bad_alloc();
  }
  ~AlignedBuf() { std::free(p); }
  AlignedBuf(const AlignedBuf&) = delete;
  AlignedBuf& operator=(const AlignedBuf&) = delete;
};

// ---------------------------------------------------------------- direct (reference fallback)

template <typename T>
void conv2d_forward_direct(const T* x, const T* w, const T* b, T* y, const Conv2dGeom& g) {
  parallel_for(g.N * g.K, [&](int64_t t) {
    const int64_t n = t / g.K, k = t % g.K, gi = k / g.Kg;
    const T* xg = x + (n * g.C + gi * g.Cg) * g.H * g.W;
    const T* wk = w + k * g.Cg * g.R * g.S;
    T* yk = y + (n * g.K + k) * g.P * g.Q;
    for (int64_t oh = 0; oh < g.P; ++oh) {
      for (int64_t ow = 0; ow < g.Q; ++ow) {
        T acc = b ? b[k] : T(0);
        for (int64_t c = 0; c < g.Cg; ++c) {
          for (int64_t r = 0; r < g.R; ++r) {
            const int64_t ih = pad_index(oh * g.sh - g.pt + r * g.dh, g.H, g.mode);
            if (ih < 0) continue;
            for (int64_t s = 0; s < g.S; ++s) {
              const int64_t iw = pad_index(ow * g.sw - g.pl + s * g.dw, g.W, g.mode);
              if (iw < 0) continue;
              acc += wk[(c * g.R + r) * g.S + s] * xg[(c * g.H + ih) * g.W + iw];
            }
          }
        }
        yk[oh * g.Q + ow] = acc;
      }
    }
  });
}

template <typename T>
void conv2d_backward_input_direct(const T* dy, const T* w, T* dx, const Conv2dGeom& g) {
  // One task per (image, input channel) plane: a scatter that no other thread touches.
  parallel_for(g.N * g.C, [&](int64_t t) {
    const int64_t n = t / g.C, c = t % g.C, gi = c / g.Cg, cl = c % g.Cg;
    T* dxc = dx + t * g.H * g.W;
    std::fill(dxc, dxc + g.H * g.W, T(0));
    for (int64_t kl = 0; kl < g.Kg; ++kl) {
      const int64_t k = gi * g.Kg + kl;
      const T* dyk = dy + (n * g.K + k) * g.P * g.Q;
      const T* wkc = w + (k * g.Cg + cl) * g.R * g.S;
      for (int64_t oh = 0; oh < g.P; ++oh)
        for (int64_t r = 0; r < g.R; ++r) {
          const int64_t ih = pad_index(oh * g.sh - g.pt + r * g.dh, g.H, g.mode);
          if (ih < 0) continue;
          for (int64_t ow = 0; ow < g.Q; ++ow) {
            const T v = dyk[oh * g.Q + ow];
            for (int64_t s = 0; s < g.S; ++s) {
              const int64_t iw = pad_index(ow * g.sw - g.pl + s * g.dw, g.W, g.mode);
              if (iw >= 0) dxc[ih * g.W + iw] += v * wkc[r * g.S + s];
            }
          }
        }
    }
  });
}

template <typename T>
void conv2d_backward_weight_direct(const T* dy, const T* x, T* dw, const Conv2dGeom& g) {
  const int64_t RS = g.R * g.S;
  parallel_for(g.K * g.Cg, [&](int64_t t) {
    const int64_t k = t / g.Cg, cl = t % g.Cg, gi = k / g.Kg;
    T* out = dw + t * RS;
    for (int64_t rs = 0; rs < RS; ++rs) {
      const int64_t r = rs / g.S, s = rs % g.S;
      T acc = T(0);
      for (int64_t n = 0; n < g.N; ++n) {
        const T* dyk = dy + (n * g.K + k) * g.P * g.Q;
        const T* xc = x + (n * g.C + gi * g.Cg + cl) * g.H * g.W;
        for (int64_t oh = 0; oh < g.P; ++oh) {
          const int64_t ih = pad_index(oh * g.sh - g.pt + r * g.dh, g.H, g.mode);
          if (ih < 0) continue;
          for (int64_t ow = 0; ow < g.Q; ++ow) {
            const int64_t iw = pad_index(ow * g.sw - g.pl + s * g.dw, g.W, g.mode);
            if (iw >= 0) acc += dyk[oh * g.Q + ow] * xc[ih * g.W + iw];
          }
        }
      }
      out[rs] = acc;
    }
  });
}

template <typename T>
void conv2d_backward_bias(const T* dy, T* db, const Conv2dGeom& g) {
  const int64_t PQ = g.P * g.Q;
  parallel_for(g.K, [&](int64_t k) {
    // eight lane partials (vectorisable without reassociation flags; one scalar chain runs at a
    // third of the memory rate), combined pairwise, then the images in order
    T acc = T(0);
    for (int64_t n = 0; n < g.N; ++n) {
      const T* p = dy + (n * g.K + k) * PQ;
      T part[8] = {};
      int64_t i = 0;
      for (; i + 8 <= PQ; i += 8)
        for (int j = 0; j < 8; ++j) part[j] += p[i + j];
      T tail = T(0);
      for (; i < PQ; ++i) tail += p[i];
      acc += (((part[0] + part[4]) + (part[1] + part[5])) + ((part[2] + part[6]) + (part[3] + part[7]))) + tail;
    }
    db[k] = acc;
  });
}

// ---------------------------------------------------------------- padded rows (slab kernels)

template <typename T>
void fill_padded_rows(const T* xc, const Conv2dGeom& g, int64_t prow0, int64_t nrows, T* out, int64_t Wph) {
  const int64_t Ws = g.sw * Wph, wp = g.pl + g.W + g.pr;
  for (int64_t i = 0; i < nrows; ++i) {
    T* dst = out + i * Ws;
    const int64_t ih = pad_index(prow0 + i - g.pt, g.H, g.mode);
    if (ih < 0) {
      std::fill(dst, dst + Ws, T(0));
      continue;
    }
    const T* src = xc + ih * g.W;
    if (g.sw == 1) {
      for (int64_t cp = 0; cp < g.pl; ++cp) {
        const int64_t iw = pad_index(cp - g.pl, g.W, g.mode);
        dst[cp] = iw < 0 ? T(0) : src[iw];
      }
      std::memcpy(dst + g.pl, src, sizeof(T) * g.W);
      for (int64_t cp = g.pl + g.W; cp < wp; ++cp) {
        const int64_t iw = pad_index(cp - g.pl, g.W, g.mode);
        dst[cp] = iw < 0 ? T(0) : src[iw];
      }
      std::fill(dst + wp, dst + Ws, T(0));
    } else {
      // Phase ph holds padded columns cp = ph + sw*j: a strided copy from the input row between
      // the padding columns (no division per element: with one, this fill would take half of a
      // stride-2 layer's time).
      for (int64_t ph = 0; ph < g.sw; ++ph) {
        T* d = dst + ph * Wph;
        const int64_t nj = ph < wp ? (wp - ph + g.sw - 1) / g.sw : 0;
        const int64_t jlo = std::min(nj, g.pl > ph ? (g.pl - ph + g.sw - 1) / g.sw : int64_t(0));
        const int64_t jhi = std::max(jlo, std::min(nj, (g.pl + g.W - ph + g.sw - 1) / g.sw));
        auto edge = [&](int64_t j) {
          const int64_t iw = pad_index(ph + g.sw * j - g.pl, g.W, g.mode);
          d[j] = iw < 0 ? T(0) : src[iw];
        };
        for (int64_t j = 0; j < jlo; ++j) edge(j);
        const T* sp = src + (ph + g.sw * jlo - g.pl);  // sp[sw*(j - jlo)] = src[cp - pl]
        if (g.sw == 2)
          for (int64_t j = 0; j < jhi - jlo; ++j) d[jlo + j] = sp[2 * j];
        else
          for (int64_t j = 0; j < jhi - jlo; ++j) d[jlo + j] = sp[g.sw * j];
        for (int64_t j = jhi; j < nj; ++j) edge(j);
        std::fill(d + nj, d + Wph, T(0));
      }
    }
  }
}

// ---------------------------------------------------------------- im2col / col2im rows

template <typename T>
void im2col_row(const T* xg, const Conv2dGeom& g, int64_t c, int64_t r, int64_t s, int64_t p0, int64_t np, T* out) {
  const T* xc = xg + c * g.H * g.W;
  const int64_t ihoff = r * g.dh - g.pt, iwoff = s * g.dw - g.pl;
  int64_t lo, hi;
  interior_range(g.W, g.sw, iwoff, g.Q, lo, hi);
  int64_t oh = p0 / g.Q, ow = p0 % g.Q, j = 0;
  while (j < np) {
    const int64_t e = std::min(g.Q, ow + (np - j));  // this output row covers [ow, e)
    T* o = out + j - ow;                              // o[a] is output column a of this row
    const int64_t ih = pad_index(oh * g.sh + ihoff, g.H, g.mode);
    if (ih < 0) {
      std::fill(o + ow, o + e, T(0));
    } else {
      const T* xr = xc + ih * g.W;
      const int64_t m0 = std::max(ow, lo), m1 = std::min(e, hi);
      for (int64_t a = ow; a < std::min(e, m0); ++a) {
        const int64_t iw = pad_index(a * g.sw + iwoff, g.W, g.mode);
        o[a] = iw < 0 ? T(0) : xr[iw];
      }
      if (m0 < m1) {
        if (g.sw == 1) std::memcpy(o + m0, xr + m0 + iwoff, sizeof(T) * (m1 - m0));
        else
          for (int64_t a = m0; a < m1; ++a) o[a] = xr[a * g.sw + iwoff];
      }
      for (int64_t a = std::max(ow, std::max(m0, m1)); a < e; ++a) {
        const int64_t iw = pad_index(a * g.sw + iwoff, g.W, g.mode);
        o[a] = iw < 0 ? T(0) : xr[iw];
      }
    }
    j += e - ow;
    ow = 0;
    ++oh;
  }
}

// For small output planes (fewer pixels than a GEMM block, read by blocks of concatenated
// images): the offset inside an input plane that tap (r, s) reads at each output pixel, -1 for a
// zero pad, tab[(r * S + s) * PQ + p]. A block then gathers a tap's values through the table,
// one load per value, where im2col_row would walk each short output row with its edge cases
// (ResNet's 4x4 layer: a third of the forward's time).
static std::vector<int64_t> tap_table(const Conv2dGeom& g) {
  const int64_t PQ = g.P * g.Q;
  std::vector<int64_t> tab(static_cast<size_t>(g.R * g.S * PQ));
  for (int64_t r = 0; r < g.R; ++r)
    for (int64_t s = 0; s < g.S; ++s)
      for (int64_t p = 0; p < PQ; ++p) {
        const int64_t ih = pad_index(p / g.Q * g.sh - g.pt + r * g.dh, g.H, g.mode);
        const int64_t iw = pad_index(p % g.Q * g.sw - g.pl + s * g.dw, g.W, g.mode);
        tab[(r * g.S + s) * PQ + p] = ih < 0 || iw < 0 ? -1 : ih * g.W + iw;
      }
  return tab;
}

// out[i * os] = the value table entry t[i] points at in `plane` (zero for -1), i < n.
template <typename T>
static inline void gather_tap(const T* plane, const int64_t* t, int64_t n, T* out, int64_t os = 1) {
  for (int64_t i = 0; i < n; ++i) out[i * os] = t[i] < 0 ? T(0) : plane[t[i]];
}

// Adjoint of im2col_row: adds the row's values into the input-gradient plane of channel c.
template <typename T>
static void col2im_row_add(T* dxg, const Conv2dGeom& g, int64_t c, int64_t r, int64_t s, int64_t p0, int64_t np,
                           const T* in) {
  T* xc = dxg + c * g.H * g.W;
  const int64_t ihoff = r * g.dh - g.pt, iwoff = s * g.dw - g.pl;
  int64_t lo, hi;
  interior_range(g.W, g.sw, iwoff, g.Q, lo, hi);
  int64_t oh = p0 / g.Q, ow = p0 % g.Q, j = 0;
  while (j < np) {
    const int64_t e = std::min(g.Q, ow + (np - j));
    const T* v = in + j - ow;
    const int64_t ih = pad_index(oh * g.sh + ihoff, g.H, g.mode);
    if (ih >= 0) {
      T* xr = xc + ih * g.W;
      const int64_t m0 = std::max(ow, lo), m1 = std::min(e, hi);
      for (int64_t a = ow; a < std::min(e, m0); ++a) {
        const int64_t iw = pad_index(a * g.sw + iwoff, g.W, g.mode);
        if (iw >= 0) xr[iw] += v[a];
      }
      if (g.sw == 1) {
        T* dst = xr + iwoff;
        for (int64_t a = m0; a < m1; ++a) dst[a] += v[a];
      } else {
        for (int64_t a = m0; a < m1; ++a) xr[a * g.sw + iwoff] += v[a];
      }
      for (int64_t a = std::max(ow, std::max(m0, m1)); a < e; ++a) {
        const int64_t iw = pad_index(a * g.sw + iwoff, g.W, g.mode);
        if (iw >= 0) xr[iw] += v[a];
      }
    }
    j += e - ow;
    ow = 0;
    ++oh;
  }
}

// All S column taps of (channel c, kernel row r) at once, for zero padding and width stride 2:
// per output row, the taps' rows are added into a phase-split padded row (the layout of
// fill_padded_rows: tap s's values for consecutive output columns are consecutive there, so every
// add is unit-stride), and the two phases are then added into the input row pairwise. On FCN's
// 21-channel 4x4/2 transposed layer (rows of 64, four taps: two per phase) this is about 1.2x
// faster than col2im_row_add's strided read-modify-write per tap and element. With fewer taps
// per phase or short rows the extra pass costs more than it saves (DCGAN's 16-wide rows, 3x3/2
// layers: 4-10% slower), hence the rule in conv2d_backward_input_gemm. `in` holds the S rows of
// np values; `prow` has 2 * Wph.
template <typename T>
static void col2im_taps_add(T* dxg, const Conv2dGeom& g, int64_t c, int64_t r, int64_t p0, int64_t np, const T* in,
                            int64_t Wph, T* prow) {
  T* xc = dxg + c * g.H * g.W;
  const int64_t cend = std::min(g.pl + g.W, 2 * Wph);  // padded columns inside the image end here
  const T *s0 = prow, *s1 = prow + Wph;                  // padded column 2b + ph is s_ph[b]
  int64_t oh = p0 / g.Q, ow = p0 % g.Q, j = 0;
  while (j < np) {
    const int64_t e = std::min(g.Q, ow + (np - j));
    const int64_t ih = oh * g.sh + r * g.dh - g.pt;
    if (ih >= 0 && ih < g.H) {
      std::fill(prow, prow + 2 * Wph, T(0));
      for (int64_t s = 0; s < g.S; ++s) {
        T* dst = prow + tap_offset(g, s, Wph);
        const T* v = in + s * np + j - ow;
        for (int64_t a = ow; a < e; ++a) dst[a] += v[a];
      }
      T* xr = xc + ih * g.W - g.pl;  // indexed by padded column
      int64_t cp = g.pl;
      if (cp & 1) xr[cp] += s1[cp >> 1], ++cp;
      const int64_t pairs = (cend - cp) / 2, b0 = cp >> 1;
      T* xp = xr + cp;
      for (int64_t b = 0; b < pairs; ++b) {
        xp[2 * b] += s0[b0 + b];
        xp[2 * b + 1] += s1[b0 + b];
      }
      if (cp + 2 * pairs < cend) xr[cend - 1] += s0[(cend - 1) >> 1];
    }
    j += e - ow;
    ow = 0;
    ++oh;
  }
}

// ---------------------------------------------------------------- implicit GEMM forward

// Copies n consecutive values into pixel positions [j, j + n) of a row of NR-wide panels (pixel j
// of the row at dst[(j / NR) * ps + j % NR]; ps = the panel size).
template <typename T, int NR>
static inline void put_run(T* dst, int64_t ps, int64_t j, const T* src, int64_t n) {
  while (n > 0) {
    const int64_t off = j % NR;
    T* d = dst + (j / NR) * ps + off;
    if (off == 0 && n >= NR) {
      std::memcpy(d, src, sizeof(T) * NR);  // fixed size: inlined as vector moves
      j += NR, src += NR, n -= NR;
      continue;
    }
    const int64_t m = std::min<int64_t>(NR - off, n);
    for (int64_t i = 0; i < m; ++i) d[i] = src[i];
    j += m, src += m, n -= m;
  }
}

// put_run for the panel width of the current tile (a compile-time width keeps the copies inline).
template <typename T>
static inline void put_run(int nr, T* dst, int64_t ps, int64_t j, const T* src, int64_t n) {
  switch (nr) {
    case 8: return put_run<T, 8>(dst, ps, j, src, n);
    case 16: return put_run<T, 16>(dst, ps, j, src, n);
    case 32: return put_run<T, 32>(dst, ps, j, src, n);
    default: return put_run<T, 64>(dst, ps, j, src, n);
  }
}

template <typename T>
void conv2d_forward_gemm(const T* x, const T* w, const T* b, T* y, const Conv2dGeom& g, const T* const* xplanes) {
  const GemmKernels<T> gk = gemm_kernels<T>();
  const int MR = gk.mr, NR = gk.nr;
  constexpr int64_t KC = 256, NC_MAX = 256;
  const int64_t RS = g.R * g.S, CRS = g.Cg * RS, PQ = g.P * g.Q;
  const int64_t Mp = round_up(g.Kg, MR);

  // Weights -> MR-row panels, chunked by KC along the reduction (layout documented in gemm.h).
  AlignedBuf<T> wpack(static_cast<size_t>(g.G * Mp * CRS));
  // (in parallel: VGG's 512-channel layer packs 9.4 MB, 1-2% of its time when done by one thread)
  const int64_t nkc = ceil_div(CRS, KC);
  parallel_for(g.G * nkc, [&](int64_t t) {
    const int64_t gi = t / nkc, k0 = (t % nkc) * KC;
    pack_a(MR, w + gi * g.Kg * CRS + k0, CRS, 1, g.Kg, std::min(KC, CRS - k0), wpack.p + gi * Mp * CRS + k0 * Mp);
  });

  // Images smaller than a block are concatenated: a block is then nc consecutive pixels of the
  // (image, pixel) sequence, so the GEMM's columns are full and every weight panel serves nc
  // pixels (ResNet's 4x4 and 7x7 layers: one image per block would leave half of an AVX-512
  // tile's columns empty and stream the whole weight matrix once per image). There, blocks of
  // at least 4 panels are made small enough to give every thread one, rather than splitting the
  // output channels: each channel slice would pack the same panels again.
  const int64_t threads = num_threads();
  const bool cross = PQ < NC_MAX && g.N > 1;
  const int64_t total = cross ? g.N * PQ : PQ, nimg = cross ? 1 : g.N;
  int64_t nb = ceil_div(total, NC_MAX);
  if (cross) nb = std::max(nb, std::min(threads, total / (4 * NR)));
  const int64_t nc = round_up(ceil_div(total, nb), NR);
  nb = ceil_div(total, nc);
  // Split output channels only when (image, group, pixel block) tasks cannot feed the threads.
  int64_t ksplit = 1;
  while (nimg * g.G * nb * ksplit < (cross ? threads : 3 * threads) && Mp / MR >= 2 * ksplit * 2) ksplit *= 2;
  const int64_t kr = round_up(ceil_div(g.Kg, ksplit), MR);
  // B panels. Strided layers copy them from padded, stride-phase-split rows (fill_padded_rows),
  // where every tap's values at consecutive output columns are consecutive, so a panel row is a
  // few plain copies (ResNet-50's 3x3/2 layer: 117 GFLOP/s, against 100 with im2col_row's
  // strided gathers). At stride 1 im2col_row copies runs of the input rows already; a slab there
  // would only add a pass (conv1d 16x128x1024 k3: 6% slower).
  // A task fills whole padded rows, so rows much longer than its pixel block (strided 1-D
  // convolutions over long series) keep im2col_row too, as do blocks of concatenated images.
  const int64_t max_rows = slab_rows(g, ceil_div(nc, g.Q) + 1);
  const int64_t Wph = padded_phase_width(g, g.Q), Ws = g.sw * Wph;
  const bool use_slab = !cross && (g.sh > 1 || g.sw > 1) && max_rows * Ws <= 2 * RS * nc;
  const int64_t max_ch = std::min(g.Cg, ceil_div(KC, RS) + 1);
  const int64_t ycs = out_cstride(g);

  const std::vector<int64_t> tab = cross ? tap_table(g) : std::vector<int64_t>();
  // A block's part of one image: pixels [p, p + len) of image n at block column j.
  struct Seg {
    int64_t n, p, len, j;
  };
  parallel_for(nimg * g.G * nb * ksplit, [&](int64_t t) {
    const int64_t kq = t % ksplit, pb = (t / ksplit) % nb, gi = (t / ksplit / nb) % g.G, n = t / ksplit / nb / g.G;
    const int64_t p0 = pb * nc, np = std::min(nc, total - p0);
    const int64_t m0 = kq * kr, m1 = std::min(g.Kg, m0 + kr);
    if (m0 >= m1) return;
    const int64_t npanels = ceil_div(np, NR), tail = np - (npanels - 1) * NR;
    Seg* segs = static_cast<Seg*>(thread_scratch(4, sizeof(Seg) * (cross ? ceil_div(nc, PQ) + 1 : 1)));
    int64_t nseg = 0;
    if (cross)
      for (int64_t q = p0; q < p0 + np;) {
        const int64_t len = std::min(p0 + np - q, PQ - q % PQ);
        segs[nseg++] = Seg{q / PQ, q % PQ, len, q - p0};
        q += len;
      }
    else segs[nseg++] = Seg{n, p0, np, 0};
    const int64_t oh_a = p0 / g.Q, oh_b = (p0 + np - 1) / g.Q, rows = slab_rows(g, oh_b - oh_a + 1);
    const auto plane = [&](int64_t img, int64_t c) { return in_plane(x, xplanes, g, img, gi * g.Cg + c); };
    // Results go straight to y for one image; concatenated images use a buffer scattered at the end.
    const int64_t ldcb = npanels * NR;
    T* cbuf = cross ? static_cast<T*>(thread_scratch(3, sizeof(T) * (m1 - m0) * ldcb)) : nullptr;
    T* yg = cross ? cbuf - m0 * ldcb : y + out_plane(g, n, gi * g.Kg) + p0;
    const int64_t ldy = cross ? ldcb : ycs;
    T* slab = use_slab ? static_cast<T*>(thread_scratch(0, sizeof(T) * max_ch * max_rows * Ws)) : nullptr;
    T* row = use_slab ? nullptr : static_cast<T*>(thread_scratch(2, sizeof(T) * nc));
    T* bpack = static_cast<T*>(thread_scratch(1, sizeof(T) * KC * npanels * NR));
    // im2col_row reads each channel's rows of this block as short runs (1 KB per channel for a
    // 1x1 layer), too short for the hardware prefetchers to follow from memory: the region a
    // channel 4 taps ahead reads is prefetched when a channel starts. That makes ResNet-50's 1x1
    // layer (8x256x56x56, 64 output channels) 10-20% faster (2 or 8 taps ahead do no better);
    // 3x3 layers, whose rows stay in cache, are unaffected.
    const int64_t pf_ch = ceil_div(4, RS);
    const int64_t ih_lo = std::max<int64_t>(0, oh_a * g.sh - g.pt),
                  ih_hi = std::min<int64_t>(g.H, oh_a * g.sh - g.pt + rows);
    const int64_t pf_lo = ih_lo * g.W, pf_bytes = std::max<int64_t>(0, ih_hi - ih_lo) * g.W * int64_t(sizeof(T));
    for (int64_t k0 = 0; k0 < CRS; k0 += KC) {
      const int64_t kc = std::min(KC, CRS - k0), ps = kc * NR;
      const int64_t c_lo = k0 / RS, c_hi = (k0 + kc - 1) / RS;  // channels this chunk's taps read
      if (use_slab)
        for (int64_t c = c_lo; c <= c_hi; ++c)
          fill_padded_rows(plane(n, c), g, oh_a * g.sh, rows, slab + (c - c_lo) * rows * Ws, Wph);
      for (int64_t kk = 0; kk < kc; ++kk) {
        const int64_t crs = k0 + kk, c = crs / RS, r = (crs % RS) / g.S, s = crs % g.S;
        if (!use_slab && !cross && r == 0 && s == 0 && c + pf_ch < g.Cg) {
          const char* a = reinterpret_cast<const char*>(plane(n, c + pf_ch) + pf_lo);
          for (int64_t o = 0; o < pf_bytes; o += 64) __builtin_prefetch(a + o);
        }
        T* dst = bpack + kk * NR;
        if (use_slab) {
          // output row oh of this tap's values starts at src + (oh - oh_a) * sh * Ws
          const T* src = slab + ((c - c_lo) * rows + r * g.dh) * Ws + tap_offset(g, s, Wph);
          int64_t j = 0, oh = oh_a, ow = p0 - oh_a * g.Q;
          while (j < np) {
            const int64_t len = std::min(g.Q - ow, np - j);
            put_run(NR, dst, ps, j, src + (oh - oh_a) * g.sh * Ws + ow, len);
            j += len, ow = 0, ++oh;
          }
        } else {
          for (int64_t i = 0; i < nseg; ++i) {
            if (cross)
              gather_tap(plane(segs[i].n, c), tab.data() + (r * g.S + s) * PQ + segs[i].p, segs[i].len,
                         row + segs[i].j);
            else im2col_row(plane(segs[i].n, c), g, 0, r, s, segs[i].p, segs[i].len, row + segs[i].j);
          }
          put_run(NR, dst, ps, 0, row, np);
        }
        // columns past np are computed and dropped; zeros keep stale (denormal, NaN) values out
        if (tail < NR) std::fill(dst + (npanels - 1) * ps + tail, dst + (npanels - 1) * ps + NR, T(0));
      }
      const T* wp = wpack.p + gi * Mp * CRS + k0 * Mp;
      for (int64_t i = m0; i < m1; i += MR) {
        const int mr = static_cast<int>(std::min<int64_t>(MR, m1 - i));
        const T* ap = wp + (i / MR) * kc * MR;
        for (int64_t jp = 0; jp < npanels; ++jp) {
          const int nr = static_cast<int>(jp + 1 < npanels ? NR : tail);
          gk.tile(kc, ap, bpack + jp * ps, yg + i * ldy + jp * NR, ldy, k0 > 0, mr, nr);
        }
      }
    }
    for (int64_t i = m0; i < m1; ++i) {
      const T bv = b ? b[gi * g.Kg + i] : T(0);
      if (!cross) {
        if (b)
          for (int64_t j = 0; j < np; ++j) yg[i * ycs + j] += bv;
        continue;
      }
      for (int64_t e = 0; e < nseg; ++e) {
        const T* src = cbuf + (i - m0) * ldcb + segs[e].j;
        T* dst = y + out_plane(g, segs[e].n, gi * g.Kg + i) + segs[e].p;
        for (int64_t j = 0; j < segs[e].len; ++j) dst[j] = src[j] + bv;
      }
    }
  });
}

// ---------------------------------------------------------------- GEMM backward

template <typename T>
void conv2d_backward_input_gemm(const T* dy, const T* w, T* dx, const Conv2dGeom& g, const T* bias) {
  constexpr int64_t NC = 256;
  const int64_t RS = g.R * g.S, CRS = g.Cg * RS, PQ = g.P * g.Q, HW = g.H * g.W;
  const int64_t threads = num_threads();
  // Images with fewer pixels than a block go in groups of ipb: their dY columns are gathered side
  // by side, so one GEMM covers the group (full tiles, one pass over the weights instead of one
  // per image: ResNet's 7x7 -> 4x4 stride-2 layer).
  const int64_t ipb = PQ < NC ? std::max<int64_t>(1, NC / PQ) : 1, nib = ceil_div(g.N, ipb);
  // Channel blocks: as many as needed to give every thread a few tasks, at least ~16 rows each.
  int64_t cb = g.Cg;
  while (cb > 1 && nib * g.G * ceil_div(g.Cg, cb) < 4 * threads && (cb / 2) * RS >= 16) cb = ceil_div(cb, 2);
  const int64_t ncb = ceil_div(g.Cg, cb);
  // col2im_taps_add: stride 2, zero padding, at least two taps per phase, rows of 32 or more
  const bool phase_rows = g.sw == 2 && g.mode == PadMode::Zeros && g.S >= 4 && g.Q >= 32;
  const int64_t Wph = padded_phase_width(g, g.Q);
  // A(m, k) = W[k][c0*RS + m] of every (group, channel block), packed once for all images and
  // pixel blocks (packing it per task would cost ~10% of the conv_transpose forward).
  const GemmKernels<T> gk = gemm_kernels<T>();
  const int64_t apanel = round_up(cb * RS, gk.mr) * g.Kg;
  AlignedBuf<T> wpack(static_cast<size_t>(g.G * ncb * apanel));
  parallel_for(g.G * ncb, [&](int64_t t) {
    const int64_t q = t % ncb, gi = t / ncb, c0 = q * cb, rows = (std::min(g.Cg, c0 + cb) - c0) * RS;
    pack_a_full(gk.mr, w + gi * g.Kg * CRS + c0 * RS, 1, CRS, rows, g.Kg, wpack.p + t * apanel);
  });
  parallel_for(nib * g.G * ncb, [&](int64_t t) {
    const int64_t q = t % ncb, gi = (t / ncb) % g.G, ib = t / ncb / g.G;
    const int64_t n0 = ib * ipb, n1 = std::min(g.N, n0 + ipb);
    const int64_t c0 = q * cb, c1 = std::min(g.Cg, c0 + cb), rows = (c1 - c0) * RS;
    for (int64_t n = n0; n < n1; ++n) {
      T* dxg = dx + (n * g.C + gi * g.Cg) * HW;
      for (int64_t c = c0; c < c1; ++c) std::fill(dxg + c * HW, dxg + (c + 1) * HW, bias ? bias[gi * g.Cg + c] : T(0));
    }
    T* dcol = static_cast<T*>(thread_scratch(0, sizeof(T) * rows * NC));
    T* prow = phase_rows ? static_cast<T*>(thread_scratch(1, sizeof(T) * 2 * Wph)) : nullptr;
    const T* ap = wpack.p + (gi * ncb + q) * apanel;
    if (ipb > 1) {
      // B(k, j) = dY[n0 + j / PQ][k][j % PQ], gathered for the group
      const int64_t np = (n1 - n0) * PQ;
      T* dyb = static_cast<T*>(thread_scratch(2, sizeof(T) * g.Kg * np));
      for (int64_t k = 0; k < g.Kg; ++k)
        for (int64_t n = n0; n < n1; ++n)
          std::memcpy(dyb + k * np + (n - n0) * PQ, dy + (n * g.K + gi * g.Kg + k) * PQ, sizeof(T) * PQ);
      gemm_packed_a<T>(gk, rows, np, g.Kg, ap, dyb, np, 1, dcol, np, false);
      for (int64_t n = n0; n < n1; ++n) {
        T* dxg = dx + (n * g.C + gi * g.Cg) * HW;
        for (int64_t m = 0; m < rows; ++m)
          col2im_row_add(dxg, g, c0 + m / RS, (m % RS) / g.S, m % g.S, 0, PQ, dcol + m * np + (n - n0) * PQ);
      }
      return;
    }
    const int64_t n = n0;
    T* dxg = dx + (n * g.C + gi * g.Cg) * HW;
    const T* dyg = dy + (n * g.K + gi * g.Kg) * PQ;  // B(k, p) = dY[k][p]
    for (int64_t p0 = 0; p0 < PQ; p0 += NC) {
      const int64_t np = std::min(NC, PQ - p0);
      gemm_packed_a<T>(gk, rows, np, g.Kg, ap, dyg + p0, PQ, 1, dcol, np, false);
      if (phase_rows) {
        for (int64_t m = 0; m < rows; m += g.S)
          col2im_taps_add(dxg, g, c0 + m / RS, (m % RS) / g.S, p0, np, dcol + m * np, Wph, prow);
        continue;
      }
      for (int64_t m = 0; m < rows; ++m) {
        const int64_t c = c0 + m / RS, r = (m % RS) / g.S, s = m % g.S;
        col2im_row_add(dxg, g, c, r, s, p0, np, dcol + m * np);
      }
    }
  });
}

// grad_weight, transposed: dW^T (CRS x Kg) += col (CRS x P) * dY^T (P x Kg), summed over images.
// The reduction runs over the pixels of all images as one sequence (image, pixel), in blocks of
// NC pixels that cross images, so small images (ResNet's 7x7 and 4x4 layers) still give the
// micro-kernel NC-long reductions. The im2col rows of one MR-row panel are written straight into
// the micro-kernel's A layout (MR taps interleaved per pixel), and dY^T is packed into NR-column
// panels once per pixel block -- for the whole problem up front when that fits kPackedDyBytes,
// since every tap block reads the same panels -- so both operands are read sequentially; the
// task's result block (rows x Kg, padded to whole tiles) lives in a private buffer and is
// transposed into dW once at the end.
template <typename T>
void conv2d_backward_weight_gemm(const T* dy, const T* x, T* dw, const Conv2dGeom& g) {
  const GemmKernels<T> gk = gemm_kernels<T>();
  const int MR = gk.mr, NR = gk.nr;
  // pixels per block, taps per task (the multiple of MR nearest 96)
  const int64_t NC = 256, CB = std::max<int64_t>(1, (96 + MR / 2) / MR) * MR;
  const int64_t RS = g.R * g.S, CRS = g.Cg * RS, PQ = g.P * g.Q;
  const int64_t ncb = ceil_div(CRS, CB);
  const int64_t Kp = round_up(g.Kg, NR);
  const int64_t total = g.N * PQ, npb = ceil_div(total, NC);
  // Reduction split over chunks of pixel blocks only when the (group, tap block) tasks are too few.
  const size_t wsize = static_cast<size_t>(g.K * CRS);
  const int64_t nic = weight_grad_chunks(npb, g.G * ncb, static_cast<int64_t>(wsize * sizeof(T)));
  const int64_t per = ceil_div(npb, nic);
  std::vector<T> partial(nic > 1 ? wsize * nic : 0);
  const bool small = PQ < NC;
  const std::vector<int64_t> tab = small ? tap_table(g) : std::vector<int64_t>();
  // dY^T panels of pixel block `blk` of group gi: panel j (NR channels) holds np rows of NR values.
  const auto pack_dy = [&](int64_t gi, int64_t blk, T* out) {
    const int64_t q0 = blk * NC, np = std::min(NC, total - q0);
    for (int64_t j = 0; j < Kp; j += NR)
      for (int64_t jj = 0; jj < NR; ++jj) {
        T* o = out + j * np + jj;
        if (j + jj >= g.Kg) {
          for (int64_t pp = 0; pp < np; ++pp) o[pp * NR] = T(0);
          continue;
        }
        for (int64_t q = q0; q < q0 + np;) {
          const int64_t n = q / PQ, p = q % PQ, len = std::min(q0 + np - q, PQ - p);
          const T* src = dy + (n * g.K + gi * g.Kg + j + jj) * PQ + p;
          T* oq = o + (q - q0) * NR;
          for (int64_t pp = 0; pp < len; ++pp) oq[pp * NR] = src[pp];
          q += len;
        }
      }
  };
  constexpr int64_t kPackedDyBytes = int64_t(32) << 20;
  const bool prepack = ncb > 1 && g.G * npb * NC * Kp * int64_t(sizeof(T)) <= kPackedDyBytes;
  Tensor dyp_buf =
      prepack ? empty({g.G * npb * NC * Kp}, sizeof(T) == 4 ? DType::Float32 : DType::Float64, Device{}) : Tensor{};
  if (prepack) parallel_for(g.G * npb, [&](int64_t t) { pack_dy(t / npb, t % npb, dyp_buf.ptr<T>() + t * NC * Kp); });
  parallel_for(g.G * ncb * nic, [&](int64_t t) {
    const int64_t ic = t % nic, q = (t / nic) % ncb, gi = t / nic / ncb;
    const int64_t r0 = q * CB, r1 = std::min(CRS, r0 + CB), rows = r1 - r0, rows_p = round_up(rows, MR);
    T* acc = static_cast<T*>(thread_scratch(0, sizeof(T) * rows_p * Kp));
    T* apack = static_cast<T*>(thread_scratch(1, sizeof(T) * NC * MR));
    T* bscratch = prepack ? nullptr : static_cast<T*>(thread_scratch(2, sizeof(T) * NC * Kp));
    T* row = static_cast<T*>(thread_scratch(3, sizeof(T) * NC));
    std::fill(acc, acc + rows_p * Kp, T(0));
    for (int64_t blk = ic * per; blk < std::min(npb, (ic + 1) * per); ++blk) {
      const int64_t q0 = blk * NC, np = std::min(NC, total - q0);
      const T* bpack = bscratch;
      if (prepack) bpack = dyp_buf.ptr<T>() + (gi * npb + blk) * NC * Kp;
      else pack_dy(gi, blk, bscratch);
      for (int64_t i = 0; i < rows; i += MR) {
        for (int ii = 0; ii < MR; ++ii) {
          const int64_t crs = r0 + i + ii;
          if (crs >= r1) {
            for (int64_t pp = 0; pp < np; ++pp) apack[pp * MR + ii] = T(0);
            continue;
          }
          // small images: gathered straight into the A panel; else im2col runs, then interleaved
          const int64_t c = crs / RS, rs = crs % RS;
          for (int64_t qq = q0; qq < q0 + np;) {
            const int64_t n = qq / PQ, p = qq % PQ, len = std::min(q0 + np - qq, PQ - p);
            const T* xg = x + (n * g.C + gi * g.Cg) * g.H * g.W;
            if (small) gather_tap(xg + c * g.H * g.W, tab.data() + rs * PQ + p, len, apack + (qq - q0) * MR + ii, MR);
            else im2col_row(xg, g, c, rs / g.S, rs % g.S, p, len, row + (qq - q0));
            qq += len;
          }
          if (!small)
            for (int64_t pp = 0; pp < np; ++pp) apack[pp * MR + ii] = row[pp];
        }
        for (int64_t j = 0; j < Kp; j += NR) gk.full(np, apack, bpack + j * np, acc + i * Kp + j, Kp, true);
      }
    }
    T* out = (nic > 1 ? partial.data() + ic * wsize : dw) + gi * g.Kg * CRS;
    for (int64_t k = 0; k < g.Kg; ++k)
      for (int64_t i = 0; i < rows; ++i) out[k * CRS + r0 + i] = acc[i * Kp + k];
  });
  if (nic > 1) sum_partials(partial.data(), nic, dw, static_cast<int64_t>(wsize));
}

template <typename T>
void sum_partials(const T* partial, int64_t parts, T* out, int64_t size) {
  constexpr int64_t B = 4096;
  parallel_for((size + B - 1) / B, [&](int64_t q) {
    for (int64_t j = q * B; j < std::min(size, (q + 1) * B); ++j) {
      T s = T(0);
      for (int64_t i = 0; i < parts; ++i) s += partial[i * size + j];
      out[j] = s;
    }
  });
}

// Exponent bits all ones <=> NaN or infinity; blocks of 64 K values in parallel, each a loop the
// compiler vectorises (no early exit inside a block).
template <typename T>
bool all_finite(const T* p, int64_t n) {
  using U = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
  constexpr U exp_mask = sizeof(T) == 4 ? U(0x7f800000u) : U(0x7ff0000000000000ull);
  constexpr int64_t B = 65536;
  std::atomic<bool> finite{true};
  parallel_for((n + B - 1) / B, [&](int64_t q) {
    if (!finite.load(std::memory_order_relaxed)) return;
    const int64_t lo = q * B, hi = std::min(n, lo + B);
    U bad = 0;
    for (int64_t i = lo; i < hi; ++i) {
      U u;
      std::memcpy(&u, p + i, sizeof(U));
      bad |= U((u & exp_mask) == exp_mask);
    }
    if (bad) finite.store(false, std::memory_order_relaxed);
  });
  return finite.load();
}

#define CNNOPS_INSTANTIATE(T)                                                                                 \
  template bool all_finite<T>(const T*, int64_t);                                                             \
  template void conv2d_forward_direct<T>(const T*, const T*, const T*, T*, const Conv2dGeom&);                \
  template void conv2d_forward_gemm<T>(const T*, const T*, const T*, T*, const Conv2dGeom&, const T* const*); \
  template void conv2d_backward_input_direct<T>(const T*, const T*, T*, const Conv2dGeom&);                   \
  template void conv2d_backward_input_gemm<T>(const T*, const T*, T*, const Conv2dGeom&, const T*);           \
  template void conv2d_backward_weight_direct<T>(const T*, const T*, T*, const Conv2dGeom&);                  \
  template void conv2d_backward_weight_gemm<T>(const T*, const T*, T*, const Conv2dGeom&);                    \
  template void conv2d_backward_bias<T>(const T*, T*, const Conv2dGeom&);                                     \
  template void im2col_row<T>(const T*, const Conv2dGeom&, int64_t, int64_t, int64_t, int64_t, int64_t, T*);  \
  template void fill_padded_rows<T>(const T*, const Conv2dGeom&, int64_t, int64_t, T*, int64_t);              \
  template void sum_partials<T>(const T*, int64_t, T*, int64_t);
CNNOPS_INSTANTIATE(float)
CNNOPS_INSTANTIATE(double)
#undef CNNOPS_INSTANTIATE

}  // namespace cpu
}  // namespace cnnops
