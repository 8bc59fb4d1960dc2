// conv2d argument checks, algorithm choice and CPU/CUDA dispatch.
#include "ops/conv.h"

#include <vector>

#include "core/error.h"
#include "ops/cpu/conv.h"

namespace cnnops {

PadMode parse_pad_mode(const std::string& s, const char* op) {
  if (s == "zeros") return PadMode::Zeros;
  if (s == "reflect") return PadMode::Reflect;
  if (s == "replicate") return PadMode::Replicate;
  if (s == "circular") return PadMode::Circular;
  throw ValueError(str(op, ": expected padding_mode 'zeros', 'reflect', 'replicate' or 'circular', got '", s, "'"));
}

ConvAlgo parse_conv_algo(const std::string& s, const char* op) {
  if (s == "auto") return ConvAlgo::Auto;
  if (s == "direct") return ConvAlgo::Direct;
  if (s == "gemm") return ConvAlgo::Gemm;
  if (s == "depthwise") return ConvAlgo::Depthwise;
  if (s == "smallc") return ConvAlgo::SmallC;
  throw ValueError(str(op, ": expected algo 'auto', 'direct', 'gemm', 'depthwise' or 'smallc', got '", s, "'"));
}

std::string conv_algo_name(ConvAlgo a) {
  switch (a) {
    case ConvAlgo::Auto: return "auto";
    case ConvAlgo::Direct: return "direct";
    case ConvAlgo::Gemm: return "gemm";
    case ConvAlgo::Depthwise: return "depthwise";
    case ConvAlgo::SmallC: return "smallc";
  }
  return "?";
}

static void check_float(const char* op, const char* name, const Tensor& t) {
  CNNOPS_CHECK_TYPE(t.dtype == DType::Float32 || t.dtype == DType::Float64, op, ": expected ", name,
                    " with dtype float32 or float64, got ", dtype_name(t.dtype));
}

static void check_same(const char* op, const char* name, const Tensor& t, const Tensor& ref) {
  CNNOPS_CHECK_TYPE(t.dtype == ref.dtype, op, ": expected ", name, " with the input's dtype ", dtype_name(ref.dtype),
                    ", got ", dtype_name(t.dtype));
  CNNOPS_CHECK_TYPE(t.device == ref.device, op, ": expected ", name, " on the input's device ",
                    device_name(ref.device), ", got ", device_name(t.device));
}

Conv2dGeom conv2d_check(const char* op, const Tensor& x, const Tensor& w, const Tensor* b, const Conv2dParams& p) {
  CNNOPS_CHECK_VALUE(x.ndim() == 4, op, ": expected input with 4 dimensions (N, C, H, W), got ", x.ndim(),
                     " with shape ", shape_str(x.shape));
  CNNOPS_CHECK_VALUE(w.ndim() == 4, op, ": expected weight with 4 dimensions (K, C/groups, R, S), got ", w.ndim(),
                     " with shape ", shape_str(w.shape));
  check_float(op, "input", x);
  check_same(op, "weight", w, x);
  Conv2dGeom g{};
  g.N = x.shape[0]; g.C = x.shape[1]; g.H = x.shape[2]; g.W = x.shape[3];
  g.K = w.shape[0]; g.R = w.shape[2]; g.S = w.shape[3];
  g.G = p.groups;
  CNNOPS_CHECK_VALUE(p.groups >= 1, op, ": expected groups >= 1, got ", p.groups);
  CNNOPS_CHECK_VALUE(g.C >= 1 && g.H >= 1 && g.W >= 1, op, ": expected input with non-zero C, H, W, got shape ",
                     shape_str(x.shape));
  CNNOPS_CHECK_VALUE(g.K >= 1 && g.R >= 1 && g.S >= 1, op, ": expected weight with non-zero K, R, S, got shape ",
                     shape_str(w.shape));
  CNNOPS_CHECK_VALUE(g.C % g.G == 0, op, ": expected input channels divisible by groups, got C=", g.C, " and groups=",
                     g.G);
  CNNOPS_CHECK_VALUE(g.K % g.G == 0, op, ": expected output channels (weight.shape[0]) divisible by groups, got K=",
                     g.K, " and groups=", g.G);
  g.Cg = g.C / g.G;
  g.Kg = g.K / g.G;
  CNNOPS_CHECK_VALUE(w.shape[1] == g.Cg, op, ": expected weight.shape[1] == C/groups = ", g.Cg, ", got weight shape ",
                     shape_str(w.shape), " for input channels ", g.C, " and groups ", g.G);
  if (b) {
    check_same(op, "bias", *b, x);
    CNNOPS_CHECK_VALUE(b->ndim() == 1 && b->shape[0] == g.K, op, ": expected bias of shape (", g.K, ",), got ",
                       shape_str(b->shape));
  }
  for (int i = 0; i < 2; ++i) {
    CNNOPS_CHECK_VALUE(p.stride[i] >= 1, op, ": expected stride >= 1, got (", p.stride[0], ", ", p.stride[1], ")");
    CNNOPS_CHECK_VALUE(p.dilation[i] >= 1, op, ": expected dilation >= 1, got (", p.dilation[0], ", ", p.dilation[1],
                       ")");
  }
  for (int i = 0; i < 4; ++i)
    CNNOPS_CHECK_VALUE(p.pad[i] >= 0, op, ": expected non-negative padding, got (top, bottom, left, right) = (",
                       p.pad[0], ", ", p.pad[1], ", ", p.pad[2], ", ", p.pad[3], ")");
  g.sh = p.stride[0]; g.sw = p.stride[1];
  g.dh = p.dilation[0]; g.dw = p.dilation[1];
  g.pt = p.pad[0]; g.pb = p.pad[1]; g.pl = p.pad[2]; g.pr = p.pad[3];
  g.mode = p.mode;
  const int64_t ekh = g.dh * (g.R - 1) + 1, ekw = g.dw * (g.S - 1) + 1;
  const int64_t hp = g.H + g.pt + g.pb, wp = g.W + g.pl + g.pr;
  CNNOPS_CHECK_VALUE(ekh <= hp && ekw <= wp, op, ": expected the (dilated) kernel ", ekh, "x", ekw,
                     " to fit in the padded input ", hp, "x", wp, " (input ", g.H, "x", g.W, ")");
  g.P = conv_out_size(g.H, g.R, g.sh, g.pt, g.pb, g.dh);
  g.Q = conv_out_size(g.W, g.S, g.sw, g.pl, g.pr, g.dw);
  if (p.mode == PadMode::Reflect) {
    CNNOPS_CHECK_VALUE(g.pt < g.H && g.pb < g.H && g.pl < g.W && g.pr < g.W, op,
                       ": padding_mode='reflect' needs each pad smaller than the input dimension, got pads (", g.pt,
                       ", ", g.pb, ", ", g.pl, ", ", g.pr, ") for input ", g.H, "x", g.W);
  } else if (p.mode == PadMode::Circular) {
    CNNOPS_CHECK_VALUE(g.pt <= g.H && g.pb <= g.H && g.pl <= g.W && g.pr <= g.W, op,
                       ": padding_mode='circular' needs each pad at most the input dimension, got pads (", g.pt,
                       ", ", g.pb, ", ", g.pl, ", ", g.pr, ") for input ", g.H, "x", g.W);
  }
  return g;
}

// The "auto" rule (measured on the 2-core AVX2 machine, see benchmarks/results/conv_cpu.md):
//   groups == C (one input channel per group)           -> depthwise (memory-bound plane kernel)
//   C/groups <= 4 (any stride), or width stride 1 with K/groups <= 64 and a kernel larger
//   than 1x1                                             -> smallc: the slab kernel reads its
//       operands in place, so it wins wherever packing im2col panels would cost a large share
//       of the arithmetic (few input channels, or few output channels to amortise a pack over).
//       AlexNet's 11x11/4 first layer: 16.4 ms vs 18.4 ms packed (best of 10, interleaved).
//   everything else                                      -> gemm (packed implicit GEMM): 1x1
//       kernels (packed panels are read with better locality than slab rows hundreds of
//       channels apart), strided and wide layers (ResNet-50 3x3/2: 15.2 ms vs 19.3 ms slab).
ConvAlgo conv2d_choose_algo(const Conv2dGeom& g, ConvAlgo requested, const char* op) {
  if (requested == ConvAlgo::Depthwise)
    CNNOPS_CHECK_VALUE(g.Cg == 1, op, ": algo='depthwise' needs groups == input channels, got C=", g.C,
                       " and groups=", g.G);
  if (requested != ConvAlgo::Auto) return requested;
  if (g.Cg == 1 && g.G > 1) return ConvAlgo::Depthwise;
  if (g.Cg <= 4 || (g.sw == 1 && g.Kg <= 64 && g.R * g.S > 1)) return ConvAlgo::SmallC;
  return ConvAlgo::Gemm;
}

template <typename T>
static void forward_cpu(const Tensor& x, const Tensor& w, const Tensor* b, Tensor& y, const Conv2dGeom& g,
                        ConvAlgo algo) {
  const T* bp = b ? b->ptr<T>() : nullptr;
  switch (algo) {
    case ConvAlgo::Direct: cpu::conv2d_forward_direct<T>(x.ptr<T>(), w.ptr<T>(), bp, y.ptr<T>(), g); break;
    case ConvAlgo::Depthwise: cpu::conv2d_forward_depthwise<T>(x.ptr<T>(), w.ptr<T>(), bp, y.ptr<T>(), g); break;
    case ConvAlgo::SmallC: cpu::conv2d_forward_smallc<T>(x.ptr<T>(), w.ptr<T>(), bp, y.ptr<T>(), g); break;
    default: cpu::conv2d_forward_gemm<T>(x.ptr<T>(), w.ptr<T>(), bp, y.ptr<T>(), g); break;
  }
}

static void require_cpu(const char* op, const Tensor& x) {
  if (x.device.type != DeviceType::CPU)
    throw NotImplemented(str(op, ": CUDA kernels for convolution are not implemented yet; got an input on ",
                             device_name(x.device), " (move it to the CPU)"));
}

Tensor conv2d(const Tensor& input, const Tensor& weight, const Tensor* bias, const Conv2dParams& p) {
  const char* op = "conv2d";
  Conv2dGeom g = conv2d_check(op, input, weight, bias, p);
  ConvAlgo algo = conv2d_choose_algo(g, p.algo, op);
  require_cpu(op, input);
  Tensor x = contiguous(input), w = contiguous(weight);
  Tensor bc;
  if (bias) bc = contiguous(*bias);
  Tensor y = empty({g.N, g.K, g.P, g.Q}, x.dtype, x.device);
  if (g.N == 0) return y;
  if (x.dtype == DType::Float32) forward_cpu<float>(x, w, bias ? &bc : nullptr, y, g, algo);
  else forward_cpu<double>(x, w, bias ? &bc : nullptr, y, g, algo);
  return y;
}

// grad_input of a stride-1, zero-padded convolution is the forward convolution of grad_output
// with the weights flipped in R and S and transposed in (K, C) per group, with padding
// (dh*(R-1) - pt) on top and (H - P + pt) at the bottom (same for the width). Returns false when
// that padding would be negative (padding larger than the kernel's reach).
template <typename T>
static bool backward_input_as_forward(const Tensor& dy, const Tensor& w, Tensor& dx, const Conv2dGeom& g) {
  if (g.sh != 1 || g.sw != 1 || g.mode != PadMode::Zeros) return false;
  Conv2dGeom t = g;
  t.C = g.K; t.K = g.C; t.Cg = g.Kg; t.Kg = g.Cg;
  t.H = g.P; t.W = g.Q; t.P = g.H; t.Q = g.W;
  t.pt = g.dh * (g.R - 1) - g.pt; t.pb = g.H - g.P + g.pt;
  t.pl = g.dw * (g.S - 1) - g.pl; t.pr = g.W - g.Q + g.pl;
  if (t.pt < 0 || t.pb < 0 || t.pl < 0 || t.pr < 0) return false;
  const int64_t RS = g.R * g.S;
  std::vector<T> wt(static_cast<size_t>(g.K * g.Cg * RS));
  const T* src = w.ptr<T>();
  for (int64_t gi = 0; gi < g.G; ++gi)
    for (int64_t k = 0; k < g.Kg; ++k)
      for (int64_t c = 0; c < g.Cg; ++c)
        for (int64_t rs = 0; rs < RS; ++rs)
          wt[((gi * g.Cg + c) * g.Kg + k) * RS + (RS - 1 - rs)] = src[((gi * g.Kg + k) * g.Cg + c) * RS + rs];
  switch (conv2d_choose_algo(t, ConvAlgo::Auto, "conv2d_backward")) {
    case ConvAlgo::SmallC: cpu::conv2d_forward_smallc<T>(dy.ptr<T>(), wt.data(), nullptr, dx.ptr<T>(), t); break;
    case ConvAlgo::Depthwise: cpu::conv2d_forward_depthwise<T>(dy.ptr<T>(), wt.data(), nullptr, dx.ptr<T>(), t); break;
    default: cpu::conv2d_forward_gemm<T>(dy.ptr<T>(), wt.data(), nullptr, dx.ptr<T>(), t); break;
  }
  return true;
}

template <typename T>
static void backward_cpu(const Tensor& dy, const Tensor& x, const Tensor& w, Conv2dGrads& out, const Conv2dGeom& g,
                         ConvAlgo algo) {
  if (out.has_input) {
    T* dx = out.grad_input.ptr<T>();
    if (algo == ConvAlgo::Direct) cpu::conv2d_backward_input_direct<T>(dy.ptr<T>(), w.ptr<T>(), dx, g);
    else if (algo == ConvAlgo::Depthwise) cpu::conv2d_backward_input_depthwise<T>(dy.ptr<T>(), w.ptr<T>(), dx, g);
    else if (!backward_input_as_forward<T>(dy, w, out.grad_input, g))
      cpu::conv2d_backward_input_gemm<T>(dy.ptr<T>(), w.ptr<T>(), dx, g);
  }
  if (out.has_weight) {
    T* dw = out.grad_weight.ptr<T>();
    if (algo == ConvAlgo::Direct) cpu::conv2d_backward_weight_direct<T>(dy.ptr<T>(), x.ptr<T>(), dw, g);
    else if (algo == ConvAlgo::Depthwise) cpu::conv2d_backward_weight_depthwise<T>(dy.ptr<T>(), x.ptr<T>(), dw, g);
    else cpu::conv2d_backward_weight_gemm<T>(dy.ptr<T>(), x.ptr<T>(), dw, g);
  }
  if (out.has_bias) cpu::conv2d_backward_bias<T>(dy.ptr<T>(), out.grad_bias.ptr<T>(), g);
}

Conv2dGrads conv2d_backward(const Tensor& grad_output, const Tensor& input, const Tensor& weight,
                            const Conv2dParams& p, bool need_input, bool need_weight, bool need_bias) {
  const char* op = "conv2d_backward";
  Conv2dGeom g = conv2d_check(op, input, weight, nullptr, p);
  ConvAlgo algo = conv2d_choose_algo(g, p.algo, op);
  CNNOPS_CHECK_VALUE(grad_output.ndim() == 4, op, ": expected grad_output with 4 dimensions (N, K, P, Q), got ",
                     grad_output.ndim());
  check_same(op, "grad_output", grad_output, input);
  const std::vector<int64_t> expect{g.N, g.K, g.P, g.Q};
  CNNOPS_CHECK_VALUE(grad_output.shape == expect, op, ": expected grad_output of shape ", shape_str(expect),
                     " (the forward output's), got ", shape_str(grad_output.shape));
  require_cpu(op, input);
  Tensor dy = contiguous(grad_output), x = contiguous(input), w = contiguous(weight);
  Conv2dGrads out;
  out.has_input = need_input;
  out.has_weight = need_weight;
  out.has_bias = need_bias;
  if (need_input) out.grad_input = empty(x.shape, x.dtype, x.device);
  if (need_weight) out.grad_weight = empty(w.shape, x.dtype, x.device);
  if (need_bias) out.grad_bias = empty({g.K}, x.dtype, x.device);
  if (g.N == 0) {
    // Empty batch: all gradients are zero.
    for (Tensor* t : {&out.grad_weight, &out.grad_bias})
      if (t->data) {
        if (x.dtype == DType::Float32) std::fill(t->ptr<float>(), t->ptr<float>() + t->numel(), 0.f);
        else std::fill(t->ptr<double>(), t->ptr<double>() + t->numel(), 0.0);
      }
    return out;
  }
  if (x.dtype == DType::Float32) backward_cpu<float>(dy, x, w, out, g, algo);
  else backward_cpu<double>(dy, x, w, out, g, algo);
  return out;
}

}  // namespace cnnops
