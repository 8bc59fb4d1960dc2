// CPU pooling kernels (declarations); csrc/ops/cpu/pool.cpp says how the work is split.
#pragma once
#include <vector>

#include "ops/pool.h"

namespace cnnops {
namespace cpu {

// One pooling problem as the kernels see it: (N, C, D, H, W) or (N, D, H, W, C), with unit
// sizes standing in for missing dimensions. For each dimension s and output o, the window's
// valid taps are begin[s][o] + j * dil[s] for j < count[s][o]; size[s][o] is its divisor factor.
struct PoolGeom {
  int64_t N = 1, C = 1;
  int64_t in[3] = {1, 1, 1}, out[3] = {1, 1, 1}, dil[3] = {1, 1, 1};
  std::vector<int64_t> begin[3], count[3], size[3];
  bool channels_last = false;
  PoolKind kind = PoolKind::Max;
  int64_t divisor_override = 0;
  double norm_type = 2.0, kprod = 1.0;
  // 2-D fast path description (unit depth, equal windows): kernel, stride, pads of H and W.
  int64_t kh = 1, kw = 1, sh = 1, sw = 1, ph = 0, pw = 0;
  bool regular = false;  // plain (non-adaptive) windows, depth 1

  int64_t in_plane() const { return in[0] * in[1] * in[2]; }
  int64_t out_plane() const { return out[0] * out[1] * out[2]; }
};

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
