// Box utilities and the IoU family: argument checks and dispatch to the CPU loops or the CUDA
// kernels.
#include "ops/boxes.h"

#include <cmath>
#include <cstdio>
#include <memory>

#include "core/dispatch.h"
#include "core/error.h"
#include "ops/cpu/boxes.h"
#include "ops/cuda/boxes.h"

namespace cnnops {

BoxFormat parse_box_format(const std::string& s, const char* op, const char* name) {
  if (s == "xyxy") return BoxFormat::XYXY;
  if (s == "xywh") return BoxFormat::XYWH;
  if (s == "cxcywh") return BoxFormat::CXCYWH;
  throw ValueError(str(op, ": expected ", name, " 'xyxy', 'xywh' or 'cxcywh', got '", s, "'"));
}

Reduction parse_reduction(const std::string& s, const char* op) {
  if (s == "none") return Reduction::None;
  if (s == "mean") return Reduction::Mean;
  if (s == "sum") return Reduction::Sum;
  throw ValueError(str(op, ": expected reduction 'none', 'mean' or 'sum', got '", s, "'"));
}

geom::IouKind parse_iou_kind(const std::string& s, const char* op) {
  if (s == "iou") return geom::IouKind::IoU;
  if (s == "giou") return geom::IouKind::GIoU;
  if (s == "diou") return geom::IouKind::DIoU;
  if (s == "ciou") return geom::IouKind::CIoU;
  throw ValueError(str(op, ": expected kind 'iou', 'giou', 'diou' or 'ciou', got '", s, "'"));
}

namespace {
// "(x1, y1, x2, y2)" with each value in its shortest round-trip-ish form (%.9g).
std::string row_str(const double* r) {
  std::string s = "(";
  for (int k = 0; k < 4; ++k) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.9g", r[k]);
    s += (k ? ", " : "");
    s += buf;
  }
  return s + ")";
}

// First row with a non-finite coordinate, or with unordered corners (when `ordered`), as a BadRow.
template <typename T>
BadRow first_bad_row(const T* b, int64_t n, BoxFormat fmt, bool ordered) {
  BadRow r{-1, kBadNone, 0, {}};
  for (int64_t i = 0; i < n; ++i) {
    const T* p = b + 4 * i;
    if (!(std::isfinite(p[0]) && std::isfinite(p[1]) && std::isfinite(p[2]) && std::isfinite(p[3]))) {
      r.rule = kNonFinite;
    } else if (ordered) {
      const bool ok = fmt == BoxFormat::XYXY ? (p[0] <= p[2] && p[1] <= p[3]) : (p[2] >= T(0) && p[3] >= T(0));
      if (!ok) r.rule = kUnordered;
    }
    if (r.rule != kBadNone) {
      r.row = i;
      for (int k = 0; k < 4; ++k) r.v[k] = static_cast<double>(p[k]);
      return r;
    }
  }
  return r;
}

// Whether any row breaks the rules: one branch-free pass the compiler vectorises (x - x is 0 for
// finite x and NaN for inf or NaN); the slow search above runs only to name the row.
template <typename T>
bool any_bad_row(const T* b, int64_t n, BoxFormat fmt, bool ordered) {
  const bool xyxy = fmt == BoxFormat::XYXY;
  int bad = 0;
  for (int64_t i = 0; i < n; ++i) {
    const T x1 = b[4 * i], y1 = b[4 * i + 1], x2 = b[4 * i + 2], y2 = b[4 * i + 3];
    const T z = (x1 - x1) + (y1 - y1) + (x2 - x2) + (y2 - y2);
    bad |= static_cast<int>(!(z == T(0)));
    if (ordered)
      bad |= xyxy ? (static_cast<int>(x2 < x1) | static_cast<int>(y2 < y1))
                  : (static_cast<int>(x2 < T(0)) | static_cast<int>(y2 < T(0)));
  }
  return bad != 0;
}

// The value checks of a contiguous CPU boxes argument.
void check_rows(const char* op, const Tensor& t, const char* name, BoxFormat fmt, bool canonicalize) {
  dispatch_float(t.dtype, op, [&](auto tag) {
    using T = decltype(tag);
    const T* b = t.ptr<T>();
    if (any_bad_row(b, t.size(0), fmt, !canonicalize))
      raise_bad_box_row(op, name, fmt, first_bad_row(b, t.size(0), fmt, !canonicalize));
  });
}

// dtype, device and shape of a boxes argument.
void check_boxes_static(const char* op, const Tensor& boxes, const char* name) {
  CNNOPS_CHECK_TYPE(boxes.dtype == DType::Float32 || boxes.dtype == DType::Float64, op, ": expected ", name,
                    " with dtype float32 or float64, got ", dtype_name(boxes.dtype));
  require_kernel(op, boxes);
  CNNOPS_CHECK_VALUE(boxes.ndim() == 2 && boxes.size(1) == 4, op, ": expected ", name, " with shape (N, 4), got ",
                     shape_str(boxes.shape));
}

void check_pair(const char* op, const Tensor& b1, const Tensor& b2) {
  CNNOPS_CHECK_TYPE(b1.dtype == b2.dtype, op, ": expected boxes1 and boxes2 with the same dtype, got ",
                    dtype_name(b1.dtype), " and ", dtype_name(b2.dtype));
}

// The checks of one call's boxes arguments, in the CPU's order: each argument whole (dtype,
// device, shape, then its values) before the next. The values of a CUDA array are checked by
// kernels (cuda::RowChecks) whose results come back once, after the op's own kernels (finish());
// so that a later argument's static error does not hide an earlier argument's bad values, the
// checks after the first CUDA one run through then(), which reads the device results first when
// they throw.
class Checks {
 public:
  explicit Checks(const char* op) : op_(op) {}

  // Static checks of boxes argument `t` (on the first argument's device), then its values.
  void boxes(const Tensor& t, const char* name, BoxFormat fmt, bool canonicalize) {
    then([&] {
      check_boxes_static(op_, t, name);
      if (first_) check_same_device(op_, *first_, first_name_, t, name);
    });
    if (!first_) first_ = &t, first_name_ = name;
    if (t.device.type == DeviceType::CPU) {
      finish();  // a pending device result comes first
      check_rows(op_, t, name, fmt, canonicalize);
      return;
    }
#ifdef CNNOPS_WITH_CUDA
    if (!dev_) dev_.reset(new cuda::RowChecks(t.device.index, 2, 1));
    dev_->boxes(queued_, t, fmt, !canonicalize);
    names_[queued_] = name;
    fmts_[queued_++] = fmt;
#endif
  }

  // Runs more static checks; if one throws, a bad value found earlier is raised instead.
  template <typename F>
  void then(F&& f) {
    try {
      f();
    } catch (...) {
      finish();
      throw;
    }
  }

  // Raises the first bad row of the arguments checked on the device (reading their results back).
  void finish() {
#ifdef CNNOPS_WITH_CUDA
    for (int k = 0; k < queued_; ++k) raise_bad_box_row(op_, names_[k], fmts_[k], dev_->row(k));
    queued_ = 0;
#endif
  }

#ifdef CNNOPS_WITH_CUDA
  cuda::RowChecks& device() { return *dev_; }
#endif

 private:
  const char* op_;
  const Tensor* first_ = nullptr;
  const char* first_name_ = nullptr;
#ifdef CNNOPS_WITH_CUDA
  std::unique_ptr<cuda::RowChecks> dev_;
  int queued_ = 0;
  const char* names_[2] = {nullptr, nullptr};
  BoxFormat fmts_[2] = {BoxFormat::XYXY, BoxFormat::XYXY};
#endif
};
}  // namespace

void raise_bad_box_row(const char* op, const char* name, BoxFormat fmt, const BadRow& r) {
  if (r.row < 0) return;
  if (r.rule == kNonFinite)
    throw ValueError(str(op, ": expected finite coordinates in ", name, ", got row ", r.row, " = ", row_str(r.v)));
  const char* want = fmt == BoxFormat::XYXY ? "x1 <= x2 and y1 <= y2" : "w >= 0 and h >= 0";
  throw ValueError(str(op, ": expected ", want, " in ", name, " (pass canonicalize=True to sort corners), got row ",
                       r.row, " = ", row_str(r.v)));
}

void check_boxes(const char* op, const Tensor& boxes, const char* name, BoxFormat fmt, bool canonicalize) {
  Checks ck(op);
  ck.boxes(boxes, name, fmt, canonicalize);
  ck.finish();
}

void check_offset_eps(const char* op, double offset, double eps) {
  CNNOPS_CHECK_VALUE(offset == 0.0 || offset == 1.0, op, ": expected offset 0 or 1, got ", offset);
  CNNOPS_CHECK_VALUE(std::isfinite(eps) && eps >= 0.0, op, ": expected eps finite and >= 0, got ", eps);
}

// Inputs are checked on their contiguous copies (a strided view is copied once, then checked
// and computed on). On CUDA the value checks are queued before the op's kernels and read back
// after them (Checks::finish), so a call synchronises once; on bad values its output is dropped.
Tensor box_convert(const char* op, const Tensor& boxes, BoxFormat in_fmt, BoxFormat out_fmt, bool canonicalize) {
  const Tensor b = contiguous(boxes);
  Checks ck(op);
  ck.boxes(b, "boxes", in_fmt, canonicalize);
  Tensor out = empty(b.shape, b.dtype, b.device);
  switch (b.device.type) {
    case DeviceType::CPU: cpu::box_convert(b, out, in_fmt, out_fmt); break;
#ifdef CNNOPS_WITH_CUDA
    case DeviceType::CUDA: cuda::box_convert(b, out, in_fmt, out_fmt); break;
#endif
    default: no_kernel_for_device(op, b.device);
  }
  ck.finish();
  return out;
}

Tensor box_area(const char* op, const Tensor& boxes, double offset, bool canonicalize) {
  check_offset_eps(op, offset, 0.0);
  const Tensor b = contiguous(boxes);
  Checks ck(op);
  ck.boxes(b, "boxes", BoxFormat::XYXY, canonicalize);
  Tensor out = empty({b.size(0)}, b.dtype, b.device);
  switch (b.device.type) {
    case DeviceType::CPU: cpu::box_area(b, out, offset); break;
#ifdef CNNOPS_WITH_CUDA
    case DeviceType::CUDA: cuda::box_area(b, out, offset); break;
#endif
    default: no_kernel_for_device(op, b.device);
  }
  ck.finish();
  return out;
}

Tensor clip_boxes_to_image(const char* op, const Tensor& boxes, double height, double width, bool canonicalize) {
  CNNOPS_CHECK_VALUE(std::isfinite(height) && std::isfinite(width) && height >= 0 && width >= 0, op,
                     ": expected size (height, width) finite and >= 0, got (", height, ", ", width, ")");
  const Tensor b = contiguous(boxes);
  Checks ck(op);
  ck.boxes(b, "boxes", BoxFormat::XYXY, canonicalize);
  Tensor out = empty(b.shape, b.dtype, b.device);
  switch (b.device.type) {
    case DeviceType::CPU: cpu::clip_boxes(b, out, height, width); break;
#ifdef CNNOPS_WITH_CUDA
    case DeviceType::CUDA: cuda::clip_boxes(b, out, height, width); break;
#endif
    default: no_kernel_for_device(op, b.device);
  }
  ck.finish();
  return out;
}

Tensor remove_small_boxes(const char* op, const Tensor& boxes, double min_size, double offset, bool canonicalize) {
  check_offset_eps(op, offset, 0.0);
  CNNOPS_CHECK_VALUE(std::isfinite(min_size), op, ": expected min_size finite, got ", min_size);
  const Tensor b = contiguous(boxes);
  Checks ck(op);
  ck.boxes(b, "boxes", BoxFormat::XYXY, canonicalize);
  const int64_t n = b.size(0);
  Tensor keep = empty({n}, DType::Int64, b.device);
  int64_t k = 0;
  switch (b.device.type) {
    case DeviceType::CPU: k = cpu::small_box_keep(b, keep, min_size, offset); break;
#ifdef CNNOPS_WITH_CUDA
    case DeviceType::CUDA: k = cuda::small_box_keep(b, keep, min_size, offset, ck.device()); break;
#endif
    default: no_kernel_for_device(op, b.device);
  }
  ck.finish();
  keep.shape[0] = k;  // a prefix view of the same block
  return keep;
}

Tensor box_pairwise(const char* op, geom::IouKind kind, const Tensor& boxes1, const Tensor& boxes2, double offset,
                    double eps, bool canonicalize) {
  check_offset_eps(op, offset, eps);
  const Tensor b1 = contiguous(boxes1), b2 = contiguous(boxes2);
  Checks ck(op);
  ck.boxes(b1, "boxes1", BoxFormat::XYXY, canonicalize);
  ck.boxes(b2, "boxes2", BoxFormat::XYXY, canonicalize);
  ck.then([&] { check_pair(op, b1, b2); });
  const int64_t n = b1.size(0), m = b2.size(0);
  Tensor out = empty({n, m}, b1.dtype, b1.device);
  switch (b1.device.type) {
    case DeviceType::CPU: cpu::box_pairwise(kind, b1, b2, out, offset, eps); break;
#ifdef CNNOPS_WITH_CUDA
    case DeviceType::CUDA: cuda::box_pairwise(kind, b1, b2, out, offset, eps); break;
#endif
    default: no_kernel_for_device(op, b1.device);
  }
  ck.finish();
  return out;
}

namespace {
void check_loss_pair(const char* op, Checks& ck, const Tensor& b1, const Tensor& b2, bool canonicalize) {
  ck.boxes(b1, "boxes1", BoxFormat::XYXY, canonicalize);
  ck.boxes(b2, "boxes2", BoxFormat::XYXY, canonicalize);
  ck.then([&] {
    check_pair(op, b1, b2);
    CNNOPS_CHECK_VALUE(b1.size(0) == b2.size(0), op, ": expected boxes1 and boxes2 with the same number of boxes, got ",
                       shape_str(b1.shape), " and ", shape_str(b2.shape));
  });
}
}  // namespace

Tensor box_loss(const char* op, geom::IouKind kind, const Tensor& boxes1, const Tensor& boxes2, Reduction red,
                double eps, double offset, bool canonicalize) {
  check_offset_eps(op, offset, eps);
  const Tensor b1 = contiguous(boxes1), b2 = contiguous(boxes2);
  Checks ck(op);
  check_loss_pair(op, ck, b1, b2, canonicalize);
  const int64_t n = b1.size(0);
  Tensor out = empty(red == Reduction::None ? std::vector<int64_t>{n} : std::vector<int64_t>{}, b1.dtype, b1.device);
  switch (b1.device.type) {
    case DeviceType::CPU: cpu::box_loss(kind, b1, b2, red, offset, eps, out); break;
#ifdef CNNOPS_WITH_CUDA
    case DeviceType::CUDA: cuda::box_loss(kind, b1, b2, red, offset, eps, out); break;
#endif
    default: no_kernel_for_device(op, b1.device);
  }
  ck.finish();
  return out;
}

std::pair<Tensor, Tensor> box_loss_backward(const char* op, geom::IouKind kind, const Tensor& grad_output,
                                            const Tensor& boxes1, const Tensor& boxes2, Reduction red, double eps,
                                            double offset, bool canonicalize) {
  check_offset_eps(op, offset, eps);
  const Tensor b1 = contiguous(boxes1), b2 = contiguous(boxes2), go = contiguous(grad_output);
  Checks ck(op);
  check_loss_pair(op, ck, b1, b2, canonicalize);
  const int64_t n = b1.size(0);
  ck.then([&] {
    CNNOPS_CHECK_TYPE(go.dtype == b1.dtype, op, ": expected grad_output with the boxes' dtype ", dtype_name(b1.dtype),
                      ", got ", dtype_name(go.dtype));
    CNNOPS_CHECK_TYPE(go.device == b1.device, op, ": expected grad_output on the boxes' device ",
                      device_name(b1.device), ", got ", device_name(go.device));
    if (red == Reduction::None)
      CNNOPS_CHECK_VALUE(go.ndim() == 1 && go.size(0) == n, op, ": expected grad_output with shape (", n,
                         ",) for reduction 'none', got ", shape_str(go.shape));
    else
      CNNOPS_CHECK_VALUE(go.numel() == 1, op, ": expected grad_output with one element for reduction '",
                         red == Reduction::Mean ? "mean" : "sum", "', got shape ", shape_str(go.shape));
  });
  Tensor g1 = empty({n, 4}, b1.dtype, b1.device), g2 = empty({n, 4}, b1.dtype, b1.device);
  switch (b1.device.type) {
    case DeviceType::CPU: cpu::box_loss_backward(kind, go, b1, b2, red, offset, eps, g1, g2); break;
#ifdef CNNOPS_WITH_CUDA
    case DeviceType::CUDA: cuda::box_loss_backward(kind, go, b1, b2, red, offset, eps, g1, g2); break;
#endif
    default: no_kernel_for_device(op, b1.device);
  }
  ck.finish();
  return {g1, g2};
}

}  // namespace cnnops
