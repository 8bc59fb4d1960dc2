// CUDA helpers usable from plain C++ translation units. When the package is built without the
// CUDA compiler these report "not compiled" and raise cleanly instead of touching a GPU.
#pragma once
#include <cstddef>
#include <string>

namespace cnnops {
namespace cuda {

bool compiled();              // built with nvcc
int device_count();           // 0 when not compiled, no driver, or no GPU
bool is_available();          // device_count() > 0
std::string device_name(int index);
std::string runtime_version();  // "13.0", or "" when not compiled
void* device_alloc(size_t bytes, int index);
void device_free(void* p, int index);

}  // namespace cuda
}  // namespace cnnops
