// Non-max suppression family: argument checks, dtype dispatch and the int64 outputs. The kernels
// live in ops/cpu/nms.cpp (greedy, class-aware, DIoU, soft) and ops/cpu/nms_matrix.cpp (matrix,
// fast, cluster), and for CUDA arrays in ops/cuda/nms.cu, nms_matrix.cu and nms_sort.cu. Every
// entry point takes boxes (N, 4) as (x1, y1, x2, y2) and scores (N,) of the same floating dtype;
// class ids (N,) are int64 or int32; all on one device. Checks: shapes, dtypes, devices, finite
// coordinates and scores, x1 <= x2 and y1 <= y2, thresholds in range (the values of CUDA arrays
// by a kernel whose result comes back with the output count).
#pragma once
#include <cstdint>
#include <string>
#include <utility>

#include "core/tensor.h"

namespace cnnops {

enum class NmsCriterion { IoU = 0, DIoU = 1 };

struct NmsOptions {
  double iou_threshold = 0.5;
  bool has_score_threshold = false;
  double score_threshold = 0.0;  // candidates need score > score_threshold
  int64_t max_output = -1;       // < 0: no limit
  NmsCriterion criterion = NmsCriterion::IoU;
  double beta = 1.0;  // DIoU penalty exponent
};

// Greedy NMS (IoU or DIoU criterion, class-aware when idxs != null) -> kept indices (K,) int64.
Tensor nms(const char* op, const Tensor& boxes, const Tensor& scores, const Tensor* idxs, const NmsOptions& o);

// Padded batched NMS: boxes (B, N, 4), scores (B, N), idxs (B, N) or null; o.max_output >= 0 is
// the row length -> (indices (B, max_output) int64 padded with -1, valid counts (B,) int64).
std::pair<Tensor, Tensor> nms_padded(const char* op, const Tensor& boxes, const Tensor& scores, const Tensor* idxs,
                                     const NmsOptions& o);

// Soft-NMS -> (kept indices (K,) int64, their decayed scores (K,) in the input dtype).
std::pair<Tensor, Tensor> soft_nms(const char* op, const Tensor& boxes, const Tensor& scores, double iou_threshold,
                                   double sigma, double score_threshold, const std::string& method, int64_t max_output);

// Matrix NMS -> (kept indices (K,) int64, decayed scores (K,)), sorted by decayed score.
std::pair<Tensor, Tensor> matrix_nms(const char* op, const Tensor& boxes, const Tensor& scores, const Tensor* idxs,
                                     const std::string& method, double sigma, bool has_score_threshold,
                                     double score_threshold, int64_t top_k, int64_t max_output);

// Fast NMS (cluster = false) or Cluster-NMS (cluster = true) -> kept indices (K,) int64.
Tensor fast_cluster_nms(const char* op, const Tensor& boxes, const Tensor& scores, const Tensor* idxs,
                        double iou_threshold, bool has_score_threshold, double score_threshold, int64_t top_k,
                        int64_t max_output, bool cluster);

}  // namespace cnnops
