// CPU drivers of the transposed convolution: the adjoint data paths of ops/cpu/conv_driver.cpp.
#pragma once
#include <vector>

#include "ops/conv.h"

namespace cnnops {
namespace cpu {

// y (N, C_out, *out_spatial) = the input gradient of the planned convolution for dy = x (read as
// if zero-extended to the spatial sizes `eff`), plus the bias per output channel.
void conv_transpose_forward(const ConvPlan& pl, const Tensor& x, const Tensor& w, const Tensor* b, Tensor& y,
                            const std::vector<int64_t>& eff, ConvAlgo algo);
// The gradients `out` asks for, every element written (zeros for an empty batch).
void conv_transpose_backward(const ConvPlan& pl, const Tensor& dy, const Tensor& x, const Tensor& w, ConvGrads& out,
                             const std::vector<int64_t>& eff, ConvAlgo algo);

}  // namespace cpu
}  // namespace cnnops
