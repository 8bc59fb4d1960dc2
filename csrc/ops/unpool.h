// Unpooling and nearest upsampling (1-D, 2-D, 3-D): max_unpool (values scattered back to the
// positions a max pooling remembered), bed-of-nails unpooling (value at the top-left corner of
// each scale cell) and nearest-neighbour upsampling in PyTorch's "nearest" and "nearest-exact"
// conventions. Python (python/cnnops/unpool.py) resolves sizes and scale factors; this layer checks
// the tensors, builds the index tables and dispatches to the kernels in ops/cpu/unpool.cpp or
// ops/cuda/unpool.cu.
#pragma once
#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "ops/pool.h"

namespace cnnops {

// PyTorch's source index of output position o for nearest upsampling of `in` to `out` elements;
// scale > 0 is the user's scale factor (torch then uses 1/scale), else the ratio in/out is used;
// `shortcuts`: torch's legacy exact maps for out == in and out == 2*in (its 2-D "nearest" only).
int64_t nearest_source_index(int64_t o, int64_t in, int64_t out, double scale, bool exact, bool shortcuts);

// input (N, C, *in) -> (N, C, *out_size); scales: one per spatial dimension, <= 0 for "not given".
Tensor upsample_nearest(const char* op, const Tensor& input, int nd, bool channels_last,
                        const std::vector<int64_t>& out_size, const std::vector<double>& scales, bool exact);
// grad_output (N, C, *out) -> grad_input (N, C, *in_size): each input element sums the outputs
// that copied it, in a fixed order (deterministic for any thread count).
Tensor upsample_nearest_backward(const char* op, const Tensor& grad_output, int nd, bool channels_last,
                                 const std::vector<int64_t>& in_size, const std::vector<double>& scales, bool exact);

// input and indices (N, C, *in), indices flat over the output's spatial positions of one (n, c)
// plane -> output (N, C, *out_size), zero where no index points. Duplicate indices: the last input
// position in memory order wins (deterministic). An index outside [0, prod(out_size)) is a ValueError.
Tensor max_unpool(const char* op, const Tensor& input, const Tensor& indices, int nd, bool channels_last,
                  const std::vector<int64_t>& out_size);
// grad_output (N, C, *out), indices (N, C, *in) -> grad_input (N, C, *in) = grad_output at the indices.
Tensor max_unpool_backward(const char* op, const Tensor& grad_output, const Tensor& indices, int nd,
                           bool channels_last);

// input (N, C, *in) -> (N, C, *(in * scale)) with input[i] at output[i * scale], zeros elsewhere.
Tensor bed_of_nails(const char* op, const Tensor& input, int nd, bool channels_last, const std::vector<int64_t>& scale);
// grad_output (N, C, *(in * scale)) -> grad_input (N, C, *in) = grad_output[..., ::scale].
Tensor bed_of_nails_backward(const char* op, const Tensor& grad_output, int nd, bool channels_last,
                             const std::vector<int64_t>& scale);

}  // namespace cnnops
