// conv2d weight gradient and forward through a channels-last copy of the input (AVX-512 level).
//
// Weight gradient. dW[k][c][r][s] = sum over images and output pixels j of dY[k][j] * Xpad[c][at(j) + tap(r, s)],
// where Xpad is the padded input and at(j) the padded position of pixel j's window corner. With
// the padded input copied once into channels-last order (Xt[n][hp][wp][c], channels padded with
// zeros to a whole number of vectors), the values that tap (r, s) multiplies at pixel j for
// channels c0 .. c0+NR-1 are NR consecutive floats at Xt + at(j) * Cp + tap(r, s) * Cp + c0: every
// tap is the same table of pixel offsets (at(j) * Cp) plus one constant. So each tap is a GEMM
//   dW_rs (K x C) = dY (K x pixels) * Xt_rs (pixels x C)
// whose B rows are read in place (ukernel_offsb: 14 output channels x 2 zmm vectors of input
// channels per tile, the A panel of dY packed once per call for all taps). The im2col path
// (conv.cpp) gathers R*S values per input value instead, one at a time through a tap table for
// small images: that gathering was 15-20% of ResNet-18's 3x3 weight gradients.
//
// Work split: tasks are (tap, 2-vector block of input channels, block of output-channel panels),
// each reducing over all pixels of all images in chunks of kGemmKC, a B row block (kc x 128 bytes)
// reused by each 14-row A panel of its output channels; every element of dW is summed by one task
// in a fixed order, so results do not depend on the thread count. The result goes to a
// [tap][K][Cp] buffer, transposed into dW at the end.
// Measured (benchmarks/results/resnet18_layers_cpu.md, 2 threads, AVX-512, FMA peak 235 GFLOP/s):
// the weight gradients of ResNet-18's 16x128x14x14 and 16x512x4x4 3x3 layers at 174 and 173
// GFLOP/s (74% of peak), the forward of its 28x28 -> 14x14 stride-2 layer at 160 (68%); the
// micro-kernels take about two thirds of the time (perf), the channels-last copy, the packing and
// the final transposes the rest.
// Padding follows the im2col contract (conv.cpp): the zero padding is part of Xt and multiplied,
// so a non-finite value next to the border reaches the result as through the packed GEMM (in
// both directions).
#include <algorithm>
#include <vector>

#include "core/cpu_features.h"
#include "core/parallel.h"
#include "core/tensor.h"
#include "ops/cpu/conv.h"
#include "ops/cpu/gemm.h"

namespace cnnops {
namespace cpu {

// The padded input of group gi in channels-last order: xt[n][hp][wp][c] for hp < pt + H + pb,
// wp < pl + W + pr, c < Cp (channels from Cg on, and padding in zeros mode, are zero; the other
// modes take their mirrored / clamped / wrapped values). One task per padded row of an image.
template <typename T>
static void channels_last_copy(const T* x, const T* const* xplanes, const Conv2dGeom& g, int64_t gi, int64_t Cp,
                               T* xt) {
  const int64_t Hp = g.pt + g.H + g.pb, Wp = g.pl + g.W + g.pr;
  parallel_for(g.N * Hp, [&](int64_t t) {
    const int64_t n = t / Hp, hp = t % Hp, ih = pad_index(hp - g.pt, g.H, g.mode);
    T* row = xt + t * Wp * Cp;
    if (ih < 0) {
      std::fill(row, row + Wp * Cp, T(0));
      return;
    }
    const T* const* planes = xplanes ? xplanes + n * g.C + gi * g.Cg : nullptr;
    const T* xc = x ? x + (n * g.C + gi * g.Cg) * g.H * g.W : nullptr;
    for (int64_t wp = 0; wp < Wp; ++wp) {
      const int64_t iw = pad_index(wp - g.pl, g.W, g.mode);
      T* o = row + wp * Cp;
      if (iw < 0) {
        std::fill(o, o + Cp, T(0));
        continue;
      }
      const int64_t at = ih * g.W + iw;
      if (planes)
        for (int64_t c = 0; c < g.Cg; ++c) o[c] = planes[c][at];
      else
        for (int64_t c = 0; c < g.Cg; ++c) o[c] = xc[c * g.H * g.W + at];
      std::fill(o + g.Cg, o + Cp, T(0));
    }
  });
}

// Whether the channels-last kernels apply: the AVX-512 level, pixels to compute, input channels
// per group filling the NR-wide vectors to within 1/8 (a 3-channel stem would compute 32), and
// the workspaces (`bytes`) within kMaxBytes. The layers beyond it have large images, where the
// im2col path's rows are long runs and it is as fast (VGG's 8x64x224x224 layer: 1.01x).
static bool channels_last_applies(const Conv2dGeom& g, int64_t Cp, int64_t bytes) {
  constexpr int64_t kMaxBytes = int64_t(64) << 20;
  return use_avx512() && g.N * g.P * g.Q > 0 && Cp * 7 <= g.Cg * 8 && bytes <= kMaxBytes;
}

template <typename T>
bool conv2d_backward_weight_nhwc(const T* dy, const T* x, T* dw, const Conv2dGeom& g) {
#ifndef CNNOPS_HAVE_AVX512_TU
  (void)dy, (void)x, (void)dw, (void)g;
  return false;
#else
  constexpr int64_t MR = 14, NR = 128 / sizeof(T), KC = kGemmKC;
  const int64_t RS = g.R * g.S, PQ = g.P * g.Q, NPQ = g.N * PQ;
  const int64_t Hp = g.pt + g.H + g.pb, Wp = g.pl + g.W + g.pr;
  const int64_t Cp = (g.Cg + NR - 1) / NR * NR, Kp = (g.Kg + MR - 1) / MR * MR;
  if (!channels_last_applies(g, Cp, (g.N * Hp * Wp * Cp + Kp * NPQ) * int64_t(sizeof(T)))) return false;
  const UKernelOffsB<T> uk = ukernel_offsb_avx512<T>();
  const DType dt = sizeof(T) == 4 ? DType::Float32 : DType::Float64;
  const int64_t ncp = Cp / NR, nkp = Kp / MR, nkc = (NPQ + KC - 1) / KC;
  const int64_t threads = num_threads();
  // output-channel panels per task: split only when (tap, channel block) tasks are too few
  int64_t nkb = 1;
  while (RS * ncp * nkb < 4 * threads && nkp >= 2 * nkb) nkb *= 2;
  const int64_t kpb = (nkp + nkb - 1) / nkb;

  Tensor xt_buf = empty({g.N * Hp * Wp * Cp}, dt, Device{});
  Tensor ap_buf = empty({Kp * NPQ}, dt, Device{});
  Tensor res_buf = empty({RS * Kp * Cp}, dt, Device{});
  T *xt = xt_buf.ptr<T>(), *ap = ap_buf.ptr<T>(), *res = res_buf.ptr<T>();
  std::vector<int64_t> at(static_cast<size_t>(NPQ));
  for (int64_t j = 0; j < NPQ; ++j) {
    const int64_t n = j / PQ, p = (j % PQ) / g.Q, q = j % g.Q;
    at[j] = ((n * Hp + p * g.sh) * Wp + q * g.sw) * Cp;
  }
  std::vector<int64_t> tap(static_cast<size_t>(RS));
  for (int64_t r = 0; r < g.R; ++r)
    for (int64_t s = 0; s < g.S; ++s) tap[r * g.S + s] = (r * g.dh * Wp + s * g.dw) * Cp;

  for (int64_t gi = 0; gi < g.G; ++gi) {
    channels_last_copy<T>(x, nullptr, g, gi, Cp, xt);
    // A: dY as 14-row panels, chunk k0 of pixels at ap + k0 * Kp (pack_a_full's layout); rows past
    // Kg are zero
    parallel_for(nkc * nkp, [&](int64_t t) {
      const int64_t k0 = (t / nkp) * KC, i0 = (t % nkp) * MR, kc = std::min(KC, NPQ - k0);
      T* o = ap + k0 * Kp + i0 * kc;
      const int64_t m = std::min(MR, g.Kg - i0);
      int64_t n = k0 / PQ, pq = k0 % PQ;  // pixel k0 + jj's image and position, stepped along
      for (int64_t jj = 0; jj < kc; ++jj) {
        const T* d = dy + (n * g.K + gi * g.Kg + i0) * PQ + pq;
        for (int64_t i = 0; i < m; ++i) o[jj * MR + i] = d[i * PQ];
        for (int64_t i = m; i < MR; ++i) o[jj * MR + i] = T(0);
        if (++pq == PQ) pq = 0, ++n;
      }
    });
    parallel_for(RS * ncp * nkb, [&](int64_t t) {
      const int64_t kb = t % nkb, cb = (t / nkb) % ncp, rs = t / nkb / ncp;
      const int64_t p0 = kb * kpb, p1 = std::min(nkp, p0 + kpb);
      const T* base = xt + tap[rs] + cb * NR;
      for (int64_t k0 = 0; k0 < NPQ; k0 += KC) {
        const int64_t kc = std::min(KC, NPQ - k0);
        for (int64_t pnl = p0; pnl < p1; ++pnl)
          uk(kc, ap + k0 * Kp + pnl * MR * kc, base, at.data() + k0, res + (rs * Kp + pnl * MR) * Cp + cb * NR, Cp,
             k0 > 0);
      }
    });
    // dW[k][c][rs] = res[rs][k][c]: reads along c, writes within the k row of dW (in L1)
    parallel_for(g.Kg, [&](int64_t k) {
      T* o = dw + (gi * g.Kg + k) * g.Cg * RS;
      for (int64_t rs = 0; rs < RS; ++rs) {
        const T* src = res + (rs * Kp + k) * Cp;
        for (int64_t c = 0; c < g.Cg; ++c) o[c * RS + rs] = src[c];
      }
    });
  }
  return true;
#endif
}

// Forward: Y^T (pixels x K) = sum over taps of Xt_rs (pixels x C) x W_rs^T (C x K), as tiles of
// 14 pixels x 2 vectors of output channels: each pixel's values broadcast from its own place in
// the channels-last copy (ukernel_ptra: row i at P[i] + offs[kk], kk = (tap, channel), offs the
// tap's constant plus the channel), the weights packed once per call as NR-channel panels. No
// im2col: strided layers read the copy at their stride, small images need no tap table. A task
// owns a block of pixels (up to 8 tiles, crossing rows and images) and a block of up to 128
// output channels (the block's packed weights, ~0.6 MB for 512 input channels, stay in L2 across
// its tiles); its sums go to a pixel-major buffer and are stored into the NCHW output with the
// bias.
template <typename T>
bool conv2d_forward_nhwc(const T* x, const T* w, const T* b, T* y, const Conv2dGeom& g, const T* const* xplanes) {
#ifndef CNNOPS_HAVE_AVX512_TU
  (void)x, (void)w, (void)b, (void)y, (void)g, (void)xplanes;
  return false;
#else
  constexpr int64_t MR = 14, NR = 128 / sizeof(T), KC = kGemmKC, TB = 8;
  const int64_t RS = g.R * g.S, PQ = g.P * g.Q, NPQ = g.N * PQ, CRS = g.Cg * RS;
  const int64_t Hp = g.pt + g.H + g.pb, Wp = g.pl + g.W + g.pr;
  const int64_t Cp = (g.Cg + NR - 1) / NR * NR, Kp = (g.Kg + NR - 1) / NR * NR;
  // Where it wins over the im2col path (same process, A/B, 2 threads): images of fewer than 256
  // output pixels, which that path gathers through a tap table (ResNet-18's 28x28 -> 14x14 and
  // 14x14 -> 7x7 stride-2 layers at batch 16: 1.03-1.14x), with at least 512 pixels in all: the
  // weights are transposed and packed per call, which fewer pixels do not repay (7x7 -> 4x4 with
  // 512 filters at batch 16, 256 pixels: 0.84x). Larger images (ResNet-50's 56x56 -> 28x28:
  // 0.96-1.00x) and 1x1 kernels (their im2col rows are the input itself) keep im2col.
  if (RS == 1 || PQ >= 256 || NPQ < 512 ||
      !channels_last_applies(g, Cp, (g.N * Hp * Wp * Cp + Kp * CRS) * int64_t(sizeof(T))))
    return false;
  const UKernelPtrA<T> uk = ukernel_ptra_avx512<T>();
  const DType dt = sizeof(T) == 4 ? DType::Float32 : DType::Float64;
  const int64_t nkp = Kp / NR, ntiles = (NPQ + MR - 1) / MR, threads = num_threads();
  const int64_t kpb = std::min<int64_t>(nkp, 128 / NR), nkb = (nkp + kpb - 1) / kpb;
  int64_t tb = TB;
  while (tb > 1 && ((ntiles + tb - 1) / tb) * nkb < 4 * threads) tb /= 2;
  const int64_t npb = (ntiles + tb - 1) / tb;

  Tensor xt_buf = empty({g.N * Hp * Wp * Cp}, dt, Device{});
  Tensor bp_buf = empty({Kp * CRS}, dt, Device{});
  T *xt = xt_buf.ptr<T>(), *bp = bp_buf.ptr<T>();
  // reduction step kk = tap * Cg + c: a tile's reads for a chunk are runs of consecutive channels
  // of one tap (in the weights' channel-major order they spread over all taps, and a chunk's
  // reads of 14 pixels no longer fit L1 beside the weight panel: ResNet-18's 7x7 -> 4x4 layer
  // 1.17x slower, though its weights then pack in one pass)
  std::vector<int64_t> offs(static_cast<size_t>(CRS));
  for (int64_t rs = 0; rs < RS; ++rs)
    for (int64_t c = 0; c < g.Cg; ++c) offs[rs * g.Cg + c] = ((rs / g.S) * g.dh * Wp + (rs % g.S) * g.dw) * Cp + c;
  const int64_t nkc = (CRS + KC - 1) / KC;
  Tensor wt_buf = empty({g.Kg * CRS}, dt, Device{});
  T* wt = wt_buf.ptr<T>();

  for (int64_t gi = 0; gi < g.G; ++gi) {
    channels_last_copy(x, xplanes, g, gi, Cp, xt);
    // weights: each filter to tap-major order (wt[k][tap][c], a transpose inside the filter), then
    // chunk k0 of the reduction at bp + k0 * Kp as NR-filter panels of kc rows (pack_a). Packing
    // straight from w read every cache line of the weights once per tap (ResNet-18's 512-filter
    // 3x3/2 layer: a quarter of its time).
    parallel_for(g.Kg, [&](int64_t k) {
      const T* src = w + (gi * g.Kg + k) * CRS;
      T* o = wt + k * CRS;
      for (int64_t c = 0; c < g.Cg; ++c)
        for (int64_t rs = 0; rs < RS; ++rs) o[rs * g.Cg + c] = src[c * RS + rs];
    });
    parallel_for(nkc, [&](int64_t t) {
      const int64_t k0 = t * KC;
      pack_a(static_cast<int>(NR), wt + k0, CRS, 1, g.Kg, std::min(KC, CRS - k0), bp + k0 * Kp);
    });
    parallel_for(npb * nkb, [&](int64_t t) {
      const int64_t pb = t % npb, kb = t / npb;
      const int64_t t0 = pb * tb, t1 = std::min(ntiles, t0 + tb), j0 = t0 * MR, j1 = std::min(NPQ, t1 * MR);
      const int64_t q0 = kb * kpb, q1 = std::min(nkp, q0 + kpb), ldc = (q1 - q0) * NR;
      T* cbuf = static_cast<T*>(thread_scratch(0, sizeof(T) * tb * MR * ldc));
      const T** ptr = static_cast<const T**>(thread_scratch(1, sizeof(T*) * tb * MR));
      for (int64_t j = j0; j < j0 + (t1 - t0) * MR; ++j) {
        const int64_t jj = std::min(j, j1 - 1);  // a last tile's spare rows repeat its last pixel
        const int64_t n = jj / PQ, p = (jj % PQ) / g.Q, q = jj % g.Q;
        ptr[j - j0] = xt + ((n * Hp + p * g.sh) * Wp + q * g.sw) * Cp;
      }
      for (int64_t k0 = 0; k0 < CRS; k0 += KC) {
        const int64_t kc = std::min(KC, CRS - k0);
        for (int64_t q = q0; q < q1; ++q)
          for (int64_t ti = t0; ti < t1; ++ti)
            uk(kc, ptr + (ti - t0) * MR, offs.data() + k0, bp + k0 * Kp + q * NR * kc,
               cbuf + (ti - t0) * MR * ldc + (q - q0) * NR, ldc, k0 > 0);
      }
      const int64_t k_hi = std::min(g.Kg, q1 * NR);
      for (int64_t k = q0 * NR; k < k_hi; ++k) {
        const T bv = b ? b[gi * g.Kg + k] : T(0);
        const T* src = cbuf + (k - q0 * NR);
        for (int64_t j = j0; j < j1;) {
          const int64_t n = j / PQ, pq = j % PQ, len = std::min(j1 - j, PQ - pq);
          T* dst = y + out_plane(g, n, gi * g.Kg + k) + pq;
          for (int64_t i = 0; i < len; ++i) dst[i] = src[(j - j0 + i) * ldc] + bv;
          j += len;
        }
      }
    });
  }
  return true;
#endif
}

template bool conv2d_forward_nhwc<float>(const float*, const float*, const float*, float*, const Conv2dGeom&,
                                         const float* const*);
template bool conv2d_forward_nhwc<double>(const double*, const double*, const double*, double*, const Conv2dGeom&,
                                          const double* const*);
template bool conv2d_backward_weight_nhwc<float>(const float*, const float*, float*, const Conv2dGeom&);
template bool conv2d_backward_weight_nhwc<double>(const double*, const double*, double*, const Conv2dGeom&);

}  // namespace cpu
}  // namespace cnnops
