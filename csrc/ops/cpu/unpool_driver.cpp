// CPU drivers of unpooling and nearest upsampling: the dtype switch around the kernels of
// unpool.cpp.
#include "core/dispatch.h"
#include "ops/cpu/unpool.h"

namespace cnnops {
namespace cpu {

void upsample_nearest_forward(const Tensor& x, Tensor& y, const Geom5& in, const Geom5& out, const int64_t* sd,
                              const int64_t* sh, const int64_t* sw) {
  dispatch_float(x.dtype, current_op(), [&](auto tag) {
    using T = decltype(tag);
    upsample_nearest_forward(x.ptr<T>(), y.ptr<T>(), in, out, sd, sh, sw);
  });
}

void upsample_nearest_backward(const Tensor& dy, Tensor& dx, const Geom5& in, const Geom5& out, const int64_t* rd,
                               const int64_t* rh, const int64_t* rw) {
  dispatch_float(dy.dtype, current_op(), [&](auto tag) {
    using T = decltype(tag);
    upsample_nearest_backward(dy.ptr<T>(), dx.ptr<T>(), in, out, rd, rh, rw);
  });
}

bool max_unpool_forward(const Tensor& x, const Tensor& idx, Tensor& y, const Geom5& in, const Geom5& out,
                        int64_t* bad) {
  return dispatch_float(x.dtype, current_op(), [&](auto tag) {
    using T = decltype(tag);
    return max_unpool_forward(x.ptr<T>(), idx.ptr<int64_t>(), y.ptr<T>(), in, out, bad);
  });
}

bool max_unpool_backward(const Tensor& dy, const Tensor& idx, Tensor& dx, const Geom5& in, const Geom5& out,
                         int64_t* bad) {
  return dispatch_float(dy.dtype, current_op(), [&](auto tag) {
    using T = decltype(tag);
    return max_unpool_backward(dy.ptr<T>(), idx.ptr<int64_t>(), dx.ptr<T>(), in, out, bad);
  });
}

void bed_of_nails_forward(const Tensor& x, Tensor& y, const Geom5& in, const Geom5& out, const int64_t* scale) {
  dispatch_float(x.dtype, current_op(), [&](auto tag) {
    using T = decltype(tag);
    bed_of_nails_forward(x.ptr<T>(), y.ptr<T>(), in, out, scale[0], scale[1], scale[2]);
  });
}

void bed_of_nails_backward(const Tensor& dy, Tensor& dx, const Geom5& in, const Geom5& out, const int64_t* scale) {
  dispatch_float(dy.dtype, current_op(), [&](auto tag) {
    using T = decltype(tag);
    bed_of_nails_backward(dy.ptr<T>(), dx.ptr<T>(), in, out, scale[0], scale[1], scale[2]);
  });
}

}  // namespace cpu
}  // namespace cnnops
