// NMS family: argument checks, dtype dispatch, int64 outputs (see ops/nms.h).
#include "ops/nms.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/dispatch.h"
#include "core/error.h"
#include "ops/cpu/nms.h"

namespace cnnops {

namespace {

// Checks boxes (lead..., 4) and scores (lead...) and returns contiguous versions.
void check_boxes_scores(const char* op, const Tensor& boxes, const Tensor& scores, bool batched, Tensor& b, Tensor& s) {
  require_cpu_kernel(op, boxes);
  require_cpu_kernel(op, scores);
  CNNOPS_CHECK_TYPE(boxes.dtype == DType::Float32 || boxes.dtype == DType::Float64, op,
                    ": expected boxes with dtype float32 or float64, got ", dtype_name(boxes.dtype));
  CNNOPS_CHECK_TYPE(scores.dtype == boxes.dtype, op, ": expected scores with the boxes' dtype ",
                    dtype_name(boxes.dtype), ", got ", dtype_name(scores.dtype));
  const int64_t nd = batched ? 3 : 2;
  CNNOPS_CHECK_VALUE(boxes.ndim() == nd && boxes.shape[nd - 1] == 4, op, ": expected boxes of shape ",
                     batched ? "(B, N, 4)" : "(N, 4)", ", got ", shape_str(boxes.shape));
  std::vector<int64_t> want(boxes.shape.begin(), boxes.shape.end() - 1);
  CNNOPS_CHECK_VALUE(scores.shape == want, op, ": expected scores of shape ", shape_str(want), " (one per box), got ",
                     shape_str(scores.shape));
  b = contiguous(boxes);
  s = contiguous(scores);
}

template <typename T>
void check_values(const char* op, const T* b, const T* s, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const T* p = b + 4 * i;
    CNNOPS_CHECK_VALUE(std::isfinite(p[0]) && std::isfinite(p[1]) && std::isfinite(p[2]) && std::isfinite(p[3]), op,
                       ": expected finite box coordinates, got a NaN or Inf in box ", i);
    CNNOPS_CHECK_VALUE(p[0] <= p[2] && p[1] <= p[3], op, ": expected boxes as (x1, y1, x2, y2) with x1 <= x2 and ",
                       "y1 <= y2, got box ", i, " = (", static_cast<double>(p[0]), ", ", static_cast<double>(p[1]),
                       ", ", static_cast<double>(p[2]), ", ", static_cast<double>(p[3]), ")");
    CNNOPS_CHECK_VALUE(std::isfinite(s[i]), op, ": expected finite scores, got ", static_cast<double>(s[i]),
                       " at index ", i);
  }
}

void check_all_values(const char* op, const Tensor& b, const Tensor& s) {
  const int64_t n = s.numel();
  dispatch_float(b.dtype, op, [&](auto t) { check_values(op, b.ptr<decltype(t)>(), s.ptr<decltype(t)>(), n); });
}

// Class ids as int64, contiguous (int32 widened).
std::vector<int64_t> class_ids(const char* op, const Tensor& idxs, const std::vector<int64_t>& want) {
  require_cpu_kernel(op, idxs);
  CNNOPS_CHECK_TYPE(idxs.dtype == DType::Int64 || idxs.dtype == DType::Int32, op,
                    ": expected idxs (class ids) with dtype int64 or int32, got ", dtype_name(idxs.dtype));
  CNNOPS_CHECK_VALUE(idxs.shape == want, op, ": expected idxs of shape ", shape_str(want), " (one per box), got ",
                     shape_str(idxs.shape));
  const Tensor c = contiguous(idxs);
  const int64_t n = c.numel();
  std::vector<int64_t> v(static_cast<size_t>(n));
  if (c.dtype == DType::Int64) {
    if (n) std::memcpy(v.data(), c.data, static_cast<size_t>(n) * 8);
  } else {
    for (int64_t i = 0; i < n; ++i) v[i] = c.ptr<int32_t>()[i];
  }
  return v;
}

void check_threshold(const char* op, const char* name, double t) {
  CNNOPS_CHECK_VALUE(t >= 0.0 && t <= 1.0, op, ": expected ", name, " in [0, 1], got ", t);
}

void check_options(const char* op, const NmsOptions& o) {
  check_threshold(op, "iou_threshold", o.iou_threshold);
  CNNOPS_CHECK_VALUE(!o.has_score_threshold || !std::isnan(o.score_threshold), op,
                     ": expected score_threshold as a number, got NaN");
  CNNOPS_CHECK_VALUE(std::isfinite(o.beta) && o.beta > 0, op, ": expected beta > 0, got ", o.beta);
}

int parse_method(const char* op, const std::string& m) {
  if (m == "linear") return 0;
  if (m == "gaussian") return 1;
  throw ValueError(str(op, ": expected method 'linear' or 'gaussian', got '", m, "'"));
}

void check_sigma(const char* op, double sigma) {
  CNNOPS_CHECK_VALUE(std::isfinite(sigma) && sigma > 0, op, ": expected sigma > 0, got ", sigma);
}

}  // namespace

Tensor nms(const char* op, const Tensor& boxes, const Tensor& scores, const Tensor* idxs, const NmsOptions& o) {
  Tensor b, s;
  check_boxes_scores(op, boxes, scores, false, b, s);
  check_options(op, o);
  std::vector<int64_t> cls;
  if (idxs) cls = class_ids(op, *idxs, s.shape);
  check_all_values(op, b, s);
  const int64_t* c = idxs ? cls.data() : nullptr;
  switch (b.device.type) {
    case DeviceType::CPU: return cpu::nms(b, s, c, o);
    default: no_kernel_for_device(op, b.device);
  }
}

std::pair<Tensor, Tensor> nms_padded(const char* op, const Tensor& boxes, const Tensor& scores, const Tensor* idxs,
                                     const NmsOptions& o) {
  Tensor b, s;
  check_boxes_scores(op, boxes, scores, true, b, s);
  check_options(op, o);
  CNNOPS_CHECK_VALUE(o.max_output >= 0, op, ": expected max_output_size >= 0, got ", o.max_output);
  std::vector<int64_t> cls;
  if (idxs) cls = class_ids(op, *idxs, s.shape);
  check_all_values(op, b, s);
  const int64_t B = s.shape[0], N = s.shape[1], M = o.max_output;
  // The output has exactly max_output_size columns (the padded shape is the point of this op),
  // so a large value cannot be clamped to N. A shape whose byte count (with B = 0 counted as 1)
  // exceeds the largest int64 is refused before any allocation, as NumPy refuses to create such
  // an array; a smaller one that the machine cannot provide raises MemoryError from the allocation.
  CNNOPS_CHECK_VALUE(M == 0 || std::max<int64_t>(B, 1) <= std::numeric_limits<int64_t>::max() / 8 / M, op,
                     ": an output of shape (", B, ", ", M, ") = (B, max_output_size) int64 is too large: ",
                     "its size in bytes does not fit in a signed 64-bit integer");
  Tensor out = empty({B, M}, DType::Int64, b.device);
  Tensor cnt = empty({B}, DType::Int64, b.device);
  switch (b.device.type) {
    case DeviceType::CPU: cpu::nms_padded(b, s, idxs ? cls.data() : nullptr, o, out, cnt); break;
    default: no_kernel_for_device(op, b.device);
  }
  return {out, cnt};
}

std::pair<Tensor, Tensor> soft_nms(const char* op, const Tensor& boxes, const Tensor& scores, double iou_threshold,
                                   double sigma, double score_threshold, const std::string& method,
                                   int64_t max_output) {
  Tensor b, s;
  check_boxes_scores(op, boxes, scores, false, b, s);
  check_threshold(op, "iou_threshold", iou_threshold);
  check_sigma(op, sigma);
  CNNOPS_CHECK_VALUE(!std::isnan(score_threshold), op, ": expected score_threshold as a number, got NaN");
  const int m = parse_method(op, method);
  check_all_values(op, b, s);
  switch (b.device.type) {
    case DeviceType::CPU: return cpu::soft_nms(b, s, iou_threshold, sigma, score_threshold, m, max_output);
    default: no_kernel_for_device(op, b.device);
  }
}

std::pair<Tensor, Tensor> matrix_nms(const char* op, const Tensor& boxes, const Tensor& scores, const Tensor* idxs,
                                     const std::string& method, double sigma, bool has_score_threshold,
                                     double score_threshold, int64_t top_k, int64_t max_output) {
  Tensor b, s;
  check_boxes_scores(op, boxes, scores, false, b, s);
  const int m = parse_method(op, method);
  check_sigma(op, sigma);
  CNNOPS_CHECK_VALUE(!has_score_threshold || !std::isnan(score_threshold), op,
                     ": expected score_threshold as a number, got NaN");
  std::vector<int64_t> cls;
  if (idxs) cls = class_ids(op, *idxs, s.shape);
  check_all_values(op, b, s);
  const int64_t* c = idxs ? cls.data() : nullptr;
  switch (b.device.type) {
    case DeviceType::CPU:
      return cpu::matrix_nms(b, s, c, m, sigma, has_score_threshold, score_threshold, top_k, max_output);
    default: no_kernel_for_device(op, b.device);
  }
}

Tensor fast_cluster_nms(const char* op, const Tensor& boxes, const Tensor& scores, const Tensor* idxs,
                        double iou_threshold, bool has_score_threshold, double score_threshold, int64_t top_k,
                        int64_t max_output, bool cluster) {
  Tensor b, s;
  check_boxes_scores(op, boxes, scores, false, b, s);
  check_threshold(op, "iou_threshold", iou_threshold);
  CNNOPS_CHECK_VALUE(!has_score_threshold || !std::isnan(score_threshold), op,
                     ": expected score_threshold as a number, got NaN");
  std::vector<int64_t> cls;
  if (idxs) cls = class_ids(op, *idxs, s.shape);
  check_all_values(op, b, s);
  const int64_t* c = idxs ? cls.data() : nullptr;
  switch (b.device.type) {
    case DeviceType::CPU:
      return cpu::fast_cluster_nms(b, s, c, iou_threshold, has_score_threshold, score_threshold, top_k, max_output,
                                   cluster);
    default: no_kernel_for_device(op, b.device);
  }
}

}  // namespace cnnops
