// Small kernels written in CUDA's spelling that exercise the SIMT emulator, run by
// tests/test_simt.py against NumPy: a block sum reduction (warp shuffles, shared memory,
// __syncthreads), a tiled transpose through shared memory, a ballot compaction per warp, and two
// kernels with barrier bugs the emulator must report as deadlocks.
#define CNNOPS_SIMT_SPELLINGS
#include "core/simt/selftest.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/simt/simt.h"

namespace cnnops {
namespace simt {

namespace {

// Each block sums blockDim.x * 4 consecutive values: four per thread, the warp sums by shuffles,
// the warp partials through shared memory, the first warp sums those.
__global__ void block_sum(const float* x, int64_t n, float* partial) {
  __shared__ float warp_sums[32];
  const int64_t base = static_cast<int64_t>(blockIdx.x) * blockDim.x * 4;
  float v = 0.f;
  for (int k = 0; k < 4; ++k) {
    const int64_t i = base + k * blockDim.x + threadIdx.x;
    if (i < n) v += x[i];
  }
  for (int d = 16; d > 0; d /= 2) v += __shfl_down_sync(0xffffffffu, v, d);
  const int lane = threadIdx.x % warpSize, warp = threadIdx.x / warpSize;
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  if (warp == 0) {
    const int warps = (blockDim.x + warpSize - 1) / warpSize;
    float s = lane < warps ? warp_sums[lane] : 0.f;
    for (int d = 16; d > 0; d /= 2) s += __shfl_xor_sync(0xffffffffu, s, d);
    if (lane == 0) partial[blockIdx.x] = s;
  }
}

// out (cols x rows) = transpose of in (rows x cols), 32 x 32 tiles, blocks of 32 x 8 threads.
__global__ void transpose(const float* in, float* out, int rows, int cols) {
  __shared__ float tile[32][33];  // + 1 column: no bank conflicts on the transposed read
  const int c0 = blockIdx.x * 32, r0 = blockIdx.y * 32;
  for (int j = threadIdx.y; j < 32; j += blockDim.y) {
    const int r = r0 + j, c = c0 + threadIdx.x;
    if (r < rows && c < cols) tile[j][threadIdx.x] = in[static_cast<int64_t>(r) * cols + c];
  }
  __syncthreads();
  for (int j = threadIdx.y; j < 32; j += blockDim.y) {
    const int c = c0 + j, r = r0 + threadIdx.x;
    if (r < rows && c < cols) out[static_cast<int64_t>(c) * rows + r] = tile[threadIdx.x][j];
  }
}

// Per warp of 32 values: the ones above `t` written in order to the warp's 32-slot segment of
// out, its count to counts[warp].
__global__ void compact(const float* x, int64_t n, float t, float* out, int* counts) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int lane = threadIdx.x % warpSize;
  const bool keep = i < n && x[i] > t;
  const unsigned bits = __ballot_sync(0xffffffffu, keep);
  const int64_t w = i / warpSize;
  if (keep) out[w * 32 + __builtin_popcount(bits & ((1u << lane) - 1u))] = x[i];
  if (lane == 0 && w * 32 < n) counts[w] = __builtin_popcount(bits);
}

// Barrier bugs: a __syncthreads that odd threads skip, a shuffle naming a lane that returned.
__global__ void divergent_syncthreads(float* y) {
  if (threadIdx.x % 2) return;
  __syncthreads();
  y[threadIdx.x] = 1.f;
}
__global__ void shuffle_with_returned_lane(float* y) {
  if (threadIdx.x == 3) return;
  y[threadIdx.x] = __shfl_sync(0xffffffffu, 1.f, 0);
}

}  // namespace

Tensor selftest(const std::string& name, const Tensor& input, double arg) {
  CNNOPS_CHECK_TYPE(input.dtype == DType::Float32 && input.is_contiguous(), "_simt_selftest",
                    ": expected a contiguous float32 array");
  const Tensor x = input;
  const int64_t n = x.numel();
  if (name == "block_sum") {
    const unsigned threads = static_cast<unsigned>(arg);
    const int64_t blocks = (n + threads * 4 - 1) / (threads * 4);
    Tensor out = empty({blocks}, DType::Float32, Device{});
    launch(dim3(static_cast<unsigned>(blocks)), dim3(threads), 0, block_sum, x.ptr<float>(), n, out.ptr<float>());
    return out;
  }
  if (name == "transpose") {
    CNNOPS_CHECK_VALUE(x.ndim() == 2, "_simt_selftest", ": transpose expects a 2-D array");
    const int rows = static_cast<int>(x.shape[0]), cols = static_cast<int>(x.shape[1]);
    Tensor out = empty({cols, rows}, DType::Float32, Device{});
    launch(dim3((cols + 31) / 32, (rows + 31) / 32), dim3(32, 8), 0, transpose, x.ptr<float>(), out.ptr<float>(), rows,
           cols);
    return out;
  }
  if (name == "compact") {
    const int64_t warps = (n + 31) / 32;
    Tensor out = empty({warps * 32 + warps}, DType::Float32, Device{});  // values, then counts as float
    std::vector<int> counts(static_cast<size_t>(warps));
    std::fill(out.ptr<float>(), out.ptr<float>() + warps * 32, 0.f);
    launch(dim3(static_cast<unsigned>((n + 127) / 128)), dim3(128), 0, compact, x.ptr<float>(), n,
           static_cast<float>(arg), out.ptr<float>(), counts.data());
    for (int64_t w = 0; w < warps; ++w) out.ptr<float>()[warps * 32 + w] = static_cast<float>(counts[w]);
    return out;
  }
  if (name == "divergent_syncthreads" || name == "shuffle_with_returned_lane") {
    Tensor out = empty({64}, DType::Float32, Device{});
    if (name == "divergent_syncthreads") launch(dim3(1), dim3(64), 0, divergent_syncthreads, out.ptr<float>());
    else launch(dim3(1), dim3(32), 0, shuffle_with_returned_lane, out.ptr<float>());
    return out;
  }
  throw ValueError(str("_simt_selftest: unknown kernel '", name, "'"));
}

}  // namespace simt
}  // namespace cnnops
