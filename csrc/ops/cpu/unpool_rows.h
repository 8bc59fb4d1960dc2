// Row kernels of nearest upsampling x2 (float32): AVX2 versions in unpool_avx2.cpp, portable loops
// in unpool.cpp; both compute the same values in the same order.
#pragma once
#include <cstddef>
#include <cstdint>

namespace cnnops {
namespace cpu {
namespace avx2 {
// y0[2w] = y0[2w+1] = x[w] for w < W, and the same into y1 unless it is null. May use streaming
// stores: call stream_fence() before the rows are read by another thread.
void dup2_row_f32(const float* x, float* y0, float* y1, int64_t W);
void stream_fence();
// dx[w] = (g0[2w] + g0[2w+1]) + (g1[2w] + g1[2w+1]) for w < W.
void sum2x2_row_f32(const float* g0, const float* g1, float* dx, int64_t W);
// memcpy whose aligned middle part uses streaming stores (then a fence): for results assembled in
// cache (a plane buffer) and not read again soon, saving the read-for-ownership of the output.
void stream_copy(void* dst, const void* src, size_t bytes);
}  // namespace avx2
// avx2::stream_copy when the AVX2 kernels are selected, else memcpy.
void copy_out(void* dst, const void* src, size_t bytes);
}  // namespace cpu
}  // namespace cnnops
