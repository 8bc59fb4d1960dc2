// CPU convolution kernels (declarations). All tensors are contiguous NCHW / KCRS on the CPU.
#pragma once
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

template <typename T>
void conv2d_forward_direct(const T* x, const T* w, const T* b, T* y, const Conv2dGeom& g);
template <typename T>
void conv2d_forward_gemm(const T* x, const T* w, const T* b, T* y, const Conv2dGeom& g);
template <typename T>
void conv2d_forward_smallc(const T* x, const T* w, const T* b, T* y, const Conv2dGeom& g);
template <typename T>
void conv2d_forward_depthwise(const T* x, const T* w, const T* b, T* y, const Conv2dGeom& g);

template <typename T>
void conv2d_backward_input_direct(const T* dy, const T* w, T* dx, const Conv2dGeom& g);
template <typename T>
void conv2d_backward_input_gemm(const T* dy, const T* w, T* dx, const Conv2dGeom& g);
template <typename T>
void conv2d_backward_input_depthwise(const T* dy, const T* w, T* dx, const Conv2dGeom& g);

template <typename T>
void conv2d_backward_weight_direct(const T* dy, const T* x, T* dw, const Conv2dGeom& g);
template <typename T>
void conv2d_backward_weight_gemm(const T* dy, const T* x, T* dw, const Conv2dGeom& g);
template <typename T>
void conv2d_backward_weight_depthwise(const T* dy, const T* x, T* dw, const Conv2dGeom& g);

template <typename T>
void conv2d_backward_bias(const T* dy, T* db, const Conv2dGeom& g);

// One im2col row: for weight tap (c, r, s) of group-local channel c, the values the tap sees at
// output pixels [p0, p0 + np) (p = oh*Q + ow), written to out[0..np). xg points at the group's
// first channel of one image.
template <typename T>
void im2col_row(const T* xg, const Conv2dGeom& g, int64_t c, int64_t r, int64_t s, int64_t p0, int64_t np, T* out);

}  // namespace cpu
}  // namespace cnnops
