// The inner loops of the IoU family, written once and compiled twice: by boxes.cpp for the
// portable baseline and by boxes_avx2.cpp with -mavx2 -mfma: one row of a pairwise matrix, and a
// chunk of element-wise losses (forward and backward). The includer defines CNNOPS_ISA
// (the namespace that keeps the two copies apart). The loop over boxes2 reads their columns
// unit-stride and evaluates geom::metric with the kind fixed at compile time, so the compiler
// turns it into SIMD code for all four kinds (CIoU's aspect angles are precomputed per box). The
// forward loss loop reads the (N, 4) pairs as interleaved groups of four and is vectorised the same
// way for IoU, GIoU and DIoU (CIoU calls atan2 per pair). The backward loop is written branch-free
// (0/1 weights, bit masks) but GCC 12 still keeps one reciprocal conditional under its default
// -ftrapping-math and leaves it scalar: about 50 ns per pair on the loaded 2-core machine.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include "ops/cpu/boxes.h"

namespace cnnops {
namespace cpu {
namespace CNNOPS_ISA {

// flatten: everything the loop calls is inlined into it (with LTO the inline helpers of box_geom.h
// could otherwise be merged across the two ISA builds and called out of line); noinline: the loop is
// vectorised on its own. `a` is taken by value: through a reference GCC 12 cannot rule out that
// the stores to `out` change it and leaves the CIoU loop scalar.
#if defined(__GNUC__)
#define CNNOPS_FLATTEN __attribute__((flatten, noinline))
#else
#define CNNOPS_FLATTEN
#endif

// One row of a pairwise matrix; eps is the caller's, placed as torchvision's pairwise functions
// place it (geom::pairwise_eps).
template <typename T, geom::IouKind K>
CNNOPS_FLATTEN static void row_loop(const geom::Box<T> a, T area_a, const BoxColumns<T>& c, int64_t m, T* out, T off,
                                    T eps) {
  const T *x1 = c.x1, *y1 = c.y1, *x2 = c.x2, *y2 = c.y2, *ar = c.area, *ang = c.angle;
  const T ang_a = K == geom::IouKind::CIoU ? geom::aspect_angle(a, off) : T(0);
  const geom::MetricEps<T> e = geom::pairwise_eps<T, K>(eps);
  for (int64_t j = 0; j < m; ++j) {
    const T ang_b = K == geom::IouKind::CIoU ? ang[j] : T(0);
    out[j] = geom::metric<T, K>(a, area_a, ang_a, geom::Box<T>{x1[j], y1[j], x2[j], y2[j]}, ar[j], ang_b, off, e);
  }
}

template <typename T>
void pairwise_row(geom::IouKind kind, const geom::Box<T>& a, T area_a, const BoxColumns<T>& c, int64_t m, T* out, T off,
                  T eps) {
  switch (kind) {
    case geom::IouKind::IoU: return row_loop<T, geom::IouKind::IoU>(a, area_a, c, m, out, off, eps);
    case geom::IouKind::GIoU: return row_loop<T, geom::IouKind::GIoU>(a, area_a, c, m, out, off, eps);
    case geom::IouKind::DIoU: return row_loop<T, geom::IouKind::DIoU>(a, area_a, c, m, out, off, eps);
    case geom::IouKind::CIoU: return row_loop<T, geom::IouKind::CIoU>(a, area_a, c, m, out, off, eps);
  }
}

// ---- element-wise losses ----

// Gradient weight of the first operand of a binary min / max as torch gives it: 1 when it is the
// smaller (larger), 0 when not, 1/2 on a tie. Comparisons turned into 0/1 factors, no selects of
// computed values and no branches: for random boxes these tests are coin flips, and the loop stays
// vectorisable under GCC's default -ftrapping-math.
template <typename T>
static inline T min_weight(T a, T b) {
  return T(a < b) + T(0.5) * T(a == b);
}
template <typename T>
static inline T max_weight(T a, T b) {
  return T(a > b) + T(0.5) * T(a == b);
}

// x where c holds, else 0: an AND of x's bits with an all-ones / all-zeros mask. (A select, or even
// T(c) * x, lets GCC compute x only when c holds; under its default -ftrapping-math a loop with such
// a conditional division is not vectorised.)
template <typename T>
static inline T masked(T x, bool c) {
  using U = typename std::conditional<sizeof(T) == 4, uint32_t, uint64_t>::type;
  U bits;
  std::memcpy(&bits, &x, sizeof bits);
  bits &= U(0) - static_cast<U>(c);
  std::memcpy(&x, &bits, sizeof bits);
  return x;
}

// d(1 - metric)/d(coordinates) of one pair, times g, into ga[4], gb[4]. Follows geom::metric<T, K>
// term by term with the losses' eps placement (geom::loss_eps: for CIoU the union and the squared
// diagonal carry 1e-7 and only alpha carries eps); CIoU's alpha is a constant, as in torchvision.
// A ratio whose denominator is 0 contributes nothing: its numerator is 0 there too, or its term
// is masked; denominators are clamped to the smallest normal.
// Boxes with swapped corners are sorted first and their gradients swapped back.
template <typename T, geom::IouKind K>
static inline void pair_grad(const T* pa, const T* pb, T off, T eps, T g, T* ga, T* gb) {
  constexpr T tiny = std::numeric_limits<T>::min();
  const geom::MetricEps<T> e = geom::loss_eps<T, K>(eps);
  const T sax = T(pa[2] < pa[0]), say = T(pa[3] < pa[1]), sbx = T(pb[2] < pb[0]), sby = T(pb[3] < pb[1]);
  const geom::Box<T> a = geom::load_sorted(pa), b = geom::load_sorted(pb);
  const T wa = a.x2 - a.x1 + off, ha = a.y2 - a.y1 + off, wb = b.x2 - b.x1 + off, hb = b.y2 - b.y1 + off;
  const T iw = std::min(a.x2, b.x2) - std::max(a.x1, b.x1) + off;
  const T ih = std::min(a.y2, b.y2) - std::max(a.y1, b.y1) + off;
  const bool overlap = (iw > T(0)) & (ih > T(0));  // & not &&: a conditionally evaluated float compare "could trap"
  const T inter = std::max(iw, T(0)) * std::max(ih, T(0));
  const T uni = wa * ha + wb * hb - inter;
  const T cw = std::max(a.x2, b.x2) - std::min(a.x1, b.x1) + off;
  const T ch = std::max(a.y2, b.y2) - std::min(a.y1, b.y1) + off;

  // d metric / d (inter, union, enclosing w/h, own w/h, centre offsets)
  T g_cw = 0, g_ch = 0, g_wa = 0, g_ha = 0, g_wb = 0, g_hb = 0, g_dx = 0, g_dy = 0;
  const T du = uni + e.iou, dus = std::max(du, tiny);
  const T iou = inter / dus;  // inter is 0 where du is 0
  const T rdu = T(1) / dus;
  T g_inter = rdu;  // only reaches the coordinates through the overlap mask (no overlap where du is 0)
  T g_uni = -iou * rdu;  // iou is 0 where du is 0
  if (K == geom::IouKind::GIoU) {  // metric -= (C - U) / (C + eps)
    const T dc = cw * ch + e.pen, dcs = std::max(dc, tiny);
    const T rdc = T(1) / dcs;
    const T g_c = -(du * rdc) * rdc;  // du is 0 where dc is 0
    g_cw += g_c * ch;
    g_ch += g_c * cw;
    g_uni += masked(rdc, dc > T(0));
  }
  if (K == geom::IouKind::DIoU || K == geom::IouKind::CIoU) {  // metric -= rho^2 / (c^2 + eps)
    const T dx = T(0.5) * ((a.x1 + a.x2) - (b.x1 + b.x2));
    const T dy = T(0.5) * ((a.y1 + a.y2) - (b.y1 + b.y2));
    const T c2 = cw * cw + ch * ch + e.pen, c2s = std::max(c2, tiny);  // rho is 0 where c2 is 0
    const T g_c2 = ((dx * dx + dy * dy) / c2s) / c2s;
    g_cw += g_c2 * T(2) * cw;
    g_ch += g_c2 * T(2) * ch;
    g_dx -= T(2) * dx / c2s;
    g_dy -= T(2) * dy / c2s;
  }
  if (K == geom::IouKind::CIoU) {  // metric -= alpha * v, alpha held constant
    const T d = std::atan2(wb, hb) - std::atan2(wa, ha);
    const T v = geom::ciou_k<T>() * d * d;
    const T alpha = v / std::max(T(1) - iou + v + e.alpha, tiny);  // v is 0 where that sum is 0
    const T g_d = -alpha * T(2) * geom::ciou_k<T>() * d;
    const T ra = wa * wa + ha * ha, rb = wb * wb + hb * hb;
    const T ras = std::max(ra, tiny), rbs = std::max(rb, tiny);  // w = h = 0 where r is 0
    g_wa -= g_d * ha / ras;
    g_ha += g_d * wa / ras;
    g_wb += g_d * hb / rbs;
    g_hb -= g_d * wb / rbs;
  }
  // union = wa*ha + wb*hb - inter
  g_inter -= g_uni;
  g_wa += g_uni * ha, g_ha += g_uni * wa, g_wb += g_uni * hb, g_hb += g_uni * wb;

  T gax1 = -g_wa + T(0.5) * g_dx, gax2 = g_wa + T(0.5) * g_dx;
  T gay1 = -g_ha + T(0.5) * g_dy, gay2 = g_ha + T(0.5) * g_dy;
  T gbx1 = -g_wb - T(0.5) * g_dx, gbx2 = g_wb - T(0.5) * g_dx;
  T gby1 = -g_hb - T(0.5) * g_dy, gby2 = g_hb - T(0.5) * g_dy;
  // inter = iw * ih, iw = min(x2) - max(x1) (no gradient without overlap); cw = max(x2) - min(x1)
  const T gi = masked(g_inter, overlap), gix = gi * ih, giy = gi * iw;
  T w;
  w = min_weight(a.x2, b.x2), gax2 += w * gix, gbx2 += (T(1) - w) * gix;
  w = max_weight(a.x1, b.x1), gax1 -= w * gix, gbx1 -= (T(1) - w) * gix;
  w = min_weight(a.y2, b.y2), gay2 += w * giy, gby2 += (T(1) - w) * giy;
  w = max_weight(a.y1, b.y1), gay1 -= w * giy, gby1 -= (T(1) - w) * giy;
  w = max_weight(a.x2, b.x2), gax2 += w * g_cw, gbx2 += (T(1) - w) * g_cw;
  w = min_weight(a.x1, b.x1), gax1 -= w * g_cw, gbx1 -= (T(1) - w) * g_cw;
  w = max_weight(a.y2, b.y2), gay2 += w * g_ch, gby2 += (T(1) - w) * g_ch;
  w = min_weight(a.y1, b.y1), gay1 -= w * g_ch, gby1 -= (T(1) - w) * g_ch;
  // loss = 1 - metric; a swapped coordinate pair gets its gradients swapped (exact 0/1 blend)
  const T s = -g;
  ga[0] = s * ((T(1) - sax) * gax1 + sax * gax2), ga[2] = s * ((T(1) - sax) * gax2 + sax * gax1);
  ga[1] = s * ((T(1) - say) * gay1 + say * gay2), ga[3] = s * ((T(1) - say) * gay2 + say * gay1);
  gb[0] = s * ((T(1) - sbx) * gbx1 + sbx * gbx2), gb[2] = s * ((T(1) - sbx) * gbx2 + sbx * gbx1);
  gb[1] = s * ((T(1) - sby) * gby1 + sby * gby2), gb[3] = s * ((T(1) - sby) * gby2 + sby * gby1);
}

template <typename T, geom::IouKind K>
CNNOPS_FLATTEN static void loss_loop(const T* b1, const T* b2, int64_t n, T off, T eps, T* out) {
  for (int64_t i = 0; i < n; ++i) {
    const geom::Box<T> a = geom::load_sorted(b1 + 4 * i), b = geom::load_sorted(b2 + 4 * i);
    out[i] =
        T(1) - geom::metric<T, K>(a, geom::box_area(a, off), b, geom::box_area(b, off), off, geom::loss_eps<T, K>(eps));
  }
}

template <typename T, geom::IouKind K>
CNNOPS_FLATTEN static void loss_backward_loop(const T* gout, bool per_pair, const T* b1, const T* b2, int64_t n, T off,
                                              T eps, T* g1, T* g2) {
  if (per_pair) {
    for (int64_t i = 0; i < n; ++i) pair_grad<T, K>(b1 + 4 * i, b2 + 4 * i, off, eps, gout[i], g1 + 4 * i, g2 + 4 * i);
  } else {
    const T g = gout[0];
    for (int64_t i = 0; i < n; ++i) pair_grad<T, K>(b1 + 4 * i, b2 + 4 * i, off, eps, g, g1 + 4 * i, g2 + 4 * i);
  }
}

// Per-pair losses 1 - metric of n pairs into out[n].
template <typename T>
void loss_chunk(geom::IouKind kind, const T* b1, const T* b2, int64_t n, T off, T eps, T* out) {
  switch (kind) {
    case geom::IouKind::IoU: return loss_loop<T, geom::IouKind::IoU>(b1, b2, n, off, eps, out);
    case geom::IouKind::GIoU: return loss_loop<T, geom::IouKind::GIoU>(b1, b2, n, off, eps, out);
    case geom::IouKind::DIoU: return loss_loop<T, geom::IouKind::DIoU>(b1, b2, n, off, eps, out);
    case geom::IouKind::CIoU: return loss_loop<T, geom::IouKind::CIoU>(b1, b2, n, off, eps, out);
  }
}

// Gradients of n pairs; gout has n values (per_pair) or one broadcast value.
template <typename T>
void loss_backward_chunk(geom::IouKind kind, const T* gout, bool per_pair, const T* b1, const T* b2, int64_t n, T off,
                         T eps, T* g1, T* g2) {
  switch (kind) {
    case geom::IouKind::IoU:
      return loss_backward_loop<T, geom::IouKind::IoU>(gout, per_pair, b1, b2, n, off, eps, g1, g2);
    case geom::IouKind::GIoU:
      return loss_backward_loop<T, geom::IouKind::GIoU>(gout, per_pair, b1, b2, n, off, eps, g1, g2);
    case geom::IouKind::DIoU:
      return loss_backward_loop<T, geom::IouKind::DIoU>(gout, per_pair, b1, b2, n, off, eps, g1, g2);
    case geom::IouKind::CIoU:
      return loss_backward_loop<T, geom::IouKind::CIoU>(gout, per_pair, b1, b2, n, off, eps, g1, g2);
  }
}

#define CNNOPS_BOXES_ROWS_INSTANTIATE(T)                                                                         \
  template void pairwise_row<T>(geom::IouKind, const geom::Box<T>&, T, const BoxColumns<T>&, int64_t, T*, T, T); \
  template void loss_chunk<T>(geom::IouKind, const T*, const T*, int64_t, T, T, T*);                             \
  template void loss_backward_chunk<T>(geom::IouKind, const T*, bool, const T*, const T*, int64_t, T, T, T*, T*);
CNNOPS_BOXES_ROWS_INSTANTIATE(float)
CNNOPS_BOXES_ROWS_INSTANTIATE(double)
#undef CNNOPS_BOXES_ROWS_INSTANTIATE

#undef CNNOPS_FLATTEN

}  // namespace CNNOPS_ISA
}  // namespace cpu
}  // namespace cnnops
