// CPU pooling kernels (declarations); csrc/ops/cpu/pool.cpp says how the work is split.
#pragma once
#include <vector>

#include "ops/pool.h"

namespace cnnops {
namespace cpu {

// Drivers (pool_driver.cpp): output and indices (PyTorch's flat per-plane argmax, or TensorFlow's
// flattening when tf_indices) of contiguous CPU tensors; the backward returns false when an index
// lies outside its plane.
void pool_forward(const PoolGeom& g, const Tensor& x, PoolResult& r, bool tf_indices);
bool pool_backward(const PoolGeom& g, const Tensor& dy, const Tensor& x, const Tensor* indices, Tensor& dx);

template <typename T>
void pool_max_forward(const T* x, T* y, int64_t* idx, const PoolGeom& g);
template <typename T>
void pool_sum_forward(const T* x, T* y, const PoolGeom& g);
// Return false when an index lies outside its plane (nothing is written for it).
template <typename T>
bool pool_max_backward(const T* dy, const int64_t* idx, T* dx, const PoolGeom& g);
template <typename T>
void pool_sum_backward(const T* dy, const T* x, T* dx, const PoolGeom& g);

namespace avx2 {
// 2-D channels-first float max pooling rows for stride-2 kernels of width 2 or 3 (dilation 1);
// idx null for values only. buf and pbuf hold (out_W - 1) * 2 + kw + 24 entries.
void max_rows_s2_plane(const float* x, float* y, int64_t* idx, const PoolGeom& g, float* buf, int32_t* pbuf);
}  // namespace avx2

}  // namespace cpu
}  // namespace cnnops
