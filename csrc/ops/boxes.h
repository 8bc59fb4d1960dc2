// Box utilities and the IoU family, device-neutral: argument checks and the device branch of each
// entry point (cpu::<driver>, ops/cpu/boxes.h; cuda::<driver>, ops/cuda/boxes.h). The per-pair
// formulas and the losses' gradient are in ops/box_geom.h (shared with NMS and with the CUDA
// kernels), the CPU loops in ops/cpu/boxes.cpp.
// Every op takes boxes as (N, 4) float32/float64 on the CPU or a CUDA device; coordinates must be finite, and
// corners must be ordered (x1 <= x2, y1 <= y2; w, h >= 0 for xywh / cxcywh) unless `canonicalize`
// is set, in which case the kernels sort each box's corners themselves (the caller's array is never
// touched). `offset` is 0 or 1 (the +1 pixel convention).
#pragma once
#include <cstdint>
#include <string>
#include <utility>

#include "core/tensor.h"
#include "ops/box_geom.h"

namespace cnnops {

enum class BoxFormat { XYXY = 0, XYWH = 1, CXCYWH = 2 };
enum class Reduction { None = 0, Mean = 1, Sum = 2 };

// The first row of a boxes argument (with its score, for NMS) that breaks a value rule, and its
// values; row < 0 when every row is fine. Found on the host for CPU arrays and by a kernel for
// CUDA arrays (ops/cuda/boxes.cu, which writes this struct in device memory), so that one function
// words the error for both devices.
enum BadRule : int32_t { kBadNone = 0, kNonFinite = 1, kUnordered = 2, kNonFiniteScore = 3 };
struct BadRow {
  int64_t row;
  int32_t rule;   // BadRule
  int32_t unused;
  double v[5];    // x1, y1, x2, y2 (as stored) and the score
};
// ValueError for a BadRow of a boxes argument named `name` in format fmt (nothing when row < 0).
void raise_bad_box_row(const char* op, const char* name, BoxFormat fmt, const BadRow& r);

BoxFormat parse_box_format(const std::string& s, const char* op, const char* name);
Reduction parse_reduction(const std::string& s, const char* op);
geom::IouKind parse_iou_kind(const std::string& s, const char* op);

// dtype float32/float64, shape (N, 4), finite, ordered corners unless canonicalize. `name` is the
// argument's name in messages. The values of a CUDA array are checked by a kernel whose result is
// read back here (one synchronisation). Used by python's cnnops.boxes.check_boxes.
void check_boxes(const char* op, const Tensor& boxes, const char* name, BoxFormat fmt, bool canonicalize);
// offset in {0, 1}; eps finite and >= 0.
void check_offset_eps(const char* op, double offset, double eps);

Tensor box_convert(const char* op, const Tensor& boxes, BoxFormat in_fmt, BoxFormat out_fmt, bool canonicalize);
Tensor box_area(const char* op, const Tensor& boxes, double offset, bool canonicalize);
// x clamped to [0, width], y to [0, height] (torchvision's rule).
Tensor clip_boxes_to_image(const char* op, const Tensor& boxes, double height, double width, bool canonicalize);
// int64 indices (ascending) of the boxes with width >= min_size and height >= min_size.
Tensor remove_small_boxes(const char* op, const Tensor& boxes, double min_size, double offset, bool canonicalize);

// Pairwise (N, 4) x (M, 4) -> (N, M) matrix of IoU / GIoU / DIoU / CIoU.
Tensor box_pairwise(const char* op, geom::IouKind kind, const Tensor& boxes1, const Tensor& boxes2, double offset,
                    double eps, bool canonicalize);

// A reduced loss is summed in double over chunks of kLossChunk pairs in pair order, then over the
// chunks in order, on every device: the result does not depend on the thread count or the device.
constexpr int64_t kLossChunk = 2048;

// Element-wise loss 1 - metric(boxes1[i], boxes2[i]) over (N, 4) pairs; (N,) for reduction none,
// a 0-d tensor otherwise (mean of an empty set is 0).
Tensor box_loss(const char* op, geom::IouKind kind, const Tensor& boxes1, const Tensor& boxes2, Reduction red,
                double eps, double offset, bool canonicalize);
// Gradients of box_loss w.r.t. boxes1 and boxes2 (each (N, 4)); grad_output is (N,) for
// reduction none, one element otherwise.
std::pair<Tensor, Tensor> box_loss_backward(const char* op, geom::IouKind kind, const Tensor& grad_output,
                                            const Tensor& boxes1, const Tensor& boxes2, Reduction red, double eps,
                                            double offset, bool canonicalize);

}  // namespace cnnops
