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
//
// Beyond barriers and warp exchanges the emulator provides the other device primitives the
// project's kernels use, under their CUDA names or, where CUDA has no C++ name, a cnnops_ name
// whose nvcc implementation is inline PTX: atomics (real atomics: blocks run concurrently on
// several OS threads), vector types (float2/float4/int4... with CUDA's sizes and alignments),
// cp.async (async.h: a deferred copy, performed when the thread waits for its group) and the
// tensor-core mma.sync / ldmatrix (mma.h: warp-collective, with the PTX ISA's fragment layouts).
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>
#include <type_traits>

// The CUDA toolkit's headers, where the include path has them (the emulation build puts them
// there; other builds may not): vector_types.h declares dim3, uint3, float4 ... in the global
// namespace, and cuda_fp16.h / cuda_bf16.h (host-compilable with g++ -std=c++17) include it in
// turn. A second `dim3` of the emulator's own would clash with the toolkit's the moment a kernel
// source includes cuda_fp16.h, and float4 & co. of our own would clash the same way; so when the
// headers are there the emulator uses the toolkit's dim3/uint3 as its own (one type, exactly
// CUDA's), and only without them does it declare look-alikes with the same layout and alignment.
// The translation units of one library share an include path and so agree on the choice (were
// they to differ, launch_body's two signatures would not link).
#if defined(__has_include)
#if __has_include(<vector_types.h>) && __has_include(<cuda_fp16.h>)
#include <vector_types.h>
#define CNNOPS_SIMT_TOOLKIT_HEADERS 1
#endif
#endif
#ifndef CNNOPS_SIMT_TOOLKIT_HEADERS
#define CNNOPS_SIMT_TOOLKIT_HEADERS 0
#endif

namespace cnnops {
namespace simt {

#if CNNOPS_SIMT_TOOLKIT_HEADERS
using ::dim3;
using ::uint3;
#else
struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
using uint3 = dim3;
#endif

// A barrier no thread can release, or a barrier reached by some threads of a block while others
// have returned.
struct Deadlock : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// A misuse of cp.async (async.h): a thread that returns with copies it never waited for, a copy
// of a size or alignment the instruction does not allow.
struct AsyncCopyError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// What the calling emulated thread sees (valid inside a kernel run by launch()).
struct ThreadState {
  dim3 thread_idx;
  int lane = 0, warp = 0, linear = 0;
  alignas(16) unsigned char xchg[32];  // a lane's values while a warp exchanges them (mma: 24 bytes)
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

// Throws unless the caller's warp has all 32 lanes in the block: the warp-collective tensor-core
// instructions (mma.h) need a full warp.
void require_full_warp(const char* what);

// ---- cp.async (async.h), per emulated thread ----
// Records a copy of `bytes` (4, 8 or 16) from src to dst in the calling thread's open group; the
// first `src_bytes` come from src, the rest are zeros. dst is filled with 0xFF bytes (NaN as
// float) at once, so code that reads it before waiting sees poison rather than plausible data.
void cp_async(void* dst, const void* src, int bytes, int src_bytes);
// Closes the open group (possibly empty).
void cp_async_commit();
// Performs every committed group but the newest `pending` ones, oldest first.
void cp_async_wait(int pending);

// ---- atomics: GCC __atomic builtins, relaxed like CUDA's atomic functions ----

// Replaces *p by f(*p) atomically; returns the old value (a compare-and-swap loop).
template <typename T, typename F>
T atomic_update(T* p, F f) {
  T old, want;
  __atomic_load(p, &old, __ATOMIC_RELAXED);
  do want = f(old);
  while (!__atomic_compare_exchange(p, &old, &want, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
  return old;
}
template <typename T>
T atomic_add(T* p, T v) {
  if constexpr (std::is_integral<T>::value) return __atomic_fetch_add(p, v, __ATOMIC_RELAXED);
  else return atomic_update(p, [v](T old) { return old + v; });
}
template <typename T>
T atomic_max(T* p, T v) {
  return atomic_update(p, [v](T old) { return old < v ? v : old; });
}
template <typename T>
T atomic_min(T* p, T v) {
  return atomic_update(p, [v](T old) { return v < old ? v : old; });
}
template <typename T>
T atomic_cas(T* p, T compare, T v) {
  __atomic_compare_exchange(p, &compare, &v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
  return compare;  // the old value: unchanged when the exchange happened, else what was there
}
template <typename T>
T atomic_exch(T* p, T v) {
  T old;
  __atomic_exchange(p, &v, &old, __ATOMIC_RELAXED);
  return old;
}

}  // namespace simt
}  // namespace cnnops

// ---- the CUDA spellings, for kernel sources compiled by the host compiler ----
#ifdef CNNOPS_SIMT_SPELLINGS
#if CNNOPS_SIMT_TOOLKIT_HEADERS
// The half types come with the toolkit (host implementations of their conversions). They are
// included before the keywords below are redefined, and their include guards keep a later
// #include in a kernel source from parsing them again with the emulator's keywords.
#include <cuda_fp16.h>
#if __has_include(<cuda_bf16.h>)
#include <cuda_bf16.h>
#endif
#include <vector_functions.h>
#else
using cnnops::simt::dim3;
using cnnops::simt::uint3;
inline uint3 make_uint3(unsigned x, unsigned y, unsigned z) { return uint3(x, y, z); }
// The toolkit's vector types: same members, sizes and alignments (float2 8 bytes, float4/int4/
// double2 16 bytes; the 3-vectors only as aligned as their element) and make_<type>().
#define CNNOPS_SIMT_VEC2(T, name)      \
  struct alignas(2 * sizeof(T)) name { \
    T x, y;                            \
  };                                   \
  inline name make_##name(T x, T y) { return name{x, y}; }
#define CNNOPS_SIMT_VEC3(T, name) \
  struct name {                   \
    T x, y, z;                    \
  };                              \
  inline name make_##name(T x, T y, T z) { return name{x, y, z}; }
#define CNNOPS_SIMT_VEC4(T, name)      \
  struct alignas(4 * sizeof(T)) name { \
    T x, y, z, w;                      \
  };                                   \
  inline name make_##name(T x, T y, T z, T w) { return name{x, y, z, w}; }
CNNOPS_SIMT_VEC2(signed char, char2)
CNNOPS_SIMT_VEC4(signed char, char4)
CNNOPS_SIMT_VEC2(unsigned char, uchar2)
CNNOPS_SIMT_VEC4(unsigned char, uchar4)
CNNOPS_SIMT_VEC2(short, short2)
CNNOPS_SIMT_VEC4(short, short4)
CNNOPS_SIMT_VEC2(unsigned short, ushort2)
CNNOPS_SIMT_VEC4(unsigned short, ushort4)
CNNOPS_SIMT_VEC2(int, int2)
CNNOPS_SIMT_VEC3(int, int3)
CNNOPS_SIMT_VEC4(int, int4)
CNNOPS_SIMT_VEC2(unsigned, uint2)
CNNOPS_SIMT_VEC4(unsigned, uint4)
CNNOPS_SIMT_VEC2(float, float2)
CNNOPS_SIMT_VEC3(float, float3)
CNNOPS_SIMT_VEC4(float, float4)
CNNOPS_SIMT_VEC2(double, double2)
CNNOPS_SIMT_VEC2(long long, longlong2)
CNNOPS_SIMT_VEC2(unsigned long long, ulonglong2)
#undef CNNOPS_SIMT_VEC2
#undef CNNOPS_SIMT_VEC3
#undef CNNOPS_SIMT_VEC4
#endif
#undef __global__
#undef __device__
#undef __host__
#undef __forceinline__
#undef __shared__
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static thread_local
#ifndef __align__
#define __align__(n) __attribute__((aligned(n)))
#endif
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

// Fences: every emulated access is a host access, so a sequentially consistent fence is at least
// as strong as __threadfence's device scope.
inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_block() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
template <typename T>
T __ldg(const T* p) {
  return *p;
}

// Bit reinterpretation and counting intrinsics.
inline float __int_as_float(int v) {
  float f;
  std::memcpy(&f, &v, sizeof f);
  return f;
}
inline float __uint_as_float(unsigned v) {
  float f;
  std::memcpy(&f, &v, sizeof f);
  return f;
}
inline int __float_as_int(float f) {
  int v;
  std::memcpy(&v, &f, sizeof v);
  return v;
}
inline unsigned __float_as_uint(float f) {
  unsigned v;
  std::memcpy(&v, &f, sizeof v);
  return v;
}
inline double __longlong_as_double(long long v) {
  double d;
  std::memcpy(&d, &v, sizeof d);
  return d;
}
inline long long __double_as_longlong(double d) {
  long long v;
  std::memcpy(&v, &d, sizeof v);
  return v;
}
inline int __popc(unsigned v) { return __builtin_popcount(v); }
inline int __popcll(unsigned long long v) { return __builtin_popcountll(v); }
inline int __clz(int v) { return v ? __builtin_clz(static_cast<unsigned>(v)) : 32; }
inline int __clzll(long long v) { return v ? __builtin_clzll(static_cast<unsigned long long>(v)) : 64; }
inline int __ffs(int v) { return __builtin_ffs(v); }
inline int __ffsll(long long v) { return __builtin_ffsll(v); }

// Atomics: the overloads CUDA declares (no templates, so that argument conversions resolve as
// they do under nvcc). Each returns the old value.
inline int atomicAdd(int* p, int v) { return ::cnnops::simt::atomic_add(p, v); }
inline unsigned atomicAdd(unsigned* p, unsigned v) { return ::cnnops::simt::atomic_add(p, v); }
inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) {
  return ::cnnops::simt::atomic_add(p, v);
}
inline float atomicAdd(float* p, float v) { return ::cnnops::simt::atomic_add(p, v); }
inline double atomicAdd(double* p, double v) { return ::cnnops::simt::atomic_add(p, v); }
inline int atomicSub(int* p, int v) { return __atomic_fetch_sub(p, v, __ATOMIC_RELAXED); }
inline unsigned atomicSub(unsigned* p, unsigned v) { return __atomic_fetch_sub(p, v, __ATOMIC_RELAXED); }
inline int atomicMax(int* p, int v) { return ::cnnops::simt::atomic_max(p, v); }
inline unsigned atomicMax(unsigned* p, unsigned v) { return ::cnnops::simt::atomic_max(p, v); }
inline long long atomicMax(long long* p, long long v) { return ::cnnops::simt::atomic_max(p, v); }
inline unsigned long long atomicMax(unsigned long long* p, unsigned long long v) {
  return ::cnnops::simt::atomic_max(p, v);
}
inline int atomicMin(int* p, int v) { return ::cnnops::simt::atomic_min(p, v); }
inline unsigned atomicMin(unsigned* p, unsigned v) { return ::cnnops::simt::atomic_min(p, v); }
inline long long atomicMin(long long* p, long long v) { return ::cnnops::simt::atomic_min(p, v); }
inline unsigned long long atomicMin(unsigned long long* p, unsigned long long v) {
  return ::cnnops::simt::atomic_min(p, v);
}
inline int atomicCAS(int* p, int compare, int v) { return ::cnnops::simt::atomic_cas(p, compare, v); }
inline unsigned atomicCAS(unsigned* p, unsigned compare, unsigned v) {
  return ::cnnops::simt::atomic_cas(p, compare, v);
}
inline unsigned long long atomicCAS(unsigned long long* p, unsigned long long compare, unsigned long long v) {
  return ::cnnops::simt::atomic_cas(p, compare, v);
}
inline int atomicExch(int* p, int v) { return ::cnnops::simt::atomic_exch(p, v); }
inline unsigned atomicExch(unsigned* p, unsigned v) { return ::cnnops::simt::atomic_exch(p, v); }
inline unsigned long long atomicExch(unsigned long long* p, unsigned long long v) {
  return ::cnnops::simt::atomic_exch(p, v);
}
inline float atomicExch(float* p, float v) { return ::cnnops::simt::atomic_exch(p, v); }
inline int atomicAnd(int* p, int v) { return __atomic_fetch_and(p, v, __ATOMIC_RELAXED); }
inline unsigned atomicAnd(unsigned* p, unsigned v) { return __atomic_fetch_and(p, v, __ATOMIC_RELAXED); }
inline unsigned long long atomicAnd(unsigned long long* p, unsigned long long v) {
  return __atomic_fetch_and(p, v, __ATOMIC_RELAXED);
}
inline int atomicOr(int* p, int v) { return __atomic_fetch_or(p, v, __ATOMIC_RELAXED); }
inline unsigned atomicOr(unsigned* p, unsigned v) { return __atomic_fetch_or(p, v, __ATOMIC_RELAXED); }
inline unsigned long long atomicOr(unsigned long long* p, unsigned long long v) {
  return __atomic_fetch_or(p, v, __ATOMIC_RELAXED);
}
inline int atomicXor(int* p, int v) { return __atomic_fetch_xor(p, v, __ATOMIC_RELAXED); }
inline unsigned atomicXor(unsigned* p, unsigned v) { return __atomic_fetch_xor(p, v, __ATOMIC_RELAXED); }
inline unsigned long long atomicXor(unsigned long long* p, unsigned long long v) {
  return __atomic_fetch_xor(p, v, __ATOMIC_RELAXED);
}
// ((old >= limit) ? 0 : old + 1) and (((old == 0) || (old > limit)) ? limit : old - 1).
inline unsigned atomicInc(unsigned* p, unsigned limit) {
  return ::cnnops::simt::atomic_update(p, [limit](unsigned old) { return old >= limit ? 0u : old + 1u; });
}
inline unsigned atomicDec(unsigned* p, unsigned limit) {
  return ::cnnops::simt::atomic_update(p,
                                       [limit](unsigned old) { return old == 0u || old > limit ? limit : old - 1u; });
}
#endif
