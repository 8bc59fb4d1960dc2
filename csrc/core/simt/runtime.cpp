// The runtime primitives of the CNNOPS_CUDA=EMULATE build (see core/cuda.h): one "device" whose
// memory is host memory (64-byte aligned), copies are memcpy, streams are no-ops because every
// kernel has finished when its launch returns. For tests and development only.
#ifdef CNNOPS_CUDA_EMULATE
#include <cstdlib>
#include <cstring>

#include "core/cuda.h"
#include "core/error.h"
#include "core/parallel.h"

namespace cnnops {
namespace cuda {

bool compiled() { return true; }
bool emulated() { return true; }
int device_count() { return 1; }
bool is_available() { return true; }
std::string runtime_version() { return "emulator"; }

std::string device_name(int index) {
  CNNOPS_CHECK_VALUE(index == 0, "cuda.device_name: expected a device index in [0, 1), got ", index);
  return str("CPU emulator (cnnops SIMT emulator on ", num_threads(), " OS threads; host memory; for tests only)");
}

namespace rt {

void* malloc(size_t bytes, int) { return std::aligned_alloc(256, (bytes + 255) / 256 * 256); }
void free(void* p, int) { std::free(p); }
void memcpy_async(void* dst, const void* src, size_t bytes, Copy, Stream, const char*) {
  std::memmove(dst, src, bytes);
}
void memset_async(void* dst, int value, size_t bytes, Stream, const char*) { std::memset(dst, value, bytes); }
void stream_synchronize(Stream, const char*) {}
void device_synchronize(int, const char*) {}
void stream_wait(Stream, Stream, int, const char*) {}
std::string last_launch_error() { return ""; }
int get_device() { return 0; }
void set_device(int, const char*) {}

}  // namespace rt
}  // namespace cuda
}  // namespace cnnops
#endif
