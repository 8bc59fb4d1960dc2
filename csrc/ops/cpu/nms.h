// CPU kernels of the non-max suppression family (greedy, class-aware, DIoU, soft, matrix, fast,
// cluster). Inputs are contiguous, checked by ops/nms.cpp: boxes (n, 4) as (x1, y1, x2, y2) with
// x1 <= x2, y1 <= y2, finite; scores (n,) finite; class ids (n,) int64 or null.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "ops/nms.h"

namespace cnnops {
namespace cpu {

// Below this many candidates (all images or classes together) greedy NMS stays on one thread:
// waking a second one costs more than the work (measured in ops/cpu/nms.cpp).
constexpr int64_t kNmsParallelMin = 65536;

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

template <typename T>
inline IouCut make_iou_cut(double t) {
  if (sizeof(T) == sizeof(double)) return IouCut{t, t};
  float dn = static_cast<float>(t);
  if (static_cast<double>(dn) > t) dn = std::nextafter(dn, -1.0f);
  const float up = std::nextafter(dn, 2.0f);
  return IouCut{t, 0.5 * (static_cast<double>(dn) + static_cast<double>(up))};
}

// Exact sign test lo * uni - inter > 0, i.e. inter / uni < lo (false for a NaN union).
inline bool below_cut(double lo, float uni, float inter) {
  return lo * static_cast<double>(uni) - static_cast<double>(inter) > 0.0;
}
inline bool below_cut(double lo, double uni, double inter) { return std::fma(lo, uni, -inter) > 0.0; }

// IoU(a, b) > t in torchvision's arithmetic (see above) for canonical boxes a, b with areas aa, ba
// computed as (x2 - x1) * (y2 - y1) in T. Greedy, fast and cluster NMS share it. An overflowing
// union (inf or NaN) gives "not above", as torchvision's inter / union does.
template <typename T>
inline bool iou_above(T ax1, T ay1, T ax2, T ay2, T aa, T bx1, T by1, T bx2, T by2, T ba, const IouCut& c) {
  const T w = std::min(ax2, bx2) - std::max(ax1, bx1);
  if (!(w > T(0))) return false;
  const T h = std::min(ay2, by2) - std::max(ay1, by1);
  if (!(h > T(0))) return false;
  const T inter = w * h;
  const T uni = aa + ba - inter;
  if (below_cut(c.lo, uni, inter)) return false;
  return static_cast<double>(inter / uni) > c.t;
}

// Greedy NMS over one set of boxes (class-aware when cls != null): kept indices in descending
// score order (ties: lower index first), at most max_output of them. `parallel`: may use the
// thread pool (per class); false inside an outer parallel region.
template <typename T>
std::vector<int64_t> greedy_nms(const T* boxes, const T* scores, const int64_t* cls, int64_t n, const NmsOptions& o,
                                bool parallel);

// Soft-NMS (Bodla et al. 2017): selection order and the score each box had when selected.
// method 0 = linear, 1 = gaussian (weight exp(-iou^2 / sigma)).
template <typename T>
void soft_nms(const T* boxes, const T* scores, int64_t n, double iou_threshold, double sigma, double score_threshold,
              int method, int64_t max_output, std::vector<int64_t>& keep, std::vector<T>& kept_scores);

// Matrix NMS (SOLOv2): decayed scores of the top_k candidates, returned sorted by decayed score
// (after the score_threshold filter and the max_output cut). method 0 = linear, 1 = gaussian.
template <typename T>
void matrix_nms(const T* boxes, const T* scores, const int64_t* cls, int64_t n, int method, double sigma,
                bool has_score_threshold, double score_threshold, int64_t top_k, int64_t max_output,
                std::vector<int64_t>& keep, std::vector<T>& decayed);

// Fast NMS (YOLACT) when cluster == false, Cluster-NMS (Zheng et al. 2021) when true, over the
// top_k candidates by score: kept indices in descending score order.
template <typename T>
std::vector<int64_t> fast_cluster_nms(const T* boxes, const T* scores, const int64_t* cls, int64_t n,
                                      double iou_threshold, bool has_score_threshold, double score_threshold,
                                      int64_t top_k, int64_t max_output, bool cluster);

// Candidate order shared by every kernel: indices with score > threshold (all when !has_thr),
// sorted by descending score, ties by ascending index. -0.0 and +0.0 compare equal.
template <typename T>
std::vector<int64_t> sort_candidates(const T* scores, int64_t n, bool has_thr, double thr);

// ---- drivers (nms_driver.cpp): contiguous, checked CPU tensors; class ids as int64 or null ----
Tensor nms(const Tensor& b, const Tensor& s, const int64_t* cls, const NmsOptions& o);
// Rows of o.max_output kept indices padded with -1 into `out` (B, M), the counts into `count` (B,).
void nms_padded(const Tensor& b, const Tensor& s, const int64_t* cls, const NmsOptions& o, Tensor& out, Tensor& count);
std::pair<Tensor, Tensor> soft_nms(const Tensor& b, const Tensor& s, double iou_threshold, double sigma,
                                   double score_threshold, int method, int64_t max_output);
std::pair<Tensor, Tensor> matrix_nms(const Tensor& b, const Tensor& s, const int64_t* cls, int method, double sigma,
                                     bool has_score_threshold, double score_threshold, int64_t top_k,
                                     int64_t max_output);
Tensor fast_cluster_nms(const Tensor& b, const Tensor& s, const int64_t* cls, double iou_threshold,
                        bool has_score_threshold, double score_threshold, int64_t top_k, int64_t max_output,
                        bool cluster);

}  // namespace cpu
}  // namespace cnnops
