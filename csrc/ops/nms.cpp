// NMS family: argument checks, dtype dispatch, int64 outputs (see ops/nms.h).
#include "ops/nms.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/dispatch.h"
#include "core/error.h"
#include "ops/boxes.h"
#include "ops/cpu/nms.h"
#include "ops/cuda/nms.h"

namespace cnnops {

namespace {

// Checks boxes (lead..., 4) and scores (lead...) and returns contiguous versions.
void check_boxes_scores(const char* op, const Tensor& boxes, const Tensor& scores, bool batched, Tensor& b, Tensor& s) {
  require_kernel(op, boxes);
  require_kernel(op, scores);
  CNNOPS_CHECK_TYPE(boxes.dtype == DType::Float32 || boxes.dtype == DType::Float64, op,
                    ": expected boxes with dtype float32 or float64, got ", dtype_name(boxes.dtype));
  CNNOPS_CHECK_TYPE(scores.dtype == boxes.dtype, op, ": expected scores with the boxes' dtype ",
                    dtype_name(boxes.dtype), ", got ", dtype_name(scores.dtype));
  CNNOPS_CHECK_TYPE(scores.device == boxes.device, op, ": expected scores on the boxes' device ",
                    device_name(boxes.device), ", got ", device_name(scores.device));
  const int64_t nd = batched ? 3 : 2;
  CNNOPS_CHECK_VALUE(boxes.ndim() == nd && boxes.shape[nd - 1] == 4, op, ": expected boxes of shape ",
                     batched ? "(B, N, 4)" : "(N, 4)", ", got ", shape_str(boxes.shape));
  std::vector<int64_t> want(boxes.shape.begin(), boxes.shape.end() - 1);
  CNNOPS_CHECK_VALUE(scores.shape == want, op, ": expected scores of shape ", shape_str(want), " (one per box), got ",
                     shape_str(scores.shape));
  // the CUDA kernels carry box indices as uint32
  constexpr int64_t kCudaMax = (int64_t(1) << 31) - 1;
  CNNOPS_CHECK_VALUE(boxes.device.type != DeviceType::CUDA || scores.numel() <= kCudaMax, op,
                     ": expected at most 2**31 - 1 boxes in a call on a CUDA device, got ", scores.numel());
  b = contiguous(boxes);
  s = contiguous(scores);
}

// ValueError for the first box (flattened index) that breaks a value rule (nothing when row < 0).
void raise_bad_nms_row(const char* op, const BadRow& r) {
  if (r.row < 0) return;
  const int64_t i = r.row;
  if (r.rule == kNonFinite) throw ValueError(str(op, ": expected finite box coordinates, got a NaN or Inf in box ", i));
  if (r.rule == kUnordered)
    throw ValueError(str(op, ": expected boxes as (x1, y1, x2, y2) with x1 <= x2 and ", "y1 <= y2, got box ", i, " = (",
                         r.v[0], ", ", r.v[1], ", ", r.v[2], ", ", r.v[3], ")"));
  throw ValueError(str(op, ": expected finite scores, got ", r.v[4], " at index ", i));
}

template <typename T>
BadRow first_bad(const T* b, const T* s, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const T* p = b + 4 * i;
    int rule = kBadNone;
    if (!(std::isfinite(p[0]) && std::isfinite(p[1]) && std::isfinite(p[2]) && std::isfinite(p[3]))) rule = kNonFinite;
    else if (!(p[0] <= p[2] && p[1] <= p[3])) rule = kUnordered;
    else if (!std::isfinite(s[i])) rule = kNonFiniteScore;
    if (rule != kBadNone) {
      BadRow r{i, rule, 0, {}};
      for (int k = 0; k < 4; ++k) r.v[k] = static_cast<double>(p[k]);
      r.v[4] = static_cast<double>(s[i]);
      return r;
    }
  }
  return BadRow{-1, kBadNone, 0, {}};
}

// The value checks of CPU boxes and scores (on the host, before the kernel runs). CUDA arrays are
// checked by a kernel queued before the driver's, whose result comes back with the driver's
// output count in one copy (cuda::RowChecks).
void check_all_values(const char* op, const Tensor& b, const Tensor& s) {
  const int64_t n = s.numel();
  dispatch_float(b.dtype, op, [&](auto t) {
    using T = decltype(t);
    raise_bad_nms_row(op, first_bad(b.ptr<T>(), s.ptr<T>(), n));
  });
}

// Class ids: int64 or int32, one per box, on the boxes' device; contiguous.
Tensor class_tensor(const char* op, const Tensor& idxs, const Tensor& boxes, const std::vector<int64_t>& want) {
  require_kernel(op, idxs);
  CNNOPS_CHECK_TYPE(idxs.dtype == DType::Int64 || idxs.dtype == DType::Int32, op,
                    ": expected idxs (class ids) with dtype int64 or int32, got ", dtype_name(idxs.dtype));
  CNNOPS_CHECK_TYPE(idxs.device == boxes.device, op, ": expected idxs on the boxes' device ", device_name(boxes.device),
                    ", got ", device_name(idxs.device));
  CNNOPS_CHECK_VALUE(idxs.shape == want, op, ": expected idxs of shape ", shape_str(want), " (one per box), got ",
                     shape_str(idxs.shape));
  return contiguous(idxs);
}

// Class ids of a CPU call as host int64 (int32 widened).
std::vector<int64_t> host_class_ids(const Tensor& c) {
  const int64_t n = c.numel();
  std::vector<int64_t> v(static_cast<size_t>(n));
  if (c.dtype == DType::Int64) {
    if (n) std::memcpy(v.data(), c.data, static_cast<size_t>(n) * 8);
  } else {
    for (int64_t i = 0; i < n; ++i) v[i] = c.ptr<int32_t>()[i];
  }
  return v;
}

#ifdef CNNOPS_WITH_CUDA
// The value checks of a CUDA call, queued on the device: slot 0 for the boxes and scores, one
// counter for the driver's output count.
struct DeviceChecks {
  const char* op;
  cuda::RowChecks rows;
  DeviceChecks(const char* o, const Tensor& b, const Tensor& s) : op(o), rows(b.device.index, 1, 1) {
    rows.boxes_scores(0, b, s);
  }
  void raise() { raise_bad_nms_row(op, rows.row(0)); }
};
#endif

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
  Tensor c;
  if (idxs) c = class_tensor(op, *idxs, b, s.shape);
  switch (b.device.type) {
    case DeviceType::CPU: {
      check_all_values(op, b, s);
      const std::vector<int64_t> cls = idxs ? host_class_ids(c) : std::vector<int64_t>{};
      return cpu::nms(b, s, idxs ? cls.data() : nullptr, o);
    }
#ifdef CNNOPS_WITH_CUDA
    case DeviceType::CUDA: {
      DeviceChecks ck(op, b, s);
      Tensor keep = cuda::nms(b, s, idxs ? &c : nullptr, o, ck.rows);
      ck.raise();
      return keep;
    }
#endif
    default: no_kernel_for_device(op, b.device);
  }
}

std::pair<Tensor, Tensor> nms_padded(const char* op, const Tensor& boxes, const Tensor& scores, const Tensor* idxs,
                                     const NmsOptions& o) {
  Tensor b, s;
  check_boxes_scores(op, boxes, scores, true, b, s);
  check_options(op, o);
  CNNOPS_CHECK_VALUE(o.max_output >= 0, op, ": expected max_output_size >= 0, got ", o.max_output);
  Tensor c;
  if (idxs) c = class_tensor(op, *idxs, b, s.shape);
  if (b.device.type == DeviceType::CPU) check_all_values(op, b, s);
  const int64_t B = s.shape[0], M = o.max_output;
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
    case DeviceType::CPU: {
      const std::vector<int64_t> cls = idxs ? host_class_ids(c) : std::vector<int64_t>{};
      cpu::nms_padded(b, s, idxs ? cls.data() : nullptr, o, out, cnt);
      break;
    }
#ifdef CNNOPS_WITH_CUDA
    case DeviceType::CUDA: {
      DeviceChecks ck(op, b, s);
      cuda::nms_padded(b, s, idxs ? &c : nullptr, o, out, cnt, ck.rows);
      ck.raise();
      break;
    }
#endif
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
  switch (b.device.type) {
    case DeviceType::CPU:
      check_all_values(op, b, s);
      return cpu::soft_nms(b, s, iou_threshold, sigma, score_threshold, m, max_output);
#ifdef CNNOPS_WITH_CUDA
    case DeviceType::CUDA: {
      DeviceChecks ck(op, b, s);
      auto r = cuda::soft_nms(b, s, iou_threshold, sigma, score_threshold, m, max_output, ck.rows);
      ck.raise();
      return r;
    }
#endif
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
  Tensor c;
  if (idxs) c = class_tensor(op, *idxs, b, s.shape);
  switch (b.device.type) {
    case DeviceType::CPU: {
      check_all_values(op, b, s);
      const std::vector<int64_t> cls = idxs ? host_class_ids(c) : std::vector<int64_t>{};
      return cpu::matrix_nms(b, s, idxs ? cls.data() : nullptr, m, sigma, has_score_threshold, score_threshold, top_k,
                             max_output);
    }
#ifdef CNNOPS_WITH_CUDA
    case DeviceType::CUDA: {
      DeviceChecks ck(op, b, s);
      auto r = cuda::matrix_nms(b, s, idxs ? &c : nullptr, m, sigma, has_score_threshold, score_threshold, top_k,
                                max_output, ck.rows);
      ck.raise();
      return r;
    }
#endif
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
  Tensor c;
  if (idxs) c = class_tensor(op, *idxs, b, s.shape);
  switch (b.device.type) {
    case DeviceType::CPU: {
      check_all_values(op, b, s);
      const std::vector<int64_t> cls = idxs ? host_class_ids(c) : std::vector<int64_t>{};
      return cpu::fast_cluster_nms(b, s, idxs ? cls.data() : nullptr, iou_threshold, has_score_threshold,
                                   score_threshold, top_k, max_output, cluster);
    }
#ifdef CNNOPS_WITH_CUDA
    case DeviceType::CUDA: {
      DeviceChecks ck(op, b, s);
      Tensor keep = cuda::fast_cluster_nms(b, s, idxs ? &c : nullptr, iou_threshold, has_score_threshold,
                                           score_threshold, top_k, max_output, cluster, ck.rows);
      ck.raise();
      return keep;
    }
#endif
    default: no_kernel_for_device(op, b.device);
  }
}

}  // namespace cnnops
