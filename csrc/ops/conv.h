// Convolution (1-D, 2-D, 3-D): parameters, shape arithmetic, argument checks and CPU/CUDA dispatch.
// Python (python/cnnops/conv.py) turns padding strings/tuples into explicit per-side pads; this
// layer checks everything against the tensors, lowers the problem to the 2-D kernels and picks
// the kernel:
//   1-D (N, C, L)        -> a 2-D problem of height 1 (a view, no copy);
//   2-D (N, C, H, W)     -> as is;
//   3-D (N, C, D, H, W)  -> per output depth, the T kernel-depth slices of the input become T x C
//       channels of a 2-D problem over (N*Do) images (weights (K, C/g, T, R, S) are already
//       laid out as (K, C/g*T, R, S)); depth padding (any mode) is applied by that gather. The
//       gemm, smallc and winograd forwards read those slices in place through a table of plane
//       pointers and write the 5-D output directly (Conv2dGeom::yd); the other kernels and the
//       backward passes work on gathered copies.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace cnnops {

enum class PadMode { Zeros = 0, Reflect = 1, Replicate = 2, Circular = 3 };
enum class ConvAlgo { Auto = 0, Direct = 1, Gemm = 2, Depthwise = 3, SmallC = 4, Winograd = 5 };

PadMode parse_pad_mode(const std::string& s, const char* op);
ConvAlgo parse_conv_algo(const std::string& s, const char* op);
std::string conv_algo_name(ConvAlgo a);

// Everything a kernel needs, derived once from the tensors and parameters.
struct Conv2dGeom {
  int64_t N, C, H, W;  // input
  int64_t K, R, S;     // weight (K, C/G, R, S)
  int64_t P, Q;        // output
  int64_t G, Cg, Kg;   // groups, channels per group
  int64_t sh, sw, dh, dw, pt, pb, pl, pr;
  PadMode mode;
  // Output images interleaved in depth (the gemm and smallc forwards only; 1 = plain NCHW): the
  // 3-D lowering sets it to the output depth, so lowered image n = n0 * yd + od writes its
  // channel k straight into plane (n0, k, od) of the 5-D output (cpu::out_plane).
  int64_t yd = 1;
};

// Output length of one spatial dimension; shared by every convolution and pooling op.
inline int64_t conv_out_size(int64_t in, int64_t k, int64_t stride, int64_t pad_lo, int64_t pad_hi, int64_t dil) {
  return (in + pad_lo + pad_hi - dil * (k - 1) - 1) / stride + 1;
}

// The algorithm "auto" picks (rule written out in conv.cpp).
ConvAlgo conv2d_choose_algo(const Conv2dGeom& g, ConvAlgo requested, const char* op);

// N-d parameters: for spatial dimension i (0-based, outermost first) stride[i], dilation[i],
// pad[2i] before and pad[2i+1] after.
struct ConvParams {
  int nd = 2;
  std::array<int64_t, 3> stride{1, 1, 1};
  std::array<int64_t, 3> dilation{1, 1, 1};
  std::array<int64_t, 6> pad{0, 0, 0, 0, 0, 0};
  int64_t groups = 1;
  PadMode mode = PadMode::Zeros;
  ConvAlgo algo = ConvAlgo::Auto;
};

struct ConvGrads {
  Tensor grad_input, grad_weight, grad_bias;
  bool has_input = false, has_weight = false, has_bias = false;
};

// Forward: input (N, C, *spatial), weight (K, C/groups, *kernel), bias (K,) or null.
Tensor conv(const char* op, const Tensor& input, const Tensor& weight, const Tensor* bias, const ConvParams& p);
ConvGrads conv_backward(const char* op, const Tensor& grad_output, const Tensor& input, const Tensor& weight,
                        const ConvParams& p, bool need_input, bool need_weight, bool need_bias);
// The algorithm the forward runs ("auto" resolved), for reporting.
ConvAlgo conv_algo(const char* op, const Tensor& input, const Tensor& weight, const ConvParams& p);

// Transposed convolution: the adjoint of conv with the same parameters, whose input (N, C_in,
// *spatial) is the output of a convolution of an image of `out_spatial` with weight
// (C_in, C_out/groups, *kernel), plus bias (C_out,).
Tensor conv_transpose(const char* op, const Tensor& input, const Tensor& weight, const Tensor* bias,
                      const ConvParams& p, const std::vector<int64_t>& out_spatial);
ConvGrads conv_transpose_backward(const char* op, const Tensor& grad_output, const Tensor& input,
                                  const Tensor& weight, const ConvParams& p, bool need_input, bool need_weight,
                                  bool need_bias);

}  // namespace cnnops
