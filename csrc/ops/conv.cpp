// Convolution: argument checks, the lowered plan and the device branch of each entry point.
#include "ops/conv.h"

#include <vector>

#include "core/dispatch.h"
#include "core/error.h"
#include "ops/cpu/conv.h"
#include "ops/cuda/conv.h"

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
  if (s == "winograd") return ConvAlgo::Winograd;
  if (s == "tensorcore") return ConvAlgo::TensorCore;
  throw ValueError(str(op, ": expected algo 'auto', 'direct', 'gemm', 'depthwise', 'smallc', 'winograd' or ",
                       "'tensorcore', got '", s, "'"));
}

Precision parse_precision(const std::string& s, const char* op) {
  if (s == "fp32") return Precision::FP32;
  if (s == "tf32") return Precision::TF32;
  if (s == "auto") return Precision::Auto;
  throw ValueError(str(op, ": expected precision 'fp32', 'tf32' or 'auto', got '", s, "'"));
}

std::string conv_algo_name(ConvAlgo a) {
  switch (a) {
    case ConvAlgo::Auto: return "auto";
    case ConvAlgo::Direct: return "direct";
    case ConvAlgo::Gemm: return "gemm";
    case ConvAlgo::Depthwise: return "depthwise";
    case ConvAlgo::SmallC: return "smallc";
    case ConvAlgo::Winograd: return "winograd";
    case ConvAlgo::TensorCore: return "tensorcore";
  }
  return "?";
}

static void check_float(const char* op, const char* name, const Tensor& t) {
  CNNOPS_CHECK_TYPE(pool_dtype_ok(t), op, ": expected ", name, " with dtype ", pool_dtypes(t), ", got ",
                    dtype_name(t.dtype));
  require_kernel(op, t);
}

void check_same_kind(const char* op, const char* name, const Tensor& t, const Tensor& ref) {
  CNNOPS_CHECK_TYPE(t.dtype == ref.dtype, op, ": expected ", name, " with the input's dtype ", dtype_name(ref.dtype),
                    ", got ", dtype_name(t.dtype));
  CNNOPS_CHECK_TYPE(t.device == ref.device, op, ": expected ", name, " on the input's device ", device_name(ref.device),
                    ", got ", device_name(t.device));
}

static const char* input_layout(int nd) { return nd == 1 ? "(N, C, L)" : nd == 2 ? "(N, C, H, W)" : "(N, C, D, H, W)"; }
static const char* weight_layout(int nd) {
  return nd == 1 ? "(K, C/groups, kL)" : nd == 2 ? "(K, C/groups, R, S)" : "(K, C/groups, T, R, S)";
}

static const char* pad_names(int nd) {
  return nd == 1 ? "(left, right)" : nd == 2 ? "(top, bottom, left, right)" : "(front, back, top, bottom, left, right)";
}

// Rank, dtype, device, non-zero sizes, groups and bias of the operands; xs is the input's shape.
static void check_conv_operands(const char* op, const std::vector<int64_t>& xs, const Tensor& x, const Tensor& w,
                                const Tensor* b, const ConvParams& p) {
  const int nd = p.nd;
  CNNOPS_CHECK_VALUE(nd >= 1 && nd <= 3, op, ": expected 1, 2 or 3 spatial dimensions, got ", nd);
  CNNOPS_CHECK_VALUE(static_cast<int>(xs.size()) == nd + 2, op, ": expected input with ", nd + 2, " dimensions ",
                     input_layout(nd), ", got ", xs.size(), " with shape ", shape_str(xs));
  CNNOPS_CHECK_VALUE(w.ndim() == nd + 2, op, ": expected weight with ", nd + 2, " dimensions ", weight_layout(nd),
                     ", got ", w.ndim(), " with shape ", shape_str(w.shape));
  check_float(op, "input", x);
  check_same_kind(op, "weight", w, x);
  const int64_t C = xs[1], K = w.shape[0], G = p.groups;
  CNNOPS_CHECK_VALUE(G >= 1, op, ": expected groups >= 1, got ", G);
  const char* in_dims = nd == 1 ? "C, L" : nd == 2 ? "C, H, W" : "C, D, H, W";
  const char* w_dims = nd == 1 ? "K, kL" : nd == 2 ? "K, R, S" : "K, T, R, S";
  bool nonzero = C >= 1;
  for (int i = 0; i < nd; ++i) nonzero = nonzero && xs[2 + i] >= 1;
  CNNOPS_CHECK_VALUE(nonzero, op, ": expected input with non-zero ", in_dims, ", got shape ", shape_str(xs));
  nonzero = true;
  for (int i = 0; i < nd + 2; ++i) nonzero = nonzero && (i == 1 || w.shape[i] >= 1);
  CNNOPS_CHECK_VALUE(nonzero, op, ": expected weight with non-zero ", w_dims, ", got shape ", shape_str(w.shape));
  CNNOPS_CHECK_VALUE(C % G == 0, op, ": expected input channels divisible by groups, got C=", C, " and groups=", G);
  CNNOPS_CHECK_VALUE(K % G == 0, op, ": expected output channels (weight.shape[0]) divisible by groups, got K=", K,
                     " and groups=", G);
  CNNOPS_CHECK_VALUE(w.shape[1] == C / G, op, ": expected weight.shape[1] == C/groups = ", C / G, ", got weight shape ",
                     shape_str(w.shape), " for input channels ", C, " and groups ", G);
  if (b) {
    check_same_kind(op, "bias", *b, x);
    CNNOPS_CHECK_VALUE(b->ndim() == 1 && b->shape[0] == K, op, ": expected bias of shape (", K, ",), got ",
                       shape_str(b->shape));
  }
}

// Stride, dilation, padding and padding mode of every spatial dimension against the input `in` and
// the kernel `ker`, and the output sizes they give (into `out`).
static void conv_output_sizes(const char* op, const int64_t* in, const int64_t* ker, const ConvParams& p,
                              int64_t* out) {
  const int nd = p.nd;
  int64_t padded[3], ext[3];
  for (int i = 0; i < nd; ++i) {
    CNNOPS_CHECK_VALUE(p.stride[i] >= 1, op, ": expected stride >= 1, got ", tuple_str(p.stride.data(), nd));
    CNNOPS_CHECK_VALUE(p.dilation[i] >= 1, op, ": expected dilation >= 1, got ", tuple_str(p.dilation.data(), nd));
    CNNOPS_CHECK_VALUE(p.pad[2 * i] >= 0 && p.pad[2 * i + 1] >= 0, op, ": expected non-negative padding, got ",
                       pad_names(nd), " = ", tuple_str(p.pad.data(), 2 * nd));
    ext[i] = checked_mul(p.dilation[i], ker[i] - 1, op, "the dilated kernel size dilation * (kernel - 1) + 1") + 1;
    padded[i] = checked_add(checked_add(in[i], p.pad[2 * i], op, "the padded input size"), p.pad[2 * i + 1], op,
                            "the padded input size");
  }
  for (int i = 0; i < nd; ++i)
    CNNOPS_CHECK_VALUE(ext[i] <= padded[i], op, ": expected the (dilated) kernel ", dims_str(ext, nd),
                       " to fit in the padded input ", dims_str(padded, nd), " (input ", dims_str(in, nd), ")");
  for (int i = 0; i < nd; ++i) {
    const int64_t lo = p.pad[2 * i], hi = p.pad[2 * i + 1];
    if (p.mode == PadMode::Reflect)
      CNNOPS_CHECK_VALUE(lo < in[i] && hi < in[i], op,
                         ": padding_mode='reflect' needs each pad smaller than the input dimension, got pads ",
                         tuple_str(p.pad.data(), 2 * nd), " for input ", dims_str(in, nd));
    if (p.mode == PadMode::Circular)
      CNNOPS_CHECK_VALUE(lo <= in[i] && hi <= in[i], op,
                         ": padding_mode='circular' needs each pad at most the input dimension, got pads ",
                         tuple_str(p.pad.data(), 2 * nd), " for input ", dims_str(in, nd));
    out[i] = conv_out_size(in[i], ker[i], p.stride[i], lo, hi, p.dilation[i]);
  }
}

ConvPlan make_conv_plan(const char* op, const std::vector<int64_t>& xs, const Tensor& x, const Tensor& w,
                        const Tensor* b, const ConvParams& p) {
  check_conv_operands(op, xs, x, w, b, p);
  const int nd = p.nd;
  const int64_t N = xs[0], C = xs[1], K = w.shape[0], G = p.groups;
  int64_t in[3], ker[3], out[3];
  for (int i = 0; i < nd; ++i) {
    in[i] = xs[2 + i];
    ker[i] = w.shape[2 + i];
  }
  conv_output_sizes(op, in, ker, p, out);
  ConvPlan pl;
  pl.nd = nd;
  pl.mode = p.mode;
  pl.dtype = x.dtype;
  pl.precision = p.precision;
  pl.N = N;
  pl.C = C;
  pl.K = K;
  pl.out_shape = {N, K};
  for (int i = 0; i < nd; ++i) pl.out_shape.push_back(out[i]);
  checked_numel(pl.out_shape, op, "the number of output elements");
  checked_numel(xs, op, "the number of input elements");
  // A dimension with one output reads the same input positions whatever its stride, and every
  // kernel sees the stride as 1 there: slab and im2col widths then follow the input, not a stride
  // that may be far larger than it.
  int64_t st[3];
  for (int i = 0; i < nd; ++i) st[i] = out[i] == 1 ? 1 : p.stride[i];

  // Lower to 2-D: the last two spatial dimensions (height 1 for 1-D), depth folded into channels.
  const int h = nd - 2, wd = nd - 1;  // index of the height and width dimensions (h < 0 for 1-D)
  Conv2dGeom& g = pl.g;
  g.G = G;
  g.K = K;
  g.Kg = K / G;
  g.mode = p.mode;
  g.W = in[wd], g.S = ker[wd], g.Q = out[wd], g.sw = st[wd], g.dw = p.dilation[wd];
  g.pl = p.pad[2 * wd], g.pr = p.pad[2 * wd + 1];
  if (h >= 0) {
    g.H = in[h], g.R = ker[h], g.P = out[h], g.sh = st[h], g.dh = p.dilation[h];
    g.pt = p.pad[2 * h], g.pb = p.pad[2 * h + 1];
  } else {
    g.H = g.R = g.P = g.sh = g.dh = 1;
    g.pt = g.pb = 0;
  }
  if (nd == 3) {
    pl.D = in[0], pl.T = ker[0], pl.Do = out[0], pl.sd = st[0], pl.dd = p.dilation[0];
    pl.pf = p.pad[0], pl.pk = p.pad[1];
  }
  g.N = checked_mul(N, pl.Do, op, "the number of lowered images N * output depth");
  g.C = checked_mul(C, pl.T, op, "the number of lowered channels C * kernel depth");
  g.Cg = (C / G) * pl.T;
  checked_numel({g.N, g.C, g.H, g.W}, op, "the size of the lowered input");
  return pl;
}

ConvAlgo choose_conv_algo(const char* op, const ConvPlan& pl, ConvAlgo requested, const Device& d) {
  switch (d.type) {
    case DeviceType::CPU:
      CNNOPS_CHECK_VALUE(requested != ConvAlgo::TensorCore, op,
                         ": algo='tensorcore' runs on CUDA arrays only (the input is on the CPU)");
      return cpu::conv_choose_algo(pl, requested, op);
#ifdef CNNOPS_WITH_CUDA
    case DeviceType::CUDA: return cuda::conv_choose_algo(pl, requested, op);
#endif
    default: no_kernel_for_device(op, d);
  }
}

ConvAlgo conv_algo(const char* op, const Tensor& input, const Tensor& weight, const ConvParams& p) {
  const ConvPlan pl = make_conv_plan(op, input.shape, input, weight, nullptr, p);
  return choose_conv_algo(op, pl, p.algo, input.device);
}

Tensor conv(const char* op, const Tensor& input, const Tensor& weight, const Tensor* bias, const ConvParams& p) {
  const ConvPlan pl = make_conv_plan(op, input.shape, input, weight, bias, p);
  const ConvAlgo algo = choose_conv_algo(op, pl, p.algo, input.device);
  Tensor w = contiguous(weight), b;
  if (bias) b = contiguous(*bias);
  switch (input.device.type) {
    case DeviceType::CPU: {
      Tensor x = contiguous(input), y = empty(pl.out_shape, x.dtype, x.device);
      cpu::conv_forward(pl, x, w, bias ? &b : nullptr, y, algo);
      return y;
    }
#ifdef CNNOPS_WITH_CUDA
    case DeviceType::CUDA: {  // any strides: channels-last in, channels-last out
      Tensor y = cuda::conv_empty_like(pl.out_shape, input);
      cuda::conv_forward(pl, input, w, bias ? &b : nullptr, y, algo);
      return y;
    }
#endif
    default: no_kernel_for_device(op, input.device);
  }
}

void check_conv_grad_output(const char* op, const Tensor& dy, const Tensor& ref, const std::vector<int64_t>& expect,
                            const char* what) {
  check_same_kind(op, "grad_output", dy, ref);
  const int nd = static_cast<int>(expect.size()) - 2;
  CNNOPS_CHECK_VALUE(dy.ndim() == nd + 2, op, ": expected grad_output with ", nd + 2, " dimensions ",
                     nd == 1   ? "(N, K, L_out)"
                     : nd == 2 ? "(N, K, P, Q)"
                               : "(N, K, D_out, P, Q)",
                     ", got ", dy.ndim(), " with shape ", shape_str(dy.shape));
  CNNOPS_CHECK_VALUE(dy.shape == expect, op, ": expected grad_output of shape ", shape_str(expect), " (", what,
                     "), got ", shape_str(dy.shape));
}

ConvGrads alloc_conv_grads(const Tensor& x, const Tensor& w, int64_t bias_len, bool ni, bool nw, bool nb) {
  ConvGrads out;
  out.has_input = ni;
  out.has_weight = nw;
  out.has_bias = nb;
  if (ni) out.grad_input = empty(x.shape, x.dtype, x.device);
  if (nw) out.grad_weight = empty(w.shape, x.dtype, x.device);
  if (nb) out.grad_bias = empty({bias_len}, x.dtype, x.device);
  return out;
}

ConvGrads conv_backward(const char* op, const Tensor& grad_output, const Tensor& input, const Tensor& weight,
                        const ConvParams& p, bool need_input, bool need_weight, bool need_bias) {
  const ConvPlan pl = make_conv_plan(op, input.shape, input, weight, nullptr, p);
  const ConvAlgo algo = choose_conv_algo(op, pl, p.algo, input.device);
  check_conv_grad_output(op, grad_output, input, pl.out_shape, "the forward output's");
  Tensor w = contiguous(weight);
  switch (input.device.type) {
    case DeviceType::CPU: {
      Tensor dy = contiguous(grad_output), x = contiguous(input);
      ConvGrads out = alloc_conv_grads(x, w, pl.K, need_input, need_weight, need_bias);
      cpu::conv_backward(pl, dy, x, w, out, algo);
      return out;
    }
#ifdef CNNOPS_WITH_CUDA
    case DeviceType::CUDA: {
      ConvGrads out = alloc_conv_grads(input, w, pl.K, need_input, need_weight, need_bias);
      if (need_input) out.grad_input = cuda::conv_empty_like(input.shape, input);
      cuda::conv_backward(pl, grad_output, input, w, out, algo);
      return out;
    }
#endif
    default: no_kernel_for_device(op, input.device);
  }
}

}  // namespace cnnops
