// Transposed convolution (1-D, 2-D, 3-D), device-neutral: the adjoint of conv with the same
// parameters. Its input (N, C_in, *spatial) is the output of a convolution of an image of
// `out_spatial` with weight (C_in, C_out/groups, *kernel); bias (C_out,). Checks and plans here,
// kernels through cpu::conv_transpose_forward / cpu::conv_transpose_backward.
#pragma once
#include <vector>

#include "ops/conv.h"

namespace cnnops {

Tensor conv_transpose(const char* op, const Tensor& input, const Tensor& weight, const Tensor* bias,
                      const ConvParams& p, const std::vector<int64_t>& out_spatial);
ConvGrads conv_transpose_backward(const char* op, const Tensor& grad_output, const Tensor& input, const Tensor& weight,
                                  const ConvParams& p, bool need_input, bool need_weight, bool need_bias);

}  // namespace cnnops
