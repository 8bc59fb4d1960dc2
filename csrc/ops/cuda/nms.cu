// Greedy NMS on the device (plain, class-aware, padded per image, DIoU, and Cluster-NMS, whose
// fixed point is greedy's keep set), without a host round trip: sort, suppression mask, greedy
// scan and output all stay on the device, and one copy at the end brings back the output count
// with the value checks.
//
// Work split:
//  * order: nms_sort.cu's stable radix sort ranks the candidates by descending score (ties by
//    index), per image; class-aware forms then group them by class, stably, so each class is a
//    run of positions in score order ("segments"; non-candidates form segments of their own).
//    A gather kernel (one thread per position) lays the boxes out in that order as structure of
//    arrays with their areas, and the segment ends are found from the segment starts by a
//    compaction and a binary search per position.
//  * suppression mask, torchvision's layout: bit j of row i's word j / 64 is set when position
//    j > i of i's segment overlaps i above the threshold. One block of 64 threads per row tile
//    (64 rows, one per thread) and a few column blocks in x: each stages 64 column boxes in shared
//    memory, and each thread tests its row against them, column tile after column tile, from the
//    diagonal to the end of its tile's segments only, so class-aware NMS costs the sum of the
//    classes' squares, not the square of their sum. The test is ops/box_geom.h's iou_above /
//    diou_above, the CPU's, compiled without fused multiply-adds: the same bits decide.
//  * row blocks: the mask is built for R rows at a time (R * ceil(N / 64) * 8 bytes, at most the
//    budget; N^2 / 8 bytes when N is small), so memory stays bounded for any N (1M boxes: 2112
//    rows of 125 KB), with 64-bit indices throughout. Each row block is followed by
//    * the greedy scan, one block: word by word, 64 threads load the rows' diagonal words, one
//      thread resolves the 64 rows in order (a kept row removes the later rows of its word), and
//      all threads then OR the kept rows' words into the block's later words (held in shared
//      memory, one (word, row) pair per thread): three barriers per 64 rows, not one per kept
//      box, and at most 63 words per kept row (R is at most 4096). Kept rows go to the output at once (plain
//      forms, stopping at max_output_size: the later kernels see a `done` flag and return) or to
//      per-element flags (class-aware and padded forms, at most max_output_size per segment);
//    * a propagation kernel over all SMs that ORs the block's kept rows into the removed bits of
//      the columns after the block. Rows already removed when their row block comes are never
//      computed: for clustered boxes most of the mask is never built.
//  * output: plain forms have written their indices in order; class-aware and padded forms
//    compact their flags in score order per image (boxes.cu's compaction), as the CPU merges.
#include <algorithm>
#include <atomic>
#include <limits>
#include <utility>

#include "core/cuda_kernel.h"
#include "ops/box_geom.h"
#include "ops/cuda/nms.h"
#include "ops/cuda/nms_sort.h"

namespace cnnops {
namespace cuda {

namespace {

using geom::IouCut;

std::atomic<int64_t> g_mask_budget{int64_t(256) << 20};

constexpr int64_t kMaxRowBlock = 4096;  // rows per row block: later blocks skip the rows found removed
constexpr int kMaskColBlocks = 32;      // column blocks per row tile (x of the mask grid)
constexpr int kScanThreads = 256;

// The candidates in processing order, as structure of arrays.
template <typename T>
struct Sorted {
  T *x1, *y1, *x2, *y2, *area;
};

// Where each position's segment ends: end[p], or one value *single for every position.
struct Segs {
  const int64_t* end;
  const int64_t* single;
  __device__ __forceinline__ int64_t at(int64_t p) const { return end ? end[p] : *single; }
};

// State of the greedy scan, carried from one row block to the next (zeroed at the start).
struct ScanState {
  int64_t count;      // indices written (plain forms)
  int64_t done;       // 1 once count reached max_output
  int64_t seg_end;    // end of the segment the scan is in
  int64_t seg_count;  // boxes kept in it
  int64_t blk_count;  // boxes kept in the current row block (listed in blk_kept)
};

__device__ __forceinline__ const uint32_t* order_of(const uint32_t* order, const uint32_t* const* slot) {
  return slot ? *slot : order;
}

__device__ __forceinline__ int64_t class_of(const int64_t* c64, const int32_t* c32, uint32_t e) {
  return c64 ? c64[e] : static_cast<int64_t>(c32[e]);
}

// limit[0] = min(cand[0], top_k) (top_k < 0: no limit): the candidates of a single segment.
__global__ void limit_kernel(const int64_t* cand, int64_t top_k, int64_t* limit) {
  if (threadIdx.x == 0 && blockIdx.x == 0) limit[0] = top_k >= 0 && top_k < cand[0] ? top_k : cand[0];
}

// Boxes and areas in processing order; whether each position is a candidate; segment starts.
// Candidates: positions below *limit (single segment) or elements flagged in cand_flag. A segment
// starts at each image's first position, where candidacy changes and (class_starts) where the
// class id changes.
template <typename T>
__global__ void gather_kernel(const T* __restrict__ boxes, const uint32_t* order, const uint32_t* const* order_slot,
                              int64_t total, int64_t len, const int64_t* limit, const uint8_t* __restrict__ cand_flag,
                              const int64_t* __restrict__ c64, const int32_t* __restrict__ c32, bool class_starts,
                              bool gather_class, Sorted<T> out, uint8_t* __restrict__ cand_pos,
                              uint8_t* __restrict__ start, int64_t* __restrict__ cls_pos) {
  const uint32_t* ord = order_of(order, order_slot);
  for (int64_t p = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; p < total; p += int64_t(gridDim.x) * blockDim.x) {
    const uint32_t e = ord[p];
    const T* b = boxes + 4 * static_cast<int64_t>(e);
    out.x1[p] = b[0], out.y1[p] = b[1], out.x2[p] = b[2], out.y2[p] = b[3];
    out.area[p] = (b[2] - b[0]) * (b[3] - b[1]);
    const bool c = limit ? p < *limit : cand_flag[e] != 0;
    cand_pos[p] = c ? 1 : 0;
    if (gather_class) cls_pos[p] = class_of(c64, c32, e);
    if (start) {
      bool s = p % len == 0;
      if (!s) {
        const uint32_t q = ord[p - 1];
        s = c != (limit ? p - 1 < *limit : cand_flag[q] != 0);
        if (!s && class_starts) s = class_of(c64, c32, e) != class_of(c64, c32, q);
      }
      start[p] = s ? 1 : 0;
    }
  }
}

// end[p] = the first segment start after p (total if none), by binary search in first[0, *count).
__global__ void segment_end_kernel(const int64_t* __restrict__ first, const int64_t* count, int64_t total,
                                   int64_t* __restrict__ end) {
  const int64_t n = *count;
  for (int64_t p = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; p < total; p += int64_t(gridDim.x) * blockDim.x) {
    int64_t lo = 0, hi = n;
    while (lo < hi) {
      const int64_t mid = lo + (hi - lo) / 2;
      if (first[mid] <= p) lo = mid + 1;
      else hi = mid;
    }
    end[p] = lo < n ? first[lo] : total;
  }
}

template <typename T, bool Diou>
__device__ __forceinline__ bool suppresses(const T* a, const T* b, const IouCut& cut, double beta) {
  if (Diou) return geom::diou_above(a[0], a[1], a[2], a[3], a[4], b[0], b[1], b[2], b[3], b[4], cut, beta);
  return geom::iou_above(a[0], a[1], a[2], a[3], a[4], b[0], b[1], b[2], b[3], b[4], cut);
}

// The mask rows [r0, r1) (r0 a multiple of 64): mask[(i - r0) * stride + (t - r0 / 64)] holds the
// bits of column tile t for row i, for the tiles from i's own to the last of i's segment. Rows
// that are not candidates or are already removed are skipped (never read by the scan).
template <typename T, bool Diou>
__global__ void __launch_bounds__(64)
    mask_kernel(Sorted<T> bx, const uint8_t* __restrict__ cand_pos, Segs segs, const int64_t* __restrict__ cls_pos,
                int64_t total, int64_t r0, int64_t r1, int64_t stride, IouCut cut, double beta,
                const uint64_t* __restrict__ removed, const ScanState* st, uint64_t* __restrict__ mask) {
  __shared__ T col[5][64];
  __shared__ int64_t col_cls[64];
  __shared__ int live;
  if (st->done) return;
  const int64_t y = r0 / 64 + blockIdx.y;  // the row tile
  const int64_t i = y * 64 + threadIdx.x;
  const bool row = i < r1 && cand_pos[i] && !((removed[i >> 6] >> (i & 63)) & 1u);
  if (threadIdx.x == 0) live = 0;
  __syncthreads();
  if (row) live = 1;
  __syncthreads();
  if (!live) return;  // every row of the tile is removed or no candidate
  const int64_t last = (segs.at(std::min(y * 64 + 63, r1 - 1)) - 1) / 64;  // segment ends grow with the position
  T me[5] = {0, 0, 0, 0, 0};
  int64_t my_cls = 0, my_end = 0;
  if (row) {
    me[0] = bx.x1[i], me[1] = bx.y1[i], me[2] = bx.x2[i], me[3] = bx.y2[i], me[4] = bx.area[i];
    my_end = segs.at(i);
    if (cls_pos) my_cls = cls_pos[i];
  }
  for (int64_t t = y + blockIdx.x; t <= last; t += gridDim.x) {
    __syncthreads();
    const int64_t j = t * 64 + threadIdx.x;
    if (j < total) {
      col[0][threadIdx.x] = bx.x1[j], col[1][threadIdx.x] = bx.y1[j], col[2][threadIdx.x] = bx.x2[j];
      col[3][threadIdx.x] = bx.y2[j], col[4][threadIdx.x] = bx.area[j];
      if (cls_pos) col_cls[threadIdx.x] = cls_pos[j];
    }
    __syncthreads();
    if (!row || t * 64 >= my_end) continue;
    const int64_t lo = std::max(t * 64, i + 1), hi = std::min(t * 64 + 64, my_end);
    uint64_t bits = 0;
    for (int64_t jj = lo; jj < hi; ++jj) {
      const int k = static_cast<int>(jj - t * 64);
      if (cls_pos && col_cls[k] != my_cls) continue;
      const T other[5] = {col[0][k], col[1][k], col[2][k], col[3][k], col[4][k]};
      if (suppresses<T, Diou>(me, other, cut, beta)) bits |= uint64_t(1) << k;
    }
    mask[(i - r0) * stride + (t - r0 / 64)] = bits;
  }
}

// The greedy scan of rows [r0, r1), one block (see the file comment). Plain forms (Direct) write
// out[count++] = element and stop at max_keep; the others set flag[element] and keep at most
// max_keep per segment.
template <bool Direct>
__global__ void __launch_bounds__(kScanThreads)
    scan_kernel(const uint64_t* __restrict__ mask, int64_t stride, int64_t r0, int64_t r1,
                const uint8_t* __restrict__ cand_pos, Segs segs, uint64_t* __restrict__ removed, ScanState* st,
                int64_t max_keep, const uint32_t* order, const uint32_t* const* order_slot, int64_t* __restrict__ out,
                int64_t* out_count, uint8_t* __restrict__ flag, int64_t* __restrict__ blk_kept) {
  __shared__ uint64_t diag[64];
  __shared__ int64_t row_end[64];
  __shared__ int row_ok[64];
  __shared__ uint64_t rem[kMaxRowBlock / 64];  // the removed bits of the row block's words
  __shared__ int kept[64];                      // the bits kept in the current word
  __shared__ int n_kept, stop;
  const uint32_t* ord = order_of(order, order_slot);
  const int64_t w0 = r0 / 64, w1 = (r1 + 63) / 64;
  if (threadIdx.x == 0) {
    stop = st->done ? 1 : 0;
    st->blk_count = 0;
  }
  for (int64_t v = threadIdx.x; v < w1 - w0; v += blockDim.x) rem[v] = removed[w0 + v];
  __syncthreads();
  if (stop) return;
  for (int64_t w = w0; w < w1; ++w) {
    if (threadIdx.x < 64) {
      const int64_t i = w * 64 + threadIdx.x;
      const bool ok = i < r1 && cand_pos[i];
      row_ok[threadIdx.x] = ok ? 1 : 0;
      row_end[threadIdx.x] = ok ? segs.at(i) : 0;
      diag[threadIdx.x] = ok ? mask[(i - r0) * stride + (w - w0)] : 0;  // read only for a kept row, which was computed
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      ScanState s = *st;
      uint64_t r = rem[w - w0];
      int nk = 0;
      for (int b = 0; b < 64; ++b) {
        if (!row_ok[b] || ((r >> b) & 1u)) continue;
        const int64_t i = w * 64 + b;
        if (i >= s.seg_end) {
          s.seg_end = row_end[b];
          s.seg_count = 0;
        }
        if (s.seg_count >= max_keep) continue;  // the segment is full
        ++s.seg_count;
        kept[nk++] = b;
        r |= diag[b];
        blk_kept[s.blk_count++] = i;
        if (Direct) {
          out[s.count++] = ord[i];
          if (s.count >= max_keep) {
            s.done = 1;
            break;
          }
        } else {
          flag[ord[i]] = 1;
        }
      }
      *st = s;
      n_kept = nk;
      stop = s.done ? 1 : 0;
    }
    __syncthreads();
    // the kept rows' words of the block's later words, one (word, row) pair per thread
    const int nk = n_kept;
    if (nk && !stop) {
      const int64_t pairs = (w1 - w - 1) * nk;
      for (int64_t q = threadIdx.x; q < pairs; q += blockDim.x) {
        const int64_t v = w + 1 + q / nk;
        const int b = kept[q % nk];
        if (v <= (row_end[b] - 1) / 64)
          atomicOr(reinterpret_cast<unsigned long long*>(&rem[v - w0]),
                   static_cast<unsigned long long>(mask[(w * 64 + b - r0) * stride + (v - w0)]));
      }
    }
    __syncthreads();
    if (stop) break;
  }
  if (Direct && threadIdx.x == 0) *out_count = st->count;
}

// removed[v] |= the words v >= w1 of the rows kept in the row block starting at r0 (all SMs).
__global__ void propagate_kernel(const uint64_t* __restrict__ mask, int64_t stride, int64_t r0, int64_t w1,
                                 int64_t words, const int64_t* __restrict__ blk_kept, const ScanState* st, Segs segs,
                                 uint64_t* __restrict__ removed) {
  __shared__ int64_t row[256];
  __shared__ int64_t row_last[256];
  if (st->done) return;
  const int64_t k = st->blk_count, w0 = r0 / 64;
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  // every thread of a block walks the same number of rounds, so the barriers below are uniform
  const int64_t span = words - w1, rounds = (span + step - 1) / step;
  for (int64_t round = 0; round < rounds; ++round) {
    const int64_t v = w1 + round * step + blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
    uint64_t r = v < words ? removed[v] : 0;
    for (int64_t q0 = 0; q0 < k; q0 += 256) {
      __syncthreads();
      for (int64_t q = q0 + threadIdx.x; q < std::min(k, q0 + 256); q += blockDim.x) {
        row[q - q0] = blk_kept[q];
        row_last[q - q0] = (segs.at(blk_kept[q]) - 1) / 64;
      }
      __syncthreads();
      if (v < words)
        for (int64_t q = 0; q < std::min<int64_t>(256, k - q0); ++q)
          if (v <= row_last[q]) r |= mask[(row[q] - r0) * stride + (v - w0)];
    }
    if (v < words) removed[v] = r;
  }
}

template <typename T>
struct Greedy {
  // inputs
  const Tensor& b;
  const Tensor& s;
  const Tensor* cls;
  int64_t nseg, len;
  bool has_thr;
  double thr;
  int64_t top_k;  // < 0: no limit (cluster)
  int64_t max_keep;  // per segment (flag forms) or in all (direct forms)
  bool direct;  // write indices in order (one segment, no class grouping)
  bool class_sort;  // group by class (batched, class-aware padded)
  bool class_test;  // class ids must match in the pair test (class-aware cluster)
  bool diou;
  IouCut cut;
  double beta;
};

// Runs the pipeline of the file comment. Direct forms write into out (>= min(total, max_keep)
// elements) and the count into *out_count; the others set flags[element] (zeroed, total bytes)
// and leave the score order in *score_order for the caller's compaction.
template <typename T>
void run_greedy(const Greedy<T>& g, int device, Stream s, int64_t* out, int64_t* out_count, uint8_t* flags,
                DeviceBuffer& score_order) {
  const char* op = current_op();
  const int64_t total = g.nseg * g.len;
  score_order = DeviceBuffer(std::max<int64_t>(1, total) * sizeof(uint32_t), device, s);
  if (total == 0 || g.max_keep == 0) return;
  uint32_t* order = score_order.as<uint32_t>();
  const Tensor &boxes = g.b, &scores = g.s;
  const Tensor* cls = g.cls;
  const bool need_flag = !g.direct || g.class_sort;
  DeviceBuffer cand_buf(g.nseg * sizeof(int64_t) + 8, device, s), cand_flag(need_flag ? total : 1, device, s);
  int64_t* cand = cand_buf.as<int64_t>();
  sort_scores<T>(scores.ptr<T>(), g.nseg, g.len, g.has_thr, g.thr, order, cand,
                 need_flag ? cand_flag.as<uint8_t>() : nullptr, device, s);
  const int64_t* c64 = cls && cls->dtype == DType::Int64 ? cls->ptr<int64_t>() : nullptr;
  const int32_t* c32 = cls && cls->dtype == DType::Int32 ? cls->ptr<int32_t>() : nullptr;

  // the processing order: by score, or by (image,) class, then score
  DeviceBuffer scratch, slot_buf;
  const uint32_t* const* slot = nullptr;
  if (g.class_sort) {
    scratch = DeviceBuffer(2 * total * sizeof(uint32_t), device, s);
    slot_buf = DeviceBuffer(sizeof(uint32_t*), device, s);
    sort_by_class(order, cls->data, c64 != nullptr, cand_flag.as<uint8_t>(), g.nseg, g.len, scratch.as<uint32_t>(),
                  scratch.as<uint32_t>() + total, slot_buf.as<const uint32_t*>(), device, s);
    slot = slot_buf.as<const uint32_t*>();
  }
  const bool single = g.nseg == 1 && !g.class_sort;  // one segment: the first *limit positions
  int64_t* limit = cand + g.nseg;
  if (single) launch(op, limit_kernel, dim3(1), dim3(32), 0, s, static_cast<const int64_t*>(cand), g.top_k, limit);

  DeviceBuffer sorted(5 * total * sizeof(T), device, s), cand_pos(total, device, s);
  DeviceBuffer starts(single ? 1 : total, device, s), ends(single ? 8 : (2 * total + 1) * sizeof(int64_t), device, s);
  DeviceBuffer cls_pos(g.class_test ? total * sizeof(int64_t) : 8, device, s);
  T* sp = sorted.as<T>();
  const Sorted<T> bx{sp, sp + total, sp + 2 * total, sp + 3 * total, sp + 4 * total};
  launch(op, gather_kernel<T>, dim3(grid_for(total)), dim3(kThreads), 0, s, boxes.ptr<T>(),
         static_cast<const uint32_t*>(order), slot, total, g.len, single ? static_cast<const int64_t*>(limit) : nullptr,
         static_cast<const uint8_t*>(cand_flag.as<uint8_t>()), c64, c32, g.class_sort, g.class_test, bx,
         cand_pos.as<uint8_t>(), single ? static_cast<uint8_t*>(nullptr) : starts.as<uint8_t>(),
         g.class_test ? cls_pos.as<int64_t>() : static_cast<int64_t*>(nullptr));
  Segs segs{nullptr, limit};
  if (!single) {  // segment starts -> first positions (compaction) -> each position's segment end
    int64_t* first = ends.as<int64_t>() + total;
    Compaction c;
    c.flags = starts.as<uint8_t>();
    c.len = total;
    c.nseg = 1;
    c.cap = total;
    c.out = first;
    c.counts = first + total;
    compact(c, device, s);
    launch(op, segment_end_kernel, dim3(grid_for(total)), dim3(kThreads), 0, s, static_cast<const int64_t*>(first),
           static_cast<const int64_t*>(first + total), total, ends.as<int64_t>());
    segs = Segs{ends.as<int64_t>(), nullptr};
  }

  // row blocks of the mask
  const int64_t words = (total + 63) / 64;
  int64_t rows = g_mask_budget.load() / (words * 8) / 64 * 64;
  rows = std::max<int64_t>(64, std::min(rows, kMaxRowBlock));
  if (rows >= total) rows = (total + 63) / 64 * 64;
  DeviceBuffer mask(rows * words * sizeof(uint64_t), device, s), removed(words * sizeof(uint64_t), device, s);
  DeviceBuffer state(sizeof(ScanState), device, s), blk_kept(rows * sizeof(int64_t), device, s);
  rt::memset_async(removed.as<void>(), 0, words * sizeof(uint64_t), s, op);
  rt::memset_async(state.as<void>(), 0, sizeof(ScanState), s, op);
  ScanState* st = state.as<ScanState>();
  const int64_t* cls_p = g.class_test ? cls_pos.as<int64_t>() : nullptr;
  for (int64_t r0 = 0; r0 < total; r0 += rows) {
    const int64_t r1 = std::min(total, r0 + rows), w0 = r0 / 64, w1 = (r1 + 63) / 64, stride = words - w0;
    const dim3 grid(static_cast<unsigned>(std::min<int64_t>(kMaskColBlocks, stride)),
                    static_cast<unsigned>((r1 - r0 + 63) / 64));
    auto mk = g.diou ? mask_kernel<T, true> : mask_kernel<T, false>;
    launch(op, mk, grid, dim3(64), 0, s, bx, static_cast<const uint8_t*>(cand_pos.as<uint8_t>()), segs, cls_p, total,
           r0, r1, stride, g.cut, g.beta, static_cast<const uint64_t*>(removed.as<uint64_t>()),
           static_cast<const ScanState*>(st), mask.as<uint64_t>());
    auto sk = g.direct ? scan_kernel<true> : scan_kernel<false>;
    launch(op, sk, dim3(1), dim3(kScanThreads), 0, s, static_cast<const uint64_t*>(mask.as<uint64_t>()), stride, r0, r1,
           static_cast<const uint8_t*>(cand_pos.as<uint8_t>()), segs, removed.as<uint64_t>(), st, g.max_keep,
           static_cast<const uint32_t*>(order), slot, out, out_count, flags, blk_kept.as<int64_t>());
    if (w1 < words)
      launch(op, propagate_kernel, dim3(grid_for(words - w1)), dim3(256), 0, s,
             static_cast<const uint64_t*>(mask.as<uint64_t>()), stride, r0, w1, words,
             static_cast<const int64_t*>(blk_kept.as<int64_t>()), static_cast<const ScanState*>(st), segs,
             removed.as<uint64_t>());
  }
}

template <typename T>
Greedy<T> make_greedy(const Tensor& b, const Tensor& s, const Tensor* cls, int64_t nseg, int64_t len,
                      const NmsOptions& o) {
  Greedy<T> g{b,
              s,
              cls,
              nseg,
              len,
              o.has_score_threshold,
              o.score_threshold,
              -1,
              0,
              false,
              false,
              false,
              o.criterion == NmsCriterion::DIoU,
              geom::make_iou_cut<T>(o.iou_threshold),
              o.beta};
  return g;
}

}  // namespace

int64_t set_nms_mask_budget(int64_t bytes) { return g_mask_budget.exchange(bytes); }

Tensor nms(const Tensor& b, const Tensor& s, const Tensor* cls, const NmsOptions& o, RowChecks& checks) {
  const char* op = current_op();
  const int dev = b.device.index;
  DeviceGuard guard(dev, op);
  const Stream st = current_stream();
  const int64_t n = s.numel();
  const int64_t cap = o.max_output < 0 ? n : std::min(n, o.max_output);
  Tensor out = empty({cap}, DType::Int64, b.device);
  with_float_dtype(b.dtype, [&](auto t) {
    using T = decltype(t);
    Greedy<T> g = make_greedy<T>(b, s, cls, 1, n, o);
    g.max_keep = cap;
    DeviceBuffer score_order;
    if (!cls) {
      g.direct = true;
      run_greedy(g, dev, st, out.ptr<int64_t>(), checks.counters(), nullptr, score_order);
      return;
    }
    g.class_sort = true;
    DeviceBuffer flags(std::max<int64_t>(1, n), dev, st);
    rt::memset_async(flags.as<void>(), 0, std::max<int64_t>(1, n), st, op);
    run_greedy(g, dev, st, nullptr, nullptr, flags.as<uint8_t>(), score_order);
    if (n == 0 || cap == 0) return;
    Compaction c;
    c.flags = flags.as<uint8_t>();
    c.order = score_order.as<uint32_t>();
    c.by_element = true;
    c.len = n;
    c.nseg = 1;
    c.cap = cap;
    c.out = out.ptr<int64_t>();
    c.counts = checks.counters();
    compact(c, dev, st);
  });
  out.shape[0] = checks.counter(0);  // the one read-back: a prefix view of the same block
  return out;
}

void nms_padded(const Tensor& b, const Tensor& s, const Tensor* cls, const NmsOptions& o, Tensor& out, Tensor& count,
                RowChecks& checks) {
  const char* op = current_op();
  const int dev = b.device.index;
  DeviceGuard guard(dev, op);
  const Stream st = current_stream();
  const int64_t B = s.shape[0], N = s.shape[1], M = o.max_output;
  if (out.numel() > 0) rt::memset_async(out.data, 0xff, out.numel() * sizeof(int64_t), st, op);  // -1 padding
  if (B > 0) rt::memset_async(count.data, 0, B * sizeof(int64_t), st, op);
  with_float_dtype(b.dtype, [&](auto t) {
    using T = decltype(t);
    Greedy<T> g = make_greedy<T>(b, s, cls, B, N, o);
    g.max_keep = M;
    g.class_sort = cls != nullptr;
    const int64_t total = B * N;
    DeviceBuffer flags(std::max<int64_t>(1, total), dev, st), score_order;
    rt::memset_async(flags.as<void>(), 0, std::max<int64_t>(1, total), st, op);
    run_greedy(g, dev, st, nullptr, nullptr, flags.as<uint8_t>(), score_order);
    if (total == 0 || M == 0) return;
    Compaction c;
    c.flags = flags.as<uint8_t>();
    c.order = score_order.as<uint32_t>();
    c.by_element = true;
    c.len = N;
    c.nseg = B;
    c.cap = M;
    c.out = out.ptr<int64_t>();
    c.counts = count.ptr<int64_t>();
    compact(c, dev, st);
  });
  checks.read();
}

Tensor cluster_nms(const Tensor& b, const Tensor& s, const Tensor* cls, double iou_threshold, bool has_score_threshold,
                   double score_threshold, int64_t top_k, int64_t max_output, RowChecks& checks) {
  const char* op = current_op();
  const int dev = b.device.index;
  DeviceGuard guard(dev, op);
  const Stream st = current_stream();
  const int64_t n = s.numel();
  int64_t cap = top_k >= 0 ? std::min(n, top_k) : n;
  if (max_output >= 0) cap = std::min(cap, max_output);
  Tensor out = empty({cap}, DType::Int64, b.device);
  with_float_dtype(b.dtype, [&](auto t) {
    using T = decltype(t);
    NmsOptions o;
    o.iou_threshold = iou_threshold;
    o.has_score_threshold = has_score_threshold;
    o.score_threshold = score_threshold;
    Greedy<T> g = make_greedy<T>(b, s, cls, 1, n, o);
    g.top_k = top_k;
    g.max_keep = cap;
    g.direct = true;
    g.class_test = cls != nullptr;
    DeviceBuffer score_order;
    run_greedy(g, dev, st, out.ptr<int64_t>(), checks.counters(), nullptr, score_order);
  });
  out.shape[0] = checks.counter(0);
  return out;
}

}  // namespace cuda
}  // namespace cnnops
