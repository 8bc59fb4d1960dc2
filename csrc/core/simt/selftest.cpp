// Small kernels written in CUDA's spelling that exercise the SIMT emulator, run by
// tests/test_simt.py against NumPy: a block sum reduction (warp shuffles, shared memory,
// __syncthreads), a tiled transpose through shared memory, a ballot compaction per warp, two
// kernels with barrier bugs the emulator must report as deadlocks; every atomic on a histogram
// of many blocks; cp.async pipelines (and copies used or left without a wait); tensor-core mma
// on fragments given lane by lane and on tiles loaded the way a kernel does, ldmatrix, and a
// small f16 GEMM that combines cp.async, ldmatrix and mma; the tf32/f16/bf16 conversions and
// the vector types.
#define CNNOPS_SIMT_SPELLINGS
#include "core/simt/selftest.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/simt/async.h"
#include "core/simt/mma.h"
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

// ---- atomics ----

// Where the atomics kernel accumulates: per bin (nbins entries each), per element (n entries)
// and single cells. Initial values are set by the host (see run_atomics).
struct AtomicsOut {
  int *hist_i, *max_i, *min_i, *sub_i, *fmax_bits, *claims;
  unsigned *hist_u, *max_u, *min_u, *or_u, *and_u, *xor_u, *claim_slot;
  unsigned long long *hist_ull, *max_ull, *min_ull, *or_ull, *and_ull, *dmin_bits;
  long long *max_ll, *min_ll;
  float* frac_sum;
  double* x_sum;
  unsigned *ticket_add, *ticket_inc, *ticket_dec;  // per element
  unsigned *counter_add, *counter_inc, *counter_dec, *exch_u;
  int* exch_i;
  unsigned long long *exch_ull, *exch_sum_ull, *exch_sum_u, *exch_sum_i;
  float* exch_f;
  double* exch_sum_f;
};

// Element i of x is bin + a multiple of 1/4 (bin = floor(x)); every thread updates the cells of
// its bin with every kind of atomic, from blocks that run concurrently on several OS threads.
__global__ void atomics_kernel(const float* x, int n, int nbins, AtomicsOut o) {
  __shared__ int local[1024];  // the block's own histogram, merged once per block
  for (int b = threadIdx.x; b < nbins; b += blockDim.x) local[b] = 0;
  __syncthreads();
  const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (i < n) {
    const float v = x[i];
    const int b = static_cast<int>(v);
    const unsigned h = static_cast<unsigned>(i) * 2654435761u;
    const unsigned long long h64 = static_cast<unsigned long long>(i) * 0x9e3779b97f4a7c15ull;
    atomicAdd(&local[b], 1);
    atomicAdd(&o.hist_u[b], 1u);
    atomicAdd(&o.hist_ull[b], 1ull);
    atomicAdd(&o.frac_sum[b], v - static_cast<float>(b));
    atomicAdd(&o.x_sum[b], static_cast<double>(v));
    atomicSub(&o.sub_i[b], 1);
    atomicMax(&o.max_i[b], i);
    atomicMin(&o.min_i[b], i);
    atomicMax(&o.max_u[b], h);
    atomicMin(&o.min_u[b], h);
    atomicMax(&o.max_ll[b], static_cast<long long>(i - n / 2) * 3000000007ll);
    atomicMin(&o.min_ll[b], static_cast<long long>(i - n / 2) * 3000000007ll);
    atomicMax(&o.max_ull[b], h64);
    atomicMin(&o.min_ull[b], h64);
    atomicOr(&o.or_u[b], 1u << (i % 32));
    atomicAnd(&o.and_u[b], ~(1u << (i % 32)));
    atomicXor(&o.xor_u[b], h);
    atomicOr(&o.or_ull[b], 1ull << (i % 64));
    atomicAnd(&o.and_ull[b], ~(1ull << (i % 64)));
    // float max and double min through compare-and-swap loops, the usual CUDA idiom
    int old = atomicOr(&o.fmax_bits[b], 0), assumed;
    do {
      assumed = old;
      old = atomicCAS(&o.fmax_bits[b], assumed, __float_as_int(fmaxf(v, __int_as_float(assumed))));
    } while (old != assumed);
    unsigned long long dold = atomicOr(&o.dmin_bits[b], 0ull), dassumed;
    do {
      dassumed = dold;
      const double m = std::fmin(static_cast<double>(v), __longlong_as_double(static_cast<long long>(dassumed)));
      dold = atomicCAS(&o.dmin_bits[b], dassumed, static_cast<unsigned long long>(__double_as_longlong(m)));
    } while (dold != dassumed);
    // exactly one thread per bin claims its slot
    if (atomicCAS(&o.claim_slot[b], 0xffffffffu, static_cast<unsigned>(i)) == 0xffffffffu) atomicAdd(&o.claims[b], 1);
    // tickets: the returned old values of all threads are 0 .. n-1 exactly once
    o.ticket_add[i] = atomicAdd(o.counter_add, 1u);
    o.ticket_inc[i] = atomicInc(o.counter_inc, static_cast<unsigned>(n - 1));
    o.ticket_dec[i] = atomicDec(o.counter_dec, static_cast<unsigned>(n - 1));
    // exchanges: the old values handed back plus the final value sum to everything put in
    atomicAdd(o.exch_sum_ull, atomicExch(o.exch_ull, static_cast<unsigned long long>(i) + 1));
    atomicAdd(o.exch_sum_u, static_cast<unsigned long long>(atomicExch(o.exch_u, static_cast<unsigned>(i) + 1)));
    atomicAdd(o.exch_sum_i, static_cast<unsigned long long>(atomicExch(o.exch_i, i + 1)));
    atomicAdd(o.exch_sum_f, static_cast<double>(atomicExch(o.exch_f, static_cast<float>(i % 1024))));
  }
  __syncthreads();
  for (int b = threadIdx.x; b < nbins; b += blockDim.x)
    if (local[b]) atomicAdd(&o.hist_i[b], local[b]);
}

// ---- cp.async ----

constexpr int kCpThreads = 64, kCpTile = 4 * kCpThreads;  // floats per tile

// Each block runs a two-stage pipeline over the tiles blockIdx.x, blockIdx.x + gridDim.x, ...:
// while it computes on one stage the copies of the next tile fill the other. Each thread copies
// floats 4j..4j+3 of a tile in `bytes`-sized pieces (zero-filled past n) but reads floats j,
// j + 64, j + 128, j + 192, copied by other threads: twice[e] = 2 x[e], and the sum of those four
// per thread and tile.
__global__ void cp_async_pipeline(const float* x, int64_t n, int bytes, float* twice, float* sums) {
  __shared__ __align__(16) float stage[2][kCpTile];
  const int j = static_cast<int>(threadIdx.x), per = bytes / 4;
  const int64_t tiles = (n + kCpTile - 1) / kCpTile;
  const auto issue = [&](int64_t tile, int s) {
    for (int q = 0; q < 4; q += per) {
      const int64_t e = tile * kCpTile + 4 * j + q, left = n - e;
      const int src_bytes = left <= 0 ? 0 : left >= per ? bytes : static_cast<int>(left) * 4;
      cnnops_cp_async_zfill(&stage[s][4 * j + q], src_bytes ? x + e : x, bytes, src_bytes);
    }
  };
  int64_t tile = blockIdx.x;
  if (tile < tiles) issue(tile, 0);
  cnnops_cp_async_commit();
  for (int it = 0; tile < tiles; tile += gridDim.x, ++it) {
    if (tile + gridDim.x < tiles) issue(tile + gridDim.x, (it + 1) % 2);
    cnnops_cp_async_commit();  // possibly empty: the wait below then still means "all but the next tile"
    cnnops_cp_async_wait<1>();
    __syncthreads();
    const float* s = stage[it % 2];
    float sum = 0.f;
    for (int q = 0; q < 4; ++q) {
      const int idx = j + kCpThreads * q;
      sum += s[idx];
      if (tile * kCpTile + idx < n) twice[tile * kCpTile + idx] = 2.f * s[idx];
    }
    sums[tile * kCpThreads + j] = sum;
    __syncthreads();  // the stage is refilled by the next iteration's copies
  }
}

// Reads another thread's copy after a barrier but without waiting: poison (0xFF bytes) in the
// first 64 outputs; the data once waited for in the next 64.
__global__ void cp_async_missing_wait(const float* x, float* out) {
  __shared__ __align__(16) float buf[64];
  const int j = static_cast<int>(threadIdx.x);
  cnnops_cp_async(&buf[j], x + j, 4);
  cnnops_cp_async_commit();
  __syncthreads();
  out[j] = buf[(j + 1) % 64];
  __syncthreads();  // every thread has read before any waits
  cnnops_cp_async_wait<0>();
  __syncthreads();
  out[64 + j] = buf[(j + 1) % 64];
}

// Three committed groups and one uncommitted copy per lane; after each wait the lane records
// what its four destinations hold (5 records of 4 x 32 floats).
__global__ void cp_async_groups(const float* x, float* out) {
  __shared__ __align__(16) float buf[4][32];
  const int l = static_cast<int>(threadIdx.x);
  for (int g = 0; g < 3; ++g) {
    cnnops_cp_async(&buf[g][l], x + g * 32 + l, 4);
    cnnops_cp_async_commit();
  }
  const auto record = [&](int row) {
    for (int g = 0; g < 4; ++g) out[(row * 4 + g) * 32 + l] = buf[g][l];
  };
  cnnops_cp_async_wait<2>();
  record(0);
  cnnops_cp_async_wait<1>();
  record(1);
  cnnops_cp_async_wait<0>();
  record(2);
  cnnops_cp_async(&buf[3][l], x + 96 + l, 4);  // not committed: wait_group does not cover it
  cnnops_cp_async_wait<0>();
  record(3);
  cnnops_cp_async_wait_all();
  record(4);
}

// Misuses: thread 5 of block 1 returns with its copy committed but never waited for (mode 0) or
// not even committed (mode 1); mode 2 copies 16 bytes from an address aligned to 4 only.
__global__ void cp_async_misuse(const float* x, float* out, int mode) {
  __shared__ __align__(16) float buf[32];
  const int l = static_cast<int>(threadIdx.x);
  const bool culprit = blockIdx.x == 1 && l == 5;
  if (mode == 2) {
    if (culprit) cnnops_cp_async(buf, x + 1, 16);
    cnnops_cp_async_wait_all();
    return;
  }
  cnnops_cp_async(&buf[l], x + l, 4);
  if (!(culprit && mode == 1)) cnnops_cp_async_commit();
  if (culprit) return;
  cnnops_cp_async_wait<0>();
  out[blockIdx.x * 32 + l] = buf[l];
}

// ---- tensor cores ----

// One mma per block of 32 threads on fragments given lane by lane: in[(block * 32 + lane) * 10
// + 0..9] holds the lane's a[0..3] and b[0..1] (bit patterns) and c[0..3]; out gets d[0..3].
__global__ void mma_fragments(const float* in, float* out, int type) {
  const float* r = in + (blockIdx.x * 32 + threadIdx.x) * 10;
  unsigned a[4], b[2];
  float c[4], d[4];
  std::memcpy(a, r, sizeof a);
  std::memcpy(b, r + 4, sizeof b);
  std::memcpy(c, r + 6, sizeof c);
  if (type == 0) cnnops_mma_m16n8k8_tf32(d, a, b, c);
  else if (type == 1) cnnops_mma_m16n8k16_f16(d, a, b, c);
  else cnnops_mma_m16n8k16_bf16(d, a, b, c);
  std::memcpy(out + (blockIdx.x * 32 + threadIdx.x) * 4, d, sizeof d);
}

// D (M x N) = A (M x K) * B (K x N) + C, all row-major float32; each warp (two per block) computes
// one 16 x 8 tile, loading its fragments straight from global memory with the PTX layouts and
// converting them as a kernel does: type 0 tf32 as is (the low 13 bits ignored), 1 tf32 through
// cnnops_to_tf32, 2 f16, 3 bf16.
__global__ void mma_tile(const float* A, const float* B, const float* C, float* D, int N, int K, int type) {
  const int warp = static_cast<int>(threadIdx.x / 32), lane = static_cast<int>(threadIdx.x % 32);
  const int g = lane / 4, t = lane % 4;
  const int n0 = (static_cast<int>(blockIdx.x) * static_cast<int>(blockDim.x / 32) + warp) * 8;
  const int m0 = static_cast<int>(blockIdx.y) * 16;
  if (n0 >= N) return;  // the whole warp: an odd number of column tiles
  const int r0 = (m0 + g) * N + n0 + 2 * t, r1 = r0 + 8 * N;
  float acc[4] = {C[r0], C[r0 + 1], C[r1], C[r1 + 1]};
  const auto at = [&](int r, int k) { return A[(m0 + r) * K + k]; };
  const auto bt = [&](int k, int c) { return B[k * N + n0 + c]; };
  if (type <= 1) {
    const auto tf = [&](float v) { return __float_as_uint(type == 1 ? cnnops_to_tf32(v) : v); };
    for (int k0 = 0; k0 < K; k0 += 8) {
      const unsigned a[4] = {tf(at(g, k0 + t)), tf(at(g + 8, k0 + t)), tf(at(g, k0 + t + 4)),
                             tf(at(g + 8, k0 + t + 4))};
      const unsigned b[2] = {tf(bt(k0 + t, g)), tf(bt(k0 + t + 4, g))};
      cnnops_mma_m16n8k8_tf32(acc, a, b, acc);
    }
  } else {
    const auto pk = [&](float lo, float hi) {
      return type == 2 ? cnnops_pack_f16x2(lo, hi) : cnnops_pack_bf16x2(lo, hi);
    };
    for (int k0 = 0; k0 < K; k0 += 16) {
      const int k = k0 + 2 * t;
      const unsigned a[4] = {pk(at(g, k), at(g, k + 1)), pk(at(g + 8, k), at(g + 8, k + 1)),
                             pk(at(g, k + 8), at(g, k + 9)), pk(at(g + 8, k + 8), at(g + 8, k + 9))};
      const unsigned b[2] = {pk(bt(k, g), bt(k + 1, g)), pk(bt(k + 8, g), bt(k + 9, g))};
      if (type == 2) cnnops_mma_m16n8k16_f16(acc, a, b, acc);
      else cnnops_mma_m16n8k16_bf16(acc, a, b, acc);
    }
  }
  D[r0] = acc[0];
  D[r0 + 1] = acc[1];
  D[r1] = acc[2];
  D[r1 + 1] = acc[3];
}

// ldmatrix of a 32 x 8 tile of 16-bit values (in[0..255]) in shared memory; lane l gives the
// address of row in[256 + l]. out[l * 14 + ...]: the registers of x1, x2, x4, x1.trans, x2.trans,
// x4.trans in turn.
__global__ void ldmatrix_kernel(const float* in, float* out) {
  __shared__ __align__(16) unsigned short tile[32][8];
  const int l = static_cast<int>(threadIdx.x);
  for (int j = 0; j < 8; ++j) tile[l][j] = static_cast<unsigned short>(in[l * 8 + j]);
  __syncwarp();
  const unsigned short* row = tile[static_cast<int>(in[256 + l])];
  unsigned r[14];
  cnnops_ldmatrix_x1(r, row);
  cnnops_ldmatrix_x2(r + 1, row);
  cnnops_ldmatrix_x4(r + 3, row);
  cnnops_ldmatrix_x1_trans(r + 7, row);
  cnnops_ldmatrix_x2_trans(r + 8, row);
  cnnops_ldmatrix_x4_trans(r + 10, row);
  std::memcpy(out + l * 14, r, sizeof r);
}

// C (M x N, float32) = A (M x K, f16 row-major) * B (f16: K x N row-major when b_kmajor, else
// N x K row-major, i.e. B^T). Blocks of four warps compute 32 x 16 tiles of C, each warp a 16 x 8
// tile; K advances 16 at a time through a two-stage cp.async pipeline into shared memory, and
// the warps take their fragments from there with ldmatrix (x4 for A; x2 for n-major B, x2.trans
// for k-major B). M, N, K multiples of 32, 16, 16.
constexpr int kGm = 32, kGn = 16, kGk = 16;
__global__ void gemm_f16(const unsigned short* A, const unsigned short* B, float* C, int N, int K, int b_kmajor) {
  __shared__ __align__(16) unsigned short sa[2][kGm][kGk];
  __shared__ __align__(16) unsigned short sb[2][kGn * kGk];  // [n][k], or [k][n] when b_kmajor
  const int tid = static_cast<int>(threadIdx.x), warp = tid / 32, lane = tid % 32;
  const int m0 = static_cast<int>(blockIdx.y) * kGm, n0 = static_cast<int>(blockIdx.x) * kGn;
  const auto issue = [&](int kt, int s) {  // 64 + 32 copies of 16 bytes (8 halves)
    if (tid < 64) {
      const int r = tid / 2, c = tid % 2 * 8;
      cnnops_cp_async(&sa[s][r][c], A + static_cast<int64_t>(m0 + r) * K + kt * kGk + c, 16);
    } else if (tid < 96) {
      const int r = (tid - 64) / 2, c = (tid - 64) % 2 * 8;
      if (b_kmajor) cnnops_cp_async(&sb[s][r * kGn + c], B + static_cast<int64_t>(kt * kGk + r) * N + n0 + c, 16);
      else cnnops_cp_async(&sb[s][r * kGk + c], B + static_cast<int64_t>(n0 + r) * K + kt * kGk + c, 16);
    }
  };
  const int wm = warp / 2 * 16, wn = warp % 2 * 8;
  float acc[4] = {0.f, 0.f, 0.f, 0.f};
  const int ktiles = K / kGk;
  issue(0, 0);
  cnnops_cp_async_commit();
  for (int kt = 0; kt < ktiles; ++kt) {
    if (kt + 1 < ktiles) issue(kt + 1, (kt + 1) % 2);
    cnnops_cp_async_commit();
    cnnops_cp_async_wait<1>();
    __syncthreads();
    const int s = kt % 2;
    unsigned a[4], b[2];
    cnnops_ldmatrix_x4(a, &sa[s][wm + lane % 16][lane / 16 * 8]);
    if (b_kmajor) cnnops_ldmatrix_x2_trans(b, &sb[s][(lane % 16) * kGn + wn]);
    else cnnops_ldmatrix_x2(b, &sb[s][(wn + lane % 8) * kGk + lane / 8 % 2 * 8]);
    cnnops_mma_m16n8k16_f16(acc, a, b, acc);
    __syncthreads();
  }
  const int g = lane / 4, t = lane % 4;
  float* c0 = C + static_cast<int64_t>(m0 + wm + g) * N + n0 + wn + 2 * t;
  c0[0] = acc[0];
  c0[1] = acc[1];
  c0[8 * N] = acc[2];
  c0[8 * N + 1] = acc[3];
}

// Conversions: mode 0 out[i] = cnnops_to_tf32(x[i]); 1 and 2 out[i] = the bits of
// cnnops_pack_f16x2 / cnnops_pack_bf16x2(x[2i], x[2i + 1]).
__global__ void convert_kernel(const float* x, float* out, int64_t n, int mode) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (mode == 0) {
    if (i < n) out[i] = cnnops_to_tf32(x[i]);
  } else if (2 * i + 1 < n) {
    out[i] = __uint_as_float(mode == 1 ? cnnops_pack_f16x2(x[2 * i], x[2 * i + 1])
                                       : cnnops_pack_bf16x2(x[2 * i], x[2 * i + 1]));
  }
}

// The vector types have CUDA's sizes and alignments, whichever header declared them.
static_assert(sizeof(float2) == 8 && alignof(float2) == 8, "float2");
static_assert(sizeof(float3) == 12 && alignof(float3) == 4, "float3");
static_assert(sizeof(float4) == 16 && alignof(float4) == 16, "float4");
static_assert(sizeof(int2) == 8 && alignof(int2) == 8, "int2");
static_assert(sizeof(int4) == 16 && alignof(int4) == 16, "int4");
static_assert(sizeof(uint4) == 16 && alignof(uint4) == 16, "uint4");
static_assert(sizeof(double2) == 16 && alignof(double2) == 16, "double2");
static_assert(sizeof(char4) == 4 && alignof(char4) == 4, "char4");
static_assert(sizeof(short2) == 4 && alignof(short2) == 4, "short2");
static_assert(sizeof(ushort4) == 8 && alignof(ushort4) == 8, "ushort4");

// Reverses each group of four floats through float4 loads and stores (n4 groups).
__global__ void reverse4(const float4* in, float4* out, int64_t n4) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n4) return;
  const float4 v = in[i];
  out[i] = make_float4(v.w, v.z, v.y, v.x);
}

#if CNNOPS_SIMT_TOOLKIT_HEADERS
// The toolkit's own half conversions: out[2i] = the bits of __float2half_rn(x[i]), out[2i + 1]
// those of __float2bfloat16_rn(x[i]).
__global__ void toolkit_half(const float* x, float* out, int64_t n) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const __half_raw h = __float2half_rn(x[i]);
  const __nv_bfloat16_raw b = __float2bfloat16_rn(x[i]);
  out[2 * i] = __uint_as_float(h.x);
  out[2 * i + 1] = __uint_as_float(b.x);
}
#endif

// Runs atomics_kernel over x (bins in [0, nbins)) and returns, as int64: 23 rows of nbins per-bin
// results, the three ticket arrays (n each) and six totals (see tests/test_simt.py).
Tensor run_atomics(const Tensor& x, int nbins) {
  const int n = static_cast<int>(x.numel());
  CNNOPS_CHECK_VALUE(nbins >= 1 && nbins <= 1024, "_simt_selftest: atomics expects 1 to 1024 bins, got ", nbins);
  for (int i = 0; i < n; ++i) {
    const float v = x.ptr<float>()[i];
    CNNOPS_CHECK_VALUE(v >= 0.f && v < static_cast<float>(nbins), "_simt_selftest: atomics expects values in [0, ",
                       nbins, "), got ", v);
  }
  const size_t nb = static_cast<size_t>(nbins), ne = static_cast<size_t>(std::max(n, 1));
  const float minus_inf = -INFINITY;
  const double plus_inf = INFINITY;
  int fmax_init;
  unsigned long long dmin_init;
  std::memcpy(&fmax_init, &minus_inf, sizeof fmax_init);
  std::memcpy(&dmin_init, &plus_inf, sizeof dmin_init);
  std::vector<int> hist_i(nb), max_i(nb, -1), min_i(nb, 1 << 30), sub_i(nb), fmax_bits(nb, fmax_init), claims(nb);
  std::vector<unsigned> hist_u(nb), max_u(nb), min_u(nb, ~0u), or_u(nb), and_u(nb, ~0u), xor_u(nb), claim_slot(nb, ~0u);
  std::vector<unsigned long long> hist_ull(nb), max_ull(nb), min_ull(nb, ~0ull), or_ull(nb), and_ull(nb, ~0ull),
      dmin_bits(nb, dmin_init);
  std::vector<long long> max_ll(nb, -(1ll << 62)), min_ll(nb, 1ll << 62);
  std::vector<float> frac_sum(nb);
  std::vector<double> x_sum(nb);
  std::vector<unsigned> ticket_add(ne), ticket_inc(ne), ticket_dec(ne);
  unsigned counter_add = 0, counter_inc = 0, counter_dec = static_cast<unsigned>(n - 1), exch_u = 0;
  int exch_i = 0;
  unsigned long long exch_ull = 0, exch_sum_ull = 0, exch_sum_u = 0, exch_sum_i = 0;
  float exch_f = 0.f;
  double exch_sum_f = 0.0;
  const AtomicsOut o{hist_i.data(),     max_i.data(),    min_i.data(),      sub_i.data(),      fmax_bits.data(),
                     claims.data(),     hist_u.data(),   max_u.data(),      min_u.data(),      or_u.data(),
                     and_u.data(),      xor_u.data(),    claim_slot.data(), hist_ull.data(),   max_ull.data(),
                     min_ull.data(),    or_ull.data(),   and_ull.data(),    dmin_bits.data(),  max_ll.data(),
                     min_ll.data(),     frac_sum.data(), x_sum.data(),      ticket_add.data(), ticket_inc.data(),
                     ticket_dec.data(), &counter_add,    &counter_inc,      &counter_dec,      &exch_u,
                     &exch_i,           &exch_ull,       &exch_sum_ull,     &exch_sum_u,       &exch_sum_i,
                     &exch_f,           &exch_sum_f};
  launch(dim3(static_cast<unsigned>((n + 127) / 128)), dim3(128), 0, atomics_kernel, x.ptr<float>(), n, nbins, o);

  Tensor out = empty({23 * nbins + 3 * n + 6}, DType::Int64, Device{});
  int64_t* p = out.ptr<int64_t>();
  const auto row = [&](auto get) {
    for (size_t b = 0; b < nb; ++b) *p++ = get(b);
  };
  const auto bits = [](auto v) {
    int64_t r;
    static_assert(sizeof(v) == sizeof(r), "64-bit values");
    std::memcpy(&r, &v, sizeof r);
    return r;
  };
  row([&](size_t b) { return hist_i[b]; });
  row([&](size_t b) { return hist_u[b]; });
  row([&](size_t b) { return bits(hist_ull[b]); });
  row([&](size_t b) { return static_cast<int64_t>(frac_sum[b] * 4.f); });  // multiples of 1/4, exact
  row([&](size_t b) { return static_cast<int64_t>(x_sum[b] * 4.0); });
  row([&](size_t b) { return sub_i[b]; });
  row([&](size_t b) { return max_i[b]; });
  row([&](size_t b) { return min_i[b]; });
  row([&](size_t b) { return max_u[b]; });
  row([&](size_t b) { return min_u[b]; });
  row([&](size_t b) { return max_ll[b]; });
  row([&](size_t b) { return min_ll[b]; });
  row([&](size_t b) { return bits(max_ull[b]); });
  row([&](size_t b) { return bits(min_ull[b]); });
  row([&](size_t b) { return or_u[b]; });
  row([&](size_t b) { return and_u[b]; });
  row([&](size_t b) { return xor_u[b]; });
  row([&](size_t b) { return bits(or_ull[b]); });
  row([&](size_t b) { return bits(and_ull[b]); });
  row([&](size_t b) {
    float f;
    std::memcpy(&f, &fmax_bits[b], sizeof f);
    return std::isinf(f) ? INT64_MIN : static_cast<int64_t>(f * 4.f);  // -inf: an empty bin
  });
  row([&](size_t b) {
    double d;
    std::memcpy(&d, &dmin_bits[b], sizeof d);
    return std::isinf(d) ? INT64_MAX : static_cast<int64_t>(d * 4.0);
  });
  row([&](size_t b) { return claims[b]; });
  row([&](size_t b) { return claim_slot[b]; });
  for (const auto* t : {&ticket_add, &ticket_inc, &ticket_dec})
    for (int i = 0; i < n; ++i) *p++ = (*t)[static_cast<size_t>(i)];
  *p++ = counter_inc;
  *p++ = counter_dec;
  *p++ = bits(exch_sum_ull + exch_ull);
  *p++ = bits(exch_sum_u + exch_u);
  *p++ = bits(exch_sum_i + static_cast<unsigned long long>(exch_i));
  *p++ = static_cast<int64_t>(exch_sum_f + exch_f);
  return out;
}

// x = [M, N, K, A (M x K), B, C] (B: K x N; C: M x N) -> M x N float32.
Tensor run_gemm_like(const std::string& name, const Tensor& x, int mode) {
  const float* h = x.ptr<float>();
  CNNOPS_CHECK_VALUE(x.numel() >= 3, "_simt_selftest: ", name, " expects [M, N, K, A, B, C]");
  const int M = static_cast<int>(h[0]), N = static_cast<int>(h[1]), K = static_cast<int>(h[2]);
  const int64_t want = 3 + static_cast<int64_t>(M) * K + static_cast<int64_t>(K) * N + static_cast<int64_t>(M) * N;
  CNNOPS_CHECK_VALUE(M > 0 && N > 0 && K > 0 && x.numel() == want, "_simt_selftest: ", name,
                     " expects [M, N, K, A, B, C] of ", want, " values");
  const float *A = h + 3, *B = A + static_cast<int64_t>(M) * K, *C = B + static_cast<int64_t>(K) * N;
  Tensor out = empty({M, N}, DType::Float32, Device{});
  if (name == "mma_tile") {
    CNNOPS_CHECK_VALUE(M % 16 == 0 && N % 8 == 0 && K % (mode <= 1 ? 8 : 16) == 0, "_simt_selftest: mma_tile shapes");
    launch(dim3(static_cast<unsigned>((N / 8 + 1) / 2), static_cast<unsigned>(M / 16)), dim3(64), 0, mma_tile, A, B, C,
           out.ptr<float>(), N, K, mode);
    return out;
  }
  // gemm_f16: C is not used; B goes to the kernel n-major unless mode (k-major) is set
  CNNOPS_CHECK_VALUE(M % kGm == 0 && N % kGn == 0 && K % kGk == 0, "_simt_selftest: gemm_f16 shapes");
  std::vector<unsigned short> a16(static_cast<size_t>(M) * K), b16(static_cast<size_t>(K) * N);
  for (size_t i = 0; i < a16.size(); ++i) a16[i] = f16_from_float(A[i]);
  for (int k = 0; k < K; ++k)
    for (int n = 0; n < N; ++n)
      b16[mode ? static_cast<size_t>(k) * N + n : static_cast<size_t>(n) * K + k] =
          f16_from_float(B[static_cast<size_t>(k) * N + n]);
  launch(dim3(static_cast<unsigned>(N / kGn), static_cast<unsigned>(M / kGm)), dim3(128), 0, gemm_f16, a16.data(),
         b16.data(), out.ptr<float>(), N, K, mode);
  return out;
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
  if (name == "atomics") return run_atomics(x, static_cast<int>(arg));
  if (name == "cp_async_pipeline") {
    const int bytes = static_cast<int>(arg);
    const int64_t tiles = (n + kCpTile - 1) / kCpTile;
    Tensor out = empty({n + tiles * kCpThreads}, DType::Float32, Device{});
    launch(dim3(static_cast<unsigned>(std::min<int64_t>(tiles, 3))), dim3(kCpThreads), 0, cp_async_pipeline,
           x.ptr<float>(), n, bytes, out.ptr<float>(), out.ptr<float>() + n);
    return out;
  }
  if (name == "cp_async_missing_wait" || name == "cp_async_groups" || name == "cp_async_misuse") {
    CNNOPS_CHECK_VALUE(n >= 128, "_simt_selftest: ", name, " expects 128 values");
    if (name == "cp_async_missing_wait") {
      Tensor out = empty({128}, DType::Float32, Device{});
      launch(dim3(1), dim3(64), 0, cp_async_missing_wait, x.ptr<float>(), out.ptr<float>());
      return out;
    }
    if (name == "cp_async_groups") {
      Tensor out = empty({5, 4, 32}, DType::Float32, Device{});
      launch(dim3(1), dim3(32), 0, cp_async_groups, x.ptr<float>(), out.ptr<float>());
      return out;
    }
    Tensor out = empty({64}, DType::Float32, Device{});
    launch(dim3(2), dim3(32), 0, cp_async_misuse, x.ptr<float>(), out.ptr<float>(), static_cast<int>(arg));
    return out;
  }
  if (name == "mma_fragments") {
    CNNOPS_CHECK_VALUE(n % 320 == 0, "_simt_selftest: mma_fragments expects (problems, 32, 10) values");
    Tensor out = empty({n / 320, 32, 4}, DType::Float32, Device{});
    launch(dim3(static_cast<unsigned>(n / 320)), dim3(32), 0, mma_fragments, x.ptr<float>(), out.ptr<float>(),
           static_cast<int>(arg));
    return out;
  }
  if (name == "mma_tile" || name == "gemm_f16") return run_gemm_like(name, x, static_cast<int>(arg));
  if (name == "ldmatrix") {
    CNNOPS_CHECK_VALUE(n == 288, "_simt_selftest: ldmatrix expects a 32 x 8 tile and 32 row indices");
    Tensor out = empty({32, 14}, DType::Float32, Device{});
    launch(dim3(1), dim3(32), 0, ldmatrix_kernel, x.ptr<float>(), out.ptr<float>());
    return out;
  }
  if (name == "to_tf32" || name == "pack_f16x2" || name == "pack_bf16x2") {
    const int mode = name == "to_tf32" ? 0 : name == "pack_f16x2" ? 1 : 2;
    const int64_t m = mode ? n / 2 : n;
    Tensor out = empty({m}, DType::Float32, Device{});
    launch(dim3(static_cast<unsigned>((m + 127) / 128 + (m == 0))), dim3(128), 0, convert_kernel, x.ptr<float>(),
           out.ptr<float>(), n, mode);
    return out;
  }
  if (name == "reverse4") {
    CNNOPS_CHECK_VALUE(n % 4 == 0, "_simt_selftest: reverse4 expects a multiple of 4 values");
    Tensor out = empty({n}, DType::Float32, Device{});
    launch(dim3(static_cast<unsigned>(n / 4 / 64 + 1)), dim3(64), 0, reverse4, reinterpret_cast<const float4*>(x.data),
           reinterpret_cast<float4*>(out.data), n / 4);
    return out;
  }
  if (name == "toolkit_half") {
#if CNNOPS_SIMT_TOOLKIT_HEADERS
    Tensor out = empty({n, 2}, DType::Float32, Device{});
    launch(dim3(static_cast<unsigned>(n / 128 + 1)), dim3(128), 0, toolkit_half, x.ptr<float>(), out.ptr<float>(), n);
    return out;
#else
    throw NotImplemented("_simt_selftest: toolkit_half needs the CUDA toolkit headers (cuda_fp16.h), absent here");
#endif
  }
  throw ValueError(str("_simt_selftest: unknown kernel '", name, "'"));
}

}  // namespace simt
}  // namespace cnnops
