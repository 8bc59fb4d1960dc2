// Soft-NMS, Matrix NMS and Fast NMS on the device as dense kernels (no host loop per box), and
// the dispatch between Fast NMS and Cluster-NMS (whose fixed point nms.cu computes with the
// greedy scan over the same matrix).
//
// Work split:
//  * Matrix NMS and Fast NMS reduce the upper-triangular IoU matrix of the top_k candidates
//    (score order from nms_sort.cu) column by column, without storing it: one thread per column
//    j, blocks of 256 consecutive columns, and in y up to 16 chunks of rows, so a few thousand
//    columns still fill the GPU; the rows i < j of the chunk are staged 256 at a time in shared
//    memory (boxes read through the order, areas and class ids with them), and every thread
//    walks them in order. A second kernel folds each column's chunk results. Matrix NMS makes two
//    such passes, compensate_j = max_i X[i][j] and decay_j = min_i f(X[i][j]) / f(compensate_i);
//    AND, max and min are exact, so the results do not depend on the split or the schedule. Its decayed scores
//    are then ranked by nms_sort.cu's stable (key, index) sort (ties by rank, as the CPU's stable
//    sort). Fast NMS keeps column j when no row passes the suppression test and compacts the
//    kept positions in order.
//  * Soft-NMS is sequential by definition (each selection decays the scores the next one reads):
//    one block of 1024 threads holds the current scores (double, in global memory) and a list of
//    the live boxes in index order; per selection it decays every live box against the selected one
//    and finds the next maximum in the same pass (ties by lower index: the CPU's first maximum),
//    then one block reduction: two barriers per selected box, O(live boxes) work spread over the
//    block. When the list holds twice as many entries as live boxes, a stable in-place compaction
//    drops the dead ones, so boxes that decay below score_threshold stop costing anything.
// The IoU is box_geom.h's, in the boxes' dtype, and the file is compiled without fused
// multiply-adds, so every IoU and every comparison with a threshold equals the CPU's; exp is the
// device's (within an ulp of the host's on a GPU; the same function in the emulator).
#include <algorithm>
#include <cmath>

#include "core/cuda_kernel.h"
#include "ops/box_geom.h"
#include "ops/cuda/nms.h"
#include "ops/cuda/nms_sort.h"

namespace cnnops {
namespace cuda {

namespace {

using geom::IouCut;

constexpr int kColumns = 256;       // columns per block of the column kernels
constexpr int kSoftThreads = 1024;  // the soft-NMS block

__device__ __forceinline__ int64_t class_at(const int64_t* c64, const int32_t* c32, uint32_t e) {
  if (c64) return c64[e];
  return c32 ? static_cast<int64_t>(c32[e]) : 0;
}

// *limit = min(cand[0], top_k) (top_k < 0: no limit).
__global__ void top_k_kernel(const int64_t* cand, int64_t top_k, int64_t* limit) {
  if (threadIdx.x == 0 && blockIdx.x == 0) *limit = top_k >= 0 && top_k < *cand ? top_k : *cand;
}

// The shared pieces of a column kernel: the rows of one 256-row tile.
template <typename T>
struct RowTile {
  geom::Box<T> box[kColumns];
  T area[kColumns];
  int64_t cls[kColumns];
  double comp[kColumns];
};

template <typename T>
__device__ __forceinline__ geom::Box<T> box_of(const T* boxes, uint32_t e) {
  return geom::load_box(boxes + 4 * static_cast<int64_t>(e));
}

// Over the rows of chunk blockIdx.y ([y * row_chunk, (y + 1) * row_chunk), rows i < j only), for
// column j: Kind 0, Fast NMS: out8[y * cap + j] = 1 when no row suppresses j; 1, Matrix NMS
// compensation: outd[y * cap + j] = max_i X[i][j]; 2, Matrix NMS decay: outd[y * cap + j] =
// min(1, min_i f(X[i][j]) / f(comp[i])). K = *limit columns (at most cap).
template <typename T, int Kind>
__global__ void column_kernel(const T* __restrict__ boxes, const uint32_t* __restrict__ order,
                              const int64_t* __restrict__ c64, const int32_t* __restrict__ c32, const int64_t* limit,
                              int64_t cap, int64_t row_chunk, IouCut cut, const double* __restrict__ comp, int method,
                              double sigma, uint8_t* __restrict__ out8, double* __restrict__ outd) {
  __shared__ RowTile<T> rows;
  const int64_t K = *limit, rows_begin = blockIdx.y * row_chunk;
  if (out8) out8 += blockIdx.y * cap;
  if (outd) outd += blockIdx.y * cap;
  for (int64_t c0 = blockIdx.x * int64_t(kColumns); c0 < K; c0 += int64_t(gridDim.x) * kColumns) {
    const int64_t j = c0 + threadIdx.x;
    const bool valid = j < K;
    geom::Box<T> me{0, 0, 0, 0};
    T my_area = 0;
    int64_t my_cls = 0;
    if (valid) {
      const uint32_t e = order[j];
      me = box_of(boxes, e);
      my_area = geom::box_area(me, T(0));
      my_cls = class_at(c64, c32, e);
    }
    bool keep = true;
    double acc = Kind == 2 ? 1.0 : 0.0;
    const int64_t rows_end = std::min({K, c0 + kColumns, rows_begin + row_chunk});
    for (int64_t r0 = rows_begin; r0 < rows_end; r0 += kColumns) {
      __syncthreads();
      const int64_t r = r0 + threadIdx.x;
      if (r < rows_end) {
        const uint32_t e = order[r];
        rows.box[threadIdx.x] = box_of(boxes, e);
        rows.area[threadIdx.x] = geom::box_area(rows.box[threadIdx.x], T(0));
        rows.cls[threadIdx.x] = class_at(c64, c32, e);
        if (Kind == 2) rows.comp[threadIdx.x] = comp[r];
      }
      __syncthreads();
      if (!valid || (Kind == 0 && !keep)) continue;
      const int64_t hi = std::min({r0 + kColumns, j, rows_end});
      for (int64_t i = r0; i < hi; ++i) {
        const int k = static_cast<int>(i - r0);
        if (rows.cls[k] != my_cls) continue;  // X is 0 across classes
        const geom::Box<T>& a = rows.box[k];
        if (Kind == 0) {
          if (geom::iou_above(a.x1, a.y1, a.x2, a.y2, rows.area[k], me.x1, me.y1, me.x2, me.y2, my_area, cut)) {
            keep = false;
            break;
          }
          continue;
        }
        const double x = static_cast<double>(
            geom::metric<T, geom::IouKind::IoU>(a, rows.area[k], me, my_area, T(0), geom::MetricEps<T>{0, 0, 0}));
        if (Kind == 1) {
          acc = std::max(acc, x);
          continue;
        }
        if (!(x > 0.0)) continue;  // f(0) / f(comp) >= 1 never lowers the minimum
        const double ci = rows.comp[k];
        double ratio;
        if (method == 0) {
          if (!(1.0 - ci > 0.0)) continue;  // an exact duplicate of a better box decays nothing
          ratio = (1.0 - x) / (1.0 - ci);
        } else {
          ratio = exp(-(x * x - ci * ci) / sigma);
        }
        acc = std::min(acc, ratio);
      }
    }
    if (valid) {
      if (Kind == 0) out8[j] = keep ? 1 : 0;
      else outd[j] = acc;
    }
  }
}

// out[j] = the chunks' partial results folded: AND (Kind 0), max (1) or min (2); all exact, so the
// split changes nothing.
template <int Kind>
__global__ void fold_chunks_kernel(const int64_t* limit, int64_t cap, int64_t chunks, const uint8_t* __restrict__ in8,
                                   const double* __restrict__ ind, uint8_t* __restrict__ out8,
                                   double* __restrict__ outd) {
  const int64_t K = *limit;
  for (int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; j < K; j += int64_t(gridDim.x) * blockDim.x) {
    if (Kind == 0) {
      uint8_t keep = 1;
      for (int64_t y = 0; y < chunks; ++y) keep &= in8[y * cap + j];
      out8[j] = keep;
    } else {
      double acc = ind[j];
      for (int64_t y = 1; y < chunks; ++y)
        acc = Kind == 1 ? std::max(acc, ind[y * cap + j]) : std::min(acc, ind[y * cap + j]);
      outd[j] = acc;
    }
  }
}

// The row chunks of a column kernel over K columns: enough blocks to fill a GPU when K is a few
// thousand, at most 16 partial results per column.
int64_t row_chunk_of(int64_t K) { return std::max<int64_t>(1024, (K + 15) / 16); }

// Matrix NMS: decayed score v_j = score_j * decay_j of the first K positions; key for the sort
// (descending v; all ones when v fails the threshold, so those sort last) and the position.
template <typename T>
__global__ void decayed_kernel(const T* __restrict__ scores, const uint32_t* __restrict__ order,
                               const double* __restrict__ dec, int64_t K, bool has_thr, double thr, double* v,
                               uint64_t* keys, uint32_t* vals) {
  for (int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; j < K; j += int64_t(gridDim.x) * blockDim.x) {
    const double x = static_cast<double>(scores[order[j]]) * dec[j];
    v[j] = x;
    keys[j] = !has_thr || x > thr ? descending_key(x) : ~uint64_t(0);
    vals[j] = static_cast<uint32_t>(j);
  }
}

// The first min(selected, cap) of the sorted decayed scores: keep = the elements, out = their
// values in the boxes' dtype; *count = how many.
template <typename T>
__global__ void matrix_output_kernel(const uint64_t* __restrict__ keys, const uint32_t* __restrict__ vals,
                                     const uint32_t* __restrict__ order, const double* __restrict__ v, int64_t K,
                                     int64_t cap, int64_t* __restrict__ keep, T* __restrict__ out, int64_t* count) {
  __shared__ int64_t sel;
  if (threadIdx.x == 0) {  // the selected ones come first: binary search for the first all-ones key
    int64_t lo = 0, hi = K;
    while (lo < hi) {
      const int64_t mid = lo + (hi - lo) / 2;
      if (keys[mid] == ~uint64_t(0)) hi = mid;
      else lo = mid + 1;
    }
    sel = std::min(lo, cap);
    if (blockIdx.x == 0) *count = sel;
  }
  __syncthreads();
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < sel; i += int64_t(gridDim.x) * blockDim.x) {
    keep[i] = order[vals[i]];
    out[i] = static_cast<T>(v[vals[i]]);
  }
}

// A candidate (score, index) of the soft-NMS maximum: larger score first, then lower index.
struct Best {
  double s;
  int64_t i;
};
__device__ __forceinline__ Best better(Best a, Best b) { return (a.s > b.s || (a.s == b.s && a.i < b.i)) ? a : b; }

// The block's best and the sum of `cnt` over the block (every thread gets both); red, red_cnt: 32
// values of shared memory each.
__device__ __forceinline__ Best block_best(Best b, int cnt, Best* red, int* red_cnt, int* total) {
  for (int d = 16; d > 0; d >>= 1) {
    const Best o{__shfl_xor_sync(0xffffffffu, b.s, d), __shfl_xor_sync(0xffffffffu, b.i, d)};
    b = better(b, o);
    cnt += __shfl_xor_sync(0xffffffffu, cnt, d);
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  if (lane == 0) red[warp] = b, red_cnt[warp] = cnt;
  __syncthreads();
  Best r = red[0];
  int t = red_cnt[0];
  for (int w = 1; w < warps; ++w) r = better(r, red[w]), t += red_cnt[w];
  __syncthreads();  // red is free again
  *total = t;
  return r;
}

// Drops the dead boxes from the live list live[0, listed) in place, keeping the index order;
// returns how many remain. A chunk of blockDim entries at a time: every thread reads its entry,
// ballots rank the survivors, which move down (never past an entry not read yet).
__device__ int64_t compact_live(uint32_t* live, int64_t listed, const double* s, double dead, int* warp_sums) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  int64_t out = 0;
  for (int64_t base = 0; base < listed; base += blockDim.x) {
    const int64_t q = base + threadIdx.x;
    uint32_t j = 0;
    bool keep = false;
    if (q < listed) {
      j = live[q];
      keep = s[j] != dead;
    }
    const unsigned ball = __ballot_sync(0xffffffffu, keep);
    if (lane == 0) warp_sums[warp] = __popc(ball);
    __syncthreads();
    int before = 0, all = 0;
    for (int w = 0; w < warps; ++w) {
      before += w < warp ? warp_sums[w] : 0;
      all += warp_sums[w];
    }
    if (keep) live[out + before + __popc(ball & ((1u << lane) - 1u))] = j;
    out += all;
    __syncthreads();
  }
  return out;
}

template <typename T>
__global__ void __launch_bounds__(kSoftThreads)
    soft_nms_kernel(const T* __restrict__ boxes, const T* __restrict__ scores, int64_t n, double iou_threshold,
                    double sigma, double score_threshold, int method, int64_t cap, double* __restrict__ s,
                    uint32_t* __restrict__ live, int64_t* __restrict__ keep, T* __restrict__ kept, int64_t* count) {
  __shared__ Best red[32];
  __shared__ int red_cnt[32];
  const double dead = -INFINITY;  // finite scores only: a live score is never -inf
  Best mine{dead, INT64_MAX};
  int here = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    const double v = static_cast<double>(scores[i]);
    const bool alive = v > score_threshold;
    s[i] = alive ? v : dead;
    live[i] = static_cast<uint32_t>(i);
    if (alive) mine = better(mine, Best{v, i}), ++here;
  }
  int total;
  Best sel = block_best(mine, here, red, red_cnt, &total);
  int64_t listed = n, alive = total, k = 0;
  while (sel.s != dead && k < cap) {
    const int64_t m = sel.i;
    if (threadIdx.x == 0) {
      keep[k] = m;
      kept[k] = static_cast<T>(sel.s);
    }
    ++k;
    const T* bm = boxes + 4 * m;
    const T am = geom::box_area(bm, T(0));
    mine = Best{dead, INT64_MAX};
    int dropped = 0;
    for (int64_t q = threadIdx.x; q < listed; q += blockDim.x) {
      const int64_t j = live[q];
      if (j == m) {
        s[j] = dead;
        continue;
      }
      double sj = s[j];
      if (sj == dead) continue;
      const T* bj = boxes + 4 * j;
      const double iou = static_cast<double>(geom::iou(bm, am, bj, geom::box_area(bj, T(0)), T(0)));
      if (iou > 0) {
        if (method == 0) {
          if (iou > iou_threshold) sj *= 1.0 - iou;
        } else {
          sj *= exp(-(iou * iou) / sigma);
        }
      }
      if (!(sj > score_threshold)) sj = dead, ++dropped;
      s[j] = sj;
      if (sj != dead) mine = better(mine, Best{sj, j});
    }
    sel = block_best(mine, dropped, red, red_cnt, &total);
    alive -= 1 + total;
    if (listed > 2 * alive + 2048) listed = compact_live(live, listed, s, dead, red_cnt);  // the pass walks live boxes
  }
  if (threadIdx.x == 0) *count = k;
}

}  // namespace

std::pair<Tensor, Tensor> soft_nms(const Tensor& b, const Tensor& s, double iou_threshold, double sigma,
                                   double score_threshold, int method, int64_t max_output, RowChecks& checks) {
  const char* op = current_op();
  const int dev = b.device.index;
  DeviceGuard guard(dev, op);
  const Stream st = current_stream();
  const int64_t n = s.numel();
  const int64_t cap = max_output < 0 ? n : std::min(n, max_output);
  Tensor keep = empty({cap}, DType::Int64, b.device), kept = empty({cap}, b.dtype, b.device);
  with_float_dtype(b.dtype, [&](auto t) {
    using T = decltype(t);
    if (n == 0 || cap == 0) return;
    DeviceBuffer cur(n * (sizeof(double) + sizeof(uint32_t)), dev, st);
    launch(op, soft_nms_kernel<T>, dim3(1), dim3(kSoftThreads), 0, st, b.ptr<T>(), s.ptr<T>(), n, iou_threshold, sigma,
           score_threshold, method, cap, cur.as<double>(), reinterpret_cast<uint32_t*>(cur.as<double>() + n),
           keep.ptr<int64_t>(), kept.ptr<T>(), checks.counters());
  });
  keep.shape[0] = kept.shape[0] = checks.counter(0);
  return {keep, kept};
}

std::pair<Tensor, Tensor> matrix_nms(const Tensor& b, const Tensor& s, const Tensor* cls, int method, double sigma,
                                     bool has_score_threshold, double score_threshold, int64_t top_k,
                                     int64_t max_output, RowChecks& checks) {
  const char* op = current_op();
  const int dev = b.device.index;
  DeviceGuard guard(dev, op);
  const Stream st = current_stream();
  const int64_t n = s.numel();
  const int64_t K = top_k >= 0 ? std::min(n, top_k) : n;  // no score filter before the decay
  const int64_t cap = max_output < 0 ? K : std::min(K, max_output);
  Tensor keep = empty({cap}, DType::Int64, b.device), decayed = empty({cap}, b.dtype, b.device);
  const int64_t* c64 = cls && cls->dtype == DType::Int64 ? cls->ptr<int64_t>() : nullptr;
  const int32_t* c32 = cls && cls->dtype == DType::Int32 ? cls->ptr<int32_t>() : nullptr;
  with_float_dtype(b.dtype, [&](auto t) {
    using T = decltype(t);
    if (K == 0 || cap == 0) return;
    DeviceBuffer order(n * sizeof(uint32_t), dev, st), cand(2 * sizeof(int64_t), dev, st);
    sort_scores<T>(s.ptr<T>(), 1, n, false, 0.0, order.as<uint32_t>(), cand.as<int64_t>(), nullptr, dev, st);
    int64_t* limit = cand.as<int64_t>() + 1;
    launch(op, top_k_kernel, dim3(1), dim3(32), 0, st, static_cast<const int64_t*>(cand.as<int64_t>()), top_k, limit);
    const int64_t rc = row_chunk_of(K), chunks = (K + rc - 1) / rc;
    DeviceBuffer work(K * (3 * sizeof(double) + 2 * sizeof(uint64_t) + 2 * sizeof(uint32_t)), dev, st);
    DeviceBuffer part(chunks * K * sizeof(double), dev, st);
    double* comp = work.as<double>();
    double* dec = comp + K;
    double* v = dec + K;
    uint64_t* keys = reinterpret_cast<uint64_t*>(v + K);
    uint64_t* keys2 = keys + K;
    uint32_t* vals = reinterpret_cast<uint32_t*>(keys2 + K);
    uint32_t* vals2 = vals + K;
    const dim3 grid(static_cast<unsigned>(std::min<int64_t>((K + kColumns - 1) / kColumns, max_grid_blocks())),
                    static_cast<unsigned>(chunks));
    const uint32_t* ord = order.as<uint32_t>();
    const IouCut none{0.0, 0.0};
    const int64_t* lim = limit;
    launch(op, column_kernel<T, 1>, grid, dim3(kColumns), 0, st, b.ptr<T>(), ord, c64, c32, lim, K, rc, none,
           static_cast<const double*>(nullptr), method, sigma, static_cast<uint8_t*>(nullptr), part.as<double>());
    launch(op, fold_chunks_kernel<1>, dim3(grid_for(K)), dim3(kThreads), 0, st, lim, K, chunks,
           static_cast<const uint8_t*>(nullptr), static_cast<const double*>(part.as<double>()),
           static_cast<uint8_t*>(nullptr), comp);
    launch(op, column_kernel<T, 2>, grid, dim3(kColumns), 0, st, b.ptr<T>(), ord, c64, c32, lim, K, rc, none,
           static_cast<const double*>(comp), method, sigma, static_cast<uint8_t*>(nullptr), part.as<double>());
    launch(op, fold_chunks_kernel<2>, dim3(grid_for(K)), dim3(kThreads), 0, st, lim, K, chunks,
           static_cast<const uint8_t*>(nullptr), static_cast<const double*>(part.as<double>()),
           static_cast<uint8_t*>(nullptr), dec);
    launch(op, decayed_kernel<T>, dim3(grid_for(K)), dim3(kThreads), 0, st, s.ptr<T>(), ord,
           static_cast<const double*>(dec), K, has_score_threshold, score_threshold, v, keys, vals);
    sort_pairs(keys, vals, K, keys2, vals2, dev, st);
    launch(op, matrix_output_kernel<T>, dim3(grid_for(cap)), dim3(kThreads), 0, st, static_cast<const uint64_t*>(keys),
           static_cast<const uint32_t*>(vals), ord, static_cast<const double*>(v), K, cap, keep.ptr<int64_t>(),
           decayed.ptr<T>(), checks.counters());
  });
  keep.shape[0] = decayed.shape[0] = checks.counter(0);
  return {keep, decayed};
}

Tensor fast_cluster_nms(const Tensor& b, const Tensor& s, const Tensor* cls, double iou_threshold,
                        bool has_score_threshold, double score_threshold, int64_t top_k, int64_t max_output,
                        bool cluster, RowChecks& checks) {
  if (cluster)
    return cluster_nms(b, s, cls, iou_threshold, has_score_threshold, score_threshold, top_k, max_output, checks);
  const char* op = current_op();
  const int dev = b.device.index;
  DeviceGuard guard(dev, op);
  const Stream st = current_stream();
  const int64_t n = s.numel();
  int64_t cap = top_k >= 0 ? std::min(n, top_k) : n;
  if (max_output >= 0) cap = std::min(cap, max_output);
  Tensor out = empty({cap}, DType::Int64, b.device);
  const int64_t* c64 = cls && cls->dtype == DType::Int64 ? cls->ptr<int64_t>() : nullptr;
  const int32_t* c32 = cls && cls->dtype == DType::Int32 ? cls->ptr<int32_t>() : nullptr;
  with_float_dtype(b.dtype, [&](auto t) {
    using T = decltype(t);
    if (n == 0 || cap == 0) return;
    DeviceBuffer order(n * sizeof(uint32_t), dev, st), cand(2 * sizeof(int64_t), dev, st), flags(n, dev, st);
    sort_scores<T>(s.ptr<T>(), 1, n, has_score_threshold, score_threshold, order.as<uint32_t>(), cand.as<int64_t>(),
                   nullptr, dev, st);
    int64_t* limit = cand.as<int64_t>() + 1;
    launch(op, top_k_kernel, dim3(1), dim3(32), 0, st, static_cast<const int64_t*>(cand.as<int64_t>()), top_k, limit);
    rt::memset_async(flags.as<void>(), 0, n, st, op);
    const int64_t cols = top_k >= 0 ? std::min(n, top_k) : n;  // an upper bound of *limit
    const int64_t rc = row_chunk_of(cols), chunks = (cols + rc - 1) / rc;
    DeviceBuffer part(chunks * cols, dev, st);
    const dim3 grid(static_cast<unsigned>(std::min<int64_t>((cols + kColumns - 1) / kColumns, max_grid_blocks())),
                    static_cast<unsigned>(chunks));
    launch(op, column_kernel<T, 0>, grid, dim3(kColumns), 0, st, b.ptr<T>(),
           static_cast<const uint32_t*>(order.as<uint32_t>()), c64, c32, static_cast<const int64_t*>(limit), cols, rc,
           geom::make_iou_cut<T>(iou_threshold), static_cast<const double*>(nullptr), 0, 1.0, part.as<uint8_t>(),
           static_cast<double*>(nullptr));
    launch(op, fold_chunks_kernel<0>, dim3(grid_for(cols)), dim3(kThreads), 0, st, static_cast<const int64_t*>(limit),
           cols, chunks, static_cast<const uint8_t*>(part.as<uint8_t>()), static_cast<const double*>(nullptr),
           flags.as<uint8_t>(), static_cast<double*>(nullptr));
    Compaction c;
    c.flags = flags.as<uint8_t>();
    c.order = order.as<uint32_t>();
    c.len = n;
    c.nseg = 1;
    c.cap = cap;
    c.out = out.ptr<int64_t>();
    c.counts = checks.counters();
    compact(c, dev, st);
  });
  out.shape[0] = checks.counter(0);
  return out;
}

}  // namespace cuda
}  // namespace cnnops
