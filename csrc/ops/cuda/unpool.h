// CUDA unpooling and nearest-upsampling drivers (declarations); csrc/ops/cuda/unpool.cu says how
// the work is split. Same names, signatures and contracts as the CPU drivers in ops/cpu/unpool.h:
// contiguous, checked tensors on one CUDA device; the index tables (sd/sh/sw, rd/rh/rw) and the
// scales are host memory, uploaded by the drivers.
#pragma once
#include <cstdint>

#include "ops/unpool.h"

namespace cnnops {
namespace cuda {

// y[n, c, od, oh, ow] = x[n, c, sd[od], sh[oh], sw[ow]].
void upsample_nearest_forward(const Tensor& x, Tensor& y, const Geom5& in, const Geom5& out, const int64_t* sd,
                              const int64_t* sh, const int64_t* sw);
// dx[n, c, d, h, w] = sum of dy over od in [rd[2d], rd[2d+1]), likewise h and w, in the CPU's order.
void upsample_nearest_backward(const Tensor& dy, Tensor& dx, const Geom5& in, const Geom5& out, const int64_t* rd,
                               const int64_t* rh, const int64_t* rw);
// Return false (and the first offending index in memory order in *bad) when an index lies
// outside the output plane.
bool max_unpool_forward(const Tensor& x, const Tensor& idx, Tensor& y, const Geom5& in, const Geom5& out, int64_t* bad);
bool max_unpool_backward(const Tensor& dy, const Tensor& idx, Tensor& dx, const Geom5& in, const Geom5& out,
                         int64_t* bad);
// scale: (sd, sh, sw)
void bed_of_nails_forward(const Tensor& x, Tensor& y, const Geom5& in, const Geom5& out, const int64_t* scale);
void bed_of_nails_backward(const Tensor& dy, Tensor& dx, const Geom5& in, const Geom5& out, const int64_t* scale);

}  // namespace cuda
}  // namespace cnnops
