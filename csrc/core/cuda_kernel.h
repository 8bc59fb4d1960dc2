// What every CUDA source (csrc/ops/cuda/*.cu) includes. The same source compiles two ways:
//  - by nvcc, against the CUDA runtime (a real GPU);
//  - by the host C++ compiler when CNNOPS_CUDA=EMULATE, against the SIMT emulator
//    (core/simt/simt.h), which provides threadIdx/blockIdx, __shared__, barriers, shuffles and
//    atomics on the CPU, so CI runs every kernel's logic without a GPU.
// The only line that differs is the launch, which lives here: cuda::launch() checks the launch
// configuration, runs the kernel on the caller's stream and checks cudaGetLastError, so errors
// become Python exceptions naming the op.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/cuda.h"
#include "core/error.h"
#include "core/tensor.h"

#include <cuda_bf16.h>  // first: they bring the toolkit's vector types (float4, dim3)
#include <cuda_fp16.h>
#ifdef CNNOPS_CUDA_EMULATE
#ifndef CNNOPS_SIMT_SPELLINGS
#define CNNOPS_SIMT_SPELLINGS
#endif
#include "core/simt/simt.h"
#define __restrict__
#define __launch_bounds__(...)
#undef __maxnreg__  // the toolkit headers spell it for the device compiler only
#define __maxnreg__(...)
#else
#include <cuda_runtime.h>
#define CNNOPS_DYNAMIC_SHARED(T, name)                \
  extern __shared__ unsigned char cnnops_dyn_smem_[]; \
  T* name = reinterpret_cast<T*>(cnnops_dyn_smem_)
#endif

namespace cnnops {
namespace cuda {

// Threads per block of the element-wise kernels, and the most blocks a grid-stride launch
// uses (enough to fill every SM several times on a GPU; a few per OS thread in the emulator,
// where a grid-stride loop does the same work with fewer fibers).
constexpr int kThreads = 256;
int64_t max_grid_blocks();

// Blocks for a grid-stride loop over n items with kThreads threads per block (at least 1).
inline unsigned grid_for(int64_t n) {
  int64_t b = (n + kThreads - 1) / kThreads;
  const int64_t cap = max_grid_blocks();
  if (b > cap) b = cap;
  return static_cast<unsigned>(b < 1 ? 1 : b);
}

// Checks a launch configuration against the CUDA limits (grid.y/z <= 65535, 1024 threads per
// block, 48 KiB of dynamic shared memory without opting in) in both builds, so the emulator
// refuses what a GPU would.
void check_launch_config(const char* op, dim3 grid, dim3 block, size_t shared_bytes);
// Raises RuntimeError naming `op` when the last launch failed.
void check_last_launch(const char* op);

template <typename... Params, typename... Args>
void launch(const char* op, void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared_bytes, Stream stream,
            Args&&... args) {
  check_launch_config(op, grid, block, shared_bytes);
#ifdef CNNOPS_CUDA_EMULATE
  (void)stream;
  simt::launch(simt::dim3(grid.x, grid.y, grid.z), simt::dim3(block.x, block.y, block.z), shared_bytes, kernel,
               static_cast<Params>(args)...);
#else
  // clang-format off
  kernel<<<grid, block, shared_bytes, reinterpret_cast<cudaStream_t>(stream)>>>(static_cast<Params>(args)...);
  // clang-format on
  check_last_launch(op);
#endif
}

// A device buffer from the caching allocator, returned to it (on the same stream) at scope end.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(size_t bytes, int device, Stream s) : bytes_(bytes), device_(device), stream_(s) {
    ptr_ = device_alloc(bytes, device, s);
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept { *this = std::move(o); }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    std::swap(ptr_, o.ptr_);
    std::swap(bytes_, o.bytes_);
    std::swap(device_, o.device_);
    std::swap(stream_, o.stream_);
    return *this;
  }
  ~DeviceBuffer() {
    if (ptr_) device_free(ptr_, device_, stream_);
  }
  template <typename T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }
  size_t bytes() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
  int device_ = 0;
  Stream stream_ = 0;
};

// A host vector copied into a fresh device buffer on stream s (small tables: window lists).
template <typename T>
DeviceBuffer upload(const std::vector<T>& v, int device, Stream s, const char* op) {
  DeviceBuffer b(v.size() * sizeof(T), device, s);
  copy_to_device(b.as<T>(), v.data(), v.size() * sizeof(T), s, op);
  return b;
}

// Device-side helpers shared by the kernels.
template <typename T>
__device__ __forceinline__ bool is_nan(T v) {
  return !(v == v);
}

// Storage type -> accumulation type: float for float/half/bfloat16, double for double.
template <typename T>
struct Acc {
  using type = float;
};
template <>
struct Acc<double> {
  using type = double;
};
template <typename T>
__device__ __forceinline__ typename Acc<T>::type to_acc(T v) {
  return static_cast<typename Acc<T>::type>(v);
}
template <>
__device__ __forceinline__ float to_acc<__half>(__half v) {
  return __half2float(v);
}
template <>
__device__ __forceinline__ float to_acc<__nv_bfloat16>(__nv_bfloat16 v) {
  return __bfloat162float(v);
}
template <typename T>
__device__ __forceinline__ T from_acc(typename Acc<T>::type v) {
  return static_cast<T>(v);
}
template <>
__device__ __forceinline__ __half from_acc<__half>(float v) {
  return __float2half_rn(v);
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_acc<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

// f(float{}), f(double{}), f(__half{}) or f(__nv_bfloat16{}) by dtype.
template <typename F>
decltype(auto) dispatch_floating(DType dt, const char* op, F&& f) {
  switch (dt) {
    case DType::Float32: return f(float{});
    case DType::Float64: return f(double{});
    case DType::Float16: return f(__half{});
    case DType::BFloat16: return f(__nv_bfloat16{});
    default: throw TypeError(str(op, ": expected a floating dtype, got ", dtype_name(dt)));
  }
}

}  // namespace cuda
}  // namespace cnnops
