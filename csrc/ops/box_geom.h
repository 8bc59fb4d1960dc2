// Per-pair box geometry shared by the IoU family (ops/cpu/boxes.cpp) and the NMS family, for
// any device: IoU, GIoU, DIoU and CIoU of two boxes, templated on float/double. Header-only and
// inline so that a one-box-vs-many loop (NMS) or an N x M loop (box_iou) compiles to
// straight-line, vectorisable code.
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
// The backward of these formulas lives in ops/cpu/boxes_rows.h.
#pragma once
#include <algorithm>
#include <cmath>
#include <limits>

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
inline Box<T> load_box(const T* b) {
  return Box<T>{b[0], b[1], b[2], b[3]};
}

// The box at b with its corners sorted (x1 <= x2, y1 <= y2): what canonicalize=True means.
template <typename T>
inline Box<T> load_sorted(const T* b) {
  return Box<T>{std::min(b[0], b[2]), std::min(b[1], b[3]), std::max(b[0], b[2]), std::max(b[1], b[3])};
}

template <typename T>
inline T box_area(const Box<T>& b, T off) {
  return (b.x2 - b.x1 + off) * (b.y2 - b.y1 + off);
}
template <typename T>
inline T box_area(const T* b, T off) {
  return box_area(load_box(b), off);
}

// q / d for d > 0 and 0 for d == 0, for the ratios of the contract, where d >= 0 always and d == 0
// implies q == 0 (union 0 -> intersection 0; enclosing area or diagonal 0 -> both boxes the same
// point; 1 - IoU + v = 0 -> v = 0). Written as a division by max(d, smallest normal) because GCC
// does not if-convert a select on a float comparison (-ftrapping-math), and a select would keep
// the pairwise loops scalar; a max is vectorised. (A positive subnormal d is rounded up to the
// smallest normal: boxes of area below 1e-38 only.)
template <typename T>
inline T safe_div(T q, T d) {
  return q / std::max(d, std::numeric_limits<T>::min());
}

// Intersection area of two canonical boxes (0 when they do not overlap).
template <typename T>
inline T inter_area(const Box<T>& a, const Box<T>& b, T off) {
  const T iw = std::min(a.x2, b.x2) - std::max(a.x1, b.x1) + off;
  const T ih = std::min(a.y2, b.y2) - std::max(a.y1, b.y1) + off;
  return std::max(iw, T(0)) * std::max(ih, T(0));  // no branch: the loops stay vectorisable
}

// The CIoU aspect angle atan2(w, h) of a box (= atan(w / h) for h > 0; 0 for a point box).
template <typename T>
inline T aspect_angle(const Box<T>& b, T off) {
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
inline MetricEps<T> pairwise_eps(T eps) {
  return MetricEps<T>{T(0), K == IouKind::GIoU ? T(0) : eps, eps};
}

// torchvision's placement for the losses: generalized_box_iou_loss and distance_box_iou_loss add
// eps to the union and to the enclosing area / squared diagonal (our iou_loss to the union);
// complete_box_iou_loss computes its IoU and DIoU term through the DIoU loss helper called without
// eps, so there the union and the squared diagonal get that helper's default 1e-7 whatever eps is,
// and eps itself only reaches alpha = v / (1 - IoU + v + eps).
template <typename T, IouKind K>
inline MetricEps<T> loss_eps(T eps) {
  if (K == IouKind::CIoU) return MetricEps<T>{T(1e-7), T(1e-7), eps};
  return MetricEps<T>{eps, eps, eps};
}

// The metric of kind K between canonical boxes a and b, with eps placed as `e` says. ang_a, ang_b:
// aspect_angle of a and b (read for CIoU only), so a one-vs-many loop computes each once and the
// loop itself stays free of calls.
template <typename T, IouKind K>
inline T metric(const Box<T>& a, T area_a, T ang_a, const Box<T>& b, T area_b, T ang_b, T off, MetricEps<T> e) {
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
inline T metric(const Box<T>& a, T area_a, const Box<T>& b, T area_b, T off, MetricEps<T> e) {
  const T ang_a = K == IouKind::CIoU ? aspect_angle(a, off) : T(0);
  const T ang_b = K == IouKind::CIoU ? aspect_angle(b, off) : T(0);
  return metric<T, K>(a, area_a, ang_a, b, area_b, ang_b, off, e);
}

// ---- pointer forms (4 consecutive coordinates), pairwise semantics ----

// inter / union, 0 when the union is 0. area_a, area_b: box_area of a and b (precomputed by
// callers that compare one box against many).
template <typename T>
inline T iou(const T* a, T area_a, const T* b, T area_b, T off) {
  return metric<T, IouKind::IoU>(load_box(a), area_a, load_box(b), area_b, off, MetricEps<T>{0, 0, 0});
}

// GIoU = IoU - (C - U) / C, C the area of the smallest enclosing box (penalty 0 when C is 0).
template <typename T>
inline T giou(const T* a, T area_a, const T* b, T area_b, T off) {
  return metric<T, IouKind::GIoU>(load_box(a), area_a, load_box(b), area_b, off, pairwise_eps<T, IouKind::GIoU>(T(0)));
}

// DIoU = IoU - rho^2 / (c^2 + eps), rho the distance of the centres, c the enclosing diagonal.
template <typename T>
inline T diou(const T* a, T area_a, const T* b, T area_b, T off, T eps) {
  return metric<T, IouKind::DIoU>(load_box(a), area_a, load_box(b), area_b, off, pairwise_eps<T, IouKind::DIoU>(eps));
}

// CIoU = DIoU - alpha * v, alpha = v / (1 - IoU + v + eps).
template <typename T>
inline T ciou(const T* a, T area_a, const T* b, T area_b, T off, T eps) {
  return metric<T, IouKind::CIoU>(load_box(a), area_a, load_box(b), area_b, off, pairwise_eps<T, IouKind::CIoU>(eps));
}

}  // namespace geom
}  // namespace cnnops
