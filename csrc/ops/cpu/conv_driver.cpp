// CPU drivers of the convolution family: the "auto" rule, the routing of non-finite values,
// the 3-D lowering (depth gather, fold and permute around the 2-D kernels) and the entry points
// cpu::conv_forward / cpu::conv_backward that ops/conv.cpp calls for CPU tensors.
//
// A 3-D convolution runs as a 2-D one over N*Do images of C*T channels (see ops/conv.h). The
// gemm, smallc and winograd forwards read the input's depth slices in place through a table of
// plane pointers and write the 5-D output directly (Conv2dGeom::yd); the other kernels and the
// backward passes work on gathered copies in uninitialised host blocks.
#include <cstring>
#include <vector>

#include "core/dispatch.h"
#include "core/error.h"
#include "core/parallel.h"
#include "ops/cpu/conv.h"

namespace cnnops {
namespace cpu {

// The "auto" rule (measured on the 2-core AVX2 machine, see benchmarks/results/conv_cpu.md):
//   groups == C (one input channel per group)           -> depthwise (memory-bound plane kernel)
//   C/groups <= 4 (any stride)                           -> smallc (the slab kernel, below)
//   3x3 kernel (3-D: the last two kernel dimensions, likewise 5x5 below), stride 1, dilation 1,
//   C/groups >= 8, K/groups >= 16, (C/groups) x (K/groups) >= 512 -> winograd: F(2x2, 3x3) does 2.25x
//       fewer multiply-adds; at these sizes that outweighs its tile transforms. Its speed-up over
//       the kernel the rest of the rule would pick: ResNet-50 3x3 1.41x, VGG-16 224x224 1.32x,
//       56x56x256 1.75x, 14x14x512 1.57x, the 3-D layers 1.48x and 1.43x; 32 -> 32 channels at
//       28x28 1.02x, 16 -> 64 1.04x, 8 -> 64 1.08x, but 16 -> 16 channels 0.84x, 8 -> 8 0.75x and
//       64 -> 8 0.99x: the transforms grow with C + K, the products with C x K.
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
//       input gradient (21 channels) 3.3 ms vs 7.9 ms. At stride 3 packing is faster (64 input
//       and 48 output channels, 3x3: 3.0 ms packed vs 3.8 ms slab).
//   everything else                                      -> gemm (packed implicit GEMM): 1x1
//       kernels (packed panels are read with better locality than slab rows hundreds of
//       channels apart), wide layers (ResNet-50 3x3/2 with 128 channels: 18.1 ms vs 20.2 ms slab).
// The rule's last two lines also pick the weight-gradient kernel of a Winograd layer (there is
// no Winograd weight gradient): the packed GEMM in their place would make the 3-D layers'
// backward 12-16% slower. At the AVX-512 level the gemm weight gradient, and the gemm forward of
// small images, run through a channels-last copy of the input where conv_nhwc.cpp's conditions
// hold (weight gradients of ResNet-18's 3x3 layers at batch 16: 1.07-1.41x the im2col path,
// VGG's 512-channel 3x3 at batch 1: 1.40x; forwards of its 3x3/2 layers 1.03-1.14x).
static ConvAlgo slab_or_gemm(const Conv2dGeom& g) {
  return g.sw <= 2 && g.Kg <= 64 && g.R * g.S > 1 ? ConvAlgo::SmallC : ConvAlgo::Gemm;
}

static ConvAlgo choose_algo_2d(const Conv2dGeom& g, ConvAlgo requested, const char* op) {
  if (requested == ConvAlgo::Depthwise)
    CNNOPS_CHECK_VALUE(g.Cg == 1, op, ": algo='depthwise' needs groups == input channels, got C=", g.C,
                       " and groups=", g.G);
  if (requested == ConvAlgo::Winograd)
    CNNOPS_CHECK_VALUE(g.R == g.S && (g.R == 3 || g.R == 5) && g.sh == 1 && g.sw == 1 && g.dh == 1 && g.dw == 1, op,
                       ": algo='winograd' needs a 3x3 or 5x5 kernel (the last two kernel dimensions) with stride 1 "
                       "and dilation 1, got kernel (",
                       g.R, ", ", g.S, "), stride (", g.sh, ", ", g.sw, "), dilation (", g.dh, ", ", g.dw, ")");
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
  if (!all_finite(w, nw)) return ConvAlgo::Gemm;
  if (algo == ConvAlgo::Winograd && !all_finite(x, nx)) return ConvAlgo::Gemm;
  return algo;
}

template <typename T>
static void forward_2d(const T* x, const T* w, const T* b, T* y, const Conv2dGeom& g, ConvAlgo algo) {
  algo = forward_algo_for_values(algo, x, g.N * g.C * g.H * g.W, w, g.K * g.Cg * g.R * g.S);
  switch (algo) {
    case ConvAlgo::Direct: conv2d_forward_direct<T>(x, w, b, y, g); break;
    case ConvAlgo::Depthwise: conv2d_forward_depthwise<T>(x, w, b, y, g); break;
    case ConvAlgo::SmallC: conv2d_forward_smallc<T>(x, w, b, y, g); break;
    case ConvAlgo::Winograd: conv2d_forward_winograd<T>(x, w, b, y, g); break;
    default:
      if (!conv2d_forward_nhwc<T>(x, w, b, y, g)) conv2d_forward_gemm<T>(x, w, b, y, g);
      break;
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
  t.C = g.K;
  t.K = g.C;
  t.Cg = g.Kg;
  t.Kg = g.Cg;
  t.H = g.P;
  t.W = g.Q;
  t.P = g.H;
  t.Q = g.W;
  t.pt = g.dh * (g.R - 1) - g.pt;
  t.pb = g.H - g.P + g.pt;
  t.pl = g.dw * (g.S - 1) - g.pl;
  t.pr = g.W - g.Q + g.pl;
  if (t.pt < 0 || t.pb < 0 || t.pl < 0 || t.pr < 0) return false;
  const int64_t RS = g.R * g.S;
  // Winograd reads the weights transposed and flipped where they lie: ResNet-18's 512-channel
  // 4x4 layer's input gradient spent a fifth of its time on the transposed copy below.
  const ConvAlgo algo = choose_algo_2d(t, ConvAlgo::Auto, "conv_backward");
  if (algo == ConvAlgo::Winograd &&
      forward_algo_for_values(algo, dy, t.N * t.C * t.H * t.W, w, g.K * g.Cg * RS) == ConvAlgo::Winograd) {
    conv2d_forward_winograd_flipped<T>(dy, w, bias, dx, t);
    return true;
  }
  // One task per transposed filter row (group, input channel): its writes are contiguous, and
  // ResNet's 512-channel 3x3 weights (9 MB) take a few percent of the layer instead of a third.
  Tensor wt_buf = empty({g.K * g.Cg * RS}, sizeof(T) == 4 ? DType::Float32 : DType::Float64, Device{});
  T* wt = wt_buf.ptr<T>();
  parallel_for(g.G * g.Cg, [&](int64_t q) {
    const int64_t gi = q / g.Cg, c = q % g.Cg;
    T* out = wt + q * g.Kg * RS;
    for (int64_t k = 0; k < g.Kg; ++k) {
      const T* src = w + ((gi * g.Kg + k) * g.Cg + c) * RS;
      for (int64_t rs = 0; rs < RS; ++rs) out[k * RS + (RS - 1 - rs)] = src[rs];
    }
  });
  forward_2d<T>(dy, wt, bias, dx, t, algo);
  return true;
}

// dx (+ bias per channel of dx, when given: the transposed convolution's forward). The GEMM and
// forward-convolution paths take the bias in their first write; the others add it after. A
// depthwise layer with one output per channel at stride 1 (zero padding) runs the depthwise
// forward with the flipped kernel: 32 outputs in registers over all taps, instead of a
// read-modify-write pass over the dx row per tap (MobileNet 8x256x56x56: see conv_depthwise.cpp).
template <typename T>
static void grad_input_2d(const T* dy, const T* w, T* dx, const Conv2dGeom& g, ConvAlgo algo, const T* bias = nullptr) {
  // A non-finite weight would meet the zero padding of dy in the forward-convolution form: the
  // GEMM with col2im (or the direct loops) form only the products that reach dx.
  if (algo != ConvAlgo::Direct && !all_finite(w, g.K * g.Cg * g.R * g.S)) {
    conv2d_backward_input_gemm<T>(dy, w, dx, g, bias);
    return;
  }
  if (algo == ConvAlgo::Depthwise && g.Kg == 1 && grad_input_as_forward<T>(dy, w, dx, g, bias)) return;
  if (algo == ConvAlgo::Direct || algo == ConvAlgo::Depthwise) {
    if (algo == ConvAlgo::Direct) conv2d_backward_input_direct<T>(dy, w, dx, g);
    else conv2d_backward_input_depthwise<T>(dy, w, dx, g);
    if (bias) add_bias<T>(dx, bias, g.N, g.C, g.H * g.W);
  } else if (!grad_input_as_forward<T>(dy, w, dx, g, bias)) {
    conv2d_backward_input_gemm<T>(dy, w, dx, g, bias);
  }
}

template <typename T>
static void grad_weight_2d(const T* dy, const T* x, T* dw, const Conv2dGeom& g, ConvAlgo algo) {
  if ((algo == ConvAlgo::Direct || algo == ConvAlgo::Depthwise) &&
      !(all_finite(dy, g.N * g.K * g.P * g.Q) && all_finite(x, g.N * g.C * g.H * g.W)))
    algo = ConvAlgo::Gemm;
  if (algo == ConvAlgo::Direct) conv2d_backward_weight_direct<T>(dy, x, dw, g);
  else if (algo == ConvAlgo::Depthwise) conv2d_backward_weight_depthwise<T>(dy, x, dw, g);
  else if (algo == ConvAlgo::SmallC || (algo == ConvAlgo::Winograd && slab_or_gemm(g) == ConvAlgo::SmallC))
    conv2d_backward_weight_smallc<T>(dy, x, dw, g);
  else if (!conv2d_backward_weight_nhwc<T>(dy, x, dw, g)) conv2d_backward_weight_gemm<T>(dy, x, dw, g);
}

ConvAlgo conv_choose_algo(const ConvPlan& pl, ConvAlgo requested, const char* op) {
  // 3-D folds kernel depth into channels: the per-channel depthwise kernel applies only when T == 1.
  if (requested == ConvAlgo::Depthwise && pl.nd == 3)
    CNNOPS_CHECK_VALUE(pl.T == 1 && pl.g.Cg == 1, op,
                       ": algo='depthwise' for 3-D needs groups == input channels and kernel depth 1, got C=", pl.C,
                       ", groups=", pl.g.G, ", kernel depth ", pl.T);
  return choose_algo_2d(pl.g, requested, op);
}

// ---- the depth dimension of 3-D convolutions (see conv.h) ----

// The input depth that kernel-depth tap t of output depth od reads (padded per mode), or -1 for a
// zero pad: lowered channel c*T + t of lowered image n*Do + od is plane x[n][c][depth_source].
static int64_t depth_source(const ConvPlan& pl, int64_t od, int64_t t) {
  return pad_index(od * pl.sd - pl.pf + t * pl.dd, pl.D, pl.mode);
}

// x' (N*Do, C*T, H, W): x'[n*Do + od][c*T + t] = x[n][c][depth od*sd - pf + t*dd] (padded per mode).
template <typename T>
static void depth_gather(const T* x, T* xl, const ConvPlan& pl) {
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
static void depth_fold(const T* dxl, T* dx, const ConvPlan& pl) {
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
static void depth_permute(const T* src, T* dst, const ConvPlan& pl, int64_t channels, int64_t plane, bool to_lowered) {
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

// ---- N-d data paths on contiguous CPU tensors (declared in conv.h) ----

// Uninitialised buffers for the lowered 3-D operands: every element is written by the
// gather/permute before it is read (a zero-filled std::vector would add a pass over memory), and
// blocks of 1 MB or more come back from the host block cache without fresh page faults.
template <typename T>
static Tensor lowered_buffer(int64_t n) {
  return empty({n}, sizeof(T) == 4 ? DType::Float32 : DType::Float64, Device{});
}

template <typename T>
void lowered_forward(const ConvPlan& pl, const T* x, const T* w, const T* b, T* y, ConvAlgo algo) {
  const Conv2dGeom& g = pl.g;
  if (pl.nd < 3) return forward_2d<T>(x, w, b, y, g, algo);
  algo = forward_algo_for_values(algo, x, pl.N * pl.C * pl.D * g.H * g.W, w, g.K * g.Cg * g.R * g.S);
  if (algo == ConvAlgo::Gemm || algo == ConvAlgo::SmallC || algo == ConvAlgo::Winograd) {
    // In place: a table of the input planes each lowered (image, channel) reads, and the output
    // written straight into (N, K, Do, ...), instead of a gathered copy of the input (kernel depth
    // times its size: 77 MB for the benchmark's 4x32x16x56x56 layer) and a permuted copy of the
    // output (51 MB). Same bits, and the benchmark's two 3-D layers run 3-10% faster than with
    // the copies.
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
    if (algo == ConvAlgo::Gemm) {
      if (!conv2d_forward_nhwc<T>(x, w, b, y, gy, planes.data())) conv2d_forward_gemm<T>(x, w, b, y, gy, planes.data());
    } else if (algo == ConvAlgo::Winograd) conv2d_forward_winograd<T>(x, w, b, y, gy, planes.data());
    else conv2d_forward_smallc<T>(x, w, b, y, gy, planes.data());
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
void lowered_grad_input(const ConvPlan& pl, const T* dy, const T* w, T* dx, ConvAlgo algo, const T* bias) {
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
void lowered_grad_weight(const ConvPlan& pl, const T* dy, const T* x, T* dw, ConvAlgo algo) {
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
void grad_bias_sum(const T* dy, T* db, int64_t N, int64_t K, int64_t spatial) {
  Conv2dGeom g{};
  g.N = N;
  g.K = K;
  g.P = spatial;
  g.Q = 1;
  conv2d_backward_bias<T>(dy, db, g);
}

void zero_param_grads(ConvGrads& out) {
  for (Tensor* t : {&out.grad_weight, &out.grad_bias})
    if (t->data) std::memset(t->data, 0, static_cast<size_t>(t->numel()) * dtype_size(t->dtype));
}

void conv_forward(const ConvPlan& pl, const Tensor& x, const Tensor& w, const Tensor* b, Tensor& y, ConvAlgo algo) {
  if (pl.N == 0) return;
  dispatch_float(x.dtype, current_op(), [&](auto tag) {
    using T = decltype(tag);
    lowered_forward<T>(pl, x.ptr<T>(), w.ptr<T>(), b ? b->ptr<T>() : nullptr, y.ptr<T>(), algo);
  });
}

void conv_backward(const ConvPlan& pl, const Tensor& dy, const Tensor& x, const Tensor& w, ConvGrads& out,
                   ConvAlgo algo) {
  if (pl.N == 0) return zero_param_grads(out);
  dispatch_float(x.dtype, current_op(), [&](auto tag) {
    using T = decltype(tag);
    if (out.has_input) lowered_grad_input<T>(pl, dy.ptr<T>(), w.ptr<T>(), out.grad_input.ptr<T>(), algo, nullptr);
    if (out.has_weight) lowered_grad_weight<T>(pl, dy.ptr<T>(), x.ptr<T>(), out.grad_weight.ptr<T>(), algo);
    if (out.has_bias) {
      int64_t spatial = 1;
      for (size_t i = 2; i < pl.out_shape.size(); ++i) spatial *= pl.out_shape[i];
      grad_bias_sum<T>(dy.ptr<T>(), out.grad_bias.ptr<T>(), pl.N, pl.K, spatial);
    }
  });
}

#define CNNOPS_INSTANTIATE(T)                                                                       \
  template void lowered_forward<T>(const ConvPlan&, const T*, const T*, const T*, T*, ConvAlgo);    \
  template void lowered_grad_input<T>(const ConvPlan&, const T*, const T*, T*, ConvAlgo, const T*); \
  template void lowered_grad_weight<T>(const ConvPlan&, const T*, const T*, T*, ConvAlgo);          \
  template void grad_bias_sum<T>(const T*, T*, int64_t, int64_t, int64_t);
CNNOPS_INSTANTIATE(float)
CNNOPS_INSTANTIATE(double)
#undef CNNOPS_INSTANTIATE

}  // namespace cpu
}  // namespace cnnops
