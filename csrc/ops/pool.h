// Pooling (max, average, LP, adaptive, global; 1-D, 2-D, 3-D): parameters, shape arithmetic,
// argument checks and dispatch. Python (python/cnnops/pool.py) resolves "SAME"/"VALID" and
// tuples into explicit per-side pads; this layer checks everything against the tensors and turns
// each spatial dimension into a list of windows (first valid input index, number of valid taps,
// divisor factor) that the kernels walk. 1-D and 2-D problems are 3-D problems with unit depth
// (and unit height): a view, no copy.
#pragma once
#include <array>
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace cnnops {

enum class PoolKind { Max = 0, Avg = 1, Lp = 2 };

struct PoolParams {
  int nd = 2;                       // spatial dimensions, 1..3
  PoolKind kind = PoolKind::Max;
  bool channels_last = false;       // input (N, *spatial, C) instead of (N, C, *spatial)
  bool adaptive = false;            // windows from `out` (PyTorch's adaptive rule), not kernel/stride
  std::array<int64_t, 3> kernel{1, 1, 1}, stride{1, 1, 1}, dilation{1, 1, 1}, out{1, 1, 1};
  std::array<int64_t, 6> pad{0, 0, 0, 0, 0, 0};  // before/after per dimension
  bool ceil_mode = false;
  bool count_include_pad = true;
  int64_t divisor_override = 0;     // 0: none
  double norm_type = 2.0;           // LP pooling
  bool return_indices = false;
  bool tf_indices = false;          // TensorFlow's (spatial * C + c) flattening instead of PyTorch's
};

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

struct PoolResult {
  Tensor output, indices;
  bool has_indices = false;
};

// ---- the 5-D view shared by the pooling family (fractional pooling, unpooling, upsampling) ----

// A 1/2/3-d tensor seen as (N, C, D, H, W), with D = 1 (and H = 1) for fewer spatial dimensions.
// cl (channels last) means the memory order is (N, D, H, W, C) instead of (N, C, D, H, W).
struct Geom5 {
  int64_t N = 1, C = 1, D = 1, H = 1, W = 1;
  bool cl = false;
  int64_t spatial() const { return D * H * W; }
  int64_t numel() const { return N * C * D * H * W; }
};

// Reads (N, C, *spatial) or (N, *spatial, C) of an nd-dimensional tensor shape into a Geom5.
Geom5 geom5_of(const char* op, const char* name, const std::vector<int64_t>& shape, int nd, bool channels_last);
// The tensor shape of a Geom5 with nd spatial dimensions, in its layout.
std::vector<int64_t> geom5_shape(const Geom5& g, int nd);
// TypeError/NotImplementedError unless t is float32/float64 (int64) on a device with kernels.
void check_float_tensor(const char* op, const char* name, const Tensor& t);
void check_index_tensor(const char* op, const char* name, const Tensor& t);

PoolResult pool(const char* op, const Tensor& input, const PoolParams& p);
// grad_input with the input's shape. `indices` (max kinds only, PyTorch format, int64, the
// output's shape) or null: the argmax is recomputed from the input.
Tensor pool_backward(const char* op, const Tensor& grad_output, const Tensor& input, const Tensor* indices,
                     const PoolParams& p);

}  // namespace cnnops
