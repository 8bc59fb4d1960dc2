// CPU kernels of the box utilities and the IoU family: raw-pointer loops (boxes.cpp, with the row
// kernels of boxes_rows.h) and the tensor-level drivers that ops/boxes.cpp calls.
#pragma once
#include <cstdint>

#include "ops/boxes.h"

namespace cnnops {
namespace cpu {
// boxes2 of a pairwise op unpacked into columns (corners sorted) with their areas and (CIoU only)
// aspect angles.
template <typename T>
struct BoxColumns {
  T *x1, *y1, *x2, *y2, *area, *angle;
};

template <typename T>
void box_convert(const T* in, T* out, int64_t n, BoxFormat in_fmt, BoxFormat out_fmt);
template <typename T>
void box_area(const T* b, T* out, int64_t n, T off);
template <typename T>
void clip_boxes(const T* b, T* out, int64_t n, T height, T width);
template <typename T>
int64_t small_box_keep(const T* b, int64_t* keep, int64_t n, T min_size, T off);
template <typename T>
void box_pairwise(geom::IouKind kind, const T* b1, int64_t n, const T* b2, int64_t m, T* out, T off, T eps);
// Per-pair losses into `out` (reduction none), or their sum into *total (else).
template <typename T>
void box_loss(geom::IouKind kind, const T* b1, const T* b2, int64_t n, T off, T eps, T* out, double* total);
// grad_output: per pair (stride 1) or one value broadcast (stride 0), already scaled for "mean".
template <typename T>
void box_loss_backward(geom::IouKind kind, const T* gout, int64_t gstride, const T* b1, const T* b2, int64_t n, T off,
                       T eps, T* g1, T* g2);

// ---- drivers (boxes_driver.cpp): contiguous CPU tensors, checked by ops/boxes.cpp ----
void box_convert(const Tensor& b, Tensor& out, BoxFormat in_fmt, BoxFormat out_fmt);
void box_area(const Tensor& b, Tensor& out, double offset);
void clip_boxes(const Tensor& b, Tensor& out, double height, double width);
// The indices of the boxes to keep written to the front of `keep` (N,); returns how many.
int64_t small_box_keep(const Tensor& b, Tensor& keep, double min_size, double offset);
void box_pairwise(geom::IouKind kind, const Tensor& b1, const Tensor& b2, Tensor& out, double offset, double eps);
// `out`: (N,) per pair, or the reduced scalar.
void box_loss(geom::IouKind kind, const Tensor& b1, const Tensor& b2, Reduction red, double offset, double eps,
              Tensor& out);
void box_loss_backward(geom::IouKind kind, const Tensor& grad_output, const Tensor& b1, const Tensor& b2, Reduction red,
                       double offset, double eps, Tensor& g1, Tensor& g2);
}  // namespace cpu

}  // namespace cnnops
