// Device query and allocation through the CUDA runtime (linked statically, so a machine without
// a driver or GPU imports the package fine and reports is_available() == False).
#include <cuda_runtime.h>

#include "core/cuda.h"
#include "core/error.h"

namespace cnnops {
namespace cuda {

static void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(str("CUDA error in ", what, ": ", cudaGetErrorString(e)));
}

bool compiled() { return true; }

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" / "no device" error
    return 0;
  }
  return n;
}

bool is_available() { return device_count() > 0; }

std::string runtime_version() { return str(CUDART_VERSION / 1000, ".", (CUDART_VERSION % 1000) / 10); }

std::string device_name(int index) {
  int n = device_count();
  CNNOPS_CHECK_VALUE(n > 0, "cuda.device_name: no CUDA device is available");
  CNNOPS_CHECK_VALUE(index >= 0 && index < n, "cuda.device_name: expected a device index in [0, ", n, "), got ", index);
  cudaDeviceProp prop;
  check(cudaGetDeviceProperties(&prop, index), "cudaGetDeviceProperties");
  return str(prop.name, " (sm_", prop.major, prop.minor, ", ", prop.multiProcessorCount, " SMs, ",
             prop.totalGlobalMem / (1024 * 1024), " MiB)");
}

void* device_alloc(size_t bytes, int index) {
  int prev = 0;
  check(cudaGetDevice(&prev), "cudaGetDevice");
  check(cudaSetDevice(index), "cudaSetDevice");
  void* p = nullptr;
  cudaError_t e = cudaMalloc(&p, bytes ? bytes : 1);
  cudaSetDevice(prev);
  check(e, "cudaMalloc");
  return p;
}

void device_free(void* p, int index) {
  int prev = 0;
  if (cudaGetDevice(&prev) != cudaSuccess) return;
  cudaSetDevice(index);
  cudaFree(p);
  cudaSetDevice(prev);
}

}  // namespace cuda
}  // namespace cnnops
