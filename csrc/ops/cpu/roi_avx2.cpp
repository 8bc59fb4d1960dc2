// The region-op kernels of roi_kernels.h compiled with -mavx2 -mfma (and without FMA contraction,
// so the bits equal the portable build's): the channels-last loops across a chunk's channels (RoI
// Align's bilinear sums and gradient additions, RoI Pool's maxima with their argmax) run 8 floats
// to a vector. Chosen at run time by roi.cpp.
#include "ops/cpu/roi_kernels.h"

namespace cnnops {
namespace cpu {
namespace avx2 {

void roi_forward(const RoiPlan& P, const Tensor& x, Tensor& y, Tensor* idx) { forward_impl(P, x, y, idx); }

bool roi_backward(const RoiPlan& P, const Tensor& dy, const Tensor* idx, Tensor& dx, int64_t* bad) {
  return backward_impl(P, dy, idx, dx, bad);
}

}  // namespace avx2
}  // namespace cpu
}  // namespace cnnops
