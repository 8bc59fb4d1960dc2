// CUDA kernels of the box utilities and the IoU family (forward and backward, float32/float64),
// the device-side value checks every box and NMS op runs on CUDA arrays, and the stable
// compaction the NMS family shares.
//
// Work split:
//  * checks: one thread per row in a grid-stride loop; a thread stops at its first offending row
//    (the rows it visits increase, so that is its smallest) and lowers the slot's row with
//    atomicMin; a one-thread kernel then copies that row's values. The slot ends up holding the
//    first bad row, the one the CPU's sequential search finds, whatever the scheduling.
//  * box_convert, box_area, clip_boxes_to_image: one thread per box, grid-stride, the per-box
//    functions of ops/box_geom.h that the CPU loops call.
//  * compaction (remove_small_boxes here, the NMS outputs in nms.cu): tiles of 256 positions;
//    one kernel counts each tile's set flags (ballots), one block scans the tile counts, and each
//    tile then writes its values in position order at its offset: no atomics on positions, so the
//    output keeps the input's order, as the CPU's loop writes it.
//  * pairwise (N x M): both box sets are first unpacked into columns (sorted corners, area and,
//    for CIoU, the aspect angle: one atan2 per box instead of one per pair); then a 2-D grid whose
//    x threads run along a row of the output (consecutive threads, consecutive j: coalesced loads
//    of the columns and stores of the row) and whose y threads take rows in a grid-stride loop.
//    The pair formula is box_geom.h's metric, the CPU's.
//  * losses: one thread per pair (metric, and loss_pair_grad for the backward, from box_geom.h).
//    A reduced loss is summed in the CPU kernels' order: one thread per chunk of kLossChunk pairs
//    adds the chunk in pair order in double, one thread adds the chunk sums in order; the result
//    is deterministic and, given the same per-pair values, the CPU's bit for bit. The backward
//    writes each pair's eight gradients once: no atomics.
// The file is compiled without contracting multiplies and adds (--fmad=false under nvcc,
// -ffp-contract=off in the emulation build), so every value is rounded as in the portable CPU
// kernels.
#include <algorithm>
#include <cstring>
#include <type_traits>

#include "core/cuda_kernel.h"
#include "ops/box_geom.h"
#include "ops/cuda/boxes.h"

namespace cnnops {
namespace cuda {

namespace {

using geom::IouKind;

// A slot's row before any check found a bad one: the bytes a 0x7f memset leaves.
constexpr long long kNoRow = 0x7f7f7f7f7f7f7f7fLL;

template <typename T>
__device__ __forceinline__ bool finite(T v) {
  return v - v == T(0);  // false for inf and NaN
}

template <typename T>
__device__ __forceinline__ bool row_bad(const T* p, const T* s, int64_t i, int fmt, bool ordered, int* rule) {
  const T x1 = p[0], y1 = p[1], x2 = p[2], y2 = p[3];
  if (!(finite(x1) && finite(y1) && finite(x2) && finite(y2))) return *rule = kNonFinite, true;
  if (ordered && (fmt == geom::XYXY ? (x2 < x1 || y2 < y1) : (x2 < T(0) || y2 < T(0)))) return *rule = kUnordered, true;
  if (s && !finite(s[i])) return *rule = kNonFiniteScore, true;
  return false;
}

template <typename T>
__global__ void row_check_kernel(const T* __restrict__ b, const T* __restrict__ s, int64_t n, int fmt, bool ordered,
                                 BadRow* slot) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    int rule;
    if (row_bad(b + 4 * i, s, i, fmt, ordered, &rule)) {
      atomicMin(reinterpret_cast<long long*>(&slot->row), static_cast<long long>(i));
      return;
    }
  }
}

template <typename T>
__global__ void row_record_kernel(const T* __restrict__ b, const T* __restrict__ s, int64_t n, int fmt, bool ordered,
                                  BadRow* slot) {
  const long long r = slot->row;
  if (threadIdx.x != 0 || r < 0 || r >= n) return;
  int rule = kBadNone;
  row_bad(b + 4 * r, s, r, fmt, ordered, &rule);
  slot->rule = rule;
  for (int k = 0; k < 4; ++k) slot->v[k] = static_cast<double>(b[4 * r + k]);
  slot->v[4] = s ? static_cast<double>(s[r]) : 0.0;
}

template <typename T>
void launch_row_check(const Tensor& b, const Tensor* s, int fmt, bool ordered, BadRow* slot, Stream st) {
  const int64_t n = b.size(0);
  if (n == 0) return;
  const char* op = current_op();
  const T* sp = s ? s->ptr<T>() : nullptr;
  launch(op, row_check_kernel<T>, dim3(grid_for(n)), dim3(kThreads), 0, st, b.ptr<T>(), sp, n, fmt, ordered, slot);
  launch(op, row_record_kernel<T>, dim3(1), dim3(32), 0, st, b.ptr<T>(), sp, n, fmt, ordered, slot);
}

// ---- utilities ----

template <typename T>
__global__ void convert_kernel(const T* __restrict__ in, T* __restrict__ out, int64_t n, int in_fmt, int out_fmt) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    geom::convert_box(in + 4 * i, in_fmt, out_fmt, out + 4 * i);
}

template <typename T>
__global__ void area_kernel(const T* __restrict__ b, T* __restrict__ out, int64_t n, T off) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = geom::box_area(geom::load_sorted(b + 4 * i), off);
}

template <typename T>
__global__ void clip_kernel(const T* __restrict__ b, T* __restrict__ out, int64_t n, T height, T width) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    geom::clip_box(b + 4 * i, height, width, out + 4 * i);
}

template <typename T>
__global__ void large_enough_kernel(const T* __restrict__ b, uint8_t* __restrict__ flag, int64_t n, T min_size, T off) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    flag[i] = geom::large_enough(b + 4 * i, min_size, off) ? 1 : 0;
}

// ---- stable compaction ----

constexpr int kTile = 256;  // positions per tile = threads per block of the tile kernels

__device__ __forceinline__ bool compact_flag(const Compaction& c, int64_t p) {
  if (!c.by_element) return c.flags[p] != 0;
  return c.flags[c.order ? static_cast<int64_t>(c.order[p]) : p] != 0;
}

// Exclusive prefix of `v` over the threads of a block (kTile threads, warps of 32) and the total;
// `warp_sums` holds kTile / 32 values.
__device__ __forceinline__ int block_exclusive_count(bool v, int* warp_sums, int* total) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const unsigned ball = __ballot_sync(0xffffffffu, v);
  const int below = __popc(ball & ((1u << lane) - 1u));
  if (lane == 0) warp_sums[warp] = __popc(ball);
  __syncthreads();
  int before = 0, all = 0;
  for (int w = 0; w < kTile / 32; ++w) {
    before += w < warp ? warp_sums[w] : 0;
    all += warp_sums[w];
  }
  __syncthreads();  // warp_sums may be reused by the caller
  *total = all;
  return before + below;
}

__global__ void tile_count_kernel(Compaction c, int64_t total, int64_t* tile_count) {
  __shared__ int warp_sums[kTile / 32];
  const int64_t tiles = (total + kTile - 1) / kTile;
  for (int64_t t = blockIdx.x; t < tiles; t += gridDim.x) {
    const int64_t p = t * kTile + threadIdx.x;
    int cnt;
    block_exclusive_count(p < total && compact_flag(c, p), warp_sums, &cnt);
    if (threadIdx.x == 0) tile_count[t] = cnt;
  }
}

// One block: tile_count[0, tiles) -> exclusive prefix sums in place; tile_count[tiles] = total.
__global__ void scan_tiles_kernel(int64_t* tile_count, int64_t tiles) {
  __shared__ int64_t warp_sums[32];
  __shared__ int64_t carry;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (threadIdx.x == 0) carry = 0;
  __syncthreads();
  for (int64_t base = 0; base < tiles; base += blockDim.x) {
    const int64_t t = base + threadIdx.x;
    const int64_t v = t < tiles ? tile_count[t] : 0;
    int64_t x = v;  // inclusive scan within the warp
    for (int d = 1; d < 32; d <<= 1) {
      const int64_t y = __shfl_up_sync(0xffffffffu, x, d);
      if (lane >= d) x += y;
    }
    if (lane == 31) warp_sums[warp] = x;
    __syncthreads();
    int64_t before = carry;
    for (int w = 0; w < warp; ++w) before += warp_sums[w];
    if (t < tiles) tile_count[t] = before + x - v;
    __syncthreads();
    if (threadIdx.x == blockDim.x - 1) carry = before + x;
    __syncthreads();
  }
  if (threadIdx.x == 0) tile_count[tiles] = carry;
}

// base[g] = number of set flags before position g * len, for g in [0, nseg]; counts[g] capped.
__global__ void segment_base_kernel(Compaction c, int64_t total, const int64_t* tile_off, int64_t* base) {
  for (int64_t g = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; g <= c.nseg; g += int64_t(gridDim.x) * blockDim.x) {
    const int64_t p = std::min(g * c.len, total), t0 = p / kTile * kTile;
    int64_t v = tile_off[p / kTile];
    for (int64_t q = t0; q < p; ++q) v += compact_flag(c, q) ? 1 : 0;
    base[g] = v;
  }
}

__global__ void scatter_kernel(Compaction c, int64_t total, const int64_t* tile_off, const int64_t* base) {
  __shared__ int warp_sums[kTile / 32];
  const int64_t tiles = (total + kTile - 1) / kTile;
  for (int64_t t = blockIdx.x; t < tiles; t += gridDim.x) {
    const int64_t p = t * kTile + threadIdx.x;
    const bool f = p < total && compact_flag(c, p);
    int cnt;
    const int64_t rank = tile_off[t] + block_exclusive_count(f, warp_sums, &cnt);
    if (f) {
      const int64_t g = p / c.len, r = rank - base[g];
      const int64_t e = c.order ? static_cast<int64_t>(c.order[p]) : p;
      if (r < c.cap) c.out[g * c.cap + r] = e - g * c.len;
    }
  }
  for (int64_t g = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; c.counts && g < c.nseg;
       g += int64_t(gridDim.x) * blockDim.x)
    c.counts[g] = std::min(c.cap, base[g + 1] - base[g]);
}

// ---- pairwise ----

template <typename T>
struct Cols {
  const T *x1, *y1, *x2, *y2, *area, *angle;
};

template <typename T>
Cols<T> cols_at(const T* p, int64_t n) {
  return Cols<T>{p, p + n, p + 2 * n, p + 3 * n, p + 4 * n, p + 5 * n};
}

// Sorted corners, areas and (when `angles`) CIoU aspect angles of n boxes into six columns.
template <typename T>
__global__ void columns_kernel(const T* __restrict__ b, int64_t n, T off, bool angles, T* __restrict__ cols) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const geom::Box<T> q = geom::load_sorted(b + 4 * i);
    cols[i] = q.x1, cols[n + i] = q.y1, cols[2 * n + i] = q.x2, cols[3 * n + i] = q.y2;
    cols[4 * n + i] = geom::box_area(q, off);
    cols[5 * n + i] = angles ? geom::aspect_angle(q, off) : T(0);
  }
}

template <typename T, IouKind K>
__global__ void pairwise_kernel(Cols<T> a, Cols<T> b, int64_t n, int64_t m, T* __restrict__ out, T off, T eps) {
  const int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (j >= m) return;
  const geom::Box<T> bj{b.x1[j], b.y1[j], b.x2[j], b.y2[j]};
  const T area_b = b.area[j], ang_b = K == IouKind::CIoU ? b.angle[j] : T(0);
  const geom::MetricEps<T> e = geom::pairwise_eps<T, K>(eps);
  for (int64_t i = blockIdx.y * int64_t(blockDim.y) + threadIdx.y; i < n; i += int64_t(gridDim.y) * blockDim.y) {
    const geom::Box<T> ai{a.x1[i], a.y1[i], a.x2[i], a.y2[i]};
    const T ang_a = K == IouKind::CIoU ? a.angle[i] : T(0);
    out[i * m + j] = geom::metric<T, K>(ai, a.area[i], ang_a, bj, area_b, ang_b, off, e);
  }
}

// ---- losses ----

template <typename T, IouKind K>
__global__ void loss_kernel(const T* __restrict__ b1, const T* __restrict__ b2, int64_t n, T off, T eps,
                            T* __restrict__ out) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const geom::Box<T> a = geom::load_sorted(b1 + 4 * i), b = geom::load_sorted(b2 + 4 * i);
    out[i] =
        T(1) - geom::metric<T, K>(a, geom::box_area(a, off), b, geom::box_area(b, off), off, geom::loss_eps<T, K>(eps));
  }
}

template <typename T>
__global__ void chunk_sum_kernel(const T* __restrict__ v, int64_t n, double* __restrict__ part) {
  const int64_t chunks = (n + kLossChunk - 1) / kLossChunk;
  for (int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; c < chunks; c += int64_t(gridDim.x) * blockDim.x) {
    const int64_t e = std::min(n, (c + 1) * kLossChunk);
    double s = 0.0;
    for (int64_t i = c * kLossChunk; i < e; ++i) s += static_cast<double>(v[i]);
    part[c] = s;
  }
}

template <typename T>
__global__ void loss_total_kernel(const double* __restrict__ part, int64_t n, bool mean, T* out) {
  if (threadIdx.x != 0 || blockIdx.x != 0) return;
  const int64_t chunks = (n + kLossChunk - 1) / kLossChunk;
  double t = 0.0;
  for (int64_t c = 0; c < chunks; ++c) t += part[c];
  *out = static_cast<T>(mean ? (n > 0 ? t / static_cast<double>(n) : 0.0) : t);
}

template <typename T, IouKind K>
__global__ void loss_backward_kernel(const T* __restrict__ gout, bool per_pair, double scale, const T* __restrict__ b1,
                                     const T* __restrict__ b2, int64_t n, T off, T eps, T* __restrict__ g1,
                                     T* __restrict__ g2) {
  const T g0 = per_pair ? T(0) : gout[0] * static_cast<T>(scale);  // the reduced gradient, scaled as on the CPU
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    geom::loss_pair_grad<T, K>(b1 + 4 * i, b2 + 4 * i, off, eps, per_pair ? gout[i] : g0, g1 + 4 * i, g2 + 4 * i);
}

// Where a reduced loss's chunk sums start in its workspace: after the n per-pair values, 8-byte
// aligned.
template <typename T>
int64_t part_at(int64_t n) {
  return (n * static_cast<int64_t>(sizeof(T)) + 7) / 8 * 8;
}

// f(std::integral_constant<IouKind, K>{}) for the kind.
template <typename F>
void with_kind(IouKind kind, F&& f) {
  switch (kind) {
    case IouKind::IoU: return f(std::integral_constant<IouKind, IouKind::IoU>{});
    case IouKind::GIoU: return f(std::integral_constant<IouKind, IouKind::GIoU>{});
    case IouKind::DIoU: return f(std::integral_constant<IouKind, IouKind::DIoU>{});
    case IouKind::CIoU: return f(std::integral_constant<IouKind, IouKind::CIoU>{});
  }
}

// f(float{}) or f(double{}): the box family has float32 and float64 kernels.
template <typename F>
decltype(auto) with_float(DType dt, F&& f) {
  if (dt == DType::Float64) return f(double{});
  if (dt == DType::Float32) return f(float{});
  throw TypeError(str(current_op(), ": expected float32 or float64, got ", dtype_name(dt)));
}

}  // namespace

// ---- RowChecks ----

RowChecks::RowChecks(int device, int slots, int counters)
    : device_(device), slots_(slots), counters_(counters), stream_(current_stream()) {
  DeviceGuard guard(device_, current_op());
  const size_t bytes = slots_ * sizeof(BadRow) + counters_ * sizeof(int64_t);
  buf_ = device_alloc(bytes, device_, stream_);
  if (slots_) rt::memset_async(buf_, 0x7f, slots_ * sizeof(BadRow), stream_, current_op());
  if (counters_) rt::memset_async(this->counters(), 0, counters_ * sizeof(int64_t), stream_, current_op());
}

RowChecks::~RowChecks() { device_free(buf_, device_, stream_); }

void RowChecks::boxes(int k, const Tensor& b, BoxFormat fmt, bool ordered) {
  DeviceGuard guard(device_, current_op());
  BadRow* slot = static_cast<BadRow*>(buf_) + k;
  with_float(b.dtype,
             [&](auto t) { launch_row_check<decltype(t)>(b, nullptr, static_cast<int>(fmt), ordered, slot, stream_); });
}

void RowChecks::boxes_scores(int k, const Tensor& b, const Tensor& s) {
  DeviceGuard guard(device_, current_op());
  BadRow* slot = static_cast<BadRow*>(buf_) + k;
  Tensor flat = b;  // the rows of (B, N, 4) boxes are checked as (B * N, 4)
  flat.shape = {s.numel(), 4};
  flat.strides = contiguous_strides(flat.shape);
  with_float(b.dtype, [&](auto t) { launch_row_check<decltype(t)>(flat, &s, geom::XYXY, true, slot, stream_); });
}

int64_t* RowChecks::counters() const {
  return reinterpret_cast<int64_t*>(static_cast<unsigned char*>(buf_) + slots_ * sizeof(BadRow));
}

void RowChecks::read() {
  if (read_) return;
  DeviceGuard guard(device_, current_op());
  host_.resize(slots_ * sizeof(BadRow) + counters_ * sizeof(int64_t));
  copy_to_host(host_.data(), buf_, host_.size(), stream_, current_op());
  for (int k = 0; k < slots_; ++k) {
    BadRow* r = reinterpret_cast<BadRow*>(host_.data()) + k;
    if (r->row == kNoRow) r->row = -1;
  }
  read_ = true;
}

const BadRow& RowChecks::row(int k) {
  read();
  return reinterpret_cast<const BadRow*>(host_.data())[k];
}

int64_t RowChecks::counter(int k) {
  read();
  int64_t v;
  std::memcpy(&v, host_.data() + slots_ * sizeof(BadRow) + k * sizeof(int64_t), sizeof v);
  return v;
}

// ---- compaction ----

void compact(const Compaction& c, int device, Stream s) {
  const char* op = current_op();
  const int64_t total = c.nseg * c.len;
  if (c.nseg == 0) return;
  const int64_t tiles = (total + kTile - 1) / kTile;
  DeviceBuffer tile_off((tiles + 1 + c.nseg + 1) * sizeof(int64_t), device, s);
  int64_t* to = tile_off.as<int64_t>();
  int64_t* base = to + tiles + 1;
  const unsigned blocks = static_cast<unsigned>(std::max<int64_t>(1, std::min(tiles, max_grid_blocks())));
  if (tiles > 0) launch(op, tile_count_kernel, dim3(blocks), dim3(kTile), 0, s, c, total, to);
  launch(op, scan_tiles_kernel, dim3(1), dim3(1024), 0, s, to, tiles);
  launch(op, segment_base_kernel, dim3(grid_for(c.nseg + 1)), dim3(kThreads), 0, s, c, total,
         static_cast<const int64_t*>(to), base);
  launch(op, scatter_kernel, dim3(blocks), dim3(kTile), 0, s, c, total, static_cast<const int64_t*>(to),
         static_cast<const int64_t*>(base));
}

void exclusive_scan(int64_t* v, int64_t n, Stream s) {
  launch(current_op(), scan_tiles_kernel, dim3(1), dim3(1024), 0, s, v, n);
}

// ---- drivers ----

void box_convert(const Tensor& b, Tensor& out, BoxFormat in_fmt, BoxFormat out_fmt) {
  const char* op = current_op();
  DeviceGuard guard(b.device.index, op);
  const int64_t n = b.size(0);
  if (n == 0) return;
  with_float(b.dtype, [&](auto t) {
    using T = decltype(t);
    launch(op, convert_kernel<T>, dim3(grid_for(n)), dim3(kThreads), 0, current_stream(), b.ptr<T>(), out.ptr<T>(), n,
           static_cast<int>(in_fmt), static_cast<int>(out_fmt));
  });
}

void box_area(const Tensor& b, Tensor& out, double offset) {
  const char* op = current_op();
  DeviceGuard guard(b.device.index, op);
  const int64_t n = b.size(0);
  if (n == 0) return;
  with_float(b.dtype, [&](auto t) {
    using T = decltype(t);
    launch(op, area_kernel<T>, dim3(grid_for(n)), dim3(kThreads), 0, current_stream(), b.ptr<T>(), out.ptr<T>(), n,
           static_cast<T>(offset));
  });
}

void clip_boxes(const Tensor& b, Tensor& out, double height, double width) {
  const char* op = current_op();
  DeviceGuard guard(b.device.index, op);
  const int64_t n = b.size(0);
  if (n == 0) return;
  with_float(b.dtype, [&](auto t) {
    using T = decltype(t);
    launch(op, clip_kernel<T>, dim3(grid_for(n)), dim3(kThreads), 0, current_stream(), b.ptr<T>(), out.ptr<T>(), n,
           static_cast<T>(height), static_cast<T>(width));
  });
}

int64_t small_box_keep(const Tensor& b, Tensor& keep, double min_size, double offset, RowChecks& checks) {
  const char* op = current_op();
  DeviceGuard guard(b.device.index, op);
  const Stream s = current_stream();
  const int64_t n = b.size(0);
  if (n > 0) {
    DeviceBuffer flag(n, b.device.index, s);
    with_float(b.dtype, [&](auto t) {
      using T = decltype(t);
      launch(op, large_enough_kernel<T>, dim3(grid_for(n)), dim3(kThreads), 0, s, b.ptr<T>(), flag.as<uint8_t>(), n,
             static_cast<T>(min_size), static_cast<T>(offset));
    });
    Compaction c;
    c.flags = flag.as<uint8_t>();
    c.len = n;
    c.nseg = 1;
    c.cap = n;
    c.out = keep.ptr<int64_t>();
    c.counts = checks.counters();
    compact(c, b.device.index, s);
  }
  return checks.counter(0);
}

void box_pairwise(geom::IouKind kind, const Tensor& b1, const Tensor& b2, Tensor& out, double offset, double eps) {
  const char* op = current_op();
  const int dev = b1.device.index;
  DeviceGuard guard(dev, op);
  const Stream s = current_stream();
  const int64_t n = b1.size(0), m = b2.size(0);
  if (n == 0 || m == 0) return;
  with_float(b1.dtype, [&](auto t) {
    using T = decltype(t);
    DeviceBuffer cols(6 * (n + m) * sizeof(T), dev, s);
    T* ca = cols.as<T>();
    T* cb = ca + 6 * n;
    const T off = static_cast<T>(offset);
    const bool angles = kind == IouKind::CIoU;
    launch(op, columns_kernel<T>, dim3(grid_for(n)), dim3(kThreads), 0, s, b1.ptr<T>(), n, off, angles, ca);
    launch(op, columns_kernel<T>, dim3(grid_for(m)), dim3(kThreads), 0, s, b2.ptr<T>(), m, off, angles, cb);
    // x along the output's rows (at least a warp), y over rows
    const int64_t bx = std::min<int64_t>(kThreads, (m + 31) / 32 * 32), by = kThreads / bx;
    const int64_t gx = (m + bx - 1) / bx;
    const int64_t gy = std::min<int64_t>({(n + by - 1) / by, 65535, std::max<int64_t>(1, max_grid_blocks() / gx)});
    with_kind(kind, [&](auto k) {
      launch(op, pairwise_kernel<T, decltype(k)::value>, dim3(static_cast<unsigned>(gx), static_cast<unsigned>(gy)),
             dim3(static_cast<unsigned>(bx), static_cast<unsigned>(by)), 0, s, cols_at<T>(ca, n), cols_at<T>(cb, m), n,
             m, out.ptr<T>(), off, static_cast<T>(eps));
    });
  });
}

void box_loss(geom::IouKind kind, const Tensor& b1, const Tensor& b2, Reduction red, double offset, double eps,
              Tensor& out) {
  const char* op = current_op();
  const int dev = b1.device.index;
  DeviceGuard guard(dev, op);
  const Stream s = current_stream();
  const int64_t n = b1.size(0);
  const bool per_pair = red == Reduction::None;
  with_float(b1.dtype, [&](auto t) {
    using T = decltype(t);
    DeviceBuffer tmp;
    T* o = out.ptr<T>();
    if (!per_pair) {
      const int64_t chunks = (n + kLossChunk - 1) / kLossChunk;
      tmp = DeviceBuffer(std::max<int64_t>(1, part_at<T>(n) + chunks * 8), dev, s);
      o = tmp.as<T>();
    }
    if (n > 0)
      with_kind(kind, [&](auto k) {
        launch(op, loss_kernel<T, decltype(k)::value>, dim3(grid_for(n)), dim3(kThreads), 0, s, b1.ptr<T>(),
               b2.ptr<T>(), n, static_cast<T>(offset), static_cast<T>(eps), o);
      });
    if (per_pair) return;
    double* part = reinterpret_cast<double*>(tmp.as<unsigned char>() + part_at<T>(n));
    const int64_t chunks = (n + kLossChunk - 1) / kLossChunk;
    if (chunks > 0)
      launch(op, chunk_sum_kernel<T>, dim3(grid_for(chunks)), dim3(kThreads), 0, s, static_cast<const T*>(o), n, part);
    launch(op, loss_total_kernel<T>, dim3(1), dim3(32), 0, s, static_cast<const double*>(part), n,
           red == Reduction::Mean, out.ptr<T>());
  });
}

void box_loss_backward(geom::IouKind kind, const Tensor& grad_output, const Tensor& b1, const Tensor& b2, Reduction red,
                       double offset, double eps, Tensor& g1, Tensor& g2) {
  const char* op = current_op();
  DeviceGuard guard(b1.device.index, op);
  const int64_t n = b1.size(0);
  if (n == 0) return;
  const bool per_pair = red == Reduction::None;
  const double scale = red == Reduction::Mean ? 1.0 / static_cast<double>(n) : 1.0;
  with_float(b1.dtype, [&](auto t) {
    using T = decltype(t);
    with_kind(kind, [&](auto k) {
      launch(op, loss_backward_kernel<T, decltype(k)::value>, dim3(grid_for(n)), dim3(kThreads), 0, current_stream(),
             grad_output.ptr<T>(), per_pair, scale, b1.ptr<T>(), b2.ptr<T>(), n, static_cast<T>(offset),
             static_cast<T>(eps), g1.ptr<T>(), g2.ptr<T>());
    });
  });
}

}  // namespace cuda
}  // namespace cnnops
