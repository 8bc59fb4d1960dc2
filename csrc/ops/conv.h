// Convolution (1-D, 2-D, 3-D), device-neutral: parameters, shape arithmetic, every check on the
// tensors, and one device branch per entry point (cpu::conv_forward / cpu::conv_backward, see
// ops/cpu/conv.h). Python (python/cnnops/conv.py) turns padding strings/tuples into explicit
// per-side pads; this layer checks everything against the tensors and plans the 2-D problem the
// kernels solve:
//   1-D (N, C, L)        -> a 2-D problem of height 1 (a view, no copy);
//   2-D (N, C, H, W)     -> as is;
//   3-D (N, C, D, H, W)  -> per output depth, the T kernel-depth slices of the input become T x C
//       channels of a 2-D problem over (N*Do) images (weights (K, C/g, T, R, S) are already
//       laid out as (K, C/g*T, R, S)); depth padding (any mode) is applied by that gather
//       (how each device carries it out is its driver's business: ops/cpu/conv_driver.cpp).
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace cnnops {

enum class PadMode { Zeros = 0, Reflect = 1, Replicate = 2, Circular = 3 };
enum class ConvAlgo { Auto = 0, Direct = 1, Gemm = 2, Depthwise = 3, SmallC = 4, Winograd = 5, TensorCore = 6 };
// Arithmetic of float32 convolutions on CUDA: fp32 everywhere (the default, PyTorch with
// allow_tf32=False), tf32 tensor cores, or tensor cores where the problem is large enough to gain.
// CPU kernels always compute in the input's dtype.
enum class Precision { FP32 = 0, TF32 = 1, Auto = 2 };

PadMode parse_pad_mode(const std::string& s, const char* op);
ConvAlgo parse_conv_algo(const std::string& s, const char* op);
Precision parse_precision(const std::string& s, const char* op);
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
  Precision precision = Precision::FP32;
};

// A convolution of any dimensionality, checked and lowered to the 2-D problem the kernels solve.
struct ConvPlan {
  int nd = 2;
  Conv2dGeom g{};                   // lowered 2-D problem
  std::vector<int64_t> out_shape;   // N-d output shape (N, K, *spatial)
  int64_t N = 0, C = 0, K = 0;
  // Depth (nd == 3): input depth D, kernel depth T, output depth Do, stride, dilation and the
  // front/back pads. Lowered image n*Do + od, channel c*T + t is input plane
  // (n, c, od*sd - pf + t*dd), padded per mode.
  int64_t D = 1, T = 1, Do = 1, sd = 1, dd = 1, pf = 0, pk = 0;
  PadMode mode = PadMode::Zeros;
  DType dtype = DType::Float32;
  Precision precision = Precision::FP32;
};

// Checks input shape `xs` (dtype/device from `x`), weight and bias against the parameters, with
// messages in the caller's dimensionality, and plans the lowered problem.
ConvPlan make_conv_plan(const char* op, const std::vector<int64_t>& xs, const Tensor& x, const Tensor& w,
                        const Tensor* b, const ConvParams& p);

struct ConvGrads {
  Tensor grad_input, grad_weight, grad_bias;
  bool has_input = false, has_weight = false, has_bias = false;
};

// Gradient outputs shaped like x and w and a bias of `bias_len` (uninitialised; drivers write
// every element, zeros for an empty batch).
ConvGrads alloc_conv_grads(const Tensor& x, const Tensor& w, int64_t bias_len, bool ni, bool nw, bool nb);
// TypeError unless `t` (argument `name`) has the dtype and device of the input `ref`.
void check_same_kind(const char* op, const char* name, const Tensor& t, const Tensor& ref);
// Checks grad_output against the dtype/device of `ref` and the shape `expect`.
void check_conv_grad_output(const char* op, const Tensor& dy, const Tensor& ref, const std::vector<int64_t>& expect,
                            const char* what);
// The algorithm the device's rule gives for `requested` ("auto" resolved), after checking that a
// requested algorithm applies to the plan.
ConvAlgo choose_conv_algo(const char* op, const ConvPlan& pl, ConvAlgo requested, const Device& d);

// Forward: input (N, C, *spatial), weight (K, C/groups, *kernel), bias (K,) or null.
Tensor conv(const char* op, const Tensor& input, const Tensor& weight, const Tensor* bias, const ConvParams& p);
ConvGrads conv_backward(const char* op, const Tensor& grad_output, const Tensor& input, const Tensor& weight,
                        const ConvParams& p, bool need_input, bool need_weight, bool need_bias);
// The algorithm the forward runs ("auto" resolved), for reporting.
ConvAlgo conv_algo(const char* op, const Tensor& input, const Tensor& weight, const ConvParams& p);

}  // namespace cnnops
