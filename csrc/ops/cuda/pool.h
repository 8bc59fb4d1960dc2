// CUDA pooling drivers (declarations); csrc/ops/cuda/pool.cu says how the work is split. Same
// names and contracts as the CPU drivers in ops/cpu/pool.h.
#pragma once
#include "ops/pool.h"

namespace cnnops {
namespace cuda {

void pool_forward(const PoolGeom& g, const Tensor& x, PoolResult& r, bool tf_indices);
// false when an index lies outside its plane
bool pool_backward(const PoolGeom& g, const Tensor& dy, const Tensor& x, const Tensor* indices, Tensor& dx);

}  // namespace cuda
}  // namespace cnnops
