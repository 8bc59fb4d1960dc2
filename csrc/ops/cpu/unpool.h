// CPU kernels for unpooling and nearest upsampling (declarations); contiguous tensors laid out as
// described by Geom5 (NC... or N...C). See unpool.cpp for how the work is split.
#pragma once
#include <cstdint>

#include "ops/unpool.h"

namespace cnnops {
namespace cpu {

// y (out) from x (in): y[n, c, od, oh, ow] = x[n, c, sd[od], sh[oh], sw[ow]].
template <typename T>
void upsample_nearest_forward(const T* x, T* y, const Geom5& in, const Geom5& out, const int64_t* sd, const int64_t* sh,
                              const int64_t* sw);
// dx (in) from dy (out): dx[n, c, d, h, w] = sum of dy over od in [rd[2d], rd[2d+1]), likewise h, w.
template <typename T>
void upsample_nearest_backward(const T* dy, T* dx, const Geom5& in, const Geom5& out, const int64_t* rd,
                               const int64_t* rh, const int64_t* rw);
// Returns false (and the offending index in *bad) when an index lies outside the output plane.
template <typename T>
bool max_unpool_forward(const T* x, const int64_t* idx, T* y, const Geom5& in, const Geom5& out, int64_t* bad);
template <typename T>
bool max_unpool_backward(const T* dy, const int64_t* idx, T* dx, const Geom5& in, const Geom5& out, int64_t* bad);
// Bed of nails with integer scales (sd, sh, sw); in and out differ by those factors.
template <typename T>
void bed_of_nails_forward(const T* x, T* y, const Geom5& in, const Geom5& out, int64_t sd, int64_t sh, int64_t sw);
template <typename T>
void bed_of_nails_backward(const T* dy, T* dx, const Geom5& in, const Geom5& out, int64_t sd, int64_t sh, int64_t sw);

// ---- drivers (unpool_driver.cpp): contiguous, checked CPU tensors of the planned shapes ----
void upsample_nearest_forward(const Tensor& x, Tensor& y, const Geom5& in, const Geom5& out, const int64_t* sd,
                              const int64_t* sh, const int64_t* sw);
void upsample_nearest_backward(const Tensor& dy, Tensor& dx, const Geom5& in, const Geom5& out, const int64_t* rd,
                               const int64_t* rh, const int64_t* rw);
bool max_unpool_forward(const Tensor& x, const Tensor& idx, Tensor& y, const Geom5& in, const Geom5& out, int64_t* bad);
bool max_unpool_backward(const Tensor& dy, const Tensor& idx, Tensor& dx, const Geom5& in, const Geom5& out,
                         int64_t* bad);
// scale: (sd, sh, sw)
void bed_of_nails_forward(const Tensor& x, Tensor& y, const Geom5& in, const Geom5& out, const int64_t* scale);
void bed_of_nails_backward(const Tensor& dy, Tensor& dx, const Geom5& in, const Geom5& out, const int64_t* scale);

}  // namespace cpu
}  // namespace cnnops
