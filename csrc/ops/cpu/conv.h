// CPU convolution kernels (declarations). All tensors are contiguous NCHW / KCRS on the CPU.
#pragma once
#include <algorithm>

#include "ops/conv.h"

namespace cnnops {
namespace cpu {

// Map a coordinate of the virtually padded input back to the input (or -1 for a zero pad).
inline int64_t pad_index(int64_t i, int64_t n, PadMode m) {
  if (i >= 0 && i < n) return i;
  switch (m) {
    case PadMode::Zeros: return -1;
    case PadMode::Reflect: return i < 0 ? -i : 2 * (n - 1) - i;
    case PadMode::Replicate: return i < 0 ? 0 : n - 1;
    case PadMode::Circular: return ((i % n) + n) % n;
  }
  return -1;
}

// Output columns [lo, hi) whose input column ow*stride + off lies inside [0, n).
inline void interior_range(int64_t n, int64_t stride, int64_t off, int64_t out, int64_t& lo, int64_t& hi) {
  // smallest ow with ow*stride + off >= 0
  lo = off >= 0 ? 0 : (-off + stride - 1) / stride;
  // largest ow with ow*stride + off <= n - 1
  hi = (n - 1 - off) < 0 ? 0 : (n - 1 - off) / stride + 1;
  if (lo > out) lo = out;
  if (hi > out) hi = out;
  if (hi < lo) hi = lo;
}

// Padded copies of input rows for the slab kernels (smallc, depthwise). Padded row i holds input
// row (prow0 + i - pt) of channel plane xc, with the padding applied (zeros, or the mode's
// mirrored/clamped/wrapped values). Each padded row is split into `sw` phases of Wph values:
// padded column cp lives at (cp % sw) * Wph + cp / sw, so for any stride the values one tap sees
// at consecutive output columns are consecutive in memory. Unused tail slots are zero.
template <typename T>
void fill_padded_rows(const T* xc, const Conv2dGeom& g, int64_t prow0, int64_t nrows, T* out, int64_t Wph);

// Phase width that holds every padded column and lets `qr` output columns be read past the last
// tap without leaving the row.
inline int64_t padded_phase_width(const Conv2dGeom& g, int64_t qr) {
  const int64_t wp = g.pl + g.W + g.pr;
  return std::max(qr + ((g.S - 1) * g.dw) / g.sw, (wp + g.sw - 1) / g.sw);
}
// Padded input rows a block of `rows` output rows reads.
inline int64_t slab_rows(const Conv2dGeom& g, int64_t rows) { return (rows - 1) * g.sh + (g.R - 1) * g.dh + 1; }
// Offset of tap column s inside a phase-split padded row.
inline int64_t tap_offset(const Conv2dGeom& g, int64_t s, int64_t Wph) {
  return ((s * g.dw) % g.sw) * Wph + (s * g.dw) / g.sw;
}

// Where the gemm and smallc forwards find their operands. Output plane (image n, channel k) at
// y + out_plane(g, n, k), consecutive channels out_cstride(g) apart (NCHW when g.yd == 1). Input
// plane (image n, channel c) at xplanes[n * C + c] when a table is given (the 3-D lowering points
// it at the depth slices of the 5-D input, and at a zero plane for zero depth padding, instead of
// copying them), else at x + (n * C + c) * H * W.
inline int64_t out_plane(const Conv2dGeom& g, int64_t n, int64_t k) {
  return ((n / g.yd * g.K + k) * g.yd + n % g.yd) * g.P * g.Q;
}
inline int64_t out_cstride(const Conv2dGeom& g) { return g.yd * g.P * g.Q; }
template <typename T>
inline const T* in_plane(const T* x, const T* const* xplanes, const Conv2dGeom& g, int64_t n, int64_t c) {
  return xplanes ? xplanes[n * g.C + c] : x + (n * g.C + c) * g.H * g.W;
}

// True when none of the n values is NaN or infinite. The kernels differ in which products with
// implicit zero padding they form (a slab holds the zeros, the direct loops skip them), which only
// shows when a value is not finite; callers use this to send such inputs down one path.
template <typename T>
bool all_finite(const T* p, int64_t n);

template <typename T>
void conv2d_forward_direct(const T* x, const T* w, const T* b, T* y, const Conv2dGeom& g);
template <typename T>
void conv2d_forward_gemm(const T* x, const T* w, const T* b, T* y, const Conv2dGeom& g,
                         const T* const* xplanes = nullptr);
template <typename T>
void conv2d_forward_smallc(const T* x, const T* w, const T* b, T* y, const Conv2dGeom& g,
                           const T* const* xplanes = nullptr);
// Winograd F(2x2, 3x3) or F(2x2, 5x5): needs R = S = 3 or 5, stride 1 and dilation 1 (checked by
// the caller).
template <typename T>
void conv2d_forward_winograd(const T* x, const T* w, const T* b, T* y, const Conv2dGeom& g,
                             const T* const* xplanes = nullptr);
// The same with filter (k, c) of group gi read as the 180-degree rotation of w's filter (c, k):
// w holds the weights of the convolution whose input gradient this forward computes (K/g and
// C/g of `g` swapped), which are then never transposed into a copy.
template <typename T>
void conv2d_forward_winograd_flipped(const T* x, const T* w, const T* b, T* y, const Conv2dGeom& g);
template <typename T>
void conv2d_forward_depthwise(const T* x, const T* w, const T* b, T* y, const Conv2dGeom& g);

template <typename T>
void conv2d_backward_input_direct(const T* dy, const T* w, T* dx, const Conv2dGeom& g);
// dx = the input gradient, plus bias[c] on every element of channel c when `bias` is not null (the
// transposed convolution's forward: the bias seeds dx instead of costing a pass of its own).
template <typename T>
void conv2d_backward_input_gemm(const T* dy, const T* w, T* dx, const Conv2dGeom& g, const T* bias = nullptr);
template <typename T>
void conv2d_backward_input_depthwise(const T* dy, const T* w, T* dx, const Conv2dGeom& g);

template <typename T>
void conv2d_backward_weight_direct(const T* dy, const T* x, T* dw, const Conv2dGeom& g);
template <typename T>
void conv2d_backward_weight_smallc(const T* dy, const T* x, T* dw, const Conv2dGeom& g);
// out[j] = sum over i < parts of partial[i*size + j], in order i = 0, 1, ... (grad_weight's
// per-chunk partial sums; the fixed order keeps results independent of scheduling).
// Weight gradients sum over images and pixels. Where that reduction is split into chunks with
// partial sums (added in chunk order by sum_partials), the number of chunks follows the problem
// (enough (group, chunk) tasks for up to kWeightGradTasks threads, partial sums within
// kWeightGradPartialBytes), never the thread count: the result is then the same to the last bit
// whatever the number of threads. Eight tasks: within 4% of per-thread chunking on two cores, where
// sixteen cost up to 16% (more partial sums, shorter GEMM runs; results/weight_grad_chunks_cpu.md
// under benchmarks/); a layer with fewer tap blocks than threads leaves threads idle beyond 8.
constexpr int64_t kWeightGradTasks = 8;
constexpr int64_t kWeightGradPartialBytes = int64_t(64) << 20;
inline int64_t weight_grad_chunks(int64_t units, int64_t other_tasks, int64_t weight_bytes) {
  int64_t n = (kWeightGradTasks + other_tasks - 1) / other_tasks;
  n = std::min(n, std::max<int64_t>(1, kWeightGradPartialBytes / std::max<int64_t>(1, weight_bytes)));
  return std::max<int64_t>(1, std::min(units, n));
}

template <typename T>
void sum_partials(const T* partial, int64_t parts, T* out, int64_t size);
template <typename T>
void conv2d_backward_weight_gemm(const T* dy, const T* x, T* dw, const Conv2dGeom& g);
template <typename T>
void conv2d_backward_weight_depthwise(const T* dy, const T* x, T* dw, const Conv2dGeom& g);
// The forward and the weight gradient through a channels-last copy of the input (conv_nhwc.cpp);
// false (nothing written) where they do not apply (channels_last_applies there).
template <typename T>
bool conv2d_forward_nhwc(const T* x, const T* w, const T* b, T* y, const Conv2dGeom& g,
                         const T* const* xplanes = nullptr);
template <typename T>
bool conv2d_backward_weight_nhwc(const T* dy, const T* x, T* dw, const Conv2dGeom& g);

template <typename T>
void conv2d_backward_bias(const T* dy, T* db, const Conv2dGeom& g);

// One im2col row: for weight tap (c, r, s) of group-local channel c, the values the tap sees at
// output pixels [p0, p0 + np) (p = oh*Q + ow), written to out[0..np). xg points at the group's
// first channel of one image.
template <typename T>
void im2col_row(const T* xg, const Conv2dGeom& g, int64_t c, int64_t r, int64_t s, int64_t p0, int64_t np, T* out);

// ---- drivers (conv_driver.cpp): what ops/conv.cpp and ops/conv_transpose.cpp call ----

// The algorithm for `requested` on the CPU: a requested one after checking it applies to the plan,
// or the "auto" rule (written out in conv_driver.cpp).
ConvAlgo conv_choose_algo(const ConvPlan& pl, ConvAlgo requested, const char* op);
// y = conv(x, w) + b for contiguous CPU tensors shaped as planned.
void conv_forward(const ConvPlan& pl, const Tensor& x, const Tensor& w, const Tensor* b, Tensor& y, ConvAlgo algo);
// The gradients `out` asks for (has_*), every element written (zeros for an empty batch).
void conv_backward(const ConvPlan& pl, const Tensor& dy, const Tensor& x, const Tensor& w, ConvGrads& out,
                   ConvAlgo algo);

// Zeros in the weight and bias gradients `out` asks for (an empty batch sums nothing).
void zero_param_grads(ConvGrads& out);

// The N-d data paths on raw pointers (3-D through the depth lowering), shared with the transposed
// convolution's drivers. grad_input adds bias[c] to channel c of dx when `bias` is not null.
template <typename T>
void lowered_forward(const ConvPlan& pl, const T* x, const T* w, const T* b, T* y, ConvAlgo algo);
template <typename T>
void lowered_grad_input(const ConvPlan& pl, const T* dy, const T* w, T* dx, ConvAlgo algo, const T* bias);
template <typename T>
void lowered_grad_weight(const ConvPlan& pl, const T* dy, const T* x, T* dw, ConvAlgo algo);
// db[k] = sum over n and `spatial` positions of dy (N, K, spatial).
template <typename T>
void grad_bias_sum(const T* dy, T* db, int64_t N, int64_t K, int64_t spatial);

}  // namespace cpu
}  // namespace cnnops
