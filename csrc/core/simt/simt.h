// The CUDA programming model on the CPU, for testing kernel logic without a GPU (the SIMT
// emulator). Not a user-facing feature: it checks indexing, bounds, barriers and algorithms; it
// says nothing about speed, occupancy or launch limits.
//
// A kernel is a plain function of its arguments that reads threadIdx/blockIdx/blockDim/gridDim.
// simt::launch(grid, block, dynamic_shared_bytes, kernel, args...) runs every block; the blocks
// run one after the other on each OS thread (spread over the OpenMP threads), and the threads of a
// block are fibers (fiber.h) that run until they reach a barrier. The scheduler then releases the
// barrier when every live thread it concerns has arrived:
//   __syncthreads()            every thread of the block;
//   __syncwarp(mask), shuffles, ballots, votes
//                              the lanes of `mask` in the caller's warp (32 consecutive threads).
// A barrier that can never be released (a __syncthreads some threads skip, a shuffle whose mask
// names a lane that has returned) is reported as a deadlock: simt::Deadlock, naming the kernel's
// block and the waiting threads, instead of a hang.
//
// Shared memory: `__shared__` declares a per-OS-thread static (blocks on one OS thread run in
// sequence, so it is the block's own while it runs); dynamic shared memory is
// CNNOPS_DYNAMIC_SHARED(T, name), a per-block buffer of the size the launch asked for.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>
#include <type_traits>

namespace cnnops {
namespace simt {

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
using uint3 = dim3;

// A barrier no thread can release, or a barrier reached by some threads of a block while others
// have returned.
struct Deadlock : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// What the calling emulated thread sees (valid inside a kernel run by launch()).
struct ThreadState {
  dim3 thread_idx;
  int lane = 0, warp = 0, linear = 0;
  alignas(16) unsigned char xchg[16];  // a lane's value while a warp exchanges values
};
struct BlockState {
  dim3 block_idx, block_dim, grid_dim;
  void* dynamic_shared = nullptr;
};
ThreadState& this_thread();
BlockState& this_block();

// Barriers (scheduler.cpp).
void sync_block();
void sync_warp(unsigned mask);

// Runs body() as every thread of every block of the grid. Fiber stacks are `stack_bytes` each.
void launch_body(dim3 grid, dim3 block, size_t dynamic_shared_bytes, const std::function<void()>& body,
                 size_t stack_bytes = 256 * 1024);

template <typename Kernel, typename... Args>
void launch(dim3 grid, dim3 block, size_t dynamic_shared_bytes, Kernel kernel, Args... args) {
  launch_body(grid, block, dynamic_shared_bytes, [&] { kernel(args...); });
}

// ---- warp-level primitives: every lane of `mask` must call them together ----

const unsigned char* this_lane_xchg(int lane);  // the exchange slot of lane `lane` of the caller's warp

template <typename T>
T shfl(unsigned mask, T v, int src_lane, int width) {
  static_assert(sizeof(T) <= 16 && std::is_trivially_copyable<T>::value, "shuffle of a value of up to 16 bytes");
  ThreadState& me = this_thread();
  std::memcpy(me.xchg, &v, sizeof(T));
  sync_warp(mask);
  const int base = me.lane / width * width;  // shuffles stay inside segments of `width` lanes
  const int src = base + ((src_lane % width) + width) % width;
  T out;
  std::memcpy(&out, this_lane_xchg(src), sizeof(T));
  sync_warp(mask);  // nobody overwrites its slot before every lane has read
  return out;
}
template <typename T>
T shfl_xor(unsigned mask, T v, int lane_mask, int width) {
  return shfl(mask, v, (this_thread().lane % width) ^ lane_mask, width);
}
template <typename T>
T shfl_down(unsigned mask, T v, unsigned delta, int width) {
  const int l = this_thread().lane % width;
  const int src = l + static_cast<int>(delta) < width ? l + static_cast<int>(delta) : l;
  return shfl(mask, v, src, width);
}
template <typename T>
T shfl_up(unsigned mask, T v, unsigned delta, int width) {
  const int l = this_thread().lane % width;
  const int src = l - static_cast<int>(delta) >= 0 ? l - static_cast<int>(delta) : l;
  return shfl(mask, v, src, width);
}
unsigned ballot(unsigned mask, int predicate);

}  // namespace simt
}  // namespace cnnops

// ---- the CUDA spellings, for kernel sources compiled by the host compiler ----
#ifdef CNNOPS_SIMT_SPELLINGS
using cnnops::simt::dim3;
using cnnops::simt::uint3;
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static thread_local
#define threadIdx (::cnnops::simt::this_thread().thread_idx)
#define blockIdx (::cnnops::simt::this_block().block_idx)
#define blockDim (::cnnops::simt::this_block().block_dim)
#define gridDim (::cnnops::simt::this_block().grid_dim)
#define warpSize 32
#define CNNOPS_DYNAMIC_SHARED(T, name) T* name = static_cast<T*>(::cnnops::simt::this_block().dynamic_shared)
inline void __syncthreads() { ::cnnops::simt::sync_block(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) { ::cnnops::simt::sync_warp(mask); }
template <typename T>
T __shfl_sync(unsigned mask, T v, int src, int width = 32) {
  return ::cnnops::simt::shfl(mask, v, src, width);
}
template <typename T>
T __shfl_xor_sync(unsigned mask, T v, int m, int width = 32) {
  return ::cnnops::simt::shfl_xor(mask, v, m, width);
}
template <typename T>
T __shfl_down_sync(unsigned mask, T v, unsigned d, int width = 32) {
  return ::cnnops::simt::shfl_down(mask, v, d, width);
}
template <typename T>
T __shfl_up_sync(unsigned mask, T v, unsigned d, int width = 32) {
  return ::cnnops::simt::shfl_up(mask, v, d, width);
}
inline unsigned __ballot_sync(unsigned mask, int p) { return ::cnnops::simt::ballot(mask, p); }
inline int __any_sync(unsigned mask, int p) { return ::cnnops::simt::ballot(mask, p) != 0; }
inline int __all_sync(unsigned mask, int p) {
  return ::cnnops::simt::ballot(mask, p) == ::cnnops::simt::ballot(mask, 1);
}
template <typename T, typename = std::enable_if_t<std::is_integral<T>::value>>
T atomicAdd(T* p, T v) {
  return __atomic_fetch_add(p, v, __ATOMIC_RELAXED);
}
template <typename T, typename = std::enable_if_t<std::is_floating_point<T>::value>, typename = void>
T atomicAdd(T* p, T v) {
  T old, want;
  __atomic_load(p, &old, __ATOMIC_RELAXED);
  do want = old + v;
  while (!__atomic_compare_exchange(p, &old, &want, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
  return old;
}
#endif
