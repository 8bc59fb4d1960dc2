// CPU region-op drivers (declarations); csrc/ops/cpu/roi.cpp says how the work is split.
// Contiguous, checked tensors of the plan's shapes.
#pragma once
#include <cstdint>

#include "ops/roi.h"

namespace cnnops {
namespace cpu {

// y (K, C', PH, PW) (or (K, PH, PW, C')) from x; `idx` (roi_pool only): the argmax, h * W + w,
// -1 for an empty bin.
void roi_forward(const RoiPlan& plan, const Tensor& x, Tensor& y, Tensor* idx);
// dx (the features' shape) from dy. Returns false, with the first offending position in memory
// order in *bad, when a roi_pool index is neither -1 nor inside its bin's window.
bool roi_backward(const RoiPlan& plan, const Tensor& dy, const Tensor* idx, Tensor& dx, int64_t* bad);

// The same kernels built for AVX2 (roi_avx2.cpp); roi_forward / roi_backward call them when
// use_avx2() holds.
namespace avx2 {
void roi_forward(const RoiPlan& plan, const Tensor& x, Tensor& y, Tensor* idx);
bool roi_backward(const RoiPlan& plan, const Tensor& dy, const Tensor* idx, Tensor& dx, int64_t* bad);
}  // namespace avx2

}  // namespace cpu
}  // namespace cnnops
