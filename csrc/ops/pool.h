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

struct PoolResult {
  Tensor output, indices;
  bool has_indices = false;
};

PoolResult pool(const char* op, const Tensor& input, const PoolParams& p);
// grad_input with the input's shape. `indices` (max kinds only, PyTorch format, int64, the
// output's shape) or null: the argmax is recomputed from the input.
Tensor pool_backward(const char* op, const Tensor& grad_output, const Tensor& input, const Tensor* indices,
                     const PoolParams& p);

}  // namespace cnnops
