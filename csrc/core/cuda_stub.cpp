// The runtime primitives of a build without CUDA kernels (neither nvcc nor the emulator): queries
// say "none", everything that needs a device raises NotImplementedError.
#ifndef CNNOPS_WITH_CUDA
#include "core/cuda.h"
#include "core/error.h"

namespace cnnops {
namespace cuda {

static const char* kNoCuda = "cnnops was built without CUDA support (no nvcc at build time)";

bool compiled() { return false; }
bool emulated() { return false; }
int device_count() { return 0; }
bool is_available() { return false; }
std::string runtime_version() { return ""; }
std::string device_name(int) { throw NotImplemented(kNoCuda); }

namespace rt {
void* malloc(size_t, int) { throw NotImplemented(kNoCuda); }
void free(void*, int) {}
void memcpy_async(void*, const void*, size_t, Copy, Stream, const char* op) {
  throw NotImplemented(str(op, ": ", kNoCuda));
}
void memset_async(void*, int, size_t, Stream, const char* op) { throw NotImplemented(str(op, ": ", kNoCuda)); }
void stream_synchronize(Stream, const char*) {}
void device_synchronize(int, const char*) {}
void stream_wait(Stream, Stream, int, const char*) {}
std::string last_launch_error() { return ""; }
int get_device() { return -1; }
void set_device(int, const char* op) { throw NotImplemented(str(op, ": ", kNoCuda)); }
}  // namespace rt

}  // namespace cuda
}  // namespace cnnops
#endif
