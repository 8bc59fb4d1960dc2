// Row kernels of nearest upsampling x2 and the max_unpool gather (float32): AVX2 versions in
// unpool_avx2.cpp, portable loops in unpool.cpp; both compute the same values in the same order.
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/cpu_features.h"  // kStreamMinBytes

namespace cnnops {
namespace cpu {
namespace avx2 {
// y0[2w] = y0[2w+1] = x[w] for w < W, and the same into y1 unless it is null.
// Every kernel here with a `stream` flag gives aligned destinations streaming (non-temporal)
// stores when it is set: call stream_fence() before another thread reads them.
void dup2_row_f32(const float* x, float* y0, float* y1, int64_t W, bool stream);
void stream_fence();
// dx[w] = (g0[2w] + g0[2w+1]) + (g1[2w] + g1[2w+1]) for w < W.
void sum2x2_row_f32(const float* g0, const float* g1, float* dx, int64_t W, bool stream);
// Channels last: dx[w, c] = (g0[2w, c] + g0[2w+1, c]) + (g1[2w, c] + g1[2w+1, c]), rows of C channels.
void sum2x2_cl_row_f32(const float* g0, const float* g1, float* dx, int64_t W, int64_t C, bool stream);
// dp[i] = g[ip[i]] for i < n, 0 where ip[i] lies outside [0, limit); returns the first such i, or -1.
int64_t gather_f32(const float* g, const int64_t* ip, float* dp, int64_t n, int64_t limit, bool stream);
// memcpy whose aligned middle part uses streaming stores (then a fence): for results assembled in
// cache (a plane buffer) and not read again soon, saving the read-for-ownership of the output.
void stream_copy(void* dst, const void* src, size_t bytes);
}  // namespace avx2
// avx2::stream_copy when `stream` and the AVX2 kernels are selected, else memcpy.
void copy_out(void* dst, const void* src, size_t bytes, bool stream);
}  // namespace cpu
}  // namespace cnnops
