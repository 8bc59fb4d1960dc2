// Asynchronous copies from global to shared memory (PTX cp.async, sm_80 and later) under one
// spelling for nvcc and for the SIMT emulator, so that one kernel source serves both builds:
//
//   cnnops_cp_async(smem_dst, gmem_src, bytes)          copy 4, 8 or 16 bytes (both addresses
//                                                       aligned to `bytes`), without waiting;
//   cnnops_cp_async_zfill(smem_dst, gmem_src, bytes, src_bytes)
//                                                       the same, but only the first src_bytes
//                                                       (0..bytes) are read, the rest of the
//                                                       destination is zero-filled (tile edges;
//                                                       src is not read when src_bytes is 0);
//   cnnops_cp_async_commit()                            close the thread's current group of copies
//                                                       (cp.async.commit_group);
//   cnnops_cp_async_wait<N>()                           wait until at most the N newest committed
//                                                       groups are outstanding (cp.async.wait_group);
//   cnnops_cp_async_wait_all()                          commit, then wait for everything.
//
// The copies of a thread become visible to that thread when it waits; other threads need a
// barrier after the wait (__syncthreads) as on the GPU.
//
// Under nvcc these are the PTX instructions (16-byte copies bypass L1 with .cg, smaller ones use
// .ca, the only form PTX allows for them). In the emulator (scheduler.cpp) a copy is recorded in
// the thread's open group and performed when the thread waits for that group; the destination is
// filled with 0xFF bytes (NaN as float) at issue, so a read before the wait, or by another thread
// without the wait and barrier in between, sees poison instead of the data. A thread that returns
// with copies it never waited for, a copy size other than 4/8/16 bytes or a misaligned address
// raise simt::AsyncCopyError naming the thread and block.
#pragma once

#ifdef __CUDACC__

__device__ __forceinline__ void cnnops_cp_async_zfill(void* smem_dst, const void* gmem_src, int bytes, int src_bytes) {
  const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(smem_dst));
  const size_t src = __cvta_generic_to_global(gmem_src);
  if (bytes == 16)
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(src_bytes) : "memory");
  else if (bytes == 8)
    asm volatile("cp.async.ca.shared.global [%0], [%1], 8, %2;\n" ::"r"(dst), "l"(src), "r"(src_bytes) : "memory");
  else asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(dst), "l"(src), "r"(src_bytes) : "memory");
}
__device__ __forceinline__ void cnnops_cp_async(void* smem_dst, const void* gmem_src, int bytes) {
  const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(smem_dst));
  const size_t src = __cvta_generic_to_global(gmem_src);
  if (bytes == 16) asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst), "l"(src) : "memory");
  else if (bytes == 8) asm volatile("cp.async.ca.shared.global [%0], [%1], 8;\n" ::"r"(dst), "l"(src) : "memory");
  else asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(dst), "l"(src) : "memory");
}
__device__ __forceinline__ void cnnops_cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cnnops_cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}
__device__ __forceinline__ void cnnops_cp_async_wait_all() { asm volatile("cp.async.wait_all;\n" ::: "memory"); }

#else  // the SIMT emulator

#include "core/simt/simt.h"

inline void cnnops_cp_async_zfill(void* smem_dst, const void* gmem_src, int bytes, int src_bytes) {
  ::cnnops::simt::cp_async(smem_dst, gmem_src, bytes, src_bytes);
}
inline void cnnops_cp_async(void* smem_dst, const void* gmem_src, int bytes) {
  ::cnnops::simt::cp_async(smem_dst, gmem_src, bytes, bytes);
}
inline void cnnops_cp_async_commit() { ::cnnops::simt::cp_async_commit(); }
template <int N>
void cnnops_cp_async_wait() {
  static_assert(N >= 0, "cp.async.wait_group takes a count of groups left outstanding, 0 or more");
  ::cnnops::simt::cp_async_wait(N);
}
inline void cnnops_cp_async_wait_all() {
  ::cnnops::simt::cp_async_commit();
  ::cnnops::simt::cp_async_wait(0);
}

#endif
