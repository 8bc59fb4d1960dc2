// Fallbacks when the package is built without CUDA (see cuda_info.cu for the real ones).
#ifndef CNNOPS_WITH_CUDA
#include "core/cuda.h"
#include "core/error.h"

namespace cnnops {
namespace cuda {

bool compiled() { return false; }
int device_count() { return 0; }
bool is_available() { return false; }
std::string runtime_version() { return ""; }
std::string device_name(int) { throw NotImplemented("cnnops was built without CUDA support (no nvcc at build time)"); }
void* device_alloc(size_t, int) {
  throw NotImplemented("cnnops was built without CUDA support (no nvcc at build time)");
}
void device_free(void*, int) {}

}  // namespace cuda
}  // namespace cnnops
#endif
