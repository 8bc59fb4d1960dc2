// Stable radix sorts on the device for the NMS family (csrc/ops/cuda/nms_sort.cu) and the dtype
// switch of its drivers, included by the CUDA sources only. Element indices travel as uint32 (the drivers refuse 2^31
// boxes or more).
#pragma once
#include <cstdint>

#include "core/cuda_kernel.h"

namespace cnnops {
namespace cuda {

// The candidate order of `nseg` segments (images) of `len` scores each (float or double), the
// CPU's sort_candidates per segment: order[g * len + r] = the element (g * len + i) of rank r in
// segment g, ranked by descending score, ties by ascending index, -0.0 equal to +0.0; elements
// that are not candidates (score <= thr, compared as doubles, when has_thr) follow the candidates
// in index order. cand[g] = the number of candidates of segment g; cand_flag[e] (when not null)
// = 1 for a candidate. Queued on stream s; nothing is read back.
template <typename T>
void sort_scores(const T* scores, int64_t nseg, int64_t len, bool has_thr, double thr, uint32_t* order, int64_t* cand,
                 uint8_t* cand_flag, int device, Stream s);

// Re-sorts `order` (from sort_scores) stably by class id within each segment: the candidates
// grouped by class (ascending id, each class in score order), the non-candidates after the
// largest class. cls: int64 (cls64) or int32 class ids by element. Only as many 8-bit passes run
// as the candidates' id range needs (decided on the device). The result is in one of two
// workspace buffers: *slot (device memory) points to it after the queued kernels. scratch: two
// buffers of nseg * len uint32.
void sort_by_class(const uint32_t* order, const void* cls, bool cls64, const uint8_t* cand_flag, int64_t nseg,
                   int64_t len, uint32_t* scratch0, uint32_t* scratch1, const uint32_t** slot, int device, Stream s);

// Sorts n (key, value) pairs by ascending key, stably (equal keys keep their order). keys/vals are
// sorted in place; scratch_keys / scratch_vals hold n each.
void sort_pairs(uint64_t* keys, uint32_t* vals, int64_t n, uint64_t* scratch_keys, uint32_t* scratch_vals, int device,
                Stream s);

// f(float{}) or f(double{}) by dtype: the NMS family has float32 and float64 kernels.
template <typename F>
void with_float_dtype(DType dt, F&& f) {
  if (dt == DType::Float64) return f(double{});
  if (dt == DType::Float32) return f(float{});
  throw TypeError(str(current_op(), ": expected float32 or float64, got ", dtype_name(dt)));
}

// The order-preserving unsigned key of a score, descending: smaller key = larger score, -0.0 and
// +0.0 equal (the CPU's ~ordered_bits).
__device__ __forceinline__ uint32_t descending_key(float v) {
  v += 0.0f;
  const uint32_t u = __float_as_uint(v);
  return ~((u & 0x80000000u) ? ~u : (u | 0x80000000u));
}
__device__ __forceinline__ uint64_t descending_key(double v) {
  v += 0.0;
  const uint64_t u = static_cast<uint64_t>(__double_as_longlong(v));
  return ~((u & 0x8000000000000000ull) ? ~u : (u | 0x8000000000000000ull));
}

}  // namespace cuda
}  // namespace cnnops
