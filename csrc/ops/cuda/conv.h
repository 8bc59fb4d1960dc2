// CUDA convolution drivers (declarations); csrc/ops/cuda/conv.cu says which kernel runs when.
// Same contracts as the CPU drivers (ops/cpu/conv.h, ops/cpu/conv_transpose.h), except that the
// data tensors (input, grad_output, outputs) may have any strides: channels-last arrays are read
// and written in place. Weights and biases arrive contiguous.
#pragma once
#include <vector>

#include "ops/conv.h"

namespace cnnops {
namespace cuda {

// The CUDA rule for "auto" and the checks of a requested algorithm (written out in conv.cu).
ConvAlgo conv_choose_algo(const ConvPlan& pl, ConvAlgo requested, const char* op);

// A fresh output of `shape` on like's device, channels-last when `like` is a channels-last
// array (channel stride 1, more than one channel), else contiguous.
Tensor conv_empty_like(const std::vector<int64_t>& shape, const Tensor& like);

void conv_forward(const ConvPlan& pl, const Tensor& x, const Tensor& w, const Tensor* b, Tensor& y, ConvAlgo algo);
void conv_backward(const ConvPlan& pl, const Tensor& dy, const Tensor& x, const Tensor& w, ConvGrads& out,
                   ConvAlgo algo);
// Transposed convolution: y = the input gradient of the planned convolution for dy = x (plus
// bias); its backward is that convolution's forward (grad_input) and weight gradient.
void conv_transpose_forward(const ConvPlan& pl, const Tensor& x, const Tensor& w, const Tensor* b, Tensor& y,
                            ConvAlgo algo);
void conv_transpose_backward(const ConvPlan& pl, const Tensor& dy, const Tensor& x, const Tensor& w, ConvGrads& out,
                             ConvAlgo algo);

}  // namespace cuda
}  // namespace cnnops
