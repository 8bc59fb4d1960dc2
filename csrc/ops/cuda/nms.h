// CUDA drivers of the non-max suppression family (declarations). csrc/ops/cuda/nms.cu (greedy,
// class-aware, padded, DIoU and Cluster-NMS) and nms_matrix.cu (soft, matrix and Fast NMS) say
// how the work is split; nms_sort.cu holds their radix sorts. Same names and contracts as the
// CPU drivers in ops/cpu/nms.h, with two differences the device brings: class ids come as a
// contiguous int64 or int32 tensor on the boxes' device (not a host int64 pointer), and every
// driver reads back, in one copy, its output count together with the value checks that
// ops/nms.cpp queued in `checks` (slot 0): that copy is the call's only synchronisation.
// Element indices travel as uint32 on the device: ops/nms.cpp refuses 2^31 boxes or more.
#pragma once
#include <cstdint>
#include <utility>

#include "ops/cuda/boxes.h"
#include "ops/nms.h"

namespace cnnops {
namespace cuda {

Tensor nms(const Tensor& b, const Tensor& s, const Tensor* cls, const NmsOptions& o, RowChecks& checks);
// Rows of o.max_output kept indices padded with -1 into `out` (B, M), the counts into `count` (B,).
void nms_padded(const Tensor& b, const Tensor& s, const Tensor* cls, const NmsOptions& o, Tensor& out, Tensor& count,
                RowChecks& checks);
std::pair<Tensor, Tensor> soft_nms(const Tensor& b, const Tensor& s, double iou_threshold, double sigma,
                                   double score_threshold, int method, int64_t max_output, RowChecks& checks);
std::pair<Tensor, Tensor> matrix_nms(const Tensor& b, const Tensor& s, const Tensor* cls, int method, double sigma,
                                     bool has_score_threshold, double score_threshold, int64_t top_k,
                                     int64_t max_output, RowChecks& checks);
Tensor fast_cluster_nms(const Tensor& b, const Tensor& s, const Tensor* cls, double iou_threshold,
                        bool has_score_threshold, double score_threshold, int64_t top_k, int64_t max_output,
                        bool cluster, RowChecks& checks);
// Its Cluster-NMS half (nms.cu): the fixed point of the iteration, greedy NMS's keep set over the
// top_k candidates (class ids must match when cls is given), found by the greedy scan.
Tensor cluster_nms(const Tensor& b, const Tensor& s, const Tensor* cls, double iou_threshold, bool has_score_threshold,
                   double score_threshold, int64_t top_k, int64_t max_output, RowChecks& checks);

// The most bytes the suppression mask of one row block may take (default 256 MiB); tests lower it
// to run many row blocks on small inputs. Returns the previous value.
int64_t set_nms_mask_budget(int64_t bytes);

}  // namespace cuda
}  // namespace cnnops
