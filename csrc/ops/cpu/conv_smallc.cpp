// Slab convolution ("smallc"): implicit GEMM without packing, for few input channels (LeNet's and
// AlexNet's first layers) and for layers with few output channels per group.
//
// A task (image, group, block of output rows) copies the input rows it needs, padded and split
// into stride phases (fill_padded_rows in conv.cpp), into a per-thread slab of C_g x rows x Ws
// values (kept under ~256 KB so it stays in L2). Every tap (c, r, s) is then a fixed offset into
// the slab, and for any stride the NR values one tap sees at NR consecutive output columns are
// consecutive there, so the offset micro-kernel (gemm.h) reads B in place: 6 output channels x NR
// columns accumulate in registers over all C*R*S taps and are stored once; nothing is packed.
// Two orientations share the slab. With K/groups >= NR and C*R*S >= 64 the broadcast kernel
// vectorises over output channels instead (unless rounding K/groups up to NR channels wastes
// more lanes than rounding it to MR rows and the row to NR pixels: 21 channels pad to 24 in the
// pixel orientation on 64-wide rows, to 32 in this one, so FCN's 4x4/2 input gradient stays in
// the pixel orientation): a tile is any 6 output pixels (taken in order across rows, so 14-wide
// rows waste nothing) x NR channels, the 6 pixels' inputs broadcast from the slab at each tap
// offset and the weights read as packed NR-channel panels (sequential, from L2); the 6 x NR
// result is stored transposed into the NCHW output. LeNet/MNIST conv1 (25 taps) use the pixel
// orientation. Besides the micro-kernel, a layer's time goes to the tile's transposed stores and
// the tap offsets, so a full tile's six pixels are stored without the index table and the
// offsets are computed once per call; with float32 and AVX2 a full tile is transposed in
// registers and stored by the kernel (a 16-byte and an 8-byte store per channel instead of 6
// scalar loads, adds and stores).
// Pixel orientation loop order: strip of NR output columns outermost, then every MR-row weight
// panel, so the strip's slab window (C*R rows x (NR+S-1) values, a few KB) stays in L1 while the
// weights (Kg x CRS) stream from L2 in order. The last strip of a row reads zero padding past the row; only its valid
// columns are stored. Packing im2col panels would cost as much as the arithmetic when C*R*S or
// K/groups is small; here the only copy is the slab (about (rows + R - 1) / rows x the input).
// LeNet conv1 (25 taps per output) is bound by call overhead and the 16-wide strips on its
// 28-wide rows; MNIST conv1, with padding, takes the flat-row path below.
// Forward: AlexNet conv1 81% of the FMA peak, LeNet conv1 39% (benchmarks/results/conv_cpu.md).
#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "core/parallel.h"
#include "ops/cpu/conv.h"
#include "ops/cpu/gemm.h"

namespace cnnops {
namespace cpu {

// Halves a block of `rb` output rows until its slab (C_g x slab rows x Ws values of `elem` bytes)
// fits in `limit` bytes (by default 256 KB, half the benchmark CPU's 512 KB L2), then caps it at
// P. A limit this large means fewer blocks, each input row copied fewer times: that matters for
// the slab weight gradients and for the 3-D forwards (whose blocks would otherwise hold a single
// output row); 2-D forwards are insensitive to it.
static int64_t fit_slab(const Conv2dGeom& g, int64_t rb, int64_t Ws, int64_t elem, int64_t limit = 256 * 1024) {
  while (rb > 1 && elem * g.Cg * slab_rows(g, rb) * Ws > limit) rb = (rb + 1) / 2;
  return std::min(rb, g.P);
}

// Output rows per forward task before fit_slab: about 8 tasks per thread.
static int64_t forward_block_rows(const Conv2dGeom& g) {
  return std::max<int64_t>(1, g.N * g.G * g.P / (8 * num_threads()));
}

// The bias, each group's K/groups values followed by zeros up to `stride` (a panel multiple);
// empty without a bias.
template <typename T>
static std::vector<T> padded_bias(const T* b, const Conv2dGeom& g, int64_t stride) {
  std::vector<T> out;
  if (!b) return out;
  out.assign(static_cast<size_t>(g.G * stride), T(0));
  for (int64_t gi = 0; gi < g.G; ++gi) std::copy(b + gi * g.Kg, b + (gi + 1) * g.Kg, out.begin() + gi * stride);
  return out;
}

// Flat-row path (float32 with AVX2; stride 1; pixel orientation with at most 128 taps). The
// row-strip path computes NR-wide strips of each output row, so a 28-wide row costs two 16-wide
// strips (32 columns), and 32 output channels cost six 6-channel panels (36): on MNIST's first
// layer it runs 1.29x the arithmetic it needs. Here a block's slab rows are laid end to end and the
// output is computed over that flat sequence: flat position f = i * Ws + q is output (oh0 + i, q)
// when q < Q, and a padding lane (discarded) otherwise, so only Ws - Q lanes per row are wasted.
// With zero padding the slab row holds just the input row and max(pl, pr) zeros: a tap left of
// column 0 reads the previous row's trailing zeros (one zero run serves as both right and left
// padding), so MNIST's 28-wide rows with padding 2 take Ws = 30 (7% waste); other modes keep the
// padded row (W + pl + pr). Output channels go in panels of 4 (three vectors per tap) or 6 (two),
// whichever pads K/groups less. The kernel compacts each vector's valid lanes with one permutation
// and stores them at consecutive output positions (gemm.h, FlatStore); the plan of every vector is
// computed once per call. One kernel call runs all strips of a block for one channel panel (a call
// per strip and panel would cost 6% of the layer in call overhead).
// On MNIST conv1 (64x1x28x28, 32 5x5 filters, padding 2) a perf profile puts 81% of the time in
// the kernel, i.e. ~162 GFLOP/s executed (84% of the FMA peak) while it runs; the 7% padding
// lanes and the Python call (~30 us) are most of the rest. LeNet conv1 (no padding: Ws = W = 32
// for 28 outputs) costs the same either way, so the cost comparison below keeps the strips.
static bool forward_flat(const float* x, const float* w, const float* b, float* y, const Conv2dGeom& g,
                         const float* const* xplanes) {
  constexpr int NRs = Tile<float>::NR, MRs = Tile<float>::MR;
  const int64_t CRS = g.Cg * g.R * g.S;
  if (g.sh != 1 || g.sw != 1 || CRS > 128) return false;
  const bool zero_pad = g.mode == PadMode::Zeros;
  // Every output position of a row needs its own flat position (Q <= Ws): with pads wider than
  // the kernel's reach (min(pl, pr) > dw * (S - 1)) the row has more outputs than W + max(pl, pr),
  // and the zero run grows to match.
  const int64_t Ws = zero_pad ? std::max(g.W + std::max(g.pl, g.pr), g.Q) : g.pl + g.W + g.pr;
  const int64_t shift = zero_pad ? g.pl : 0;  // flat offset of padded column 0
  // Channel panel shape and the arithmetic (channels x positions computed) of both paths.
  const int64_t k4 = (g.Kg + 3) / 4 * 4, k6 = (g.Kg + 5) / 6 * 6;
  const int mrf = k4 <= k6 ? 4 : 6, nv = mrf == 4 ? 3 : 2, span = 8 * nv;
  const UKernelFlat uk = ukernel_flat_f32(mrf);
  if (!uk) return false;
  const int64_t rb = fit_slab(g, forward_block_rows(g), Ws, sizeof(float), 64 * 1024);
  const int64_t nrb = (g.P + rb - 1) / rb;
  const int64_t strip_cost = ((g.Kg + MRs - 1) / MRs * MRs) * g.P * ((g.Q + NRs - 1) / NRs * NRs);
  auto strips = [&](int64_t rows) { return (rows * Ws + span - 1) / span; };
  const int64_t flat_cost = (mrf == 4 ? k4 : k6) * span * ((nrb - 1) * strips(rb) + strips(g.P - (nrb - 1) * rb));
  if (flat_cost >= strip_cost) return false;

  // Weights as MRF-channel panels (tap-major inside a panel), the bias zero-padded to match.
  const int64_t Kpf = mrf == 4 ? k4 : k6;
  std::vector<float> wpack(static_cast<size_t>(g.G * Kpf * CRS), 0.f);
  for (int64_t gi = 0; gi < g.G; ++gi)
    for (int64_t k = 0; k < g.Kg; ++k)
      for (int64_t t = 0; t < CRS; ++t)
        wpack[gi * Kpf * CRS + (k / mrf) * CRS * mrf + t * mrf + k % mrf] = w[(gi * g.Kg + k) * CRS + t];
  const std::vector<float> bpad = padded_bias(b, g, Kpf);
  // Slab: channel c's rows at c * rows_full * Ws (every block uses the full block's layout), after
  // `lead` zeros (the first row's left padding) and followed by slack the last strip may read.
  const int64_t rows_full = slab_rows(g, rb), chs = rows_full * Ws;
  const int64_t lead = (shift + 15) / 16 * 16, slack = span + Ws + 16;
  std::vector<int64_t> offs(static_cast<size_t>(CRS));
  for (int64_t c = 0, t = 0; c < g.Cg; ++c)
    for (int64_t r = 0; r < g.R; ++r)
      for (int64_t s = 0; s < g.S; ++s) offs[t++] = c * chs + r * g.dh * Ws + s * g.dw - shift;
  // Store plans of a full block and of the last block (vector v covers flat positions 8v..8v+7).
  auto plan = [&](int64_t rows) {
    const int64_t nvec = strips(rows) * nv, end = rows * g.Q;
    std::vector<FlatStore> p(static_cast<size_t>(nvec));
    for (int64_t v = 0; v < nvec; ++v) {
      FlatStore& e = p[v];
      e.n = 0;
      e.dst = 0;
      for (int l = 0; l < 8; ++l) {
        const int64_t f = 8 * v + l, i = f / Ws, q = f % Ws;
        e.perm[l] = 0;
        if (i >= rows || q >= g.Q) continue;
        if (e.n == 0) e.dst = i * g.Q + q;
        e.perm[e.n++] = l;
      }
      e.mode = e.n == 0 ? 3 : e.n == 8 ? 0 : e.dst + 8 <= end ? 1 : 2;
    }
    return p;
  };
  const int64_t last_rows = g.P - (nrb - 1) * rb;
  const std::vector<FlatStore> plan_full = plan(rb), plan_last = plan(last_rows);
  Conv2dGeom gf = g;  // zero padding: the row alone, then its zeros
  if (zero_pad) {
    gf.pl = 0;
    gf.pr = Ws - g.W;
  }
  const int64_t ycs = out_cstride(g);

  parallel_for(g.N * g.G * nrb, [&](int64_t t) {
    const int64_t q = t % nrb, gi = (t / nrb) % g.G, n = t / nrb / g.G;
    const int64_t oh0 = q * rb, oh1 = std::min(g.P, oh0 + rb), rows = slab_rows(g, oh1 - oh0);
    float* buf = static_cast<float*>(thread_scratch(0, sizeof(float) * (lead + g.Cg * chs + slack)));
    float* slab = buf + lead;
    std::fill(buf, slab, 0.f);
    for (int64_t c = 0; c < g.Cg; ++c) {
      fill_padded_rows(in_plane(x, xplanes, g, n, gi * g.Cg + c), gf, oh0, rows, slab + c * chs, Ws);
      // a short last block: the next channel's first row reads this slot's tail as left padding
      if (rows < rows_full) std::fill(slab + (c + 1) * chs - Ws, slab + (c + 1) * chs, 0.f);
    }
    std::fill(slab + g.Cg * chs, slab + g.Cg * chs + slack, 0.f);
    const FlatStore* pl = (oh1 - oh0 == rb ? plan_full : plan_last).data();
    const int64_t ns = strips(oh1 - oh0);
    float* yb = y + out_plane(g, n, gi * g.Kg) + oh0 * g.Q;
    const float* wp = wpack.data() + gi * Kpf * CRS;
    const float* bg = bpad.empty() ? nullptr : bpad.data() + gi * Kpf;
    // One call per channel panel runs every strip of the block, in ascending order (as the
    // spilling stores need); the block's slab (at most 64 KB) stays in L1/L2 across the panels.
    for (int64_t k0 = 0; k0 < g.Kg; k0 += mrf)
      uk(ns, CRS, wp + k0 * CRS, slab, offs.data(), bg ? bg + k0 : nullptr, yb + k0 * ycs, ycs,
         static_cast<int>(std::min<int64_t>(mrf, g.Kg - k0)), pl);
  });
  return true;
}

// One forward of the slab kernel: its orientation, packed weights, padded bias, tap offsets and
// micro-kernels, shared by the tasks.
template <typename T>
struct SmallcForward {
  const Conv2dGeom& g;
  const T* b;
  T* y;
  int64_t CRS, Mp, Kp, Wph, Ws, ycs;
  bool by_channel, single_chunk;
  std::vector<T> wpack, bpad;
  UKernelOffs<T> uk;
  UKernelBcast<T> ukb;
  UKernelBcastStore ukbs;
};

// Channel orientation on one block of output rows [oh0, oh1) of group gi: tiles of MR pixels x NR
// output channels, the pixels broadcast from the slab.
template <typename T>
static void smallc_block_by_channel(const SmallcForward<T>& f, int64_t gi, int64_t oh0, int64_t oh1, const T* slab,
                                    const int64_t* offs, T* yg) {
  constexpr int MR = Tile<T>::MR, NR = Tile<T>::NR;
  const Conv2dGeom& g = f.g;
  alignas(64) T tmp[MR * NR];
  const T* wp = f.wpack.data() + gi * f.Kp * f.CRS;
  const int64_t npx = (oh1 - oh0) * g.Q;
  const T* P[MR];
  int64_t pidx[MR];
  // Weight panel outermost: one NR-channel panel (NR x C*R*S values) stays in L2 while every
  // tile of the block reads it. With the tile outermost, every tile would cycle through all
  // Kg/NR panels, which spills L2 on the 3-D layer c3d_28 (192 lowered channels x 27 taps:
  // 442 KB of weights beside a 235 KB slab); this order runs it 4-6% faster (2-D layers
  // within +-2%).
  const int64_t ntiles = (npx + MR - 1) / MR, npanels = f.Kp / NR;
  for (int64_t it = 0; it < ntiles * npanels; ++it) {
    const int64_t t0 = (it % ntiles) * MR, k0 = (it / ntiles) * NR;
    const int valid = static_cast<int>(std::min<int64_t>(MR, npx - t0));
    for (int j = 0; j < MR; ++j) {
      const int64_t px = t0 + std::min(j, valid - 1);  // the tail repeats its last pixel
      const int64_t oh = oh0 + px / g.Q, ow = px % g.Q;
      P[j] = slab + (oh - oh0) * g.sh * f.Ws + ow;
      pidx[j] = oh * g.Q + ow;
    }
    const int64_t kn = std::min<int64_t>(NR, g.Kg - k0);
    if constexpr (std::is_same_v<T, float>) {
      if (f.ukbs && valid == MR) {
        f.ukbs(f.CRS, P, offs, wp + k0 * f.CRS, f.bpad.empty() ? nullptr : f.bpad.data() + gi * f.Kp + k0,
               yg + k0 * f.ycs + pidx[0], f.ycs, static_cast<int>(kn));
        continue;
      }
    }
    f.ukb(f.CRS, P, offs, wp + k0 * f.CRS, tmp);
    const T* bk = f.b ? f.b + gi * g.Kg + k0 : nullptr;
    if (valid == MR) {
      // a full tile: six consecutive pixels of the output plane (pidx[j] = pidx[0] + j,
      // also across a row end), so fixed-length stores without the index table
      for (int64_t i = 0; i < kn; ++i) {
        T* yk = yg + (k0 + i) * f.ycs + pidx[0];
        const T bv = bk ? bk[i] : T(0);
        for (int j = 0; j < MR; ++j) yk[j] = tmp[j * NR + i] + bv;
      }
      continue;
    }
    for (int64_t i = 0; i < kn; ++i) {
      T* yk = yg + (k0 + i) * f.ycs;
      const T bv = bk ? bk[i] : T(0);
      for (int j = 0; j < valid; ++j) yk[pidx[j]] = tmp[j * NR + i] + bv;
    }
  }
}

// Pixel orientation on one block of output rows [oh0, oh1) of group gi: strips of NR pixels of
// one row x MR output channels, taps in chunks of KT.
template <typename T>
static void smallc_block_by_pixel(const SmallcForward<T>& f, int64_t gi, int64_t oh0, int64_t oh1, const T* slab,
                                  const int64_t* offs, T* yg) {
  constexpr int MR = Tile<T>::MR, NR = Tile<T>::NR;
  constexpr int64_t KT = 128;
  const Conv2dGeom& g = f.g;
  alignas(64) T tmp[MR * NR];
  const T* wp = f.wpack.data() + gi * f.Mp * f.CRS;
  const T* bg = f.bpad.empty() ? nullptr : f.bpad.data() + gi * f.Mp;
  for (int64_t oh = oh0; oh < oh1; ++oh) {
    const T* base_row = slab + (oh - oh0) * g.sh * f.Ws;
    for (int64_t s0 = 0; s0 < g.Q; s0 += NR) {
      // With a single tap chunk the last strip of a row is shifted left to end at Q and
      // overlaps its neighbour (recomputing a few identical values) so that every store is a
      // full-width register store.
      const int64_t ow0 = (f.single_chunk && s0 + NR > g.Q) ? g.Q - NR : s0;
      const int nr = static_cast<int>(std::min<int64_t>(NR, g.Q - ow0));
      // Taps in chunks of KT so the strip's slab window (KT x NR values) stays in L1 across
      // all weight panels; partial sums accumulate in the output tile.
      for (int64_t k0 = 0; k0 < f.CRS; k0 += KT) {
        const int64_t kt = std::min(KT, f.CRS - k0);
        for (int64_t i = 0; i < g.Kg; i += MR) {
          const int mr = static_cast<int>(std::min<int64_t>(MR, g.Kg - i));
          const T* ap = wp + i * f.CRS + k0 * MR;
          T* c = yg + i * f.ycs + oh * g.Q + ow0;
          const T* bi = (bg && k0 == 0) ? bg + i : nullptr;
          if (mr == MR && nr == NR) {
            f.uk(kt, ap, base_row + ow0, offs + k0, c, f.ycs, k0 > 0, bi);
          } else {
            f.uk(kt, ap, base_row + ow0, offs + k0, tmp, NR, false, bi);
            for (int a = 0; a < mr; ++a) {
              T* dst = c + a * f.ycs;
              const T* src = tmp + a * NR;
              if (k0 == 0)
                for (int j = 0; j < nr; ++j) dst[j] = src[j];
              else
                for (int j = 0; j < nr; ++j) dst[j] += src[j];
            }
          }
        }
      }
    }
  }
}

template <typename T>
void conv2d_forward_smallc(const T* x, const T* w, const T* b, T* y, const Conv2dGeom& g, const T* const* xplanes) {
  constexpr int MR = Tile<T>::MR, NR = Tile<T>::NR;
  SmallcForward<T> f{g, b, y};
  const int64_t RS = g.R * g.S, CRS = g.Cg * RS;
  f.CRS = CRS;
  f.Mp = (g.Kg + MR - 1) / MR * MR;
  f.Wph = padded_phase_width(g, (g.Q + NR - 1) / NR * NR);
  f.Ws = g.sw * f.Wph;
  f.ycs = out_cstride(g);

  // Orientation: with at least NR output channels and a long reduction, vectorise over output
  // channels (weights packed as NR-channel panels, 6 pixels broadcast from anywhere: no waste on
  // rows narrower than NR, no split loads) unless its channel padding wastes more than the pixel
  // orientation's channel and row padding; otherwise over NR pixels of one row (weights as
  // MR-channel panels).
  f.Kp = (g.Kg + NR - 1) / NR * NR;
  const int64_t Qp = (g.Q + NR - 1) / NR * NR;
  f.by_channel = g.Kg >= NR && CRS >= 64 && f.Kp * g.Q <= f.Mp * Qp;
  if constexpr (std::is_same_v<T, float>) {
    if (!f.by_channel && forward_flat(x, w, b, y, g, xplanes)) return;
  }
  f.wpack.resize(static_cast<size_t>(g.G * (f.by_channel ? f.Kp : f.Mp) * CRS));
  for (int64_t gi = 0; gi < g.G; ++gi) {
    if (f.by_channel) pack_b(NR, w + gi * g.Kg * CRS, 1, CRS, CRS, g.Kg, f.wpack.data() + gi * f.Kp * CRS);
    else pack_a(MR, w + gi * g.Kg * CRS, CRS, 1, g.Kg, CRS, f.wpack.data() + gi * f.Mp * CRS);
  }
  // Pixel orientation: the bias, zero-padded to MR-row panels, seeds the accumulators of the
  // first tap chunk (no separate pass over the output).
  // Channel orientation: zero-padded to NR-channel panels for the kernel that stores full tiles.
  f.bpad = padded_bias(b, g, f.by_channel ? f.Kp : f.Mp);
  // Float with AVX2: full channel-orientation tiles are transposed and stored by the kernel itself.
  f.ukbs = nullptr;
  if constexpr (std::is_same_v<T, float>) f.ukbs = ukernel_bcast_store_f32();
  f.uk = ukernel_offs<T>();
  f.ukb = ukernel_bcast<T>();
  f.single_chunk = CRS <= 128 && g.Q >= NR;

  // Output rows per task: enough tasks for the threads, slab within 256 KB.
  const int64_t rb = fit_slab(g, forward_block_rows(g), f.Ws, sizeof(T));
  const int64_t nrb = (g.P + rb - 1) / rb;

  // Slab offset of every tap, for the slab of a whole block of rb rows (offs_tab[0..CRS)) and of
  // the last, shorter block (offs_tab[CRS..2*CRS)): computed once, not per task (per task it
  // would be ~2% of a 3-D layer with 864 taps and one output row per task).
  const int64_t last_rows = g.P - (nrb - 1) * rb;
  std::vector<int64_t> offs_tab(static_cast<size_t>(2 * CRS));
  for (int v = 0; v < 2; ++v) {
    const int64_t rows = slab_rows(g, v == 0 ? rb : last_rows);
    for (int64_t c = 0, k = 0; c < g.Cg; ++c)
      for (int64_t r = 0; r < g.R; ++r)
        for (int64_t s = 0; s < g.S; ++s)
          offs_tab[v * CRS + k++] = (c * rows + r * g.dh) * f.Ws + tap_offset(g, s, f.Wph);
  }

  parallel_for(g.N * g.G * nrb, [&](int64_t t) {
    const int64_t q = t % nrb, gi = (t / nrb) % g.G, n = t / nrb / g.G;
    const int64_t oh0 = q * rb, oh1 = std::min(g.P, oh0 + rb);
    const int64_t rows = slab_rows(g, oh1 - oh0);
    T* slab = static_cast<T*>(thread_scratch(0, sizeof(T) * g.Cg * rows * f.Ws));
    const int64_t* offs = offs_tab.data() + (oh1 - oh0 == rb ? 0 : CRS);
    for (int64_t c = 0; c < g.Cg; ++c)
      fill_padded_rows(in_plane(x, xplanes, g, n, gi * g.Cg + c), g, oh0 * g.sh, rows, slab + c * rows * f.Ws, f.Wph);
    T* yg = y + out_plane(g, n, gi * g.Kg);
    if (f.by_channel) smallc_block_by_channel(f, gi, oh0, oh1, slab, offs, yg);
    else smallc_block_by_pixel(f, gi, oh0, oh1, slab, offs, yg);
  });
}

// grad_weight on the same slab: dW[k][c, r, s] = sum over images and output pixels p of
// dY[k][p] * (input value tap (c, r, s) sees from p). A task (group, chunk of (image, row block)
// units) keeps a (C*R*S) x K/groups accumulator (padded to MR x NR tiles); per block of output
// rows it fills the slab once, packs dY^T of the block's pixels into NR-channel panels (pack_b) and runs the
// broadcast micro-kernel with the roles of forward swapped: its 6 "pixels" are 6 taps (each a
// fixed slab offset), its reduction runs over the block's pixels (offset table), its panel is dY^T.
// No im2col: packing a 6-tap x pixels panel per tap block would cost as much as the arithmetic on
// layers with few channels (LeNet conv2, MNIST conv2, FCN's transposed 4x4/2). The chunks'
// partial sums reduce in a fixed order, their number set by the problem (weight_grad_chunks).
template <typename T>
void conv2d_backward_weight_smallc(const T* dy, const T* x, T* dw, const Conv2dGeom& g) {
  constexpr int MR = Tile<T>::MR, NR = Tile<T>::NR;
  const int64_t RS = g.R * g.S, CRS = g.Cg * RS, PQ = g.P * g.Q;
  const int64_t Kp = (g.Kg + NR - 1) / NR * NR, CRSp = (CRS + MR - 1) / MR * MR;
  const int64_t Wph = padded_phase_width(g, g.Q);
  const int64_t Ws = g.sw * Wph;
  const int64_t rb = fit_slab(g, g.P, Ws, sizeof(T));
  // Work units (image, block of rb output rows), split into chunks that each own a partial sum:
  // enough chunks for the threads even with one image (VGG's 224x224 layer at batch 1).
  const int64_t nrb = (g.P + rb - 1) / rb, units = g.N * nrb;
  const size_t wsize = static_cast<size_t>(g.K * CRS);
  const int64_t nic = weight_grad_chunks(units, g.G, static_cast<int64_t>(wsize * sizeof(T)));
  const int64_t per = (units + nic - 1) / nic;
  std::vector<T> partial(nic > 1 ? wsize * nic : 0);
  const UKernelBcast<T> ukb = ukernel_bcast<T>();

  parallel_for(g.G * nic, [&](int64_t t) {
    const int64_t ic = t % nic, gi = t / nic;
    T* acc = static_cast<T*>(thread_scratch(3, sizeof(T) * CRSp * Kp));
    std::fill(acc, acc + CRSp * Kp, T(0));
    T* slab = static_cast<T*>(thread_scratch(0, sizeof(T) * g.Cg * slab_rows(g, rb) * Ws));
    T* bpack = static_cast<T*>(thread_scratch(2, sizeof(T) * rb * g.Q * Kp));
    // Slab offset of each pixel of a block (the same for every block; a short last block uses a prefix).
    int64_t* offs = static_cast<int64_t*>(thread_scratch(1, sizeof(int64_t) * rb * g.Q));
    for (int64_t px = 0; px < rb * g.Q; ++px) offs[px] = (px / g.Q) * g.sh * Ws + px % g.Q;
    alignas(64) T tmp[MR * NR];
    for (int64_t u = ic * per; u < std::min(units, (ic + 1) * per); ++u) {
      const int64_t n = u / nrb, oh0 = (u % nrb) * rb;
      const T* xg = x + (n * g.C + gi * g.Cg) * g.H * g.W;
      const T* dyg = dy + (n * g.K + gi * g.Kg) * PQ;
      const int64_t oh1 = std::min(g.P, oh0 + rb), rows = slab_rows(g, oh1 - oh0), npx = (oh1 - oh0) * g.Q;
      for (int64_t c = 0; c < g.Cg; ++c)
        fill_padded_rows(xg + c * g.H * g.W, g, oh0 * g.sh, rows, slab + c * rows * Ws, Wph);
      pack_b(NR, dyg + oh0 * g.Q, 1, PQ, npx, g.Kg, bpack);  // B(p, k) = dY[k][oh0*Q + p]
      const T* P[MR];
      for (int64_t t0 = 0; t0 < CRS; t0 += MR) {
        for (int j = 0; j < MR; ++j) {
          const int64_t crs = std::min(t0 + j, CRS - 1);  // the tail repeats the last tap
          const int64_t c = crs / RS, r = (crs % RS) / g.S, s = crs % g.S;
          P[j] = slab + (c * rows + r * g.dh) * Ws + tap_offset(g, s, Wph);
        }
        for (int64_t k0 = 0; k0 < Kp; k0 += NR) {
          ukb(npx, P, offs, bpack + k0 * npx, tmp);
          T* a = acc + t0 * Kp + k0;
          for (int j = 0; j < MR; ++j)
            for (int i = 0; i < NR; ++i) a[j * Kp + i] += tmp[j * NR + i];
        }
      }
    }
    T* out = (nic > 1 ? partial.data() + ic * wsize : dw) + gi * g.Kg * CRS;
    for (int64_t k = 0; k < g.Kg; ++k)
      for (int64_t i = 0; i < CRS; ++i) out[k * CRS + i] = acc[i * Kp + k];
  });
  if (nic > 1) sum_partials(partial.data(), nic, dw, static_cast<int64_t>(wsize));
}

template void conv2d_forward_smallc<float>(const float*, const float*, const float*, float*, const Conv2dGeom&,
                                           const float* const*);
template void conv2d_forward_smallc<double>(const double*, const double*, const double*, double*, const Conv2dGeom&,
                                            const double* const*);
template void conv2d_backward_weight_smallc<float>(const float*, const float*, float*, const Conv2dGeom&);
template void conv2d_backward_weight_smallc<double>(const double*, const double*, double*, const Conv2dGeom&);

}  // namespace cpu
}  // namespace cnnops
