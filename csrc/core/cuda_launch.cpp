// Launch checks shared by both CUDA builds (see cuda_kernel.h).
#ifdef CNNOPS_WITH_CUDA
#include "core/cuda.h"
#include "core/error.h"
#include "core/parallel.h"
#ifdef CNNOPS_CUDA_EMULATE
#include <vector_types.h>
#else
#include <cuda_runtime.h>
#endif

namespace cnnops {
namespace cuda {

int64_t max_grid_blocks() {
#ifdef CNNOPS_CUDA_EMULATE
  return 4 * static_cast<int64_t>(num_threads());
#else
  return 65535;  // x may be up to 2^31 - 1; grid-stride loops need no more than this to fill a GPU
#endif
}

void check_launch_config(const char* op, dim3 grid, dim3 block, size_t shared_bytes) {
  const unsigned long long threads = 1ull * block.x * block.y * block.z;
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.y > 65535 || grid.z > 65535 || grid.x > 2147483647u ||
      threads == 0 || threads > 1024 || block.z > 64 || shared_bytes > 48 * 1024)
    throw std::runtime_error(str(op, ": invalid CUDA launch configuration: grid (", grid.x, ", ", grid.y, ", ", grid.z,
                                 "), block (", block.x, ", ", block.y, ", ", block.z, "), ", shared_bytes,
                                 " bytes of dynamic shared memory"));
}

void check_last_launch(const char* op) {
  const std::string e = rt::last_launch_error();
  if (!e.empty()) throw std::runtime_error(str(op, ": CUDA kernel launch failed: ", e));
}

}  // namespace cuda
}  // namespace cnnops
#endif
