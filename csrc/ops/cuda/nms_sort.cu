// Stable LSD radix sorts of the NMS family on the device: the candidate order (descending score,
// ties by index, per image), the class grouping of class-aware NMS and the (key, value) sort of
// matrix NMS's decayed scores. Written out here because CUB and Thrust do not build against the
// SIMT emulator, and because the CPU kernels' order (a stable sort on the score key) is the
// contract: a stable LSD radix sort on that key gives it exactly.
//
// Work split: 8-bit digits, one pass per digit (4 passes for float32 keys, 8 for float64 and for
// class ids). A pass is three kernels on one stream:
//  * histogram: one block per tile of kSortTile elements, digit counts in shared memory, written
//    digit-major (segment, digit, tile) so that
//  * one exclusive scan over all counts (one block) gives every (segment, digit, tile) its first
//    output position; segments (the images of the padded form) never share a tile, so each
//    segment's elements stay inside it and one sort serves every image;
//  * scatter: the block reads its tile again; each warp owns 256 consecutive elements and walks
//    them 32 at a time, finds the lanes holding the same digit with eight ballots, and ranks each
//    element by its warp's running count for that digit plus the equal lanes below it. Warps are
//    offset by the counts of the warps before them, so elements leave in input order within each
//    digit: the pass is stable, and the sort is stable overall.
// Class ids need as many passes as the candidates' id range has bytes; that range is found on the
// device, and the passes it does not need return at once (no read-back decides them).
#include "core/cuda_kernel.h"
#include "ops/cuda/boxes.h"
#include "ops/cuda/nms_sort.h"

namespace cnnops {
namespace cuda {

namespace {

constexpr int kSortThreads = 256;              // 8 warps
constexpr int kPerWarp = 256;                  // consecutive elements a warp ranks
constexpr int64_t kSortTile = 8 * kPerWarp;    // elements per block

// Keys stored per position and moved with the values (scores, matrix NMS's decayed scores).
template <typename K>
struct StoredKeys {
  const K* in;
  K* out;
  __device__ __forceinline__ uint64_t at(int64_t p, uint32_t) const { return static_cast<uint64_t>(in[p]); }
  __device__ __forceinline__ void move(int64_t from, int64_t to) const { out[to] = in[from]; }
};

// Class ids looked up by element: id - min over the candidates; a non-candidate gets the largest
// key of the range, so it follows the candidates of the largest class (it came after them).
struct ClassKeys {
  const int64_t* c64;
  const int32_t* c32;
  const uint8_t* cand;
  const int64_t* lo_range;  // [0] the smallest candidate id, [1] the id range as uint64 bits
  __device__ __forceinline__ uint64_t at(int64_t, uint32_t e) const {
    const uint64_t range = static_cast<uint64_t>(lo_range[1]);
    if (!cand[e]) return range;
    const int64_t c = c64 ? c64[e] : static_cast<int64_t>(c32[e]);
    return static_cast<uint64_t>(c) - static_cast<uint64_t>(lo_range[0]);
  }
  __device__ __forceinline__ void move(int64_t, int64_t) const {}
};

// Whether the pass at `shift` has work: always for stored keys, while the range has bits there
// for class ids.
__device__ __forceinline__ bool pass_active(const int64_t* range, int shift) {
  return !range || (static_cast<uint64_t>(*range) >> shift) != 0;
}

// The lanes of the caller's warp holding digit d (valid lanes only); all 32 lanes call it.
__device__ __forceinline__ unsigned same_digit_lanes(bool valid, unsigned d) {
  unsigned peers = __ballot_sync(0xffffffffu, valid);
  for (int b = 0; b < 8; ++b) {
    const bool bit = (d >> b) & 1u;
    const unsigned set = __ballot_sync(0xffffffffu, bit);
    peers &= bit ? set : ~set;
  }
  return valid ? peers : 0u;
}

template <typename Src>
__global__ void radix_hist_kernel(Src key, const uint32_t* __restrict__ vals, int64_t len, int64_t tps, int shift,
                                  const int64_t* range, int64_t* __restrict__ hist) {
  __shared__ int cnt[256];
  const int64_t g = blockIdx.x / tps, lt = blockIdx.x % tps;
  const int64_t p0 = g * len + lt * kSortTile, p1 = (lt + 1) * kSortTile < len ? p0 + kSortTile : (g + 1) * len;
  for (int d = threadIdx.x; d < 256; d += blockDim.x) cnt[d] = 0;
  __syncthreads();
  if (pass_active(range, shift))  // an idle pass counts nothing, so the scan after it adds zeros
    for (int64_t p = p0 + threadIdx.x; p < p1; p += blockDim.x)
      atomicAdd(&cnt[(key.at(p, vals[p]) >> shift) & 255u], 1);
  __syncthreads();
  for (int d = threadIdx.x; d < 256; d += blockDim.x) hist[(g * 256 + d) * tps + lt] = cnt[d];
}

template <typename Src>
__global__ void radix_scatter_kernel(Src key, const uint32_t* __restrict__ vin, uint32_t* __restrict__ vout,
                                     int64_t len, int64_t tps, int shift, const int64_t* range,
                                     const int64_t* __restrict__ off) {
  if (!pass_active(range, shift)) return;
  __shared__ int cnt[8][256];
  __shared__ int64_t pos[8][256];
  const int64_t g = blockIdx.x / tps, lt = blockIdx.x % tps;
  const int64_t p0 = g * len + lt * kSortTile, p1 = (lt + 1) * kSortTile < len ? p0 + kSortTile : (g + 1) * len;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const unsigned below = (1u << lane) - 1u;
  for (int d = threadIdx.x; d < 8 * 256; d += blockDim.x) cnt[d / 256][d % 256] = 0;
  __syncthreads();
  for (int grp = 0; grp < kPerWarp / 32; ++grp) {  // each warp counts its own digits
    const int64_t p = p0 + warp * kPerWarp + grp * 32 + lane;
    const bool valid = p < p1;
    const unsigned d = valid ? static_cast<unsigned>((key.at(p, vin[p]) >> shift) & 255u) : 0u;
    const unsigned peers = same_digit_lanes(valid, d);
    if (valid && (peers & below) == 0) cnt[warp][d] += __popc(peers);
    __syncwarp();
  }
  __syncthreads();
  for (int d = threadIdx.x; d < 256; d += blockDim.x) {  // warp w starts after warps 0 .. w - 1
    int64_t run = off[(g * 256 + d) * tps + lt];
    for (int w = 0; w < 8; ++w) {
      pos[w][d] = run;
      run += cnt[w][d];
    }
  }
  __syncthreads();
  for (int grp = 0; grp < kPerWarp / 32; ++grp) {
    const int64_t p = p0 + warp * kPerWarp + grp * 32 + lane;
    const bool valid = p < p1;
    const unsigned d = valid ? static_cast<unsigned>((key.at(p, vin[p]) >> shift) & 255u) : 0u;
    const unsigned peers = same_digit_lanes(valid, d);
    if (valid) {
      const int64_t r = pos[warp][d] + __popc(peers & below);
      vout[r] = vin[p];
      key.move(p, r);
    }
    __syncwarp();
    if (valid && (peers & below) == 0) pos[warp][d] += __popc(peers);
    __syncwarp();
  }
}

// One pass over nseg segments of len elements; hist holds nseg * 256 * tps + 1 counts.
template <typename Src>
void radix_pass(Src key, const uint32_t* vin, uint32_t* vout, int64_t nseg, int64_t len, int shift,
                const int64_t* range, int64_t* hist, Stream s) {
  const char* op = current_op();
  const int64_t tps = (len + kSortTile - 1) / kSortTile, tiles = nseg * tps;
  if (tiles == 0) return;
  launch(op, radix_hist_kernel<Src>, dim3(static_cast<unsigned>(tiles)), dim3(kSortThreads), 0, s, key, vin, len, tps,
         shift, range, hist);
  exclusive_scan(hist, nseg * 256 * tps, s);
  launch(op, radix_scatter_kernel<Src>, dim3(static_cast<unsigned>(tiles)), dim3(kSortThreads), 0, s, key, vin, vout,
         len, tps, shift, range, static_cast<const int64_t*>(hist));
}

int64_t hist_size(int64_t nseg, int64_t len) { return nseg * 256 * ((len + kSortTile - 1) / kSortTile) + 1; }

template <typename T, typename K>
__global__ void score_keys_kernel(const T* __restrict__ s, int64_t total, bool has_thr, double thr,
                                  K* __restrict__ keys, uint32_t* __restrict__ vals, uint8_t* __restrict__ cand_flag) {
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const bool cand = !has_thr || static_cast<double>(s[e]) > thr;
    keys[e] = cand ? descending_key(s[e]) : ~K(0);
    vals[e] = static_cast<uint32_t>(e);
    if (cand_flag) cand_flag[e] = cand ? 1 : 0;
  }
}

// cand[g] = the position of the first non-candidate key (all ones) in segment g's sorted keys.
template <typename K>
__global__ void count_candidates_kernel(const K* __restrict__ keys, int64_t nseg, int64_t len, int64_t* cand) {
  for (int64_t g = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; g < nseg; g += int64_t(gridDim.x) * blockDim.x) {
    int64_t lo = 0, hi = len;
    while (lo < hi) {
      const int64_t mid = lo + (hi - lo) / 2;
      if (keys[g * len + mid] == ~K(0)) hi = mid;
      else lo = mid + 1;
    }
    cand[g] = lo;
  }
}

__global__ void class_range_init_kernel(int64_t* lo_range, int64_t* hi) {
  if (threadIdx.x == 0 && blockIdx.x == 0) {
    lo_range[0] = INT64_MAX;
    *hi = INT64_MIN;
  }
}

// Smallest and largest candidate class id: a warp reduces, its first lane updates the totals.
__global__ void class_range_kernel(const int64_t* __restrict__ c64, const int32_t* __restrict__ c32,
                                   const uint8_t* __restrict__ cand, int64_t total, int64_t* lo, int64_t* hi) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  const int64_t rounded = (total + blockDim.x - 1) / blockDim.x * blockDim.x;  // whole warps iterate together
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < rounded; e += step) {
    long long mn = INT64_MAX, mx = INT64_MIN;
    if (e < total && cand[e]) mn = mx = c64 ? c64[e] : static_cast<int64_t>(c32[e]);
    for (int d = 16; d > 0; d >>= 1) {
      const long long a = __shfl_xor_sync(0xffffffffu, mn, d), b = __shfl_xor_sync(0xffffffffu, mx, d);
      mn = a < mn ? a : mn;
      mx = b > mx ? b : mx;
    }
    if ((threadIdx.x & 31) == 0 && mn <= mx) {
      atomicMin(reinterpret_cast<long long*>(lo), mn);
      atomicMax(reinterpret_cast<long long*>(hi), mx);
    }
  }
}

// The id range (0 without candidates), and where the class passes leave the order: they run
// order -> scratch0 -> scratch1 -> scratch0 ..., one per byte of the range.
__global__ void class_finish_kernel(int64_t* lo_range, const int64_t* hi, const uint32_t* order,
                                    const uint32_t* scratch0, const uint32_t* scratch1, const uint32_t** slot) {
  if (threadIdx.x != 0 || blockIdx.x != 0) return;
  const uint64_t range =
      *hi >= lo_range[0] ? static_cast<uint64_t>(*hi) - static_cast<uint64_t>(lo_range[0]) : uint64_t(0);
  lo_range[1] = static_cast<int64_t>(range);
  int passes = 0;
  for (uint64_t r = range; r != 0; r >>= 8) ++passes;
  *slot = passes == 0 ? order : (passes & 1) ? scratch0 : scratch1;
}

}  // namespace

template <typename T>
void sort_scores(const T* scores, int64_t nseg, int64_t len, bool has_thr, double thr, uint32_t* order, int64_t* cand,
                 uint8_t* cand_flag, int device, Stream s) {
  using K = typename std::conditional<sizeof(T) == 4, uint32_t, uint64_t>::type;
  const char* op = current_op();
  const int64_t total = nseg * len;
  if (total == 0) {
    if (nseg > 0) rt::memset_async(cand, 0, nseg * sizeof(int64_t), s, op);
    return;
  }
  DeviceBuffer keys(2 * total * sizeof(K), device, s), vtmp(total * sizeof(uint32_t), device, s),
      hist(hist_size(nseg, len) * sizeof(int64_t), device, s);
  K* ka = keys.as<K>();
  K* kb = ka + total;
  launch(op, score_keys_kernel<T, K>, dim3(grid_for(total)), dim3(kThreads), 0, s, scores, total, has_thr, thr, ka,
         order, cand_flag);
  uint32_t* va = order;
  uint32_t* vb = vtmp.as<uint32_t>();
  for (int shift = 0; shift < 8 * static_cast<int>(sizeof(K)); shift += 8) {  // an even count: back in ka / order
    radix_pass(StoredKeys<K>{ka, kb}, va, vb, nseg, len, shift, nullptr, hist.as<int64_t>(), s);
    std::swap(ka, kb);
    std::swap(va, vb);
  }
  launch(op, count_candidates_kernel<K>, dim3(grid_for(nseg)), dim3(kThreads), 0, s, static_cast<const K*>(ka), nseg,
         len, cand);
}

template void sort_scores<float>(const float*, int64_t, int64_t, bool, double, uint32_t*, int64_t*, uint8_t*, int,
                                 Stream);
template void sort_scores<double>(const double*, int64_t, int64_t, bool, double, uint32_t*, int64_t*, uint8_t*, int,
                                  Stream);

void sort_by_class(const uint32_t* order, const void* cls, bool cls64, const uint8_t* cand_flag, int64_t nseg,
                   int64_t len, uint32_t* scratch0, uint32_t* scratch1, const uint32_t** slot, int device, Stream s) {
  const char* op = current_op();
  const int64_t total = nseg * len;
  DeviceBuffer range(3 * sizeof(int64_t), device, s), hist(hist_size(nseg, len) * sizeof(int64_t), device, s);
  int64_t* lo_range = range.as<int64_t>();
  int64_t* hi = lo_range + 2;
  const int64_t* c64 = cls64 ? static_cast<const int64_t*>(cls) : nullptr;
  const int32_t* c32 = cls64 ? nullptr : static_cast<const int32_t*>(cls);
  launch(op, class_range_init_kernel, dim3(1), dim3(32), 0, s, lo_range, hi);
  if (total > 0)
    launch(op, class_range_kernel, dim3(grid_for(total)), dim3(kThreads), 0, s, c64, c32, cand_flag, total, lo_range,
           hi);
  launch(op, class_finish_kernel, dim3(1), dim3(32), 0, s, lo_range, static_cast<const int64_t*>(hi), order,
         static_cast<const uint32_t*>(scratch0), static_cast<const uint32_t*>(scratch1), slot);
  const ClassKeys key{c64, c32, cand_flag, lo_range};
  const uint32_t* in = order;
  uint32_t* out = scratch0;
  for (int shift = 0; shift < 64; shift += 8) {
    radix_pass(key, in, out, nseg, len, shift, lo_range + 1, hist.as<int64_t>(), s);
    in = out;
    out = out == scratch0 ? scratch1 : scratch0;
  }
}

void sort_pairs(uint64_t* keys, uint32_t* vals, int64_t n, uint64_t* scratch_keys, uint32_t* scratch_vals, int device,
                Stream s) {
  if (n == 0) return;
  DeviceBuffer hist(hist_size(1, n) * sizeof(int64_t), device, s);
  uint64_t *ka = keys, *kb = scratch_keys;
  uint32_t *va = vals, *vb = scratch_vals;
  for (int shift = 0; shift < 64; shift += 8) {  // eight passes: the result ends in keys / vals
    radix_pass(StoredKeys<uint64_t>{ka, kb}, va, vb, 1, n, shift, nullptr, hist.as<int64_t>(), s);
    std::swap(ka, kb);
    std::swap(va, vb);
  }
}

}  // namespace cuda
}  // namespace cnnops
