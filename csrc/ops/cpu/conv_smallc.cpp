// Small-channel convolution (C/groups <= 4, e.g. LeNet's and AlexNet-style first layers), stride 1
// along the width.
//
// With few input channels the reduction C*R*S is short (25 for a 5x5 kernel on one channel), so
// packing im2col panels would cost as much as the arithmetic. Instead a task (image, group, block
// of output rows) copies the input rows it needs, with the padding applied (zeros or the mode's
// mirrored/clamped/wrapped values), into a small per-thread slab (C_g x rows x padded width, a few
// KB to ~100 KB, in L1/L2). Every tap (c, r, s) is then a fixed offset into the slab, and the
// offset micro-kernel (gemm.h) reads NR consecutive outputs' inputs for that tap in place: 6 output
// channels x NR pixels accumulate in registers over all C*R*S taps and are stored once. The slab
// is padded on the right so the last, partial strip of a row reads defined (zero) memory; only its
// valid columns are stored.
#include <algorithm>
#include <cstring>

#include "core/parallel.h"
#include "ops/cpu/conv.h"
#include "ops/cpu/gemm.h"

namespace cnnops {
namespace cpu {

template <typename T>
void conv2d_forward_smallc(const T* x, const T* w, const T* b, T* y, const Conv2dGeom& g) {
  constexpr int MR = Tile<T>::MR, NR = Tile<T>::NR;
  const int64_t RS = g.R * g.S, CRS = g.Cg * RS, PQ = g.P * g.Q;
  const int64_t Mp = (g.Kg + MR - 1) / MR * MR;
  const int64_t Qr = (g.Q + NR - 1) / NR * NR;
  const int64_t Ws = std::max(Qr + (g.S - 1) * g.dw, g.pl + g.W + g.pr);

  std::vector<T> wpack(static_cast<size_t>(g.G * Mp * CRS));
  for (int64_t gi = 0; gi < g.G; ++gi) pack_a(w + gi * g.Kg * CRS, CRS, 1, g.Kg, CRS, wpack.data() + gi * Mp * CRS);

  // Output rows per task: enough tasks for the threads, slab within ~128 KB.
  const int64_t threads = num_threads();
  int64_t rb = std::max<int64_t>(1, g.N * g.G * g.P / (8 * threads));
  auto slab_rows = [&](int64_t rows) { return (rows - 1) * g.sh + (g.R - 1) * g.dh + 1; };
  while (rb > 1 && static_cast<int64_t>(sizeof(T)) * g.Cg * slab_rows(rb) * Ws > 128 * 1024) rb = (rb + 1) / 2;
  rb = std::min(rb, g.P);
  const int64_t nrb = (g.P + rb - 1) / rb;
  const UKernelOffs<T> uk = ukernel_offs<T>();

  parallel_for(g.N * g.G * nrb, [&](int64_t t) {
    const int64_t q = t % nrb, gi = (t / nrb) % g.G, n = t / nrb / g.G;
    const int64_t oh0 = q * rb, oh1 = std::min(g.P, oh0 + rb);
    const int64_t rows = slab_rows(oh1 - oh0);
    const T* xg = x + (n * g.C + gi * g.Cg) * g.H * g.W;
    T* slab = static_cast<T*>(thread_scratch(0, sizeof(T) * (g.Cg * rows * Ws + NR)));
    int64_t* offs = static_cast<int64_t*>(thread_scratch(1, sizeof(int64_t) * CRS));
    // Fill the slab: padded row ri holds input row (oh0*sh - pt + ri), columns shifted by pl.
    for (int64_t c = 0; c < g.Cg; ++c) {
      for (int64_t ri = 0; ri < rows; ++ri) {
        T* dst = slab + (c * rows + ri) * Ws;
        const int64_t ih = pad_index(oh0 * g.sh - g.pt + ri, g.H, g.mode);
        if (ih < 0) {
          std::fill(dst, dst + Ws, T(0));
          continue;
        }
        const T* src = xg + (c * g.H + ih) * g.W;
        for (int64_t cp = 0; cp < g.pl; ++cp) {
          const int64_t iw = pad_index(cp - g.pl, g.W, g.mode);
          dst[cp] = iw < 0 ? T(0) : src[iw];
        }
        std::memcpy(dst + g.pl, src, sizeof(T) * g.W);
        for (int64_t cp = g.pl + g.W; cp < g.pl + g.W + g.pr; ++cp) {
          const int64_t iw = pad_index(cp - g.pl, g.W, g.mode);
          dst[cp] = iw < 0 ? T(0) : src[iw];
        }
        std::fill(dst + g.pl + g.W + g.pr, dst + Ws, T(0));
      }
    }
    for (int64_t c = 0, k = 0; c < g.Cg; ++c)
      for (int64_t r = 0; r < g.R; ++r)
        for (int64_t s = 0; s < g.S; ++s) offs[k++] = (c * rows + r * g.dh) * Ws + s * g.dw;

    const T* wp = wpack.data() + gi * Mp * CRS;
    T* yg = y + (n * g.K + gi * g.Kg) * PQ;
    alignas(64) T tmp[MR * NR];
    // MR output channels at a time over the whole row block: their weight panel (MR x CRS)
    // stays in L1 while the slab streams from L1/L2.
    for (int64_t i = 0; i < g.Kg; i += MR) {
      const int mr = static_cast<int>(std::min<int64_t>(MR, g.Kg - i));
      const T* ap = wp + i * CRS;
      for (int64_t oh = oh0; oh < oh1; ++oh) {
        const T* base_row = slab + (oh - oh0) * g.sh * Ws;
        for (int64_t ow0 = 0; ow0 < g.Q; ow0 += NR) {
          const int nr = static_cast<int>(std::min<int64_t>(NR, g.Q - ow0));
          T* c = yg + i * PQ + oh * g.Q + ow0;
          if (mr == MR && nr == NR) {
            uk(CRS, ap, base_row + ow0, offs, c, PQ, false);
          } else {
            uk(CRS, ap, base_row + ow0, offs, tmp, NR, false);
            for (int a = 0; a < mr; ++a) std::memcpy(c + a * PQ, tmp + a * NR, sizeof(T) * nr);
          }
        }
      }
    }
    if (b)
      for (int64_t k = 0; k < g.Kg; ++k) {
        const T bv = b[gi * g.Kg + k];
        for (int64_t oh = oh0; oh < oh1; ++oh) {
          T* yr = yg + k * PQ + oh * g.Q;
          for (int64_t j = 0; j < g.Q; ++j) yr[j] += bv;
        }
      }
  });
}

template void conv2d_forward_smallc<float>(const float*, const float*, const float*, float*, const Conv2dGeom&);
template void conv2d_forward_smallc<double>(const double*, const double*, const double*, double*, const Conv2dGeom&);

}  // namespace cpu
}  // namespace cnnops
