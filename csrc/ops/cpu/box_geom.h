// Per-pair box geometry shared by the IoU family (ops/cpu/boxes.cpp) and the NMS family: IoU,
// GIoU, DIoU and CIoU of two boxes, templated on float/double. Header-only and inline so that a
// one-box-vs-many loop (NMS) or an N x M loop (box_iou) compiles to straight-line, vectorisable code.
//
// Conventions (the contract written in python/cnnops/boxes.py and the README):
//   * boxes are (x1, y1, x2, y2) with x1 <= x2, y1 <= y2 ("canonical"; callers check or sort them);
//   * `off` is the pixel convention: 0 (default, continuous coordinates) or 1 (width = x2 - x1 + 1),
//     applied to every width and height: areas, intersection, enclosing box and CIoU aspect ratio;
//   * degenerate cases never give NaN: IoU is 0 when the union (+ eps) is 0, the GIoU penalty is 0
//     when the enclosing area (+ eps) is 0, the DIoU penalty is 0 when the enclosing diagonal (+ eps)
//     is 0, the CIoU aspect term uses atan2(w, h) (= atan(w / h) for h > 0, 0 for a point box) and
//     its weight alpha is 0 when 1 - IoU + v (+ eps) is 0;
//   * eps is added exactly where torchvision adds it (the losses: union, enclosing area, squared
//     diagonal, alpha's denominator), so eps = 0 gives the plain pairwise box_iou / generalized_box_iou.
#pragma once
#include <algorithm>
#include <cmath>

namespace cnnops {
namespace geom {

enum class IouKind { IoU = 0, GIoU = 1, DIoU = 2, CIoU = 3 };

// 4 / pi^2, the CIoU aspect-ratio constant.
template <typename T>
constexpr T ciou_k() {
  return T(0.40528473456935108577551785283891);
}

template <typename T>
inline T box_area(T x1, T y1, T x2, T y2, T off) {
  return (x2 - x1 + off) * (y2 - y1 + off);
}
template <typename T>
inline T box_area(const T* b, T off) {
  return box_area(b[0], b[1], b[2], b[3], off);
}

// Intersection area of two canonical boxes (0 when they do not overlap).
template <typename T>
inline T inter_area(const T* a, const T* b, T off) {
  const T iw = std::min(a[2], b[2]) - std::max(a[0], b[0]) + off;
  const T ih = std::min(a[3], b[3]) - std::max(a[1], b[1]) + off;
  return (iw > T(0) && ih > T(0)) ? iw * ih : T(0);
}

// inter / (union + eps), 0 when union + eps <= 0. area_a, area_b: box_area of a and b
// (precomputed by callers that compare one box against many).
template <typename T>
inline T iou(const T* a, T area_a, const T* b, T area_b, T off, T eps = T(0)) {
  const T inter = inter_area(a, b, off);
  const T den = area_a + area_b - inter + eps;
  return den > T(0) ? inter / den : T(0);
}

// True when IoU(a, b) > thr, decided exactly as `iou(...) > thr` would be (same division), the
// test greedy NMS makes for every remaining box.
template <typename T>
inline bool iou_above(const T* a, T area_a, const T* b, T area_b, T off, T thr) {
  return iou(a, area_a, b, area_b, off) > thr;
}

// GIoU = IoU - (C - U) / (C + eps), C the area of the smallest enclosing box.
template <typename T>
inline T giou(const T* a, T area_a, const T* b, T area_b, T off, T eps = T(0)) {
  const T inter = inter_area(a, b, off);
  const T uni = area_a + area_b - inter;
  const T den = uni + eps;
  const T v = den > T(0) ? inter / den : T(0);
  const T cw = std::max(a[2], b[2]) - std::min(a[0], b[0]) + off;
  const T ch = std::max(a[3], b[3]) - std::min(a[1], b[1]) + off;
  const T c = cw * ch + eps;
  return c > T(0) ? v - (cw * ch - uni) / c : v;
}

// Squared distance of the centres over the squared diagonal of the enclosing box (+ eps): the
// DIoU penalty; 0 when the diagonal (+ eps) is 0.
template <typename T>
inline T diou_penalty(const T* a, const T* b, T off, T eps) {
  const T cw = std::max(a[2], b[2]) - std::min(a[0], b[0]) + off;
  const T ch = std::max(a[3], b[3]) - std::min(a[1], b[1]) + off;
  const T c2 = cw * cw + ch * ch + eps;
  const T dx = T(0.5) * ((a[0] + a[2]) - (b[0] + b[2]));
  const T dy = T(0.5) * ((a[1] + a[3]) - (b[1] + b[3]));
  return c2 > T(0) ? (dx * dx + dy * dy) / c2 : T(0);
}

// DIoU = IoU - rho^2 / (c^2 + eps). IoU itself carries no eps here (torchvision's
// distance_box_iou); the losses pass their eps through iou() themselves.
template <typename T>
inline T diou(const T* a, T area_a, const T* b, T area_b, T off, T eps) {
  return iou(a, area_a, b, area_b, off) - diou_penalty(a, b, off, eps);
}

// The CIoU aspect-ratio term v = 4/pi^2 (atan(wb/hb) - atan(wa/ha))^2 (atan2 form, never NaN).
template <typename T>
inline T ciou_v(const T* a, const T* b, T off) {
  const T d = std::atan2(b[2] - b[0] + off, b[3] - b[1] + off) - std::atan2(a[2] - a[0] + off, a[3] - a[1] + off);
  return ciou_k<T>() * d * d;
}

// alpha = v / (1 - IoU + v + eps), 0 when that denominator is 0.
template <typename T>
inline T ciou_alpha(T iou_v, T v, T eps) {
  const T den = T(1) - iou_v + v + eps;
  return den > T(0) ? v / den : T(0);
}

// CIoU = DIoU - alpha * v (torchvision's complete_box_iou: IoU without eps, eps in the diagonal
// and in alpha's denominator).
template <typename T>
inline T ciou(const T* a, T area_a, const T* b, T area_b, T off, T eps) {
  const T i = iou(a, area_a, b, area_b, off);
  const T v = ciou_v(a, b, off);
  return i - diou_penalty(a, b, off, eps) - ciou_alpha(i, v, eps) * v;
}

// One of the four by kind (pairwise form: eps only where torchvision's pairwise functions add it).
template <typename T>
inline T pair_metric(IouKind kind, const T* a, T area_a, const T* b, T area_b, T off, T eps) {
  switch (kind) {
    case IouKind::IoU: return iou(a, area_a, b, area_b, off);
    case IouKind::GIoU: return giou(a, area_a, b, area_b, off);
    case IouKind::DIoU: return diou(a, area_a, b, area_b, off, eps);
    case IouKind::CIoU: return ciou(a, area_a, b, area_b, off, eps);
  }
  return T(0);
}

}  // namespace geom
}  // namespace cnnops
