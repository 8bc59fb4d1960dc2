// CUDA fractional max pooling drivers (declarations); csrc/ops/cuda/pool_fractional.cu says how the
// work is split. Same names, signatures and contracts as the CPU drivers in
// ops/cpu/pool_fractional.h: contiguous, checked tensors on one CUDA device; the window table
// `win` is host memory in the CPU kernels' layout, uploaded by the forward driver.
#pragma once
#include <cstdint>

#include "ops/pool.h"

namespace cnnops {
namespace cuda {

void fractional_max_pool_forward(const Tensor& x, Tensor& y, Tensor& idx, const Geom5& in, const Geom5& out,
                                 const int64_t* win, bool per_plane);
// Returns false (the first offending index in memory order in *bad) for an index outside the
// input plane.
bool fractional_max_pool_backward(const Tensor& dy, const Tensor& idx, Tensor& dx, const Geom5& in, const Geom5& out,
                                  int64_t* bad);

}  // namespace cuda
}  // namespace cnnops
