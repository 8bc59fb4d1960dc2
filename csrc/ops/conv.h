// conv2d: parameters, shape arithmetic, argument checks and CPU/CUDA dispatch.
// Python (python/cnnops/conv.py) turns padding strings/tuples into four explicit pads; this layer
// checks everything against the tensors and picks the kernel.
#pragma once
#include <array>
#include <cstdint>
#include <string>

#include "core/tensor.h"

namespace cnnops {

enum class PadMode { Zeros = 0, Reflect = 1, Replicate = 2, Circular = 3 };
enum class ConvAlgo { Auto = 0, Direct = 1, Gemm = 2, Depthwise = 3, SmallC = 4 };

PadMode parse_pad_mode(const std::string& s, const char* op);
ConvAlgo parse_conv_algo(const std::string& s, const char* op);
std::string conv_algo_name(ConvAlgo a);

struct Conv2dParams {
  std::array<int64_t, 2> stride{1, 1};
  std::array<int64_t, 2> dilation{1, 1};
  std::array<int64_t, 4> pad{0, 0, 0, 0};  // top, bottom, left, right
  int64_t groups = 1;
  PadMode mode = PadMode::Zeros;
  ConvAlgo algo = ConvAlgo::Auto;
};

// Everything a kernel needs, derived once from the tensors and parameters.
struct Conv2dGeom {
  int64_t N, C, H, W;  // input
  int64_t K, R, S;     // weight (K, C/G, R, S)
  int64_t P, Q;        // output
  int64_t G, Cg, Kg;   // groups, channels per group
  int64_t sh, sw, dh, dw, pt, pb, pl, pr;
  PadMode mode;
};

// Output length of one spatial dimension; shared by every convolution and pooling op.
inline int64_t conv_out_size(int64_t in, int64_t k, int64_t stride, int64_t pad_lo, int64_t pad_hi, int64_t dil) {
  return (in + pad_lo + pad_hi - dil * (k - 1) - 1) / stride + 1;
}

// Validates shapes, dtypes, devices and options; throws ValueError/TypeError naming both values.
Conv2dGeom conv2d_check(const char* op, const Tensor& input, const Tensor& weight, const Tensor* bias,
                        const Conv2dParams& p);

// The algorithm "auto" picks (rule written out in conv.cpp).
ConvAlgo conv2d_choose_algo(const Conv2dGeom& g, ConvAlgo requested, const char* op);

Tensor conv2d(const Tensor& input, const Tensor& weight, const Tensor* bias, const Conv2dParams& p);

struct Conv2dGrads {
  Tensor grad_input, grad_weight, grad_bias;
  bool has_input = false, has_weight = false, has_bias = false;
};
Conv2dGrads conv2d_backward(const Tensor& grad_output, const Tensor& input, const Tensor& weight,
                            const Conv2dParams& p, bool need_input, bool need_weight, bool need_bias);

}  // namespace cnnops
