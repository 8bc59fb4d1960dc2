// CPU drivers of the box utilities and the IoU family: the dtype switch around the loops of
// boxes.cpp, and the reductions of the losses.
#include "core/dispatch.h"
#include "ops/cpu/boxes.h"

namespace cnnops {
namespace cpu {

void box_convert(const Tensor& b, Tensor& out, BoxFormat in_fmt, BoxFormat out_fmt) {
  dispatch_float(b.dtype, current_op(), [&](auto t) {
    using T = decltype(t);
    box_convert(b.ptr<T>(), out.ptr<T>(), b.size(0), in_fmt, out_fmt);
  });
}

void box_area(const Tensor& b, Tensor& out, double offset) {
  dispatch_float(b.dtype, current_op(), [&](auto t) {
    using T = decltype(t);
    box_area(b.ptr<T>(), out.ptr<T>(), b.size(0), static_cast<T>(offset));
  });
}

void clip_boxes(const Tensor& b, Tensor& out, double height, double width) {
  dispatch_float(b.dtype, current_op(), [&](auto t) {
    using T = decltype(t);
    clip_boxes(b.ptr<T>(), out.ptr<T>(), b.size(0), static_cast<T>(height), static_cast<T>(width));
  });
}

int64_t small_box_keep(const Tensor& b, Tensor& keep, double min_size, double offset) {
  return dispatch_float(b.dtype, current_op(), [&](auto t) {
    using T = decltype(t);
    return small_box_keep(b.ptr<T>(), keep.ptr<int64_t>(), b.size(0), static_cast<T>(min_size), static_cast<T>(offset));
  });
}

void box_pairwise(geom::IouKind kind, const Tensor& b1, const Tensor& b2, Tensor& out, double offset, double eps) {
  dispatch_float(b1.dtype, current_op(), [&](auto t) {
    using T = decltype(t);
    box_pairwise(kind, b1.ptr<T>(), b1.size(0), b2.ptr<T>(), b2.size(0), out.ptr<T>(), static_cast<T>(offset),
                 static_cast<T>(eps));
  });
}

void box_loss(geom::IouKind kind, const Tensor& b1, const Tensor& b2, Reduction red, double offset, double eps,
              Tensor& out) {
  const int64_t n = b1.size(0);
  const bool per_pair = red == Reduction::None;
  double total = 0.0;
  dispatch_float(b1.dtype, current_op(), [&](auto t) {
    using T = decltype(t);
    box_loss(kind, b1.ptr<T>(), b2.ptr<T>(), n, static_cast<T>(offset), static_cast<T>(eps),
             per_pair ? out.ptr<T>() : nullptr, &total);
    if (!per_pair)
      *out.ptr<T>() = static_cast<T>(red == Reduction::Mean ? (n > 0 ? total / static_cast<double>(n) : 0.0) : total);
  });
}

void box_loss_backward(geom::IouKind kind, const Tensor& grad_output, const Tensor& b1, const Tensor& b2, Reduction red,
                       double offset, double eps, Tensor& g1, Tensor& g2) {
  const int64_t n = b1.size(0);
  const int64_t gstride = red == Reduction::None ? 1 : 0;
  const double scale = red == Reduction::Mean && n > 0 ? 1.0 / static_cast<double>(n) : 1.0;
  dispatch_float(b1.dtype, current_op(), [&](auto t) {
    using T = decltype(t);
    const T s = gstride ? T(0) : grad_output.ptr<T>()[0] * static_cast<T>(scale);  // the reduced gradient, scaled once
    const T* gp = gstride ? grad_output.ptr<T>() : &s;
    box_loss_backward(kind, gp, gstride, b1.ptr<T>(), b2.ptr<T>(), n, static_cast<T>(offset), static_cast<T>(eps),
                      g1.ptr<T>(), g2.ptr<T>());
  });
}

}  // namespace cpu
}  // namespace cnnops
