// conv2d argument checks, algorithm choice and CPU/CUDA dispatch.
#include "ops/conv.h"

#include <cstring>
#include <vector>

#include "core/error.h"
#include "core/parallel.h"
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
  if (s == "winograd") return ConvAlgo::Winograd;
  throw ValueError(
      str(op, ": expected algo 'auto', 'direct', 'gemm', 'depthwise', 'smallc' or 'winograd', got '", s, "'"));
}

std::string conv_algo_name(ConvAlgo a) {
  switch (a) {
    case ConvAlgo::Auto: return "auto";
    case ConvAlgo::Direct: return "direct";
    case ConvAlgo::Gemm: return "gemm";
    case ConvAlgo::Depthwise: return "depthwise";
    case ConvAlgo::SmallC: return "smallc";
    case ConvAlgo::Winograd: return "winograd";
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

static const char* input_layout(int nd) {
  return nd == 1 ? "(N, C, L)" : nd == 2 ? "(N, C, H, W)" : "(N, C, D, H, W)";
}
static const char* weight_layout(int nd) {
  return nd == 1 ? "(K, C/groups, kL)" : nd == 2 ? "(K, C/groups, R, S)" : "(K, C/groups, T, R, S)";
}

static std::string tuple_str(const int64_t* v, int n) {
  std::string s = "(";
  for (int i = 0; i < n; ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + (n == 1 ? ",)" : ")");
}

static const char* pad_names(int nd) {
  return nd == 1 ? "(left, right)" : nd == 2 ? "(top, bottom, left, right)" : "(front, back, top, bottom, left, right)";
}

static std::string dims_str(const int64_t* v, int nd) {
  std::string s;
  for (int i = 0; i < nd; ++i) s += (i ? "x" : "") + std::to_string(v[i]);
  return s;
}

namespace {
// A convolution of any dimensionality, checked and lowered to the 2-D problem the kernels solve.
struct Plan {
  int nd = 2;
  Conv2dGeom g{};                   // lowered 2-D problem
  std::vector<int64_t> out_shape;   // N-d output shape (N, K, *spatial)
  int64_t N = 0, C = 0, K = 0;
  int64_t D = 1, T = 1, Do = 1, sd = 1, dd = 1, pf = 0, pk = 0;  // depth, used when nd == 3
  PadMode mode = PadMode::Zeros;
};
}  // namespace

// Checks input shape `xs` (dtype/device from `x`), weight and bias against the parameters, with
// messages in the caller's dimensionality, then lowers to 2-D.
static Plan make_plan(const char* op, const std::vector<int64_t>& xs, const Tensor& x, const Tensor& w,
                      const Tensor* b, const ConvParams& p) {
  const int nd = p.nd;
  CNNOPS_CHECK_VALUE(nd >= 1 && nd <= 3, op, ": expected 1, 2 or 3 spatial dimensions, got ", nd);
  CNNOPS_CHECK_VALUE(static_cast<int>(xs.size()) == nd + 2, op, ": expected input with ", nd + 2, " dimensions ",
                     input_layout(nd), ", got ", xs.size(), " with shape ", shape_str(xs));
  CNNOPS_CHECK_VALUE(w.ndim() == nd + 2, op, ": expected weight with ", nd + 2, " dimensions ", weight_layout(nd),
                     ", got ", w.ndim(), " with shape ", shape_str(w.shape));
  check_float(op, "input", x);
  check_same(op, "weight", w, x);
  Plan pl;
  pl.nd = nd;
  pl.mode = p.mode;
  const int64_t N = xs[0], C = xs[1], K = w.shape[0], G = p.groups;
  pl.N = N; pl.C = C; pl.K = K;
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
  CNNOPS_CHECK_VALUE(w.shape[1] == C / G, op, ": expected weight.shape[1] == C/groups = ", C / G,
                     ", got weight shape ", shape_str(w.shape), " for input channels ", C, " and groups ", G);
  if (b) {
    check_same(op, "bias", *b, x);
    CNNOPS_CHECK_VALUE(b->ndim() == 1 && b->shape[0] == K, op, ": expected bias of shape (", K, ",), got ",
                       shape_str(b->shape));
  }
  int64_t in[3], ker[3], out[3], padded[3], ext[3];
  for (int i = 0; i < nd; ++i) {
    CNNOPS_CHECK_VALUE(p.stride[i] >= 1, op, ": expected stride >= 1, got ", tuple_str(p.stride.data(), nd));
    CNNOPS_CHECK_VALUE(p.dilation[i] >= 1, op, ": expected dilation >= 1, got ", tuple_str(p.dilation.data(), nd));
    CNNOPS_CHECK_VALUE(p.pad[2 * i] >= 0 && p.pad[2 * i + 1] >= 0, op, ": expected non-negative padding, got ",
                       pad_names(nd), " = ", tuple_str(p.pad.data(), 2 * nd));
    in[i] = xs[2 + i];
    ker[i] = w.shape[2 + i];
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
  g.W = in[wd]; g.S = ker[wd]; g.Q = out[wd];
  g.sw = st[wd]; g.dw = p.dilation[wd]; g.pl = p.pad[2 * wd]; g.pr = p.pad[2 * wd + 1];
  if (h >= 0) {
    g.H = in[h]; g.R = ker[h]; g.P = out[h];
    g.sh = st[h]; g.dh = p.dilation[h]; g.pt = p.pad[2 * h]; g.pb = p.pad[2 * h + 1];
  } else {
    g.H = 1; g.R = 1; g.P = 1; g.sh = 1; g.dh = 1; g.pt = 0; g.pb = 0;
  }
  if (nd == 3) {
    pl.D = in[0]; pl.T = ker[0]; pl.Do = out[0];
    pl.sd = st[0]; pl.dd = p.dilation[0]; pl.pf = p.pad[0]; pl.pk = p.pad[1];
  }
  g.N = checked_mul(N, pl.Do, op, "the number of lowered images N * output depth");
  g.C = checked_mul(C, pl.T, op, "the number of lowered channels C * kernel depth");
  g.Cg = (C / G) * pl.T;
  checked_numel({g.N, g.C, g.H, g.W}, op, "the size of the lowered input");
  return pl;
}

// The "auto" rule (measured on the 2-core AVX2 machine, see benchmarks/results/conv_cpu.md):
//   groups == C (one input channel per group)           -> depthwise (memory-bound plane kernel)
//   C/groups <= 4 (any stride)                           -> smallc (the slab kernel, below)
//   3x3 kernel (3-D: the last two kernel dimensions, likewise 5x5 below), stride 1, dilation 1,
//   C/groups >= 8, K/groups >= 16, (C/groups) x (K/groups) >= 512 -> winograd: F(2x2, 3x3) does 2.25x
//       fewer multiply-adds; at these sizes that outweighs its tile transforms (same process,
//       medians of 7+: ResNet-50 3x3 11.4 -> 8.1 ms, VGG-16 224x224 23.0 -> 17.4 ms, 56x56x256
//       168 -> 96 ms, 14x14x512 46.9 -> 29.8 ms, the 3-D layers 135 -> 91 ms and 17.5 -> 12.2
//       ms; 32 -> 32 channels at 28x28 1.02x, 16 -> 64 1.04x, 8 -> 64 1.08x, but 16 -> 16
//       channels 0.84x, 8 -> 8 0.75x and 64 -> 8 0.99x: the transforms grow with C + K, the
//       products with C x K).
//   5x5 kernel, stride 1, dilation 1, C/groups >= 16, K/groups >= 64 and their product >= 2048
//                                                        -> winograd F(2x2, 5x5): 36 products per
//       2x2 tile instead of 100, but 6x6 input transforms, which only many output channels
//       repay: MNIST conv2 (32 -> 64 channels at 14x14) 1.08-1.27x the slab kernel, 64 -> 64 at
//       56x56 1.39-1.46x, 256 -> 256 at 7x7 1.8x (against the packed GEMM); with 32 output
//       channels 0.81x (64 -> 32 at 14x14, MNIST conv2's input gradient) to 1.10x (192 -> 32),
//       32 -> 32 0.87x, 16 -> 32 0.86x, 8 -> 64 0.81x.
//   width stride <= 2 with K/groups <= 64 and a kernel larger than 1x1
//                                                        -> smallc: the slab kernel reads its
//       operands in place, so it wins wherever packing im2col panels would cost a large share
//       of the arithmetic (few input channels, or few output channels to amortise a pack over).
//       AlexNet's 11x11/4 first layer: 14.3 ms vs 20.9 ms packed; stride-2 3x3 layers with 24-64
//       output channels 0.47-6.1 ms vs 0.67-8.4 ms packed, the FCN transposed layer's 4x4/2
//       input gradient (21 channels) 3.3 ms vs 7.9 ms (medians of 11, interleaved). At stride 3
//       (64 -> 48 channels, 3x3) packing won again: 3.0 ms vs 3.8 ms.
//   everything else                                      -> gemm (packed implicit GEMM): 1x1
//       kernels (packed panels are read with better locality than slab rows hundreds of
//       channels apart), wide layers (ResNet-50 3x3/2 with 128 channels: 18.1 ms vs 20.2 ms slab).
// The rule's last two lines: also the weight-gradient kernel of a Winograd layer (there is no
// Winograd weight gradient; sending those layers' weight gradients to the packed GEMM instead of
// this choice made the 3-D layers' backward 12-16% slower).
static ConvAlgo slab_or_gemm(const Conv2dGeom& g) {
  return g.sw <= 2 && g.Kg <= 64 && g.R * g.S > 1 ? ConvAlgo::SmallC : ConvAlgo::Gemm;
}

ConvAlgo conv2d_choose_algo(const Conv2dGeom& g, ConvAlgo requested, const char* op) {
  if (requested == ConvAlgo::Depthwise)
    CNNOPS_CHECK_VALUE(g.Cg == 1, op, ": algo='depthwise' needs groups == input channels, got C=", g.C,
                       " and groups=", g.G);
  if (requested == ConvAlgo::Winograd)
    CNNOPS_CHECK_VALUE(g.R == g.S && (g.R == 3 || g.R == 5) && g.sh == 1 && g.sw == 1 && g.dh == 1 && g.dw == 1,
                       op,
                       ": algo='winograd' needs a 3x3 or 5x5 kernel (the last two kernel dimensions) with stride 1 "
                       "and dilation 1, got kernel (", g.R, ", ", g.S, "), stride (", g.sh, ", ", g.sw,
                       "), dilation (", g.dh, ", ", g.dw, ")");
  if (requested != ConvAlgo::Auto) return requested;
  if (g.Cg == 1 && g.G > 1) return ConvAlgo::Depthwise;
  if (g.Cg <= 4) return ConvAlgo::SmallC;  // before winograd: few channels cannot repay the transforms
  const bool unit = g.sh == 1 && g.sw == 1 && g.dh == 1 && g.dw == 1;
  if (unit && g.R == 3 && g.S == 3 && g.Cg >= 8 && g.Kg >= 16 && g.Cg * g.Kg >= 512) return ConvAlgo::Winograd;
  if (unit && g.R == 5 && g.S == 5 && g.Cg >= 16 && g.Kg >= 64 && g.Cg * g.Kg >= 2048) return ConvAlgo::Winograd;
  return slab_or_gemm(g);
}

// Non-finite values. The algorithms form different products with implicit zero padding (the
// slab and im2col kernels multiply the zeros, the direct and depthwise loops skip them; Winograd's
// transforms mix a tile), which is invisible for finite values but decides where a NaN or an
// infinity goes. The contract is PyTorch's im2col semantics, which the packed GEMM implements:
// the forward and the weight gradient sum over the zero-padded input (a NaN weight times a
// padding zero is NaN), the input gradient sums only products that reach a real input element.
// Inputs that are not all finite go down a path with those semantics; finite inputs keep the
// chosen algorithm. The scans read the weights (small) always, the larger operands only where
// the chosen kernel would differ.
template <typename T>
static ConvAlgo forward_algo_for_values(ConvAlgo algo, const T* x, int64_t nx, const T* w, int64_t nw) {
  if (algo == ConvAlgo::Gemm || algo == ConvAlgo::SmallC) return algo;
  if (!cpu::all_finite(w, nw)) return ConvAlgo::Gemm;
  if (algo == ConvAlgo::Winograd && !cpu::all_finite(x, nx)) return ConvAlgo::Gemm;
  return algo;
}

template <typename T>
static void forward_2d(const T* x, const T* w, const T* b, T* y, const Conv2dGeom& g, ConvAlgo algo) {
  algo = forward_algo_for_values(algo, x, g.N * g.C * g.H * g.W, w, g.K * g.Cg * g.R * g.S);
  switch (algo) {
    case ConvAlgo::Direct: cpu::conv2d_forward_direct<T>(x, w, b, y, g); break;
    case ConvAlgo::Depthwise: cpu::conv2d_forward_depthwise<T>(x, w, b, y, g); break;
    case ConvAlgo::SmallC: cpu::conv2d_forward_smallc<T>(x, w, b, y, g); break;
    case ConvAlgo::Winograd: cpu::conv2d_forward_winograd<T>(x, w, b, y, g); break;
    default: cpu::conv2d_forward_gemm<T>(x, w, b, y, g); break;
  }
}

// y[n][k][...] += b[k].
template <typename T>
static void add_bias(T* y, const T* b, int64_t N, int64_t K, int64_t spatial) {
  parallel_for(N * K, [&](int64_t q) {
    const T bv = b[q % K];
    T* p = y + q * spatial;
    for (int64_t i = 0; i < spatial; ++i) p[i] += bv;
  });
}

// grad_input of a stride-1, zero-padded convolution is the forward convolution of grad_output
// with the weights flipped in R and S and transposed in (K, C) per group, with padding
// (dh*(R-1) - pt) on top and (H - P + pt) at the bottom (same for the width). Returns false when
// that padding would be negative (padding larger than the kernel's reach).
template <typename T>
static bool grad_input_as_forward(const T* dy, const T* w, T* dx, const Conv2dGeom& g, const T* bias) {
  if (g.sh != 1 || g.sw != 1 || g.mode != PadMode::Zeros) return false;
  Conv2dGeom t = g;
  t.C = g.K; t.K = g.C; t.Cg = g.Kg; t.Kg = g.Cg;
  t.H = g.P; t.W = g.Q; t.P = g.H; t.Q = g.W;
  t.pt = g.dh * (g.R - 1) - g.pt; t.pb = g.H - g.P + g.pt;
  t.pl = g.dw * (g.S - 1) - g.pl; t.pr = g.W - g.Q + g.pl;
  if (t.pt < 0 || t.pb < 0 || t.pl < 0 || t.pr < 0) return false;
  const int64_t RS = g.R * g.S;
  std::vector<T> wt(static_cast<size_t>(g.K * g.Cg * RS));
  for (int64_t gi = 0; gi < g.G; ++gi)
    for (int64_t k = 0; k < g.Kg; ++k)
      for (int64_t c = 0; c < g.Cg; ++c)
        for (int64_t rs = 0; rs < RS; ++rs)
          wt[((gi * g.Cg + c) * g.Kg + k) * RS + (RS - 1 - rs)] = w[((gi * g.Kg + k) * g.Cg + c) * RS + rs];
  forward_2d<T>(dy, wt.data(), bias, dx, t, conv2d_choose_algo(t, ConvAlgo::Auto, "conv_backward"));
  return true;
}

// dx (+ bias per channel of dx, when given: the transposed convolution's forward). The GEMM and
// forward-convolution paths take the bias in their first write; the others add it after. A
// depthwise layer with one output per channel at stride 1 (zero padding) runs the depthwise
// forward with the flipped kernel: 32 outputs in registers over all taps, instead of a
// read-modify-write pass over the dx row per tap (MobileNet 8x256x56x56: see conv_depthwise.cpp).
template <typename T>
static void grad_input_2d(const T* dy, const T* w, T* dx, const Conv2dGeom& g, ConvAlgo algo,
                          const T* bias = nullptr) {
  // A non-finite weight would meet the zero padding of dy in the forward-convolution form: the
  // GEMM with col2im (or the direct loops) form only the products that reach dx.
  if (algo != ConvAlgo::Direct && !cpu::all_finite(w, g.K * g.Cg * g.R * g.S)) {
    cpu::conv2d_backward_input_gemm<T>(dy, w, dx, g, bias);
    return;
  }
  if (algo == ConvAlgo::Depthwise && g.Kg == 1 && grad_input_as_forward<T>(dy, w, dx, g, bias)) return;
  if (algo == ConvAlgo::Direct || algo == ConvAlgo::Depthwise) {
    if (algo == ConvAlgo::Direct) cpu::conv2d_backward_input_direct<T>(dy, w, dx, g);
    else cpu::conv2d_backward_input_depthwise<T>(dy, w, dx, g);
    if (bias) add_bias<T>(dx, bias, g.N, g.C, g.H * g.W);
  } else if (!grad_input_as_forward<T>(dy, w, dx, g, bias)) {
    cpu::conv2d_backward_input_gemm<T>(dy, w, dx, g, bias);
  }
}

template <typename T>
static void grad_weight_2d(const T* dy, const T* x, T* dw, const Conv2dGeom& g, ConvAlgo algo) {
  if ((algo == ConvAlgo::Direct || algo == ConvAlgo::Depthwise) &&
      !(cpu::all_finite(dy, g.N * g.K * g.P * g.Q) && cpu::all_finite(x, g.N * g.C * g.H * g.W)))
    algo = ConvAlgo::Gemm;
  if (algo == ConvAlgo::Direct) cpu::conv2d_backward_weight_direct<T>(dy, x, dw, g);
  else if (algo == ConvAlgo::Depthwise) cpu::conv2d_backward_weight_depthwise<T>(dy, x, dw, g);
  else if (algo == ConvAlgo::SmallC || (algo == ConvAlgo::Winograd && slab_or_gemm(g) == ConvAlgo::SmallC))
    cpu::conv2d_backward_weight_smallc<T>(dy, x, dw, g);
  else cpu::conv2d_backward_weight_gemm<T>(dy, x, dw, g);
}

// ---- the depth dimension of 3-D convolutions (see conv.h) ----

// The input depth that kernel-depth tap t of output depth od reads (padded per mode), or -1 for a
// zero pad: lowered channel c*T + t of lowered image n*Do + od is plane x[n][c][depth_source].
static int64_t depth_source(const Plan& pl, int64_t od, int64_t t) {
  return cpu::pad_index(od * pl.sd - pl.pf + t * pl.dd, pl.D, pl.mode);
}

// x' (N*Do, C*T, H, W): x'[n*Do + od][c*T + t] = x[n][c][depth od*sd - pf + t*dd] (padded per mode).
template <typename T>
static void depth_gather(const T* x, T* xl, const Plan& pl) {
  const int64_t HW = pl.g.H * pl.g.W;
  parallel_for(pl.N * pl.Do, [&](int64_t q) {
    const int64_t n = q / pl.Do, od = q % pl.Do;
    for (int64_t c = 0; c < pl.C; ++c)
      for (int64_t t = 0; t < pl.T; ++t) {
        T* dst = xl + (q * pl.C * pl.T + c * pl.T + t) * HW;
        const int64_t id = depth_source(pl, od, t);
        if (id < 0) std::fill(dst, dst + HW, T(0));
        else std::memcpy(dst, x + ((n * pl.C + c) * pl.D + id) * HW, sizeof(T) * HW);
      }
  });
}

// Adjoint of depth_gather: dx[n][c][d] = sum of the x' planes gathered from it (fixed order).
template <typename T>
static void depth_fold(const T* dxl, T* dx, const Plan& pl) {
  const int64_t HW = pl.g.H * pl.g.W;
  parallel_for(pl.N * pl.C, [&](int64_t q) {
    const int64_t n = q / pl.C, c = q % pl.C;
    T* out = dx + q * pl.D * HW;
    std::fill(out, out + pl.D * HW, T(0));
    for (int64_t od = 0; od < pl.Do; ++od)
      for (int64_t t = 0; t < pl.T; ++t) {
        const int64_t id = depth_source(pl, od, t);
        if (id < 0) continue;
        const T* src = dxl + ((n * pl.Do + od) * pl.C * pl.T + c * pl.T + t) * HW;
        T* d = out + id * HW;
        for (int64_t i = 0; i < HW; ++i) d[i] += src[i];
      }
  });
}

// (N, K, Do, PQ) <-> (N*Do, K, PQ); `to_lowered` picks the direction.
template <typename T>
static void depth_permute(const T* src, T* dst, const Plan& pl, int64_t channels, int64_t plane, bool to_lowered) {
  parallel_for(pl.N * channels, [&](int64_t q) {
    const int64_t n = q / channels, k = q % channels;
    for (int64_t od = 0; od < pl.Do; ++od) {
      const int64_t a = ((n * channels + k) * pl.Do + od) * plane;  // (N, K, Do, ...)
      const int64_t l = ((n * pl.Do + od) * channels + k) * plane;  // (N*Do, K, ...)
      if (to_lowered) std::memcpy(dst + l, src + a, sizeof(T) * plane);
      else std::memcpy(dst + a, src + l, sizeof(T) * plane);
    }
  });
}

// ---- N-d data paths on contiguous CPU tensors ----

// Uninitialised buffers for the lowered 3-D operands: every element is written by the
// gather/permute before it is read (a zero-filled std::vector would add a pass over memory), and
// blocks of 1 MB or more come back from the host block cache without fresh page faults.
template <typename T>
static Tensor lowered_buffer(int64_t n) {
  return empty({n}, sizeof(T) == 4 ? DType::Float32 : DType::Float64, Device{});
}

template <typename T>
static void run_forward(const Plan& pl, const T* x, const T* w, const T* b, T* y, ConvAlgo algo) {
  const Conv2dGeom& g = pl.g;
  if (pl.nd < 3) return forward_2d<T>(x, w, b, y, g, algo);
  algo = forward_algo_for_values(algo, x, pl.N * pl.C * pl.D * g.H * g.W, w, g.K * g.Cg * g.R * g.S);
  if (algo == ConvAlgo::Gemm || algo == ConvAlgo::SmallC || algo == ConvAlgo::Winograd) {
    // In place: a table of the input planes each lowered (image, channel) reads, and the output
    // written straight into (N, K, Do, ...), instead of a gathered copy of the input (kernel depth
    // times its size: 77 MB for the benchmark's 4x32x16x56x56 layer) and a permuted copy of the
    // output (51 MB). Same bits; the benchmark's two 3-D layers 3-10% faster (same process, A/B,
    // medians of 10, two runs).
    const int64_t HW = g.H * g.W;
    std::vector<T> zeros;
    std::vector<const T*> planes(static_cast<size_t>(g.N * g.C));
    for (int64_t q = 0; q < g.N; ++q) {
      const int64_t n = q / pl.Do, od = q % pl.Do;
      for (int64_t c = 0; c < pl.C; ++c)
        for (int64_t t = 0; t < pl.T; ++t) {
          const int64_t id = depth_source(pl, od, t);
          if (id < 0 && zeros.empty()) zeros.assign(static_cast<size_t>(HW), T(0));
          planes[q * g.C + c * pl.T + t] = id < 0 ? zeros.data() : x + ((n * pl.C + c) * pl.D + id) * HW;
        }
    }
    Conv2dGeom gy = g;
    gy.yd = pl.Do;
    if (algo == ConvAlgo::Gemm) cpu::conv2d_forward_gemm<T>(x, w, b, y, gy, planes.data());
    else if (algo == ConvAlgo::Winograd) cpu::conv2d_forward_winograd<T>(x, w, b, y, gy, planes.data());
    else cpu::conv2d_forward_smallc<T>(x, w, b, y, gy, planes.data());
    return;
  }
  Tensor xl_buf = lowered_buffer<T>(g.N * g.C * g.H * g.W);
  T* xl = xl_buf.ptr<T>();
  Tensor yl_buf = lowered_buffer<T>(g.N * g.K * g.P * g.Q);
  T* yl = yl_buf.ptr<T>();
  depth_gather(x, xl, pl);
  forward_2d<T>(xl, w, b, yl, g, algo);
  depth_permute(yl, y, pl, pl.K, g.P * g.Q, false);
}

template <typename T>
static void run_grad_input(const Plan& pl, const T* dy, const T* w, T* dx, ConvAlgo algo, const T* bias = nullptr) {
  const Conv2dGeom& g = pl.g;
  if (pl.nd < 3) return grad_input_2d<T>(dy, w, dx, g, algo, bias);
  Tensor dyl_buf = lowered_buffer<T>(g.N * g.K * g.P * g.Q);
  T* dyl = dyl_buf.ptr<T>();
  Tensor dxl_buf = lowered_buffer<T>(g.N * g.C * g.H * g.W);
  T* dxl = dxl_buf.ptr<T>();
  depth_permute(dy, dyl, pl, pl.K, g.P * g.Q, true);
  grad_input_2d<T>(dyl, w, dxl, g, algo);
  depth_fold(dxl, dx, pl);
  if (bias) add_bias<T>(dx, bias, pl.N, pl.C, pl.D * g.H * g.W);
}

template <typename T>
static void run_grad_weight(const Plan& pl, const T* dy, const T* x, T* dw, ConvAlgo algo) {
  const Conv2dGeom& g = pl.g;
  if (pl.nd < 3) return grad_weight_2d<T>(dy, x, dw, g, algo);
  Tensor dyl_buf = lowered_buffer<T>(g.N * g.K * g.P * g.Q);
  T* dyl = dyl_buf.ptr<T>();
  Tensor xl_buf = lowered_buffer<T>(g.N * g.C * g.H * g.W);
  T* xl = xl_buf.ptr<T>();
  depth_permute(dy, dyl, pl, pl.K, g.P * g.Q, true);
  depth_gather(x, xl, pl);
  grad_weight_2d<T>(dyl, xl, dw, g, algo);
}

// db[k] = sum over n and every spatial position of dy (N, K, spatial...).
template <typename T>
static void run_grad_bias(const T* dy, T* db, int64_t N, int64_t K, int64_t spatial) {
  Conv2dGeom g{};
  g.N = N; g.K = K; g.P = spatial; g.Q = 1;
  cpu::conv2d_backward_bias<T>(dy, db, g);
}

static void require_cpu(const char* op, const Tensor& x) {
  if (x.device.type != DeviceType::CPU)
    throw NotImplemented(str(op, ": CUDA kernels for convolution are not implemented yet; got an input on ",
                             device_name(x.device), " (move it to the CPU)"));
}

static ConvAlgo plan_algo(const Plan& pl, ConvAlgo requested, const char* op) {
  // 3-D folds kernel depth into channels: the per-channel depthwise kernel applies only when T == 1.
  if (requested == ConvAlgo::Depthwise && pl.nd == 3)
    CNNOPS_CHECK_VALUE(pl.T == 1 && pl.g.Cg == 1, op,
                       ": algo='depthwise' for 3-D needs groups == input channels and kernel depth 1, got C=", pl.C,
                       ", groups=", pl.g.G, ", kernel depth ", pl.T);
  return conv2d_choose_algo(pl.g, requested, op);
}

static int64_t spatial_size(const std::vector<int64_t>& shape) {
  int64_t s = 1;
  for (size_t i = 2; i < shape.size(); ++i) s *= shape[i];
  return s;
}

static void zero(Tensor& t) {
  if (!t.data) return;
  if (t.dtype == DType::Float32) std::fill(t.ptr<float>(), t.ptr<float>() + t.numel(), 0.f);
  else std::fill(t.ptr<double>(), t.ptr<double>() + t.numel(), 0.0);
}

ConvAlgo conv_algo(const char* op, const Tensor& input, const Tensor& weight, const ConvParams& p) {
  const Plan pl = make_plan(op, input.shape, input, weight, nullptr, p);
  return plan_algo(pl, p.algo, op);
}

Tensor conv(const char* op, const Tensor& input, const Tensor& weight, const Tensor* bias, const ConvParams& p) {
  const Plan pl = make_plan(op, input.shape, input, weight, bias, p);
  const ConvAlgo algo = plan_algo(pl, p.algo, op);
  require_cpu(op, input);
  Tensor x = contiguous(input), w = contiguous(weight), b;
  if (bias) b = contiguous(*bias);
  Tensor y = empty(pl.out_shape, x.dtype, x.device);
  if (pl.N == 0) return y;
  if (x.dtype == DType::Float32)
    run_forward<float>(pl, x.ptr<float>(), w.ptr<float>(), bias ? b.ptr<float>() : nullptr, y.ptr<float>(), algo);
  else
    run_forward<double>(pl, x.ptr<double>(), w.ptr<double>(), bias ? b.ptr<double>() : nullptr, y.ptr<double>(),
                        algo);
  return y;
}

static void check_grad_output(const char* op, const Tensor& dy, const Tensor& ref, const std::vector<int64_t>& expect,
                              const char* what) {
  check_same(op, "grad_output", dy, ref);
  const int nd = static_cast<int>(expect.size()) - 2;
  CNNOPS_CHECK_VALUE(dy.ndim() == nd + 2, op, ": expected grad_output with ", nd + 2, " dimensions ",
                     nd == 1 ? "(N, K, L_out)" : nd == 2 ? "(N, K, P, Q)" : "(N, K, D_out, P, Q)", ", got ", dy.ndim(),
                     " with shape ", shape_str(dy.shape));
  CNNOPS_CHECK_VALUE(dy.shape == expect, op, ": expected grad_output of shape ", shape_str(expect), " (", what,
                     "), got ", shape_str(dy.shape));
}

// Gradient outputs shaped like input/weight and a bias of `bias_len`; with an empty batch the
// weight and bias gradients are zero (and nothing else needs computing).
static ConvGrads alloc_grads(const Tensor& x, const Tensor& w, int64_t bias_len, bool ni, bool nw, bool nb) {
  ConvGrads out;
  out.has_input = ni;
  out.has_weight = nw;
  out.has_bias = nb;
  if (ni) out.grad_input = empty(x.shape, x.dtype, x.device);
  if (nw) out.grad_weight = empty(w.shape, x.dtype, x.device);
  if (nb) out.grad_bias = empty({bias_len}, x.dtype, x.device);
  if (x.shape[0] == 0) {
    zero(out.grad_weight);
    zero(out.grad_bias);
  }
  return out;
}

ConvGrads conv_backward(const char* op, const Tensor& grad_output, const Tensor& input, const Tensor& weight,
                        const ConvParams& p, bool need_input, bool need_weight, bool need_bias) {
  const Plan pl = make_plan(op, input.shape, input, weight, nullptr, p);
  const ConvAlgo algo = plan_algo(pl, p.algo, op);
  check_grad_output(op, grad_output, input, pl.out_shape, "the forward output's");
  require_cpu(op, input);
  Tensor dy = contiguous(grad_output), x = contiguous(input), w = contiguous(weight);
  ConvGrads out = alloc_grads(x, w, pl.K, need_input, need_weight, need_bias);
  if (pl.N == 0) return out;
  auto run = [&](auto tag) {
    using T = decltype(tag);
    if (need_input) run_grad_input<T>(pl, dy.ptr<T>(), w.ptr<T>(), out.grad_input.ptr<T>(), algo);
    if (need_weight) run_grad_weight<T>(pl, dy.ptr<T>(), x.ptr<T>(), out.grad_weight.ptr<T>(), algo);
    if (need_bias) run_grad_bias<T>(dy.ptr<T>(), out.grad_bias.ptr<T>(), pl.N, pl.K, spatial_size(pl.out_shape));
  };
  if (x.dtype == DType::Float32) run(float{});
  else run(double{});
  return out;
}

// ---- transposed convolution ----

// Checks the transposed op's own view (input (N, C_in, ...), weight (C_in, C_out/groups, ...),
// bias (C_out,), output sizes), then plans the convolution it is the adjoint of: that
// convolution's input is the transposed output (N, C_out, *out_spatial), its output must be the
// transposed input.
static Plan make_transpose_plan(const char* op, const Tensor& x, const Tensor& w, const Tensor* b, const ConvParams& p,
                                const std::vector<int64_t>& out_spatial, std::vector<int64_t>& eff) {
  const int nd = p.nd;
  CNNOPS_CHECK_VALUE(nd >= 1 && nd <= 3, op, ": expected 1, 2 or 3 spatial dimensions, got ", nd);
  CNNOPS_CHECK_VALUE(x.ndim() == nd + 2, op, ": expected input with ", nd + 2, " dimensions ",
                     nd == 1 ? "(N, C_in, L)" : nd == 2 ? "(N, C_in, H, W)" : "(N, C_in, D, H, W)", ", got ",
                     x.ndim(), " with shape ", shape_str(x.shape));
  CNNOPS_CHECK_VALUE(w.ndim() == nd + 2, op, ": expected weight with ", nd + 2, " dimensions ",
                     nd == 1 ? "(C_in, C_out/groups, kL)" : nd == 2 ? "(C_in, C_out/groups, R, S)"
                                                                   : "(C_in, C_out/groups, T, R, S)",
                     ", got ", w.ndim(), " with shape ", shape_str(w.shape));
  CNNOPS_CHECK_VALUE(p.groups >= 1, op, ": expected groups >= 1, got ", p.groups);
  CNNOPS_CHECK_VALUE(w.shape[0] == x.shape[1], op, ": expected weight.shape[0] == input channels ", x.shape[1],
                     ", got weight shape ", shape_str(w.shape));
  CNNOPS_CHECK_VALUE(x.shape[1] % p.groups == 0, op, ": expected input channels divisible by groups, got C_in=",
                     x.shape[1], " and groups=", p.groups);
  CNNOPS_CHECK_VALUE(static_cast<int>(out_spatial.size()) == nd, op, ": expected ", nd, " output sizes, got ",
                     out_spatial.size());
  for (int64_t s : out_spatial)
    CNNOPS_CHECK_VALUE(s >= 1, op, ": expected positive output sizes, got ", dims_str(out_spatial.data(), nd));
  const int64_t cout = w.shape[1] * p.groups;
  if (b) {
    check_same(op, "bias", *b, x);
    CNNOPS_CHECK_VALUE(b->ndim() == 1 && b->shape[0] == cout, op, ": expected bias of shape (", cout,
                       ",) (C_out = weight.shape[1] * groups), got ", shape_str(b->shape));
  }
  // Output sizes allowed: base <= out < base + max(stride, dilation), base the size without
  // output_padding. With output_padding >= stride (allowed while < dilation) the convolution of
  // the output is longer than the input ("ext" sizes): the input is then read as if extended
  // with zeros to that length, which changes nothing in the sum.
  // The lower end may be below 1 (padding larger than the kernel's reach); only sizes >= 1 are
  // outputs, as in PyTorch.
  eff.assign(nd, 0);
  for (int i = 0; i < nd; ++i) {
    CNNOPS_CHECK_VALUE(p.stride[i] >= 1 && p.dilation[i] >= 1 && p.pad[2 * i] >= 0 && p.pad[2 * i + 1] >= 0, op,
                       ": expected stride >= 1, dilation >= 1 and non-negative padding, got stride ",
                       tuple_str(p.stride.data(), nd), ", dilation ", tuple_str(p.dilation.data(), nd), ", padding ",
                       tuple_str(p.pad.data(), 2 * nd));
    const char* what = "the transposed output size (input - 1) * stride - padding + dilation * (kernel - 1) + 1";
    const int64_t k = w.shape[2 + i];
    const int64_t pads = checked_add(p.pad[2 * i], p.pad[2 * i + 1], op, "the total padding");
    const int64_t span = checked_mul(x.shape[2 + i] - 1, p.stride[i], op, what);
    const int64_t base = checked_add(span - pads, checked_mul(p.dilation[i], k - 1, op, what), op, what) + 1;
    const int64_t reach = std::max(p.stride[i], p.dilation[i]);
    const int64_t lo = std::max<int64_t>(base, 1), hi = base - 1 + reach;
    CNNOPS_CHECK_VALUE(hi >= 1, op, ": input ", dims_str(x.shape.data() + 2, nd),
                       " gives no output: padding ", tuple_str(p.pad.data(), 2 * nd),
                       " removes more than the transposed convolution produces in dimension ", i,
                       " (at most ", hi, " elements)");
    CNNOPS_CHECK_VALUE(out_spatial[i] >= lo && out_spatial[i] <= hi, op, ": output size ",
                       dims_str(out_spatial.data(), nd), " is not reachable from input ",
                       dims_str(x.shape.data() + 2, nd), ": dimension ", i, " must be in [", lo, ", ", hi, "]");
  }
  std::vector<int64_t> conv_in{x.shape[0], cout};
  conv_in.insert(conv_in.end(), out_spatial.begin(), out_spatial.end());
  checked_numel(conv_in, op, "the number of output elements");
  Plan pl = make_plan(op, conv_in, x, w, nullptr, p);
  eff.assign(pl.out_shape.begin() + 2, pl.out_shape.end());
  return pl;
}

// Copies the leading `box` corner of each of `planes` N-d planes from src (spatial sizes `ss`)
// to dst (sizes `ds`).
template <typename T>
static void copy_box(const T* src, const std::vector<int64_t>& ss, T* dst, const std::vector<int64_t>& ds,
                     const std::vector<int64_t>& box, int64_t planes) {
  const int nd = static_cast<int>(box.size());
  int64_t sn = 1, dn = 1, rows = 1;
  for (int i = 0; i < nd; ++i) {
    sn *= ss[i];
    dn *= ds[i];
    if (i + 1 < nd) rows *= box[i];
  }
  parallel_for(planes, [&](int64_t q) {
    for (int64_t r = 0; r < rows; ++r) {
      int64_t so = 0, dof = 0, rem = r;
      for (int i = nd - 2; i >= 0; --i) {  // row index -> outer coordinates
        const int64_t ci = rem % box[i];
        rem /= box[i];
        int64_t sstride = 1, dstride = 1;
        for (int j = i + 1; j < nd; ++j) {
          sstride *= ss[j];
          dstride *= ds[j];
        }
        so += ci * sstride;
        dof += ci * dstride;
      }
      std::memcpy(dst + q * dn + dof, src + q * sn + so, sizeof(T) * box[nd - 1]);
    }
  });
}

// x (N, C, *spatial) itself, or a copy zero-extended at the end to the spatial sizes `to`.
template <typename T>
static Tensor extend(const Tensor& x, const std::vector<int64_t>& to, int64_t channels) {
  const std::vector<int64_t> from(x.shape.begin() + 2, x.shape.end());
  if (from == to) return x;
  std::vector<int64_t> shape{x.shape[0], channels};
  shape.insert(shape.end(), to.begin(), to.end());
  Tensor e = empty(shape, x.dtype, x.device);
  zero(e);
  copy_box<T>(x.ptr<T>(), from, e.ptr<T>(), to, from, x.shape[0] * channels);
  return e;
}

Tensor conv_transpose(const char* op, const Tensor& input, const Tensor& weight, const Tensor* bias,
                      const ConvParams& p, const std::vector<int64_t>& out_spatial) {
  std::vector<int64_t> eff;
  const Plan pl = make_transpose_plan(op, input, weight, bias, p, out_spatial, eff);
  const ConvAlgo algo = plan_algo(pl, p.algo, op);
  require_cpu(op, input);
  Tensor x = contiguous(input), w = contiguous(weight), b;
  if (bias) b = contiguous(*bias);
  std::vector<int64_t> out_shape{pl.N, pl.C};
  out_shape.insert(out_shape.end(), out_spatial.begin(), out_spatial.end());
  Tensor y = empty(out_shape, x.dtype, x.device);
  if (pl.N == 0) return y;
  auto run = [&](auto tag) {
    using T = decltype(tag);
    run_grad_input<T>(pl, extend<T>(x, eff, pl.K).template ptr<T>(), w.ptr<T>(), y.ptr<T>(), algo,
                      bias ? b.ptr<T>() : nullptr);
  };
  if (x.dtype == DType::Float32) run(float{});
  else run(double{});
  return y;
}

ConvGrads conv_transpose_backward(const char* op, const Tensor& grad_output, const Tensor& input,
                                  const Tensor& weight, const ConvParams& p, bool need_input, bool need_weight,
                                  bool need_bias) {
  CNNOPS_CHECK_VALUE(grad_output.ndim() == p.nd + 2, op, ": expected grad_output with ", p.nd + 2,
                     " dimensions, got shape ", shape_str(grad_output.shape));
  const std::vector<int64_t> out_spatial(grad_output.shape.begin() + 2, grad_output.shape.end());
  std::vector<int64_t> eff;
  const Plan pl = make_transpose_plan(op, input, weight, nullptr, p, out_spatial, eff);
  const ConvAlgo algo = plan_algo(pl, p.algo, op);
  std::vector<int64_t> expect{pl.N, pl.C};
  expect.insert(expect.end(), out_spatial.begin(), out_spatial.end());
  check_grad_output(op, grad_output, input, expect, "the transposed output's");
  require_cpu(op, input);
  Tensor dy = contiguous(grad_output), x = contiguous(input), w = contiguous(weight);
  ConvGrads out = alloc_grads(x, w, pl.C, need_input, need_weight, need_bias);
  if (pl.N == 0) return out;
  const std::vector<int64_t> in_spatial(x.shape.begin() + 2, x.shape.end());
  auto run = [&](auto tag) {
    using T = decltype(tag);
    // The transposed op's input gradient is the convolution of its output gradient (cropped back
    // to the input when the output was longer than the input reaches).
    if (need_input) {
      if (eff == in_spatial) {
        run_forward<T>(pl, dy.ptr<T>(), w.ptr<T>(), nullptr, out.grad_input.ptr<T>(), algo);
      } else {
        std::vector<int64_t> eshape{pl.N, pl.K};
        eshape.insert(eshape.end(), eff.begin(), eff.end());
        Tensor ge = empty(eshape, x.dtype, x.device);
        run_forward<T>(pl, dy.ptr<T>(), w.ptr<T>(), nullptr, ge.ptr<T>(), algo);
        copy_box<T>(ge.ptr<T>(), eff, out.grad_input.ptr<T>(), in_spatial, in_spatial, pl.N * pl.K);
      }
    }
    // Its weight gradient is the convolution's, with the roles of image and output swapped.
    if (need_weight)
      run_grad_weight<T>(pl, extend<T>(x, eff, pl.K).template ptr<T>(), dy.ptr<T>(), out.grad_weight.ptr<T>(), algo);
    if (need_bias) run_grad_bias<T>(dy.ptr<T>(), out.grad_bias.ptr<T>(), pl.N, pl.C, spatial_size(expect));
  };
  if (x.dtype == DType::Float32) run(float{});
  else run(double{});
  return out;
}

}  // namespace cnnops
