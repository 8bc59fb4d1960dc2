// CPU region-op drivers: the kernels of roi_kernels.h, in their AVX2 build (roi_avx2.cpp) when
// the CPU and the SIMD level allow it, else their portable build (this file). Both give the same
// bits.
#include "core/cpu_features.h"
#include "ops/cpu/roi_kernels.h"

namespace cnnops {
namespace cpu {

void roi_forward(const RoiPlan& P, const Tensor& x, Tensor& y, Tensor* idx) {
#ifdef CNNOPS_HAVE_AVX2_TU
  if (use_avx2()) return avx2::roi_forward(P, x, y, idx);
#endif
  forward_impl(P, x, y, idx);
}

bool roi_backward(const RoiPlan& P, const Tensor& dy, const Tensor* idx, Tensor& dx, int64_t* bad) {
#ifdef CNNOPS_HAVE_AVX2_TU
  if (use_avx2()) return avx2::roi_backward(P, dy, idx, dx, bad);
#endif
  return backward_impl(P, dy, idx, dx, bad);
}

}  // namespace cpu
}  // namespace cnnops
