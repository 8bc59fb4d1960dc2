// Fractional max pooling (Graham, "Fractional Max-Pooling", 2014), 2-D and 3-D, in two conventions:
//  - PyTorch: per (n, c) plane and spatial dimension a sample u in [0, 1) places output i's window
//    of `kernel` elements at start(i) = int((i + u) * alpha) - int(u * alpha), alpha =
//    (in - kernel) / (out - 1), computed in the input's dtype (float32 for float16/bfloat16, as
//    torch's CUDA kernels), and the last window at in - kernel (aten FractionalMaxPool2d/3d).
//    Samples are (N, C, 2) ordered (w, h) in 2-D and (N, C, 3) ordered (d, h, w) in 3-D, as
//    torch's _random_samples, on the CPU or the input's device.
//  - TensorFlow: one cumulative pooling sequence per spatial dimension, shared by every plane,
//    seq[0] = 0 < seq[1] < ... < seq[out] <= in; window i covers [seq[i], seq[i+1]) or, with
//    `overlapping`, [seq[i], seq[i+1]] clipped to the input.
// Both return the maxima and their indices (flat over the spatial positions of one plane, as
// torch). Python (python/cnnops/pool_fractional.py) generates samples and sequences.
#pragma once
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace cnnops {

struct FractionalResult {
  Tensor output, indices;
};

FractionalResult fractional_max_pool_samples(const char* op, const Tensor& input, const Tensor& samples, int nd,
                                             bool channels_last, const std::vector<int64_t>& kernel,
                                             const std::vector<int64_t>& out_size);
FractionalResult fractional_max_pool_sequences(const char* op, const Tensor& input, int nd, bool channels_last,
                                               const std::vector<std::vector<int64_t>>& sequences, bool overlapping);
// grad_output and indices (N, C, *out), input (N, C, *in) -> grad_input (N, C, *in): each input
// element receives the sum of the gradients of the outputs whose index names it, accumulated in
// output order (deterministic for any thread count).
Tensor fractional_max_pool_backward(const char* op, const Tensor& grad_output, const Tensor& input,
                                    const Tensor& indices, int nd, bool channels_last);

}  // namespace cnnops
