// CUDA region-op drivers (declarations); csrc/ops/cuda/roi.cu says how the work is split. Same
// names, signatures and contracts as the CPU drivers in ops/cpu/roi.h: contiguous, checked tensors
// on one CUDA device; the plan's regions are host memory, uploaded by the drivers.
#pragma once
#include <cstdint>

#include "ops/roi.h"

namespace cnnops {
namespace cuda {

void roi_forward(const RoiPlan& plan, const Tensor& x, Tensor& y, Tensor* idx);
bool roi_backward(const RoiPlan& plan, const Tensor& dy, const Tensor* idx, Tensor& dx, int64_t* bad);

}  // namespace cuda
}  // namespace cnnops
