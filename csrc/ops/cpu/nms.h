// CPU kernels of the non-max suppression family (greedy, class-aware, DIoU, soft, matrix, fast,
// cluster). Inputs are contiguous, checked by ops/nms.cpp: boxes (n, 4) as (x1, y1, x2, y2) with
// x1 <= x2, y1 <= y2, finite; scores (n,) finite; class ids (n,) int64 or null.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "ops/box_geom.h"
#include "ops/nms.h"

namespace cnnops {
namespace cpu {

// Below this many candidates (all images or classes together) greedy NMS stays on one thread:
// waking a second one costs more than the work (measured in ops/cpu/nms.cpp).
constexpr int64_t kNmsParallelMin = 65536;

// The suppression tests (geom::IouCut, geom::make_iou_cut, geom::iou_above, geom::diou_above) live
// in ops/box_geom.h, shared with the CUDA kernels.
using geom::iou_above;
using geom::IouCut;
using geom::make_iou_cut;

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
