// CPU kernels of the region ops (RoI Pool, RoI Align, PS RoI Pool, PS RoI Align), forward and
// backward, channels first or last, float32/float64.
//
// Work split. Forward: one task = (region, chunk of kFwdChunk output channels); the region's
// windows or sample taps are computed once per task and reused by every channel of the chunk, and
// a task writes only its own outputs. Backward: one task = (image, chunk of kBwdChunk output
// channels); the task owns the gradient planes those channels read, zeroes them and adds the
// contributions of the image's regions in region, bin, sample and tap order, which is
// torchvision's sequential order, so the gradient is the same for any thread count (chunks have
// fixed sizes) and equals torchvision's CPU backward bit for bit. Channels-last features put a
// chunk's channels side by side, so RoI Align's inner loops run across them (vectorised).
//
// RoI Align visits only the samples that read the input: each bin's in-range samples are found by
// bisection on each axis (roigeom::sample_range), so an adaptive grid over a huge region costs
// what its samples inside the features cost. Skipping the others changes no bit (they add zero).
//
// This header is compiled twice, by roi.cpp (portable) and roi_avx2.cpp (-mavx2 -mfma, chosen at
// run time): everything is in an unnamed namespace, so each translation unit keeps its own copy.
// Both are compiled without FMA contraction, and vectorising changes no element's order of
// operations, so both give the same bits.
#pragma once
#include <algorithm>
#include <cfloat>
#include <cstring>
#include <limits>
#include <vector>

#include "core/dispatch.h"
#include "core/parallel.h"
#include "ops/cpu/roi.h"

namespace cnnops {
namespace cpu {
namespace {

using roigeom::Region;
constexpr int64_t kFwdChunk = 64, kBwdChunk = 16;
constexpr int64_t kLanes = 16;  // channels a RoI Pool block keeps in registers

int64_t chunks_of(int64_t n, int64_t chunk) { return (n + chunk - 1) / chunk; }

// One in-range sample of a bin: the four positions it reads (spatial index times the element
// stride) and their weights, as torchvision's pre_calc_for_bilinear_interpolate.
template <typename T>
struct Sample {
  int64_t p1, p2, p3, p4;
  T w1, w2, w3, w4;
};

// The in-range samples of every bin along one axis of a region: bin p's taps are
// taps[start[p] .. start[p + 1]).
template <typename T>
struct AxisTaps {
  std::vector<int64_t> start;
  std::vector<roigeom::AxisTap<T>> taps;
  void build(T origin, T bin, int64_t grid, int64_t bins, int64_t size) {
    start.resize(static_cast<size_t>(bins) + 1);
    taps.clear();
    for (int64_t p = 0; p < bins; ++p) {
      start[p] = static_cast<int64_t>(taps.size());
      int64_t a, b;
      roigeom::sample_range(origin, p, bin, grid, size, &a, &b);
      for (int64_t i = a; i < b; ++i)
        taps.push_back(roigeom::axis_tap(roigeom::sample_pos(origin, p, bin, i, grid), size));
    }
    start[bins] = static_cast<int64_t>(taps.size());
  }
};

// The samples of bin (ph, pw), iy-major as torchvision's loops.
template <typename T>
void bin_samples(const AxisTaps<T>& Y, const AxisTaps<T>& X, int64_t ph, int64_t pw, int64_t W, int64_t stride,
                 std::vector<Sample<T>>& s) {
  s.clear();
  for (int64_t a = Y.start[ph]; a < Y.start[ph + 1]; ++a) {
    const roigeom::AxisTap<T>& ty = Y.taps[a];
    for (int64_t b = X.start[pw]; b < X.start[pw + 1]; ++b) {
      const roigeom::AxisTap<T>& tx = X.taps[b];
      Sample<T> e;
      e.p1 = (ty.lo * W + tx.lo) * stride;
      e.p2 = (ty.lo * W + tx.hi) * stride;
      e.p3 = (ty.hi * W + tx.lo) * stride;
      e.p4 = (ty.hi * W + tx.hi) * stride;
      e.w1 = ty.h * tx.h;
      e.w2 = ty.h * tx.l;
      e.w3 = ty.l * tx.h;
      e.w4 = ty.l * tx.l;
      s.push_back(e);
    }
  }
}

// Geometry shared by the kernels of one call.
struct Dims {
  int64_t N, C, H, W, HW, K, Co, PH, PW;
  bool cl, ps;
  int64_t stride;  // elements between neighbouring pixels of one channel
  explicit Dims(const RoiPlan& P)
      : N(P.N),
        C(P.C),
        H(P.H),
        W(P.W),
        HW(P.H * P.W),
        K(P.K),
        Co(P.C_out),
        PH(P.p.out_h),
        PW(P.p.out_w),
        cl(P.p.channels_last),
        ps(P.p.kind == roigeom::PsPool || P.p.kind == roigeom::PsAlign),
        stride(P.p.channels_last ? P.C : 1) {}
  // input channel read by output channel c at bin (ph, pw)
  int64_t cin(int64_t c, int64_t ph, int64_t pw) const { return ps ? (c * PH + ph) * PW + pw : c; }
  // element offset of channel ci's pixel 0 in image n
  int64_t plane(int64_t n, int64_t ci) const { return cl ? n * HW * C + ci : (n * C + ci) * HW; }
  // output element (k, c, ph, pw)
  int64_t out(int64_t k, int64_t c, int64_t ph, int64_t pw) const {
    return cl ? ((k * PH + ph) * PW + pw) * Co + c : ((k * Co + c) * PH + ph) * PW + pw;
  }
  // zero the gradient of input channels [c0, c1) of image n
  template <typename T>
  void zero(T* dx, int64_t n, int64_t c0, int64_t c1) const {
    if (!cl) {
      std::fill(dx + plane(n, c0), dx + plane(n, c1), T(0));
      return;
    }
    for (int64_t q = 0; q < HW; ++q) std::fill(dx + (n * HW + q) * C + c0, dx + (n * HW + q) * C + c1, T(0));
  }
};

// ---- RoI Align and PS RoI Align ----

// RoI Align and RoI Pool on channels-first features read, per (region, channel), a few pixels from
// each of a dozen rows of one plane: cache lines far apart with little reuse, so they wait on
// memory. When the regions read more pixels per channel than the features have (each pixel read
// at least once on average), the features are first transposed to channels-last (one tiled pass
// over them), where a tap or window pixel of a region is a run of consecutive channels, loaded
// once for a whole chunk of channels and processed across them in vector registers; outputs are
// still written in the caller's layout. Every output's arithmetic is unchanged (the same bits).
bool transpose_pays(const RoiPlan& P) {
  if (P.p.channels_last || P.C <= 1 || !(P.p.kind == roigeom::Align || P.p.kind == roigeom::Pool)) return false;
  double reads = 0;  // pixels read per channel: samples (RoI Align) or window pixels (RoI Pool)
  for (const Region& r : P.regions) {
    if (P.p.kind == roigeom::Align) {
      reads += static_cast<double>(P.p.out_h * P.p.out_w) * static_cast<double>(std::max<int64_t>(r.grid_h, 0)) *
               static_cast<double>(std::max<int64_t>(r.grid_w, 0));
      continue;
    }
    double rows = 0, cols = 0;
    for (int64_t p = 0; p < P.p.out_h; ++p) {
      int64_t b, e;
      roigeom::pool_window(r.istart_h, r.bin_h, p, P.H, &b, &e);
      rows += static_cast<double>(std::max<int64_t>(e - b, 0));
    }
    for (int64_t p = 0; p < P.p.out_w; ++p) {
      int64_t b, e;
      roigeom::pool_window(r.istart_w, r.bin_w, p, P.W, &b, &e);
      cols += static_cast<double>(std::max<int64_t>(e - b, 0));
    }
    reads += rows * cols;
  }
  return reads >= static_cast<double>(P.N) * static_cast<double>(P.H * P.W);
}

// xt (N, H, W, C) = x (N, C, H, W), in 32 x 32 tiles of (channel, pixel) per task.
template <typename T>
void to_channels_last(const T* x, T* xt, int64_t N, int64_t C, int64_t HW) {
  constexpr int64_t kTile = 32;
  const int64_t ct = (C + kTile - 1) / kTile, qt = (HW + kTile - 1) / kTile;
  parallel_for(N * ct * qt, [&](int64_t t) {
    const int64_t n = t / (ct * qt), c0 = (t / qt % ct) * kTile, q0 = t % qt * kTile;
    const int64_t c1 = std::min(C, c0 + kTile), q1 = std::min(HW, q0 + kTile);
    for (int64_t c = c0; c < c1; ++c) {
      const T* src = x + (n * C + c) * HW;
      T* dst = xt + n * HW * C + c;
      for (int64_t q = q0; q < q1; ++q) dst[q * C] = src[q];
    }
  });
}

// x: the features in the plan's layout; xt: the same as (N, H, W, C) when the plan is channels
// first and the transposed copy was made (else null).
template <typename T>
void align_forward(const RoiPlan& P, const T* x, const T* xt, T* y) {
  const Dims d(P);
  const bool across = !d.ps && (d.cl || xt);  // sum across a chunk's channels from a channels-last copy
  const T* xl = d.cl ? x : xt;
  const int64_t stride = across ? d.C : d.stride;
  const int64_t chunks = chunks_of(d.Co, kFwdChunk);
  parallel_for(d.K * chunks, [&](int64_t t) {
    const int64_t k = t / chunks, c0 = (t % chunks) * kFwdChunk, c1 = std::min(d.Co, c0 + kFwdChunk);
    const Region& r = P.regions[k];
    AxisTaps<T> Y, X;
    Y.build(static_cast<T>(r.start_h), static_cast<T>(r.bin_h), r.grid_h, d.PH, d.H);
    X.build(static_cast<T>(r.start_w), static_cast<T>(r.bin_w), r.grid_w, d.PW, d.W);
    const T count = static_cast<T>(r.count);
    std::vector<Sample<T>> s;
    T acc[kFwdChunk];
    for (int64_t ph = 0; ph < d.PH; ++ph)
      for (int64_t pw = 0; pw < d.PW; ++pw) {
        bin_samples(Y, X, ph, pw, d.W, stride, s);
        if (across) {
          const int64_t nc = c1 - c0;
          const T* base = xl + r.batch * d.HW * d.C + c0;
          // blocks of kLanes channels sum the bin's samples in registers
          int64_t cb = 0;
          for (; cb + kLanes <= nc; cb += kLanes) {
            T a[kLanes] = {};
            for (const Sample<T>& e : s) {
              const T *r1 = base + e.p1 + cb, *r2 = base + e.p2 + cb, *r3 = base + e.p3 + cb, *r4 = base + e.p4 + cb;
              for (int64_t j = 0; j < kLanes; ++j) a[j] += e.w1 * r1[j] + e.w2 * r2[j] + e.w3 * r3[j] + e.w4 * r4[j];
            }
            for (int64_t j = 0; j < kLanes; ++j) acc[cb + j] = a[j];
          }
          for (int64_t cc = cb; cc < nc; ++cc) acc[cc] = T(0);
          for (const Sample<T>& e : s) {
            const T *r1 = base + e.p1, *r2 = base + e.p2, *r3 = base + e.p3, *r4 = base + e.p4;
            for (int64_t cc = cb; cc < nc; ++cc)
              acc[cc] += e.w1 * r1[cc] + e.w2 * r2[cc] + e.w3 * r3[cc] + e.w4 * r4[cc];
          }
          if (d.cl) {
            T* o = y + d.out(k, c0, ph, pw);
            for (int64_t cc = 0; cc < nc; ++cc) o[cc] = acc[cc] / count;
          } else {
            for (int64_t cc = 0; cc < nc; ++cc) y[d.out(k, c0 + cc, ph, pw)] = acc[cc] / count;
          }
          continue;
        }
        for (int64_t c = c0; c < c1; ++c) {
          const T* base = x + d.plane(r.batch, d.cin(c, ph, pw));
          T a = T(0);
          for (const Sample<T>& e : s)
            a += e.w1 * base[e.p1] + e.w2 * base[e.p2] + e.w3 * base[e.p3] + e.w4 * base[e.p4];
          y[d.out(k, c, ph, pw)] = a / count;
        }
      }
  });
}

// RoI Align's backward adds across a chunk's channels at once: into the gradient itself for
// channels-last features, else into a task-local (H * W, chunk) block that is written to the
// chunk's planes at the end (the block is the task's own, so it stays in cache). Each element
// still receives its additions in region, bin, sample and tap order: the bits do not change.
template <typename T>
void align_backward(const RoiPlan& P, const T* dy, T* dx) {
  const Dims d(P);
  const int64_t chunks = chunks_of(d.Co, kBwdChunk), group = d.ps ? d.PH * d.PW : 1;
  parallel_for(d.N * chunks, [&](int64_t t) {
    const int64_t n = t / chunks, c0 = (t % chunks) * kBwdChunk, c1 = std::min(d.Co, c0 + kBwdChunk);
    const int64_t nc = c1 - c0;
    std::vector<T> block;
    T* acc = nullptr;        // where the chunk's channel vector of pixel 0 starts
    int64_t pix = 0;         // elements between neighbouring pixels there
    if (!d.ps && d.cl) {
      d.zero(dx, n, c0, c1);
      acc = dx + n * d.HW * d.C + c0;
      pix = d.C;
    } else if (!d.ps) {
      block.assign(static_cast<size_t>(d.HW * nc), T(0));
      acc = block.data();
      pix = nc;
    } else {
      d.zero(dx, n, c0 * group, c1 * group);
    }
    AxisTaps<T> Y, X;
    std::vector<Sample<T>> s;
    T g[kBwdChunk];
    for (int64_t j = P.image_start[n]; j < P.image_start[n + 1]; ++j) {
      const int64_t k = P.order[j];
      const Region& r = P.regions[k];
      Y.build(static_cast<T>(r.start_h), static_cast<T>(r.bin_h), r.grid_h, d.PH, d.H);
      X.build(static_cast<T>(r.start_w), static_cast<T>(r.bin_w), r.grid_w, d.PW, d.W);
      const T count = static_cast<T>(r.count);
      for (int64_t ph = 0; ph < d.PH; ++ph)
        for (int64_t pw = 0; pw < d.PW; ++pw) {
          bin_samples(Y, X, ph, pw, d.W, acc ? pix : d.stride, s);
          if (s.empty()) continue;
          if (acc) {
            for (int64_t cc = 0; cc < nc; ++cc) g[cc] = dy[d.out(k, c0 + cc, ph, pw)];
            for (const Sample<T>& e : s) {
              // one loop per tap: taps may share a pixel at the border, and each element must get
              // tap 1's addition before tap 2's
              T* a1 = acc + e.p1;
              for (int64_t cc = 0; cc < nc; ++cc) a1[cc] += g[cc] * e.w1 / count;
              T* a2 = acc + e.p2;
              for (int64_t cc = 0; cc < nc; ++cc) a2[cc] += g[cc] * e.w2 / count;
              T* a3 = acc + e.p3;
              for (int64_t cc = 0; cc < nc; ++cc) a3[cc] += g[cc] * e.w3 / count;
              T* a4 = acc + e.p4;
              for (int64_t cc = 0; cc < nc; ++cc) a4[cc] += g[cc] * e.w4 / count;
            }
            continue;
          }
          for (int64_t c = c0; c < c1; ++c) {
            T* base = dx + d.plane(n, d.cin(c, ph, pw));
            const T gv = dy[d.out(k, c, ph, pw)];
            for (const Sample<T>& e : s) {
              const T g1 = gv * e.w1 / count, g2 = gv * e.w2 / count, g3 = gv * e.w3 / count, g4 = gv * e.w4 / count;
              base[e.p1] += g1;
              base[e.p2] += g2;
              base[e.p3] += g3;
              base[e.p4] += g4;
            }
          }
        }
    }
    if (!block.empty())
      for (int64_t cc = 0; cc < nc; ++cc) {
        T* plane = dx + d.plane(n, c0 + cc);
        for (int64_t q = 0; q < d.HW; ++q) plane[q] = block[q * nc + cc];
      }
  });
}

// ---- RoI Pool and PS RoI Pool ----

// The windows of every bin of a region: rows [hs[ph], he[ph]) and columns [ws[pw], we[pw]).
template <typename T>
struct Windows {
  std::vector<int64_t> hs, he, ws, we;
  void build(const Region& r, const Dims& d) {
    const int64_t ch = d.ps ? d.H - 1 : d.H, cw = d.ps ? d.W - 1 : d.W;
    hs.resize(d.PH);
    he.resize(d.PH);
    ws.resize(d.PW);
    we.resize(d.PW);
    for (int64_t p = 0; p < d.PH; ++p) roigeom::pool_window(r.istart_h, static_cast<T>(r.bin_h), p, ch, &hs[p], &he[p]);
    for (int64_t p = 0; p < d.PW; ++p) roigeom::pool_window(r.istart_w, static_cast<T>(r.bin_w), p, cw, &ws[p], &we[p]);
  }
};

template <typename T>
void pool_forward(const RoiPlan& P, const T* x, const T* xt, T* y, int64_t* idx) {
  const Dims d(P);
  const bool across = !d.ps && (d.cl || xt);  // RoI Pool across a chunk's channels (channels-last data)
  const T* xl = d.cl ? x : xt;
  const int64_t chunks = chunks_of(d.Co, kFwdChunk);
  parallel_for(d.K * chunks, [&](int64_t t) {
    const int64_t k = t / chunks, c0 = (t % chunks) * kFwdChunk, c1 = std::min(d.Co, c0 + kFwdChunk);
    const Region& r = P.regions[k];
    Windows<T> w;
    w.build(r, d);
    T best[kFwdChunk];
    int64_t bidx[kFwdChunk];
    for (int64_t ph = 0; ph < d.PH; ++ph)
      for (int64_t pw = 0; pw < d.PW; ++pw) {
        const int64_t hs = w.hs[ph], he = w.he[ph], ws = w.ws[pw], we = w.we[pw];
        const bool empty = he <= hs || we <= ws;
        if (across) {
          // torchvision's rule per channel, pixels in row-major order: the first strictly greater
          // value wins, starting below every float; NaN never wins
          const int64_t nc = c1 - c0;
          const T* base = xl + r.batch * d.HW * d.C + c0;
          for (int64_t cc = 0; cc < nc; ++cc) {
            best[cc] = empty ? T(0) : static_cast<T>(-FLT_MAX);
            bidx[cc] = -1;
          }
          // blocks of kLanes channels walk the window with their maxima in registers
          int64_t cb = 0;
          for (; cb + kLanes <= nc; cb += kLanes) {
            T bb[kLanes];
            int64_t bi[kLanes];
            for (int64_t j = 0; j < kLanes; ++j) bb[j] = best[cb + j], bi[j] = -1;
            for (int64_t h = hs; h < he; ++h)
              for (int64_t q = h * d.W + ws; q < h * d.W + we; ++q) {
                const T* v = base + q * d.C + cb;
                for (int64_t j = 0; j < kLanes; ++j) {
                  const bool gt = v[j] > bb[j];
                  bb[j] = gt ? v[j] : bb[j];
                  bi[j] = gt ? q : bi[j];
                }
              }
            for (int64_t j = 0; j < kLanes; ++j) best[cb + j] = bb[j], bidx[cb + j] = bi[j];
          }
          for (int64_t h = hs; h < he; ++h)
            for (int64_t q = h * d.W + ws; q < h * d.W + we; ++q) {
              const T* v = base + q * d.C;
              for (int64_t cc = cb; cc < nc; ++cc) {
                const bool gt = v[cc] > best[cc];
                best[cc] = gt ? v[cc] : best[cc];
                bidx[cc] = gt ? q : bidx[cc];
              }
            }
          for (int64_t cc = 0; cc < nc; ++cc) {
            const int64_t o = d.out(k, c0 + cc, ph, pw);
            y[o] = best[cc];
            idx[o] = bidx[cc];
          }
          continue;
        }
        for (int64_t c = c0; c < c1; ++c) {
          const T* base = x + d.plane(r.batch, d.cin(c, ph, pw));
          const int64_t o = d.out(k, c, ph, pw);
          if (!d.ps) {
            T bv = empty ? T(0) : static_cast<T>(-FLT_MAX);
            int64_t bi = -1;
            for (int64_t h = hs; h < he; ++h)
              for (int64_t q = h * d.W + ws; q < h * d.W + we; ++q) {
                const T v = base[q * d.stride];
                if (v > bv) {
                  bv = v;
                  bi = q;
                }
              }
            y[o] = bv;
            idx[o] = bi;
          } else {
            T sum = T(0);
            for (int64_t h = hs; h < he; ++h)
              for (int64_t q = h * d.W + ws; q < h * d.W + we; ++q) sum += base[q * d.stride];
            const T area = static_cast<T>((he - hs) * (we - ws));
            y[o] = empty ? T(0) : sum / area;
          }
        }
      }
  });
}

// Backward of RoI Pool (each bin's gradient added at its argmax) and PS RoI Pool (spread over the
// bin's window). RoI Pool's indices are checked as they are used: one that is neither -1 nor
// inside its bin's window is not added, and the first such one in memory order (the minimum over
// the tasks, which see disjoint indices) is returned, else -1; the caller then raises.
template <typename T>
int64_t pool_backward(const RoiPlan& P, const T* dy, const int64_t* idx, T* dx) {
  const Dims d(P);
  const int64_t chunks = chunks_of(d.Co, kBwdChunk), group = d.ps ? d.PH * d.PW : 1, tasks = d.N * chunks;
  std::vector<int64_t> bad(static_cast<size_t>(tasks), std::numeric_limits<int64_t>::max());
  parallel_for(tasks, [&](int64_t t) {
    const int64_t n = t / chunks, c0 = (t % chunks) * kBwdChunk, c1 = std::min(d.Co, c0 + kBwdChunk);
    d.zero(dx, n, c0 * group, c1 * group);
    Windows<T> w;
    for (int64_t j = P.image_start[n]; j < P.image_start[n + 1]; ++j) {
      const int64_t k = P.order[j];
      w.build(P.regions[k], d);
      for (int64_t c = c0; c < c1; ++c)
        for (int64_t ph = 0; ph < d.PH; ++ph)
          for (int64_t pw = 0; pw < d.PW; ++pw) {
            T* base = dx + d.plane(n, d.cin(c, ph, pw));
            const int64_t o = d.out(k, c, ph, pw);
            const int64_t hs = w.hs[ph], he = w.he[ph], ws = w.ws[pw], we = w.we[pw];
            if (!d.ps) {
              const int64_t a = idx[o];
              if (a == -1) continue;
              const int64_t h = a >= 0 ? a / d.W : -1, q = a >= 0 ? a % d.W : -1;
              if (a < 0 || a >= d.HW || h < hs || h >= he || q < ws || q >= we) {
                bad[t] = std::min(bad[t], o);
                continue;
              }
              base[a * d.stride] += dy[o];
              continue;
            }
            if (he <= hs || we <= ws) continue;
            const T diff = dy[o] / static_cast<T>((he - hs) * (we - ws));
            for (int64_t h = hs; h < he; ++h)
              for (int64_t q = h * d.W + ws; q < h * d.W + we; ++q) base[q * d.stride] += diff;
          }
    }
  });
  const int64_t m = *std::min_element(bad.begin(), bad.end());
  return m == std::numeric_limits<int64_t>::max() ? -1 : m;
}

void forward_impl(const RoiPlan& P, const Tensor& x, Tensor& y, Tensor* idx) {
  if (y.numel() == 0) return;
  dispatch_float(x.dtype, "roi", [&](auto tag) {
    using T = decltype(tag);
    Tensor xt;
    if (transpose_pays(P)) {
      xt = empty({P.N, P.H, P.W, P.C}, x.dtype, x.device);
      to_channels_last(x.ptr<T>(), xt.ptr<T>(), P.N, P.C, P.H * P.W);
    }
    const T* xtp = xt.data ? xt.ptr<T>() : nullptr;
    if (P.p.kind == roigeom::Align || P.p.kind == roigeom::PsAlign) align_forward<T>(P, x.ptr<T>(), xtp, y.ptr<T>());
    else pool_forward<T>(P, x.ptr<T>(), xtp, y.ptr<T>(), idx ? idx->ptr<int64_t>() : nullptr);
  });
}

bool backward_impl(const RoiPlan& P, const Tensor& dy, const Tensor* idx, Tensor& dx, int64_t* bad) {
  if (dx.numel() == 0) return true;
  return dispatch_float(dy.dtype, "roi", [&](auto tag) {
    using T = decltype(tag);
    if (P.p.kind == roigeom::Align || P.p.kind == roigeom::PsAlign) {
      align_backward<T>(P, dy.ptr<T>(), dx.ptr<T>());
      return true;
    }
    const int64_t b = pool_backward<T>(P, dy.ptr<T>(), idx ? idx->ptr<int64_t>() : nullptr, dx.ptr<T>());
    if (b >= 0) *bad = b;
    return b < 0;
  });
}

}  // namespace
}  // namespace cpu
}  // namespace cnnops
