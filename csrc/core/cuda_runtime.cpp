// The runtime primitives of the nvcc build (see cuda.h): the CUDA runtime, linked statically, so
// a machine without a driver or GPU imports the package fine and reports is_available() == False.
// Every call is checked; an error becomes a RuntimeError naming the op and the CUDA error.
#if defined(CNNOPS_WITH_CUDA) && !defined(CNNOPS_CUDA_EMULATE)
#include <cuda_runtime.h>

#include "core/cuda.h"
#include "core/error.h"

namespace cnnops {
namespace cuda {

static void check(cudaError_t e, const char* op, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(str(op, ": CUDA error in ", what, ": ", cudaGetErrorString(e)));
}

// Runs the calling thread on `device` for one scope and restores the previous device after.
struct DeviceScope {
  int prev = -1;
  DeviceScope(int device, const char* op) {
    check(cudaGetDevice(&prev), op, "cudaGetDevice");
    if (prev != device) check(cudaSetDevice(device), op, "cudaSetDevice");
  }
  ~DeviceScope() {
    int now = -1;
    if (cudaGetDevice(&now) == cudaSuccess && now != prev && prev >= 0) cudaSetDevice(prev);
  }
};

bool compiled() { return true; }
bool emulated() { return false; }

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
  check(cudaGetDeviceProperties(&prop, index), "cuda.device_name", "cudaGetDeviceProperties");
  return str(prop.name, " (sm_", prop.major, prop.minor, ", ", prop.multiProcessorCount, " SMs, ",
             prop.totalGlobalMem / (1024 * 1024), " MiB)");
}

namespace rt {

void* malloc(size_t bytes, int device) {
  DeviceScope scope(device, "cuda allocator");
  void* p = nullptr;
  const cudaError_t e = cudaMalloc(&p, bytes);
  if (e == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    return nullptr;
  }
  check(e, current_op(), "cudaMalloc");
  return p;
}

void free(void* p, int device) {
  int prev = 0;
  if (cudaGetDevice(&prev) != cudaSuccess) return;  // driver gone at exit: nothing to return
  cudaSetDevice(device);
  cudaFree(p);
  cudaSetDevice(prev);
}

void memcpy_async(void* dst, const void* src, size_t bytes, Copy kind, Stream s, const char* op) {
  const cudaMemcpyKind k = kind == Copy::HostToDevice   ? cudaMemcpyHostToDevice
                           : kind == Copy::DeviceToHost ? cudaMemcpyDeviceToHost
                                                        : cudaMemcpyDeviceToDevice;
  check(cudaMemcpyAsync(dst, src, bytes, k, reinterpret_cast<cudaStream_t>(s)), op, "cudaMemcpyAsync");
}

void memset_async(void* dst, int value, size_t bytes, Stream s, const char* op) {
  check(cudaMemsetAsync(dst, value, bytes, reinterpret_cast<cudaStream_t>(s)), op, "cudaMemsetAsync");
}

void stream_synchronize(Stream s, const char* op) {
  check(cudaStreamSynchronize(reinterpret_cast<cudaStream_t>(s)), op, "cudaStreamSynchronize");
}

void device_synchronize(int device, const char* op) {
  DeviceScope scope(device, op);
  check(cudaDeviceSynchronize(), op, "cudaDeviceSynchronize");
}

void stream_wait(Stream consumer, Stream producer, int device, const char* op) {
  if (consumer == producer) return;
  DeviceScope scope(device, op);
  cudaEvent_t ev;
  check(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming), op, "cudaEventCreate");
  check(cudaEventRecord(ev, reinterpret_cast<cudaStream_t>(producer)), op, "cudaEventRecord");
  check(cudaStreamWaitEvent(reinterpret_cast<cudaStream_t>(consumer), ev, 0), op, "cudaStreamWaitEvent");
  cudaEventDestroy(ev);  // released once the wait has been satisfied
}

int get_device() {
  int d = -1;
  if (cudaGetDevice(&d) != cudaSuccess) {
    cudaGetLastError();
    return -1;
  }
  return d;
}

void set_device(int device, const char* op) { check(cudaSetDevice(device), op, "cudaSetDevice"); }

std::string last_launch_error() {
  const cudaError_t e = cudaGetLastError();
  return e == cudaSuccess ? std::string() : std::string(cudaGetErrorString(e));
}

}  // namespace rt
}  // namespace cuda
}  // namespace cnnops
#endif
