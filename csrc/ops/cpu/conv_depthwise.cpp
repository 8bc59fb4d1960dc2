// Depthwise convolution (groups == C, any channel multiplier K/C): plane-parallel drivers that
// call the row kernels of conv_depthwise_rows.h, the AVX2 build when the CPU has it.
// Memory-bound: MobileNet's 8x256x56x56 3x3 layer moves 51 MB (floor 2.6 ms at the measured
// 19.7 GB/s). Output blocks come from the host block cache (core/tensor.cpp): fresh pages would
// cost 6,500 page faults per call.
//  - forward: the row kernel computes each row in whole 32-wide register blocks stored up to Q
//    (see dw_row in conv_depthwise_rows.h); outputs larger than the cache (kStreamMinBytes) are
//    written with streaming stores.
//  - backward: the weight gradient reads the padded plane with up to 9 taps per pass (one dy
//    load per 9 FMAs), the input gradient at stride 1 runs this forward with the flipped kernel
//    (conv_driver.cpp, grad_input_2d), and the bias gradient sums in eight lanes.
// MobileNet 3x3 forward: 49% of the memory floor (benchmarks/results/conv_cpu.md).
// The AVX2 kernels also serve the AVX-512 level: an AVX-512 copy of the row kernels (zmm blocks
// of up to 64 outputs, weight-gradient passes of up to 25 taps, masked tails) measured on Zen 4
// (whole-process A/B, medians of 9, 8x256 channels 3x3 at 28x28 and 56x56, 8x64x112x112)
// forward 0.95-1.06x the AVX2 kernels, weight gradient 6-9% slower: the kernels are bound by
// loads, and every unaligned zmm load splits a cache line.
#define CNNOPS_ISA portable
#include "ops/cpu/conv_depthwise_rows.h"

#include "core/cpu_features.h"
#include "core/parallel.h"

namespace cnnops {
namespace cpu {

#ifdef CNNOPS_HAVE_AVX2_TU
namespace avx2 {
template <typename T> void dw_forward_plane(const T*, const T*, T, T*, const Conv2dGeom&, bool);
template <typename T> void dw_backward_input_plane(const T*, const T*, T*, const Conv2dGeom&);
template <typename T> void dw_backward_weight_plane(const T*, const T*, T*, const Conv2dGeom&);
}  // namespace avx2
#endif

// The ISA selector of the family: the plane kernels of the highest level this process may run.
template <typename T>
struct DwPlanes {
  void (*forward)(const T*, const T*, T, T*, const Conv2dGeom&, bool);
  void (*backward_input)(const T*, const T*, T*, const Conv2dGeom&);
  void (*backward_weight)(const T*, const T*, T*, const Conv2dGeom&);
};

template <typename T>
static DwPlanes<T> dw_planes() {
#ifdef CNNOPS_HAVE_AVX2_TU
  if (use_avx2())
    return {avx2::dw_forward_plane<T>, avx2::dw_backward_input_plane<T>, avx2::dw_backward_weight_plane<T>};
#endif
  return {portable::dw_forward_plane<T>, portable::dw_backward_input_plane<T>, portable::dw_backward_weight_plane<T>};
}

template <typename T>
void conv2d_forward_depthwise(const T* x, const T* w, const T* b, T* y, const Conv2dGeom& g) {
  const int64_t RS = g.R * g.S;
  const bool stream = static_cast<size_t>(g.N * g.K * g.P * g.Q) * sizeof(T) >= kStreamMinBytes;
  const DwPlanes<T> k = dw_planes<T>();
  parallel_for(g.N * g.K, [&](int64_t t) {
    const int64_t n = t / g.K, kc = t % g.K, c = kc / g.Kg;
    k.forward(x + (n * g.C + c) * g.H * g.W, w + kc * RS, b ? b[kc] : T(0), y + t * g.P * g.Q, g, stream);
  });
}

template <typename T>
void conv2d_backward_input_depthwise(const T* dy, const T* w, T* dx, const Conv2dGeom& g) {
  const int64_t RS = g.R * g.S;
  const DwPlanes<T> dk = dw_planes<T>();
  parallel_for(g.N * g.C, [&](int64_t t) {
    const int64_t n = t / g.C, c = t % g.C;
    T* dxc = dx + t * g.H * g.W;
    std::fill(dxc, dxc + g.H * g.W, T(0));
    for (int64_t m = 0; m < g.Kg; ++m) {
      const int64_t k = c * g.Kg + m;
      dk.backward_input(dy + (n * g.K + k) * g.P * g.Q, w + k * RS, dxc, g);
    }
  });
}

template <typename T>
void conv2d_backward_weight_depthwise(const T* dy, const T* x, T* dw, const Conv2dGeom& g) {
  const int64_t RS = g.R * g.S;
  const DwPlanes<T> dk = dw_planes<T>();
  parallel_for(g.K, [&](int64_t k) {
    const int64_t c = k / g.Kg;
    T* dwk = dw + k * RS;
    std::fill(dwk, dwk + RS, T(0));
    for (int64_t n = 0; n < g.N; ++n)
      dk.backward_weight(dy + (n * g.K + k) * g.P * g.Q, x + (n * g.C + c) * g.H * g.W, dwk, g);
  });
}

template void conv2d_forward_depthwise<float>(const float*, const float*, const float*, float*, const Conv2dGeom&);
template void conv2d_forward_depthwise<double>(const double*, const double*, const double*, double*, const Conv2dGeom&);
template void conv2d_backward_input_depthwise<float>(const float*, const float*, float*, const Conv2dGeom&);
template void conv2d_backward_input_depthwise<double>(const double*, const double*, double*, const Conv2dGeom&);
template void conv2d_backward_weight_depthwise<float>(const float*, const float*, float*, const Conv2dGeom&);
template void conv2d_backward_weight_depthwise<double>(const double*, const double*, double*, const Conv2dGeom&);

}  // namespace cpu
}  // namespace cnnops
