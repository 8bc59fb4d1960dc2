// Batch normalisation of an (N, C, *) array per channel c:
//   y = (x - mean_c) / sqrt(var_c + eps) * weight_c + bias_c,
// with mean_c and the biased var_c over N and every spatial position (training mode), or given
// statistics (inference with running averages). Device-neutral checks and dispatch; the kernels
// are in ops/cpu/norm.cpp. The op changes nothing it is given: running averages are the caller's
// business (it returns the batch statistics; cnnops.nn.BatchNorm*d updates its buffers from them).
#pragma once
#include <cstdint>

#include "core/tensor.h"

namespace cnnops {

struct BatchNormResult {
  Tensor output, mean, var;  // output like the input; mean and biased var (C,) as used
};

// weight/bias null: 1 and 0. mean and var both null: the batch's statistics; both given: those.
BatchNormResult batch_norm(const char* op, const Tensor& input, const Tensor* weight, const Tensor* bias,
                           const Tensor* mean, const Tensor* var, double eps);

struct BatchNormGrads {
  Tensor grad_input, grad_weight, grad_bias;
  bool has_input = false, has_weight = false, has_bias = false;
};

// Gradients of batch_norm at (input, weight, mean, var). batch_stats: mean and var were the batch's
// own (so they depend on the input, adding the two centring terms to grad_input); otherwise they
// were constants. weight null: 1 (grad_weight is still that of a unit weight).
BatchNormGrads batch_norm_backward(const char* op, const Tensor& grad_output, const Tensor& input, const Tensor* weight,
                                   const Tensor& mean, const Tensor& var, double eps, bool batch_stats, bool need_input,
                                   bool need_weight, bool need_bias);

}  // namespace cnnops
