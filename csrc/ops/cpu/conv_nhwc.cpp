// conv2d weight gradient through a channels-last copy of the input (AVX-512 level).
//
// dW[k][c][r][s] = sum over images and output pixels j of dY[k][j] * Xpad[c][at(j) + tap(r, s)],
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
// Padding follows the im2col contract (conv.cpp): the zero padding is part of Xt and multiplied,
// so a non-finite dY next to the border reaches dW as through the packed GEMM.
#include <algorithm>
#include <vector>

#include "core/cpu_features.h"
#include "core/parallel.h"
#include "core/tensor.h"
#include "ops/cpu/conv.h"
#include "ops/cpu/gemm.h"

namespace cnnops {
namespace cpu {

template <typename T>
bool conv2d_backward_weight_nhwc(const T* dy, const T* x, T* dw, const Conv2dGeom& g) {
#ifndef CNNOPS_HAVE_AVX512_TU
  (void)dy, (void)x, (void)dw, (void)g;
  return false;
#else
  constexpr int64_t MR = 14, NR = 128 / sizeof(T), KC = kGemmKC;
  const int64_t RS = g.R * g.S, PQ = g.P * g.Q, NPQ = g.N * PQ, HW = g.H * g.W;
  const int64_t Hp = g.pt + g.H + g.pb, Wp = g.pl + g.W + g.pr;
  const int64_t Cp = (g.Cg + NR - 1) / NR * NR, Kp = (g.Kg + MR - 1) / MR * MR;
  // Where it applies: the AVX-512 level, input channels per group filling the vectors (at most
  // 1/8 padding: a 3-channel stem would compute 32), and workspaces within kMaxBytes (the
  // channels-last copy and the packed dY; the layers that exceed it have large images, where
  // the im2col path's rows are long runs and it is as fast: VGG's 8x64x224x224 layer 1.01x).
  constexpr int64_t kMaxBytes = int64_t(64) << 20;
  if (!use_avx512() || NPQ == 0 || Cp * 7 > g.Cg * 8 ||
      (g.N * Hp * Wp * Cp + Kp * NPQ) * int64_t(sizeof(T)) > kMaxBytes)
    return false;
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
    // Xt: one task per padded row of an image; reads each input row once per channel
    parallel_for(g.N * Hp, [&](int64_t t) {
      const int64_t n = t / Hp, hp = t % Hp, ih = pad_index(hp - g.pt, g.H, g.mode);
      T* row = xt + t * Wp * Cp;
      if (ih < 0) {
        std::fill(row, row + Wp * Cp, T(0));
        return;
      }
      const T* xc = x + (n * g.C + gi * g.Cg) * HW + ih * g.W;
      for (int64_t wp = 0; wp < Wp; ++wp) {
        const int64_t iw = pad_index(wp - g.pl, g.W, g.mode);
        T* o = row + wp * Cp;
        if (iw < 0) {
          std::fill(o, o + Cp, T(0));
          continue;
        }
        for (int64_t c = 0; c < g.Cg; ++c) o[c] = xc[c * HW + iw];
        std::fill(o + g.Cg, o + Cp, T(0));
      }
    });
    // A: dY as 14-row panels, chunk k0 of pixels at ap + k0 * Kp (pack_a_full's layout); rows past
    // Kg are zero
    parallel_for(nkc * nkp, [&](int64_t t) {
      const int64_t k0 = (t / nkp) * KC, i0 = (t % nkp) * MR, kc = std::min(KC, NPQ - k0);
      T* o = ap + k0 * Kp + i0 * kc;
      const int64_t m = std::min(MR, g.Kg - i0);
      for (int64_t jj = 0; jj < kc; ++jj) {
        const int64_t j = k0 + jj, n = j / PQ, pq = j % PQ;
        const T* d = dy + (n * g.K + gi * g.Kg + i0) * PQ + pq;
        for (int64_t i = 0; i < m; ++i) o[jj * MR + i] = d[i * PQ];
        for (int64_t i = m; i < MR; ++i) o[jj * MR + i] = T(0);
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

template bool conv2d_backward_weight_nhwc<float>(const float*, const float*, float*, const Conv2dGeom&);
template bool conv2d_backward_weight_nhwc<double>(const double*, const double*, double*, const Conv2dGeom&);

}  // namespace cpu
}  // namespace cnnops
