// CPU kernels for fractional max pooling (declarations). Windows come as a table: for plane p
// (p = n*C + c, or 0 for all planes when `per_plane` is false) the int64 block at
// win + p * (2 * (Do + Ho + Wo)) holds d starts, d ends, h starts, h ends, w starts, w ends
// (ends exclusive).
#pragma once
#include <cstdint>

#include "ops/pool.h"

namespace cnnops {
namespace cpu {

template <typename T>
void fractional_max_pool_forward(const T* x, T* y, int64_t* idx, const Geom5& in, const Geom5& out, const int64_t* win,
                                 bool per_plane);
// Returns false (offending index in *bad) for an index outside the input plane.
template <typename T>
bool fractional_max_pool_backward(const T* dy, const int64_t* idx, T* dx, const Geom5& in, const Geom5& out,
                                  int64_t* bad);

// Drivers: contiguous, checked CPU tensors (the dtype switch around the kernels above).
void fractional_max_pool_forward(const Tensor& x, Tensor& y, Tensor& idx, const Geom5& in, const Geom5& out,
                                 const int64_t* win, bool per_plane);
bool fractional_max_pool_backward(const Tensor& dy, const Tensor& idx, Tensor& dx, const Geom5& in, const Geom5& out,
                                  int64_t* bad);

}  // namespace cpu
}  // namespace cnnops
