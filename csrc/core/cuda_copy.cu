// Device-side strided copy (a non-contiguous CUDA view made contiguous, as contiguous() does on
// the CPU). One thread per output element in a grid-stride loop: the output index is decomposed
// into the source's coordinates (at most 8 dimensions, passed by value), so writes are coalesced
// and reads follow the view's strides.
#include "core/cuda_kernel.h"

namespace cnnops {
namespace cuda {

namespace {
constexpr int kMaxDims = 8;
struct StridedView {
  int nd;
  int64_t shape[kMaxDims], stride[kMaxDims];
};

template <typename T>
__global__ void strided_copy_kernel(const T* __restrict__ src, T* __restrict__ dst, StridedView v, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t rem = i, off = 0;
    for (int d = v.nd - 1; d >= 0; --d) {
      const int64_t c = rem % v.shape[d];
      rem /= v.shape[d];
      off += c * v.stride[d];
    }
    dst[i] = src[off];
  }
}

template <typename T>
void run(const Tensor& src, Tensor& dst, const StridedView& v, int64_t n) {
  launch("contiguous", strided_copy_kernel<T>, dim3(grid_for(n)), dim3(kThreads), 0, current_stream(), src.ptr<T>(),
         dst.ptr<T>(), v, n);
}
}  // namespace

void strided_copy(const Tensor& src, Tensor& dst) {
  const int64_t n = src.numel();
  if (n == 0) return;
  if (src.ndim() > kMaxDims)
    throw NotImplemented(str(current_op(), ": non-contiguous CUDA arrays of more than ", kMaxDims,
                             " dimensions are not supported; make it contiguous first"));
  DeviceGuard guard(src.device.index, current_op());
  StridedView v{};
  v.nd = static_cast<int>(src.ndim());
  for (int d = 0; d < v.nd; ++d) {
    v.shape[d] = src.shape[d];
    v.stride[d] = src.strides[d];
  }
  switch (dtype_size(src.dtype)) {
    case 8: run<uint64_t>(src, dst, v, n); break;
    case 4: run<uint32_t>(src, dst, v, n); break;
    case 2: run<uint16_t>(src, dst, v, n); break;
    default: run<uint8_t>(src, dst, v, n); break;
  }
}

}  // namespace cuda
}  // namespace cnnops
