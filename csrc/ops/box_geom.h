// Per-pair box geometry shared by the IoU family and the NMS family, for any device (the CPU
// loops of ops/cpu/boxes_rows.h and ops/cpu/nms*.cpp, the CUDA kernels of ops/cuda/boxes.cu and
// ops/cuda/nms*.cu): IoU, GIoU, DIoU and CIoU of two boxes and the gradient of the losses built
// on them, templated on float/double. Header-only and inline so that a one-box-vs-many loop (NMS)
// or an N x M loop (box_iou) compiles to straight-line, vectorisable code; under nvcc every
// function is __host__ __device__ (the CUDA files are compiled with --expt-relaxed-constexpr for
// std::min/std::max/numeric_limits).
//
// Conventions (the contract written in python/cnnops/boxes.py and the README):
//   * boxes are (x1, y1, x2, y2) with x1 <= x2, y1 <= y2 ("canonical"; callers check or sort them);
//   * `off` is the pixel convention: 0 (default, continuous coordinates) or 1 (width = x2 - x1 + 1),
//     applied to every width and height: areas, intersection, enclosing box and CIoU aspect ratio;
//   * degenerate cases never give NaN: IoU is 0 when the union (+ eps) is 0, the GIoU penalty is 0
//     when the enclosing area (+ eps) is 0, the DIoU penalty is 0 when the enclosing diagonal (+ eps)
//     is 0, the CIoU aspect term uses atan2(w, h) (= atan(w / h) for h > 0, 0 for a point box) and
//     its weight alpha is 0 when 1 - IoU + v (+ eps) is 0;
//   * eps sits where torchvision puts it (MetricEps, pairwise_eps, loss_eps below): the pairwise
//     forms add it only to the DIoU/CIoU squared diagonal and CIoU's alpha denominator
//     (distance_box_iou / complete_box_iou; box_iou and generalized_box_iou are plain ratios);
//     the IoU, GIoU and DIoU losses add it to the union, the GIoU enclosing area and the squared
//     diagonal; the CIoU loss adds it only to alpha's denominator, while its union and squared
//     diagonal always get 1e-7 (complete_box_iou_loss calls its DIoU helper without eps).
// The backward of the losses is loss_pair_grad at the end of this file.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#ifndef CNNOPS_HD
#if defined(__CUDACC__)
#define CNNOPS_HD __host__ __device__ __forceinline__
#else
#define CNNOPS_HD inline
#endif
#endif

namespace cnnops {
namespace geom {

enum class IouKind { IoU = 0, GIoU = 1, DIoU = 2, CIoU = 3 };

// 4 / pi^2, the CIoU aspect-ratio constant.
template <typename T>
constexpr T ciou_k() {
  return T(0.40528473456935108577551785283891);
}

template <typename T>
struct Box {
  T x1, y1, x2, y2;
};
template <typename T>
CNNOPS_HD Box<T> load_box(const T* b) {
  return Box<T>{b[0], b[1], b[2], b[3]};
}

// The box at b with its corners sorted (x1 <= x2, y1 <= y2): what canonicalize=True means.
template <typename T>
CNNOPS_HD Box<T> load_sorted(const T* b) {
  return Box<T>{std::min(b[0], b[2]), std::min(b[1], b[3]), std::max(b[0], b[2]), std::max(b[1], b[3])};
}

template <typename T>
CNNOPS_HD T box_area(const Box<T>& b, T off) {
  return (b.x2 - b.x1 + off) * (b.y2 - b.y1 + off);
}
template <typename T>
CNNOPS_HD T box_area(const T* b, T off) {
  return box_area(load_box(b), off);
}

// q / d for d > 0 and 0 for d == 0, for the ratios of the contract, where d >= 0 always and d == 0
// implies q == 0 (union 0 -> intersection 0; enclosing area or diagonal 0 -> both boxes the same
// point; 1 - IoU + v = 0 -> v = 0). Written as a division by max(d, smallest normal) because GCC
// does not if-convert a select on a float comparison (-ftrapping-math), and a select would keep
// the pairwise loops scalar; a max is vectorised. (A positive subnormal d is rounded up to the
// smallest normal: boxes of area below 1e-38 only.)
template <typename T>
CNNOPS_HD T safe_div(T q, T d) {
  return q / std::max(d, std::numeric_limits<T>::min());
}

// Intersection area of two canonical boxes (0 when they do not overlap).
template <typename T>
CNNOPS_HD T inter_area(const Box<T>& a, const Box<T>& b, T off) {
  const T iw = std::min(a.x2, b.x2) - std::max(a.x1, b.x1) + off;
  const T ih = std::min(a.y2, b.y2) - std::max(a.y1, b.y1) + off;
  return std::max(iw, T(0)) * std::max(ih, T(0));  // no branch: the loops stay vectorisable
}

// The CIoU aspect angle atan2(w, h) of a box (= atan(w / h) for h > 0; 0 for a point box).
template <typename T>
CNNOPS_HD T aspect_angle(const Box<T>& b, T off) {
  return std::atan2(b.x2 - b.x1 + off, b.y2 - b.y1 + off);
}

// Where eps enters a metric: `iou` is added to the union, `pen` to the GIoU enclosing area and to
// the DIoU / CIoU squared diagonal, `alpha` to CIoU's 1 - IoU + v.
template <typename T>
struct MetricEps {
  T iou, pen, alpha;
};

// torchvision's placement for the pairwise functions: generalized_box_iou has no eps,
// distance_box_iou adds it to the squared diagonal, complete_box_iou to the diagonal and alpha;
// the IoU in all of them is the plain inter / union.
template <typename T, IouKind K>
CNNOPS_HD MetricEps<T> pairwise_eps(T eps) {
  return MetricEps<T>{T(0), K == IouKind::GIoU ? T(0) : eps, eps};
}

// torchvision's placement for the losses: generalized_box_iou_loss and distance_box_iou_loss add
// eps to the union and to the enclosing area / squared diagonal (our iou_loss to the union);
// complete_box_iou_loss computes its IoU and DIoU term through the DIoU loss helper called without
// eps, so there the union and the squared diagonal get that helper's default 1e-7 whatever eps is,
// and eps itself only reaches alpha = v / (1 - IoU + v + eps).
template <typename T, IouKind K>
CNNOPS_HD MetricEps<T> loss_eps(T eps) {
  if (K == IouKind::CIoU) return MetricEps<T>{T(1e-7), T(1e-7), eps};
  return MetricEps<T>{eps, eps, eps};
}

// The metric of kind K between canonical boxes a and b, with eps placed as `e` says. ang_a, ang_b:
// aspect_angle of a and b (read for CIoU only), so a one-vs-many loop computes each once and the
// loop itself stays free of calls.
template <typename T, IouKind K>
CNNOPS_HD T metric(const Box<T>& a, T area_a, T ang_a, const Box<T>& b, T area_b, T ang_b, T off, MetricEps<T> e) {
  const T inter = inter_area(a, b, off);
  const T uni = area_a + area_b - inter;
  const T i = safe_div(inter, uni + e.iou);
  if (K == IouKind::IoU) return i;
  const T cw = std::max(a.x2, b.x2) - std::min(a.x1, b.x1) + off;
  const T ch = std::max(a.y2, b.y2) - std::min(a.y1, b.y1) + off;
  if (K == IouKind::GIoU) return i - safe_div(cw * ch - uni, cw * ch + e.pen);
  const T dx = T(0.5) * ((a.x1 + a.x2) - (b.x1 + b.x2));
  const T dy = T(0.5) * ((a.y1 + a.y2) - (b.y1 + b.y2));
  const T d = i - safe_div(dx * dx + dy * dy, cw * cw + ch * ch + e.pen);
  if (K == IouKind::DIoU) return d;
  const T da = ang_b - ang_a;
  const T v = ciou_k<T>() * da * da;  // v = 4/pi^2 (atan(wb/hb) - atan(wa/ha))^2
  return d - safe_div(v, T(1) - i + v + e.alpha) * v;
}

// The same, computing the angles itself.
template <typename T, IouKind K>
CNNOPS_HD T metric(const Box<T>& a, T area_a, const Box<T>& b, T area_b, T off, MetricEps<T> e) {
  const T ang_a = K == IouKind::CIoU ? aspect_angle(a, off) : T(0);
  const T ang_b = K == IouKind::CIoU ? aspect_angle(b, off) : T(0);
  return metric<T, K>(a, area_a, ang_a, b, area_b, ang_b, off, e);
}

// ---- per-box utilities (box_convert, clip_boxes_to_image, remove_small_boxes) ----

// Box formats as ops/boxes.h's BoxFormat numbers them: corners, corner + size, centre + size.
enum BoxFmt : int { XYXY = 0, XYWH = 1, CXCYWH = 2 };

// The box at p (format in_fmt) written to q in format out_fmt, its corners sorted first.
template <typename T>
CNNOPS_HD void convert_box(const T* p, int in_fmt, int out_fmt, T* q) {
  T x1 = p[0], y1 = p[1], x2 = p[2], y2 = p[3];
  if (in_fmt == XYWH) {
    x2 = p[0] + p[2];
    y2 = p[1] + p[3];
  } else if (in_fmt == CXCYWH) {
    x1 = p[0] - T(0.5) * p[2];
    y1 = p[1] - T(0.5) * p[3];
    x2 = p[0] + T(0.5) * p[2];
    y2 = p[1] + T(0.5) * p[3];
  }
  const T xy[4] = {x1, y1, x2, y2};
  const Box<T> b = load_sorted(xy);
  if (out_fmt == XYXY) {
    q[0] = b.x1, q[1] = b.y1, q[2] = b.x2, q[3] = b.y2;
  } else if (out_fmt == XYWH) {
    q[0] = b.x1, q[1] = b.y1, q[2] = b.x2 - b.x1, q[3] = b.y2 - b.y1;
  } else {
    q[0] = (b.x1 + b.x2) / T(2), q[1] = (b.y1 + b.y2) / T(2), q[2] = b.x2 - b.x1, q[3] = b.y2 - b.y1;
  }
}

// The box at p, corners sorted, with x clamped to [0, width] and y to [0, height], written to q.
template <typename T>
CNNOPS_HD void clip_box(const T* p, T height, T width, T* q) {
  const Box<T> c = load_sorted(p);
  q[0] = std::min(std::max(c.x1, T(0)), width);
  q[1] = std::min(std::max(c.y1, T(0)), height);
  q[2] = std::min(std::max(c.x2, T(0)), width);
  q[3] = std::min(std::max(c.y2, T(0)), height);
}

// Whether the box at p (corners sorted) has width and height >= min_size.
template <typename T>
CNNOPS_HD bool large_enough(const T* p, T min_size, T off) {
  const Box<T> c = load_sorted(p);
  return c.x2 - c.x1 + off >= min_size && c.y2 - c.y1 + off >= min_size;
}

// ---- pointer forms (4 consecutive coordinates), pairwise semantics ----

// inter / union, 0 when the union is 0. area_a, area_b: box_area of a and b (precomputed by
// callers that compare one box against many).
template <typename T>
CNNOPS_HD T iou(const T* a, T area_a, const T* b, T area_b, T off) {
  return metric<T, IouKind::IoU>(load_box(a), area_a, load_box(b), area_b, off, MetricEps<T>{0, 0, 0});
}

// GIoU = IoU - (C - U) / C, C the area of the smallest enclosing box (penalty 0 when C is 0).
template <typename T>
CNNOPS_HD T giou(const T* a, T area_a, const T* b, T area_b, T off) {
  return metric<T, IouKind::GIoU>(load_box(a), area_a, load_box(b), area_b, off, pairwise_eps<T, IouKind::GIoU>(T(0)));
}

// DIoU = IoU - rho^2 / (c^2 + eps), rho the distance of the centres, c the enclosing diagonal.
template <typename T>
CNNOPS_HD T diou(const T* a, T area_a, const T* b, T area_b, T off, T eps) {
  return metric<T, IouKind::DIoU>(load_box(a), area_a, load_box(b), area_b, off, pairwise_eps<T, IouKind::DIoU>(eps));
}

// CIoU = DIoU - alpha * v, alpha = v / (1 - IoU + v + eps).
template <typename T>
CNNOPS_HD T ciou(const T* a, T area_a, const T* b, T area_b, T off, T eps) {
  return metric<T, IouKind::CIoU>(load_box(a), area_a, load_box(b), area_b, off, pairwise_eps<T, IouKind::CIoU>(eps));
}

// ---- the NMS suppression tests ----

// The suppression test "IoU > t" in torchvision's arithmetic: intersection, union and their
// quotient are computed in the boxes' dtype T (w = min(x2) - max(x1), inter = w * h,
// union = area_a + area_b - inter, iou = inter / union, each rounded to T), and the rounded iou is
// compared with t as a double. So for float32 boxes the float32 quotient decides: two boxes whose
// IoU is exactly 3/10 give iou = 0.3f > 0.3 and are suppressed at t = 0.3, while float64 boxes
// give the double nearest 0.3, which is not > 0.3.
//
// Most pairs are decided without the division. Every real q < lo rounds to a value <= t, with
// lo = t for double (rounding is monotone and t is a double) and, for float32, lo = the midpoint
// between the largest float <= t and the next float up (below it, round-to-nearest goes down).
// A pair with inter / union < lo is rejected by the sign of lo * union - inter, evaluated exactly
// (float32: the product of a 25-bit midpoint and a 24-bit union is exact in double; double: one
// fma). Only the pairs at or above lo, nearly all of which suppress, pay for the division that
// decides. Pairs without overlap (w <= 0 or h <= 0: inter 0) are rejected first.
struct IouCut {
  double t;   // the threshold, in [0, 1]
  double lo;  // inter / union < lo implies round_T(inter / union) <= t
};

// (computed on the host)
template <typename T>
inline IouCut make_iou_cut(double t) {
  if (sizeof(T) == sizeof(double)) return IouCut{t, t};
  float dn = static_cast<float>(t);
  if (static_cast<double>(dn) > t) dn = std::nextafter(dn, -1.0f);
  const float up = std::nextafter(dn, 2.0f);
  return IouCut{t, 0.5 * (static_cast<double>(dn) + static_cast<double>(up))};
}

// Exact sign test lo * uni - inter > 0, i.e. inter / uni < lo (false for a NaN union).
CNNOPS_HD bool below_cut(double lo, float uni, float inter) {
  return lo * static_cast<double>(uni) - static_cast<double>(inter) > 0.0;
}
CNNOPS_HD bool below_cut(double lo, double uni, double inter) { return std::fma(lo, uni, -inter) > 0.0; }

// IoU(a, b) > t in torchvision's arithmetic (see above) for canonical boxes a, b with areas aa, ba
// computed as (x2 - x1) * (y2 - y1) in T. Greedy, fast and cluster NMS share it, on both devices. An overflowing
// union (inf or NaN) gives "not above", as torchvision's inter / union does.
template <typename T>
CNNOPS_HD bool iou_above(T ax1, T ay1, T ax2, T ay2, T aa, T bx1, T by1, T bx2, T by2, T ba, const IouCut& c) {
  const T w = std::min(ax2, bx2) - std::max(ax1, bx1);
  if (!(w > T(0))) return false;
  const T h = std::min(ay2, by2) - std::max(ay1, by1);
  if (!(h > T(0))) return false;
  const T inter = w * h;
  const T uni = aa + ba - inter;
  if (below_cut(c.lo, uni, inter)) return false;
  return static_cast<double>(inter / uni) > c.t;
}

// DIoU(a, b) = IoU - (rho^2 / c^2)^beta > t, evaluated in T as torchvision's distance_box_iou
// evaluates IoU - rho^2 / c^2 (with eps = 0): iou = inter / union, c^2 = cw * cw + ch * ch with
// cw = max(x2) - min(x1), rho^2 = dx * dx + dy * dy with dx = (a.x1 + a.x2) / 2 - (b.x1 + b.x2) / 2,
// penalty rho^2 / c^2 (0 when c^2 is 0), each rounded to T; beta != 1 raises the penalty to beta
// in double and rounds it to T. The result iou - penalty (in T) is compared with t as a double.
// The penalty is >= 0, so the rounded DIoU never exceeds the rounded IoU: pairs the IoU cut
// rejects (and pairs without overlap) are rejected without computing it.
template <typename T>
CNNOPS_HD bool diou_above(T ax1, T ay1, T ax2, T ay2, T aa, T bx1, T by1, T bx2, T by2, T ba, const IouCut& c,
                          double beta) {
  const T w = std::min(ax2, bx2) - std::max(ax1, bx1);
  if (!(w > T(0))) return false;
  const T h = std::min(ay2, by2) - std::max(ay1, by1);
  if (!(h > T(0))) return false;
  const T inter = w * h;
  const T uni = aa + ba - inter;
  if (below_cut(c.lo, uni, inter)) return false;
  const T iou = inter / uni;
  const T cw = std::max(ax2, bx2) - std::min(ax1, bx1);
  const T ch = std::max(ay2, by2) - std::min(ay1, by1);
  const T c2 = cw * cw + ch * ch;
  const T dx = (ax1 + ax2) / T(2) - (bx1 + bx2) / T(2);
  const T dy = (ay1 + ay2) / T(2) - (by1 + by2) / T(2);
  const T rho2 = dx * dx + dy * dy;
  T pen = c2 > T(0) ? rho2 / c2 : T(0);
  if (beta != 1.0) pen = static_cast<T>(std::pow(static_cast<double>(pen), beta));
  return static_cast<double>(iou - pen) > c.t;
}

// ---- the gradient of the losses ----

// Gradient weight of the first operand of a binary min / max as torch gives it: 1 when it is the
// smaller (larger), 0 when not, 1/2 on a tie. Comparisons turned into 0/1 factors, no selects of
// computed values and no branches: for random boxes these tests are coin flips, and the loop stays
// vectorisable under GCC's default -ftrapping-math.
template <typename T>
CNNOPS_HD T min_weight(T a, T b) {
  return T(a < b) + T(0.5) * T(a == b);
}
template <typename T>
CNNOPS_HD T max_weight(T a, T b) {
  return T(a > b) + T(0.5) * T(a == b);
}

// x where c holds, else 0: an AND of x's bits with an all-ones / all-zeros mask. (A select, or even
// T(c) * x, lets GCC compute x only when c holds; under its default -ftrapping-math a loop with such
// a conditional division is not vectorised.)
template <typename T>
CNNOPS_HD T masked(T x, bool c) {
  using U = typename std::conditional<sizeof(T) == 4, uint32_t, uint64_t>::type;
  U bits;
  std::memcpy(&bits, &x, sizeof bits);
  bits &= U(0) - static_cast<U>(c);
  std::memcpy(&x, &bits, sizeof bits);
  return x;
}

// d(1 - metric)/d(coordinates) of one pair, times g, into ga[4], gb[4]. Follows metric<T, K>
// term by term with the losses' eps placement (loss_eps: for CIoU the union and the squared
// diagonal carry 1e-7 and only alpha carries eps); CIoU's alpha is a constant, as in torchvision.
// A ratio whose denominator is 0 contributes nothing: its numerator is 0 there too, or its term
// is masked; denominators are clamped to the smallest normal.
// Boxes with swapped corners are sorted first and their gradients swapped back.
template <typename T, IouKind K>
CNNOPS_HD void loss_pair_grad(const T* pa, const T* pb, T off, T eps, T g, T* ga, T* gb) {
  constexpr T tiny = std::numeric_limits<T>::min();
  const MetricEps<T> e = loss_eps<T, K>(eps);
  const T sax = T(pa[2] < pa[0]), say = T(pa[3] < pa[1]), sbx = T(pb[2] < pb[0]), sby = T(pb[3] < pb[1]);
  const Box<T> a = load_sorted(pa), b = load_sorted(pb);
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
  if (K == IouKind::GIoU) {  // metric -= (C - U) / (C + eps)
    const T dc = cw * ch + e.pen, dcs = std::max(dc, tiny);
    const T rdc = T(1) / dcs;
    const T g_c = -(du * rdc) * rdc;  // du is 0 where dc is 0
    g_cw += g_c * ch;
    g_ch += g_c * cw;
    g_uni += masked(rdc, dc > T(0));
  }
  if (K == IouKind::DIoU || K == IouKind::CIoU) {  // metric -= rho^2 / (c^2 + eps)
    const T dx = T(0.5) * ((a.x1 + a.x2) - (b.x1 + b.x2));
    const T dy = T(0.5) * ((a.y1 + a.y2) - (b.y1 + b.y2));
    const T c2 = cw * cw + ch * ch + e.pen, c2s = std::max(c2, tiny);  // rho is 0 where c2 is 0
    const T g_c2 = ((dx * dx + dy * dy) / c2s) / c2s;
    g_cw += g_c2 * T(2) * cw;
    g_ch += g_c2 * T(2) * ch;
    g_dx -= T(2) * dx / c2s;
    g_dy -= T(2) * dy / c2s;
  }
  if (K == IouKind::CIoU) {  // metric -= alpha * v, alpha held constant
    const T d = std::atan2(wb, hb) - std::atan2(wa, ha);
    const T v = ciou_k<T>() * d * d;
    const T alpha = v / std::max(T(1) - iou + v + e.alpha, tiny);  // v is 0 where that sum is 0
    const T g_d = -alpha * T(2) * ciou_k<T>() * d;
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

}  // namespace geom
}  // namespace cnnops
