// Winograd convolution forward ("winograd"): F(2x2, 3x3) for 3x3 kernels and F(2x2, 5x5) for
// 5x5 kernels, stride 1, dilation 1, any padding (sizes and mode), groups, and the 3-D lowering's
// plane table (kernel depth folded into channels, conv.h). Each 2x2 output tile costs 16
// multiply-adds per (input, output) channel pair instead of 36 (3x3: 2.25x less arithmetic than
// any direct or GEMM method), or 36 instead of 100 (5x5: 2.8x less). Tile transforms in
// conv_winograd_tiles.h; below, the 3x3 case (A = 4: 4x4 input tiles, 16 products; the 5x5 case
// has A = 6, 6x6 tiles, 36 products, and otherwise the same code).
//
// Work split. The filters are transformed once per call into 16 matrices U[xi] (K/g x C/g, packed
// as MR-row panels of the GEMM micro-kernel). The output tiles of a group form one sequence
// (image, tile row, tile column); a task is a block of NB consecutive tiles of it, crossing tile
// rows and images, so every NR-tile strip is full but the very last. It
//   1. pads the input rows its tiles read, channel by channel and image by image, into a slab
//      (fill_padded_rows: every padding mode, plus a zero margin) and transforms whole tile rows
//      into V[xi] (C/g x NB, row c contiguous over tiles): whole vectors only, a row's surplus
//      lanes overwritten by the next row; the block's 16 matrices within ~192 KB of L2;
//   2. per strip of NR tiles and up to KB = 96 output channels, runs the offset micro-kernel
//      (rows of V read in place at stride NB + 8, no packing) for the 16 products
//      M[xi] = U[xi] V[xi], each strip's V panel in L1 across the weight panels, reducing over
//      C/g in chunks of kGemmKC;
//   3. transforms each output channel's row of M back to 2x2 tiles (+ bias) and stores each run
//      of tiles within a tile row as two output rows of interleaved pixel pairs.
// The filter transform runs on 16 filters at a time (the lanes of its vectors). Beyond 8 MB of
// transformed filters (ResNet's 512 -> 512 channels: 16 MB) and with at most 512 tiles whose
// transforms take at most 8 MB, nothing is transformed up front: the input transform covers all tiles, and one task per
// MR-row panel of output channels transforms its own filters into L2 and multiplies them with every strip of tiles
// while each weight panel is in L1 (winograd_by_panels; ResNet-18's 4x4 layer at batch 16, one thread: 13.1 -> 9.1 ms).
// Nothing of the size of the input or output is allocated: the transformed tiles live and die
// in L2, which is what lets the 64-channel layers (too little arithmetic per byte to stream
// V and M through memory) keep the arithmetic saving. One exception: the 3-D lowering reads each
// input plane for up to kernel-depth lowered channels, so when all distinct planes' transforms fit
// in 24 MB (L3) they are computed once up front and the blocks read them in place (then blocks
// stay inside one image): c3d_28 runs 4-8% faster that way. conv3d_56, whose transforms would
// take 103 MB, keeps the per-block transforms: the extra memory traffic would make it 7-10%
// slower.
//
// Why the steps look as they do: output pixel pairs are interleaved in registers and stored as
// vectors (one scalar store per pixel, located with 64-bit divisions, would cost a large share
// of the time); the slab is linear and the transform reads the even/odd columns itself, which
// keeps the fill cheaper than a phase-split slab's; transforms run on whole vectors (with
// scalar remainders, 14-tile rows would leave 6 of every 14 tiles to scalar code); and blocks
// cross tile rows and images, since whole-row blocks would leave strips 1/8 to 3/4 empty. The
// products, 16/36 of a direct convolution's multiply-adds, run at 49-68% of the FMA peak and take
// 51-60% of the time; the transforms and slab fills are most of the rest.
// ResNet-50 3x3 forward: 110% of the FMA peak counted as direct (benchmarks/results/conv_cpu.md).
//
// Accuracy: the data transforms only add and subtract and the filter transform (in double) only
// halves, so F(2x2, 3x3) keeps the rounding error of a direct sum: 1e-7 to 9e-7 relative (norm
// of the difference over the norm of a float64 reference) in float32 on the tests' shapes, up to
// 300 channels; the tests hold it to the direct algorithms' 1e-5 bound (1e-12 in float64).
// Larger tiles (F(4x4, 3x3): 4x less arithmetic) are not used: their transforms multiply by
// 2, 4 and 5, and published error analyses put their float32 error one to two orders of
// magnitude above F(2x2, 3x3)'s. F(2x2, 5x5) has those same points (0, +-1, +-2, infinity) and
// shows it: 6e-7 to 3.2e-6 relative on the tests' shapes (270-300 channels the highest), 3 to 7
// times a direct sum's, still within the 1e-5 bound. Its 6x6 input transform runs one vector
// pass per transform column, on rows split into even and odd columns once per chunk of tiles: a
// scalar pass through a table of 36 output pointers would make it slower than the slab kernel
// on MNIST conv2.
#define CNNOPS_ISA portable
#include "ops/cpu/conv_winograd_tiles.h"

#include <algorithm>
#include <vector>

#include "core/cpu_features.h"
#include "core/parallel.h"
#include "core/tensor.h"
#include "ops/cpu/gemm.h"

namespace cnnops {
namespace cpu {

// The declarations of one ISA's copy of the tile transforms (conv_winograd_tiles.h).
#define CNNOPS_WINO_ROWS_DECL(isa)                                                                       \
  namespace isa {                                                                                        \
  template <typename T> void wino_input_row(const T*, int64_t, int64_t, T* const*);                      \
  template <typename T> void wino_output_row(const T* const*, int64_t, T, T* const*);                    \
  template <typename T> void wino6_input_row(const T*, int64_t, int64_t, T* const*);                     \
  template <typename T> void wino6_output_row(const T* const*, int64_t, T, T* const*);                   \
  template <typename T> void wino_store_pairs(const T*, const T*, int64_t, T*);                          \
  template <int A, typename T> void wino_filter_lanes(const T* const*, int, T*, int64_t, int64_t, bool); \
  }
#ifdef CNNOPS_HAVE_AVX2_TU
CNNOPS_WINO_ROWS_DECL(avx2)
#endif
#ifdef CNNOPS_HAVE_AVX512_TU
CNNOPS_WINO_ROWS_DECL(avx512)
#endif

// The ISA selector of the family: the tile transform rows of F(2x2, 3x3) (A = 4) or F(2x2, 5x5)
// (A = 6) and the output pair store, at the highest level this process may run. The AVX-512 copy
// runs the same loops 16 floats per step (zmm) and interleaves output pairs with one permute per
// 16 pixels; on Zen 4, where a zmm operation issues as two ymm halves, the gain is in fewer
// instructions: whole-process A/B against the AVX2 copy (same products kernel), medians of 9:
// MNIST conv2 forward (64x32x14x14, 5x5) 6% faster, 8x64x56x56 3x3 forward 2%, 16x128x28x28
// input gradient 6%.
template <typename T>
struct WinoRows {
  void (*input_row)(const T*, int64_t, int64_t, T* const*);
  void (*output_row)(const T* const*, int64_t, T, T* const*);
  void (*store_pairs)(const T*, const T*, int64_t, T*);
  void (*filter_lanes)(const T* const*, int, T*, int64_t, int64_t, bool);
};

#define CNNOPS_WINO_ROWS(isa)                                                                  \
  WinoRows<T> {                                                                                \
    A == 4 ? isa::wino_input_row<T> : isa::wino6_input_row<T>,                                 \
        A == 4 ? isa::wino_output_row<T> : isa::wino6_output_row<T>, isa::wino_store_pairs<T>, \
        A == 4 ? isa::wino_filter_lanes<4, T> : isa::wino_filter_lanes<6, T>                   \
  }

template <typename T>
static WinoRows<T> wino_rows(int A) {
#ifdef CNNOPS_HAVE_AVX512_TU
  if (use_avx512()) return CNNOPS_WINO_ROWS(avx512);
#endif
#ifdef CNNOPS_HAVE_AVX2_TU
  if (use_avx2()) return CNNOPS_WINO_ROWS(avx2);
#endif
  return CNNOPS_WINO_ROWS(portable);
}
#undef CNNOPS_WINO_ROWS

// The products' kernel (the offset micro-kernel, B read in place from V) and its row count: with
// AVX-512, 16 output channels x one zmm of tiles (16 accumulators, one load of V per 16 FMAs;
// 16 divides the usual channel counts, so no rows are wasted): single-threaded, VGG's 8x512x14x14
// layer runs 6% faster than with the 6-row AVX-512 kernel and 14% faster than with AVX2, the
// 64- and 256-channel layers within +-4% of the 6-row kernel; otherwise the 6 x 16 (float) /
// 6 x 8 (double) kernel of gemm.h.
template <typename T>
struct WinoGemm {
  int mr;
  UKernelOffs<T> uk;
};

template <typename T>
static WinoGemm<T> wino_gemm() {
#ifdef CNNOPS_HAVE_AVX512_TU
  if (use_avx512()) return {16, ukernel_offs16_avx512<T>()};
#endif
  return {Tile<T>::MR, ukernel_offs<T>()};
}

// Distance between two products' transformed filters in U: one K/g x C/g packed matrix (Mp * Cg)
// and 16 values more, so the XI output streams of the filter transform do not all map to the same
// L1 sets (Mp * Cg is often a multiple of 4 KB: with XI streams 1 MB apart, VGG's 512-channel
// layer spent 10% of its time in the transform, 2% with the offset).
static int64_t product_stride(int64_t Mp, int64_t Cg) { return Mp * Cg + 16; }

// U[gi][xi] = (G g G^T)[xi] for every filter g = w[k][c] of group gi, written straight into the
// layout pack_a_full gives a K/g x C/g matrix (chunks of kGemmKC input channels, MR-row panels of
// output channels, rows past K/g zero): u + (gi*XI + xi)*product_stride(Mp, Cg).
// The transformed filters of one MR-row panel (output channels k0 .. k0 + MR - 1 of group gi) in
// the packed layout of product xi at out + xi * xs: chunk c0 (kGemmKC input channels, kc of them)
// at c0 * mp, the panel at kpos * kc inside it, element (k0 + i, c) at (c - c0) * MR + i after
// that; rows past K/g zero. The whole matrix has mp = Mp, kpos = k0; a panel on its own mp = MR,
// kpos = 0.
// Where the filters are: filter (k, c) of group gi at w + gi * Kg * Cg * RS + k * ks + c * cs, its
// taps in order, or rotated by 180 degrees with `flip`. The weights as given (ks = Cg * RS,
// cs = RS) or, for an input gradient computed as a forward convolution, the original weights
// read transposed and flipped in place (ks = RS, cs = Kg * RS: the forward's filter (k, c) is
// the original filter (c, k) rotated).
template <typename T>
struct FilterView {
  const T* w;
  int64_t ks, cs;
  bool flip;
  const T* at(const Conv2dGeom& g, int64_t gi, int64_t k, int64_t c) const {
    return w + gi * g.Kg * g.Cg * g.R * g.S + k * ks + c * cs;
  }
};

template <int A, typename T>
static void transform_filter_panel(const FilterView<T>& w, const Conv2dGeom& g, int64_t gi, int64_t k0, int MR,
                                   int64_t mp, int64_t kpos, int64_t xs, T* out) {
  const auto filter_lanes = wino_rows<T>(A).filter_lanes;
  constexpr int64_t XI = A * A;
  const int64_t Cg = g.Cg, Kg = g.Kg;
  const int m = static_cast<int>(std::min<int64_t>(MR, Kg - k0));
  constexpr int L = portable::kLanes;
  static_assert(kGemmKC % L == 0, "a group of L channels never crosses a reduction chunk");
  const T* f[L];
  if (MR < L) {
    // Panels narrower than the lanes (the 6-row AVX2 / portable tile): the lanes are 16 input
    // channels of one filter row instead, so no transform runs on 6 of 16 lanes (which made the
    // filter transform a sixth of the AVX2 forward of a 256-channel 7x7 layer). Chunks of
    // kGemmKC channels hold whole groups of 16.
    for (int64_t c = 0; c < Cg; c += L) {
      const int64_t c0 = c / kGemmKC * kGemmKC, kc = std::min(kGemmKC, Cg - c0);
      const int mm = static_cast<int>(std::min<int64_t>(L, Cg - c));
      T* o = out + c0 * mp + kpos * kc + (c - c0) * MR;
      for (int i = 0; i < m; ++i) {
        for (int l = 0; l < mm; ++l) f[l] = w.at(g, gi, k0 + i, c + l);
        filter_lanes(f, mm, o + i, xs, MR, w.flip);
      }
      for (int64_t i = m; i < MR; ++i)
        for (int l = 0; l < mm; ++l)
          for (int64_t xi = 0; xi < XI; ++xi) o[i + l * MR + xi * xs] = T(0);
    }
    return;
  }
  for (int64_t c = 0; c < Cg; ++c) {
    const int64_t c0 = c / kGemmKC * kGemmKC, kc = std::min(kGemmKC, Cg - c0);
    T* o = out + c0 * mp + kpos * kc + (c - c0) * MR;
    for (int i0 = 0; i0 < m; i0 += L) {
      const int mm = std::min(L, m - i0);
      for (int i = 0; i < mm; ++i) f[i] = w.at(g, gi, k0 + i0 + i, c);
      filter_lanes(f, mm, o + i0, xs, 1, w.flip);
    }
    for (int64_t i = m; i < MR; ++i)
      for (int64_t xi = 0; xi < XI; ++xi) o[i + xi * xs] = T(0);
  }
}

// U[gi][xi] = (G g G^T)[xi] for every filter g = w[k][c] of group gi, written straight into the
// layout pack_a_full gives a K/g x C/g matrix (chunks of kGemmKC input channels, MR-row panels of
// output channels, rows past K/g zero): u + (gi*XI + xi)*product_stride(Mp, Cg).
template <int A, typename T>
static void transform_filters(const FilterView<T>& w, const Conv2dGeom& g, int64_t Mp, int MR, T* u) {
  constexpr int64_t XI = A * A;
  const int64_t xs = product_stride(Mp, g.Cg);  // xs: one product's packed matrix
  const int64_t np = Mp / MR;  // one task per MR-row panel: tasks never share a cache line
  parallel_for(g.G * np, [&](int64_t q) {
    const int64_t gi = q / np, k0 = q % np * MR;
    transform_filter_panel<A>(w, g, gi, k0, MR, Mp, k0, xs, u + gi * XI * xs);
  });
}

// One Winograd forward for tile size A (A x A input tiles, 2x2 output tiles, A*A products): the
// tile grid, the transformed filters, the (optional) transformed planes and the block split, shared
// by the steps below.
template <int A, typename T>
struct WinoProblem {
  static constexpr int NR = Tile<T>::NR, XI = A * A;
  const T *x, *b;
  T* y;
  const Conv2dGeom& g;
  const T* const* xplanes;
  WinoRows<T> isa;
  WinoGemm<T> gemm;  // the products' kernel and its row count MR
  int MR;
  int64_t Cg, Kg, Mp;  // channels per group, output channels per group (rounded up to MR: Mp)
  int64_t TH, TW, NT, Ws;  // tile rows, tile columns, tiles per image, padded row length
  int64_t nsi;  // NR-tile strips per image
  const T* u = nullptr;  // transformed filters, (G, XI, Mp x Cg packed), products us apart
  int64_t us = 0;
  // The transformed input planes when each is computed once (3-D lowering), [xi][strip][plane][NR].
  const T* pre = nullptr;
  int64_t nplanes = 0;
  std::vector<int64_t> plane_id;  // lowered (image, channel) -> transformed plane
  int64_t NB = 0, nblk = 0, bpi = 0, NBs = 0, srows_max = 0, KB = 0;  // the block split (block_split)
  std::vector<int64_t> offs;  // row of channel c in a V block

  WinoProblem(const T* x_, const T* b_, T* y_, const Conv2dGeom& g_, const T* const* xp)
      : x(x_),
        b(b_),
        y(y_),
        g(g_),
        xplanes(xp),
        isa(wino_rows<T>(A)),
        gemm(wino_gemm<T>()),
        MR(gemm.mr),
        Cg(g_.Cg),
        Kg(g_.Kg),
        Mp((g_.Kg + MR - 1) / MR * MR),
        TH((g_.P + 1) / 2),
        TW((g_.Q + 1) / 2),
        NT(TH * TW),
        // a zero margin: whole-vector transforms read up to NR + 8 tiles past a row's last one
        Ws(std::max(2 * (TW + NR + 8) + A, g_.pl + g_.W + g_.pr)),
        nsi((NT + NR - 1) / NR) {}

  // Input transform of `len` tiles of one padded tile row into dst[xi] (whole vectors of 8 tiles).
  void input_row(const T* rows, int64_t len, T* const* dst) const { isa.input_row(rows, Ws, (len + 7) / 8 * 8, dst); }
};

// The 3-D lowering reads each input plane through up to kernel-depth lowered (image, channel)
// pairs. When the transforms of all distinct planes fit in 24 MB (L3), they are computed once
// into `pre` and read from there instead of once per use. Layout [xi][strip][plane][NR]: the
// rows one strip reads (one per lowered channel, from different planes) lie within a few pages
// (a [plane][xi][tile] layout would put each on its own page and miss the L1 TLB on every
// micro-kernel step). Planes are numbered in order of first use (lowered image by lowered
// image), so a lowered image's channels read a few runs of consecutive slots, one per
// kernel-depth tap, spread over the L1 sets (numbered by address, a 3-D layer's strip would
// read its 192 rows from 24 of the 64 sets, slower than transforming per use). Returns the
// buffer (empty when the planes are transformed per use).
template <int A, typename T>
static Tensor transform_planes_once(WinoProblem<A, T>& w) {
  using W = WinoProblem<A, T>;
  const Conv2dGeom& g = w.g;
  if (!w.xplanes) return Tensor{};
  const int64_t n_all = g.N * g.C;
  std::vector<std::pair<const T*, int64_t>> byptr(static_cast<size_t>(n_all));
  for (int64_t i = 0; i < n_all; ++i) byptr[i] = {w.xplanes[i], i};
  std::sort(byptr.begin(), byptr.end());  // by pointer, then by first use
  std::vector<int64_t> first;  // first use of each distinct plane
  for (size_t i = 0; i < byptr.size(); ++i)
    if (i == 0 || byptr[i].first != byptr[i - 1].first) first.push_back(byptr[i].second);
  if (first.size() == static_cast<size_t>(n_all) ||
      first.size() * W::XI * w.nsi * W::NR * sizeof(T) > size_t(24) * 1024 * 1024)
    return Tensor{};
  std::sort(first.begin(), first.end());
  std::vector<const T*> uniq;
  w.plane_id.assign(static_cast<size_t>(n_all), -1);
  for (size_t id = 0; id < first.size(); ++id) {
    uniq.push_back(w.xplanes[first[id]]);
    w.plane_id[first[id]] = static_cast<int64_t>(id);
  }
  for (size_t i = 0; i < byptr.size(); ++i)  // every use takes its plane's id
    if (w.plane_id[byptr[i].second] < 0) w.plane_id[byptr[i].second] = w.plane_id[byptr[i - 1].second];
  w.nplanes = static_cast<int64_t>(uniq.size());
  const int64_t TH = w.TH, TW = w.TW, Ws = w.Ws, nsi = w.nsi, nplanes = w.nplanes;
  Tensor buf = empty({W::XI * nsi * nplanes * W::NR}, sizeof(T) == 4 ? DType::Float32 : DType::Float64, Device{});
  T* vall = buf.ptr<T>();
  const int64_t NTv = nsi * W::NR + 8;  // a plane's transformed tiles, whole vectors, then strips
  parallel_for(nplanes, [&](int64_t id) {
    T* slab = static_cast<T*>(thread_scratch(1, sizeof(T) * (2 * TH + A - 2) * Ws));
    T* tv = static_cast<T*>(thread_scratch(2, sizeof(T) * W::XI * NTv));
    fill_padded_rows(uniq[id], g, 0, 2 * TH + A - 2, slab, Ws);
    T* dst[W::XI];
    for (int64_t th = 0; th < TH; ++th) {  // tile rows in sequence; the last fills the last strip
      for (int xi = 0; xi < W::XI; ++xi) dst[xi] = tv + xi * NTv + th * TW;
      w.input_row(slab + 2 * th * Ws, th + 1 < TH ? TW : nsi * W::NR - th * TW, dst);
    }
    for (int xi = 0; xi < W::XI; ++xi)
      for (int64_t st = 0; st < nsi; ++st) {
        const T* src = tv + xi * NTv + st * W::NR;
        T* o = vall + ((xi * nsi + st) * nplanes + id) * W::NR;
        for (int i = 0; i < W::NR; ++i) o[i] = src[i];
      }
  });
  w.pre = vall;
  return buf;
}

// Blocks: NB consecutive tiles of the group's sequence (image, tile row, tile column), crossing
// rows and images, so no strip is short but the very last. NB: V (XI x Cg x NB) within ~192 KB
// of L2, a multiple of NR, at most 4 strips, smaller when the threads would get few tasks. With
// `pre`, blocks stay inside one image (a strip reads one plane per channel) and NB is 4 strips.
template <int A, typename T>
static void block_split(WinoProblem<A, T>& w) {
  using W = WinoProblem<A, T>;
  const Conv2dGeom& g = w.g;
  const int64_t NR = W::NR, tiles = g.N * w.NT, threads = num_threads();
  const int64_t vbudget = 192 * 1024 / (W::XI * w.Cg * static_cast<int64_t>(sizeof(T)));
  int64_t NB = w.pre ? 4 * NR : std::min<int64_t>(4 * NR, std::max<int64_t>(NR, vbudget / NR * NR));
  auto count_blocks = [&] { return w.pre ? g.N * ((w.NT + NB - 1) / NB) : (tiles + NB - 1) / NB; };
  while (NB > NR && g.G * count_blocks() < 4 * threads) NB -= NR;
  w.NB = NB;
  w.nblk = count_blocks();
  w.bpi = (w.NT + NB - 1) / NB;  // blocks per image with `pre`
  w.NBs = NB + 8;  // row stride of V: room for whole-vector writes past the last strip
  // Padded rows one image's part of a block needs at most.
  w.srows_max = 2 * std::min(w.TH, (NB + w.TW - 1) / w.TW + 1) + A - 2;
  w.offs.resize(static_cast<size_t>(w.Cg));
  for (int64_t c = 0; c < w.Cg; ++c) w.offs[c] = c * w.NBs;
  w.KB = std::min<int64_t>(w.Mp, 96);  // output channels per pass over a strip
}

// A run: tiles [pos, pos + len) of a block, consecutive in one tile row (image n, row th, from
// column tw) and inside one NR-tile strip.
struct WinoRun {
  int64_t pos, len, n, th, tw;
};

// 1. Input transform of one block (tiles [p0, p1) of group gi), channel by channel, one image's
//    rows at a time, into V (XI x Cg x NBs). Whole vectors: a tile row's surplus lanes are
//    overwritten by the next row, the block's last row fills its last strip from the slab's zero
//    margin (the surplus lanes feed only unused outputs).
template <int A, typename T>
static void transform_block(const WinoProblem<A, T>& w, int64_t gi, const WinoRun* runs, int64_t nruns, int64_t nstr,
                            T* v, int64_t c_lo, int64_t c_hi) {
  using W = WinoProblem<A, T>;
  const Conv2dGeom& g = w.g;
  T* slab = static_cast<T*>(thread_scratch(1, sizeof(T) * w.srows_max * w.Ws));
  T* dst[W::XI];
  for (int64_t c = c_lo; c < c_hi; ++c) {
    for (int64_t r = 0; r < nruns;) {
      const int64_t n = runs[r].n, th_a = runs[r].th;
      int64_t e = r;
      while (e < nruns && runs[e].n == n) ++e;
      const int64_t th_b = runs[e - 1].th + 1;
      fill_padded_rows(in_plane(w.x, w.xplanes, g, n, gi * w.Cg + c), g, 2 * th_a, 2 * (th_b - th_a) + A - 2, slab,
                       w.Ws);
      for (; r < e;) {
        // a whole tile row's part of the block (its runs are consecutive)
        const int64_t th = runs[r].th, pos = runs[r].pos, tw = runs[r].tw;
        int64_t len = 0;
        for (; r < e && runs[r].th == th; ++r) len += runs[r].len;
        if (r == nruns) len = nstr * W::NR - pos;
        for (int xi = 0; xi < W::XI; ++xi) dst[xi] = v + (xi * w.Cg + c) * w.NBs + pos;
        w.input_row(slab + 2 * (th - th_a) * w.Ws + 2 * tw, len, dst);
      }
    }
  }
}

// 2. + 3. Per strip of NR tiles and up to KB output channels: the XI products (reduction over Cg
//    in chunks of kGemmKC) from V rows vb + xi * xs + of[c], then back to output tiles, each run
//    stored as two output rows of adjacent pixel pairs; the last tile row (odd P) and column (odd
//    Q) store only their top / left outputs.
template <int A, typename T>
static void multiply_and_store(const WinoProblem<A, T>& w, int64_t gi, const WinoRun* runs, int64_t nruns, int64_t nb,
                               const T* vb, int64_t xs, const int64_t* of, const T* ug, int64_t us, int64_t mp,
                               int64_t kbase, int64_t k_lo, int64_t k_hi, bool strips_inner) {
  using W = WinoProblem<A, T>;
  constexpr int NR = W::NR, XI = W::XI;
  const int MR = w.MR;
  const Conv2dGeom& g = w.g;
  // KB rows of M per product: whole MR-row tiles
  const int64_t Cg = w.Cg, Kg = w.Kg, KB = std::min(w.KB, (k_hi - k_lo + MR - 1) / MR * MR), nstr = (nb + NR - 1) / NR;
  const UKernelOffs<T> uk = w.gemm.uk;
  const int64_t ms = XI * KB * NR;  // one strip's products for KB output channels
  const int64_t nm = strips_inner ? nstr : 1;
  T* mbuf = static_cast<T*>(thread_scratch(2, sizeof(T) * (nm * ms + 4 * MR * NR)));
  const T* mrow[XI];
  T* outv[4];
  for (int q = 0; q < 4; ++q) outv[q] = mbuf + nm * ms + q * MR * NR;
  for (int64_t kb0 = k_lo; kb0 < k_hi; kb0 += KB) {
    const int64_t kb1 = std::min(k_hi, kb0 + KB);
    // strips [s0, s1) under each weight panel in turn
    const auto products = [&](int64_t s0, int64_t s1) {
      for (int xi = 0; xi < XI; ++xi)
        for (int64_t c0 = 0; c0 < Cg; c0 += kGemmKC) {
          const int64_t kc = std::min(kGemmKC, Cg - c0);
          for (int64_t k0 = kb0; k0 < kb1; k0 += MR) {
            const T* ap = ug + xi * us + c0 * mp + ((k0 - kbase) / MR) * kc * MR;
            for (int64_t st = s0; st < s1; ++st) {
              const T* bp = vb + xi * xs + (w.pre ? st * w.nplanes * NR : st * NR);
              uk(kc, ap, bp, of + c0, mbuf + (st - s0) * ms + (xi * KB + k0 - kb0) * NR, NR, c0 > 0, nullptr);
            }
          }
        }
    };
    if (strips_inner) products(0, nstr);
    for (int64_t st = 0, r0 = 0; st < nstr; ++st) {
      if (!strips_inner) products(st, st + 1);
      const T* mst = mbuf + (strips_inner ? st * ms : 0);
      const int64_t j0 = st * NR, nt = std::min<int64_t>(NR, nb - j0);
      int64_t r1 = r0;
      while (r1 < nruns && runs[r1].pos < j0 + nt) ++r1;
      for (int64_t k = kb0; k < kb1; ++k) {
        for (int xi = 0; xi < XI; ++xi) mrow[xi] = mst + (xi * KB + k - kb0) * NR;
        w.isa.output_row(mrow, nt, w.b ? w.b[gi * Kg + k] : T(0), outv);
        for (int64_t r = r0; r < r1; ++r) {
          const WinoRun& run = runs[r];
          const bool last_col = g.Q % 2 == 1 && run.tw + run.len == w.TW;  // its last tile has one column
          const int64_t pairs = run.len - (last_col ? 1 : 0), s = run.pos - j0;
          T* yk = w.y + out_plane(g, run.n, gi * Kg + k) + 2 * run.th * g.Q + 2 * run.tw;
          for (int64_t dr = 0; dr < 2 && 2 * run.th + dr < g.P; ++dr) {
            const T *a = outv[2 * dr] + s, *bb = outv[2 * dr + 1] + s;
            T* o = yk + dr * g.Q;
            w.isa.store_pairs(a, bb, pairs, o);
            if (last_col) o[2 * pairs] = a[pairs];
          }
        }
      }
      r0 = r1;
    }
  }
}

// Tiles [p0, p1) of a group's sequence as runs (at most p1 - p0 + strips of them); returns how many.
template <int A, typename T>
static int64_t make_runs(const WinoProblem<A, T>& w, int64_t p0, int64_t p1, WinoRun* runs) {
  const int64_t NT = w.NT, TW = w.TW, NR = WinoProblem<A, T>::NR;
  int64_t nruns = 0;
  for (int64_t p = p0; p < p1;) {
    const int64_t n = p / NT, th = p % NT / TW, tw = p % TW, pos = p - p0;
    const int64_t len = std::min({p1 - p, TW - tw, NR - pos % NR});
    runs[nruns++] = WinoRun{pos, len, n, th, tw};
    p += len;
  }
  return nruns;
}

// Deep layers with few tiles (transformed filters too large for L3 to hold them between blocks):
// the input transform of all tiles once (in parallel over channels), then one task per MR-row
// panel of output channels that transforms its own filters into L2 and multiplies them with
// every tile. U then never goes through memory, and each filter is transformed once.
template <int A, typename T>
static void winograd_by_panels(WinoProblem<A, T>& w, const FilterView<T>& wt) {
  using W = WinoProblem<A, T>;
  const Conv2dGeom& g = w.g;
  const int64_t tiles = g.N * w.NT, nstr = (tiles + W::NR - 1) / W::NR;
  w.NB = nstr * W::NR;
  w.NBs = w.NB + 8;
  w.srows_max = 2 * w.TH + A - 2;
  w.offs.resize(static_cast<size_t>(w.Cg));
  for (int64_t c = 0; c < w.Cg; ++c) w.offs[c] = c * w.NBs;
  w.KB = w.MR;
  std::vector<WinoRun> runs(static_cast<size_t>(tiles + nstr));
  const int64_t nruns = make_runs(w, 0, tiles, runs.data());
  Tensor v_buf = empty({W::XI * w.Cg * w.NBs}, sizeof(T) == 4 ? DType::Float32 : DType::Float64, Device{});
  T* v = v_buf.ptr<T>();
  const int64_t cpt = 8, nct = (w.Cg + cpt - 1) / cpt, np = w.Mp / w.MR, us = w.Cg * w.MR + 16;
  for (int64_t gi = 0; gi < g.G; ++gi) {
    parallel_for(nct, [&](int64_t q) {
      transform_block(w, gi, runs.data(), nruns, nstr, v, q * cpt, std::min(w.Cg, (q + 1) * cpt));
    });
    parallel_for(np, [&](int64_t q) {
      const int64_t k0 = q * w.MR;
      T* up = static_cast<T*>(thread_scratch(0, sizeof(T) * W::XI * us));
      transform_filter_panel<A>(wt, g, gi, k0, w.MR, w.MR, 0, us, up);
      multiply_and_store(w, gi, runs.data(), nruns, tiles, v, w.Cg * w.NBs, w.offs.data(), up, us, w.MR, k0, k0,
                         std::min(w.Kg, k0 + w.MR), true);
    });
  }
}

// One task: block `blk` of group gi. Its tiles as runs, the input transform (unless the planes
// were transformed once), the products and the output.
template <int A, typename T>
static void winograd_block(const WinoProblem<A, T>& w, int64_t gi, int64_t blk) {
  using W = WinoProblem<A, T>;
  const int64_t NT = w.NT, NB = w.NB, TW = w.TW, tiles = w.g.N * NT;
  const int64_t p0 = w.pre ? blk / w.bpi * NT + blk % w.bpi * NB : blk * NB;
  const int64_t p1 = w.pre ? std::min(p0 + NB, (blk / w.bpi + 1) * NT) : std::min(tiles, p0 + NB), nb = p1 - p0;
  const int64_t nstr = (nb + W::NR - 1) / W::NR;
  WinoRun* runs = static_cast<WinoRun*>(thread_scratch(3, sizeof(WinoRun) * (nb + nstr)));
  const int64_t nruns = make_runs(w, p0, p1, runs);
  if (!w.pre) {
    T* v = static_cast<T*>(thread_scratch(0, sizeof(T) * W::XI * w.Cg * w.NBs));
    transform_block(w, gi, runs, nruns, nstr, v, 0, w.Cg);
    return multiply_and_store(w, gi, runs, nruns, nb, v, w.Cg * w.NBs, w.offs.data(), w.u + gi * W::XI * w.us, w.us,
                              w.Mp, 0, 0, w.Kg, false);
  }
  // V rows of the transformed planes: channel c of this block's image reads its plane's slot
  const int64_t q = p0 / NT;
  int64_t* ofs = static_cast<int64_t*>(thread_scratch(0, sizeof(int64_t) * w.Cg));
  for (int64_t c = 0; c < w.Cg; ++c) ofs[c] = w.plane_id[q * w.g.C + gi * w.Cg + c] * W::NR;
  const T* vb = w.pre + (p0 - q * NT) / W::NR * w.nplanes * W::NR;
  multiply_and_store(w, gi, runs, nruns, nb, vb, w.nsi * w.nplanes * W::NR, ofs, w.u + gi * W::XI * w.us, w.us, w.Mp, 0,
                     0, w.Kg, false);
}

template <int A, typename T>
static void winograd_forward(const T* x, const FilterView<T>& wt, const T* b, T* y, const Conv2dGeom& g,
                             const T* const* xplanes) {
  WinoProblem<A, T> w(x, b, y, g, xplanes);
  const DType dt = sizeof(T) == 4 ? DType::Float32 : DType::Float64;
  // Transformed filters of more than 8 MB (a large share of L3) and at most 512 tiles a group with
  // their transforms V within 8 MB: by panels. Every panel reads all of V, so V has to stay in
  // L3: with 12.8 MB of it (VGG's 8x512x14x14 layer) the forward took 52-101 ms across processes
  // on this shared 2-core VM, 25-42 ms with the filters transformed up front; at 5.2-7.5 MB (the
  // 512-channel layers at 4x4 x 32, 7x7 x 8, 14x14 x 4) by panels stays 16-23% faster.
  const int64_t tiles = g.N * w.NT;
  if (!xplanes && w.XI * w.Mp * w.Cg * static_cast<int64_t>(sizeof(T)) > (int64_t(8) << 20) && tiles <= 512 &&
      w.XI * w.Cg * (tiles + 2 * w.NR) * static_cast<int64_t>(sizeof(T)) <= (int64_t(8) << 20))
    return winograd_by_panels(w, wt);
  w.us = product_stride(w.Mp, w.Cg);
  Tensor u_buf = empty({g.G * w.XI * w.us}, dt, Device{});  // the padding is never read
  transform_filters<A>(wt, g, w.Mp, w.MR, u_buf.ptr<T>());
  w.u = u_buf.ptr<T>();
  const Tensor pre_buf = transform_planes_once(w);
  block_split(w);
  parallel_for(g.G * w.nblk, [&](int64_t task) { winograd_block(w, task / w.nblk, task % w.nblk); });
}

template <typename T>
static void forward_view(const T* x, const FilterView<T>& w, const T* b, T* y, const Conv2dGeom& g,
                         const T* const* xplanes) {
  if (g.R == 5) winograd_forward<6>(x, w, b, y, g, xplanes);
  else winograd_forward<4>(x, w, b, y, g, xplanes);
}

template <typename T>
void conv2d_forward_winograd(const T* x, const T* w, const T* b, T* y, const Conv2dGeom& g, const T* const* xplanes) {
  const int64_t RS = g.R * g.S;
  forward_view(x, FilterView<T>{w, g.Cg * RS, RS, false}, b, y, g, xplanes);
}

template <typename T>
void conv2d_forward_winograd_flipped(const T* x, const T* w, const T* b, T* y, const Conv2dGeom& g) {
  const int64_t RS = g.R * g.S;
  forward_view<T>(x, FilterView<T>{w, RS, g.Kg * RS, true}, b, y, g, nullptr);
}

template void conv2d_forward_winograd<float>(const float*, const float*, const float*, float*, const Conv2dGeom&,
                                             const float* const*);
template void conv2d_forward_winograd<double>(const double*, const double*, const double*, double*, const Conv2dGeom&,
                                              const double* const*);
template void conv2d_forward_winograd_flipped<float>(const float*, const float*, const float*, float*,
                                                     const Conv2dGeom&);
template void conv2d_forward_winograd_flipped<double>(const double*, const double*, const double*, double*,
                                                      const Conv2dGeom&);

}  // namespace cpu
}  // namespace cnnops
