// The CUDA side of the core as plain C++: device queries, the current stream, the caching device
// allocator, copies and stream ordering. Three builds provide the runtime primitives below:
//  - nvcc (cuda_runtime.cu): the CUDA runtime, linked statically, so a machine without a driver
//    or GPU imports the package and reports is_available() == False;
//  - CNNOPS_CUDA=EMULATE (simt/runtime.cpp): "device" memory is host memory, streams are no-ops
//    and kernels run on the SIMT emulator; for tests and development only;
//  - neither (cuda_stub.cpp): every call that needs a device raises NotImplementedError.
// Streams are the integer value of a cudaStream_t; 0 is the legacy default stream.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace cnnops {
struct Tensor;
namespace cuda {

using Stream = std::uintptr_t;

bool compiled();              // built with CUDA kernels (nvcc or the emulator)
bool emulated();              // kernels run on the SIMT emulator, memory is host memory
int device_count();           // 0 when not compiled, no driver, or no GPU
bool is_available();          // device_count() > 0
std::string device_name(int index);
std::string runtime_version();  // "13.0" (nvcc), "emulator" or "" when not compiled

// The stream CUDA kernels of the calling thread are queued on (the Python entry points set it
// from their `stream=` argument for the duration of one call).
Stream current_stream();
void set_current_stream(Stream s);
// Makes the current device `index` for the calling thread; raises ValueError for a bad index.
void set_device(int index, const char* op);

// ---- raw runtime primitives (one implementation per build; checked, errors name `op`) ----
namespace rt {
void* malloc(size_t bytes, int device);  // nullptr when out of memory
void free(void* p, int device);
enum class Copy { HostToDevice, DeviceToHost, DeviceToDevice };
void memcpy_async(void* dst, const void* src, size_t bytes, Copy kind, Stream s, const char* op);
void memset_async(void* dst, int value, size_t bytes, Stream s, const char* op);
void stream_synchronize(Stream s, const char* op);
void device_synchronize(int device, const char* op);
// Work queued on `consumer` after this call waits for the work queued on `producer` before it.
void stream_wait(Stream consumer, Stream producer, int device, const char* op);
// The error of the last launch on the calling thread, cleared (cudaGetLastError); "" if none.
std::string last_launch_error();
int get_device();
void set_device(int device, const char* op);
}  // namespace rt

// Makes `device` the calling thread's current CUDA device for one scope (kernels launch on the
// current device), and restores the previous one after. Every CUDA driver of an op starts with one.
class DeviceGuard {
 public:
  DeviceGuard(int device, const char* op);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int prev_ = -1, now_ = -1;
};

// ---- caching allocator: size classes, free lists per (device, stream) ----
// Blocks freed go back to the free list of the stream they were allocated on, where work queued
// later on that stream may reuse them without synchronising. Out of device memory, the
// allocator returns its cached blocks to the driver and tries once more, then raises
// MemoryError naming the op and the size.
void* device_alloc(size_t bytes, int device, Stream s);
void device_free(void* p, int device, Stream s);
void empty_cache();                      // every cached block of every device back to the driver
size_t memory_allocated(int device);     // bytes in live blocks (size classes)
size_t memory_reserved(int device);      // live + cached
size_t allocation_count(int device);     // raw device allocations made so far

// Host <-> device copies of a contiguous byte range on the current stream; device_to_host waits
// for it.
void copy_to_device(void* dst, const void* src, size_t bytes, Stream s, const char* op);
void copy_to_host(void* dst, const void* src, size_t bytes, Stream s, const char* op);
void copy_on_device(void* dst, const void* src, size_t bytes, Stream s, const char* op);
// dst (contiguous, same shape and dtype, on the device) = src (a strided view) on the current
// stream (core/cuda_copy.cu; CUDA builds only).
void strided_copy(const Tensor& src, Tensor& dst);

}  // namespace cuda
}  // namespace cnnops
