// Unpooling and nearest-upsampling kernels. All of them move data without arithmetic (except the
// sums of the upsampling backward), so they are bound by memory bandwidth: the aim is to touch each
// byte once, in long contiguous runs, with the work split evenly over the threads.
//
// Work split (cnnops::parallel_for, dynamic one-task-at-a-time):
//  - upsample forward, NC...: tasks are blocks of output rows (n, c, od, oh); a row is a gather
//    through the column table (the x2 case is a plain duplicate loop the compiler vectorises), and
//    an output row whose source row equals the previous one's is a memcpy of that row.
//    N...C: tasks are blocks of output rows (n, od, oh); each output pixel is a memcpy of C values.
//  - upsample backward: a gather over outputs. Tasks own blocks of input rows; each input element
//    sums its (contiguous) range of output elements in a fixed order (od, oh, ow ascending), so
//    results are bitwise identical for any thread count.
//  - max_unpool forward: tasks own whole output planes (n, c) (NC...) or whole images n (N...C):
//    zero-fill, then write the inputs at their indices in memory order; no two tasks write the same
//    memory, so duplicates resolve the same way (last in memory order) for any thread count.
//  - max_unpool backward: a pure gather; tasks own whole planes (NC...) or images (N...C); float
//    planes go through the AVX2 gather (range checks eight at a time, streaming stores).
//  - bed-of-nails backward: a pure gather, blocks of input rows per task.
// The x2 upsampling forward writes with streaming stores, which skip the write-allocate reads a
// plain copy pays, so it can exceed the measured copy bandwidth. max_unpool backward is a gather
// that reads all of grad_output, the same traffic as torch's gather.
// float32 (32, 64, 56, 56) x2 upsampling forward: 95% of copy bandwidth (benchmarks/results/unpool_cpu.md).
#include "ops/cpu/unpool.h"

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "core/cpu_features.h"
#include "core/parallel.h"
#include "ops/cpu/unpool_rows.h"

namespace cnnops {
namespace cpu {

// Splits [0, n) into about 8 blocks per thread (at least `min_block` items each) and runs
// f(begin, end) on each.
template <typename F>
static void for_blocks(int64_t n, int64_t min_block, F&& f) {
  const int64_t nt = num_threads();
  int64_t blocks = std::max<int64_t>(1, std::min<int64_t>(nt * 8, n / std::max<int64_t>(min_block, 1)));
  if (nt <= 1) blocks = 1;
  const int64_t per = (n + blocks - 1) / blocks;
  parallel_for(blocks, [&](int64_t b) {
    const int64_t lo = b * per, hi = std::min(n, lo + per);
    if (lo < hi) f(lo, hi);
  });
}

// The ISA selector of the family: the AVX2 float32 row kernels of unpool_rows.h, or nulls where
// the portable loops below run.
struct UnpoolRows {
  void (*dup2_row)(const float*, float*, float*, int64_t, bool) = nullptr;
  void (*sum2x2_row)(const float*, const float*, float*, int64_t, bool) = nullptr;
  void (*sum2x2_cl_row)(const float*, const float*, float*, int64_t, int64_t, bool) = nullptr;
  int64_t (*gather)(const float*, const int64_t*, float*, int64_t, int64_t, bool) = nullptr;
  void (*stream_copy)(void*, const void*, size_t) = nullptr;
  void (*stream_fence)() = nullptr;
};

static UnpoolRows unpool_rows() {
  UnpoolRows k;
#ifdef CNNOPS_HAVE_AVX2_TU
  if (use_avx2()) {
    k.dup2_row = avx2::dup2_row_f32;
    k.sum2x2_row = avx2::sum2x2_row_f32;
    k.sum2x2_cl_row = avx2::sum2x2_cl_row_f32;
    k.gather = avx2::gather_f32;
    k.stream_copy = avx2::stream_copy;
    k.stream_fence = avx2::stream_fence;
  }
#endif
  return k;
}

// After a task's streaming stores (only the AVX2 kernels issue them).
static void fence_streams(const UnpoolRows& k, bool stream) {
  if (stream && k.stream_fence) k.stream_fence();
}

void copy_out(void* dst, const void* src, size_t bytes, bool stream) {
  const UnpoolRows k = unpool_rows();
  if (stream && k.stream_copy) return k.stream_copy(dst, src, bytes);
  std::memcpy(dst, src, bytes);
}

// y0 (and y1 unless null) = each of x's W values twice.
template <typename T>
static void dup2_row(const UnpoolRows& isa, const T* x, T* y0, T* y1, int64_t W, bool stream) {
  if constexpr (std::is_same<T, float>::value) {
    if (isa.dup2_row) return isa.dup2_row(x, y0, y1, W, stream);
  }
  for (int64_t w = 0; w < W; ++w) y0[2 * w] = y0[2 * w + 1] = x[w];
  if (y1) std::memcpy(y1, y0, sizeof(T) * 2 * W);
}

// dx[w] = (g0[2w] + g0[2w+1]) + (g1[2w] + g1[2w+1]).
template <typename T>
static void sum2x2_row(const UnpoolRows& isa, const T* g0, const T* g1, T* dx, int64_t W, bool stream) {
  if constexpr (std::is_same<T, float>::value) {
    if (isa.sum2x2_row) return isa.sum2x2_row(g0, g1, dx, W, stream);
  }
  for (int64_t w = 0; w < W; ++w) dx[w] = (g0[2 * w] + g0[2 * w + 1]) + (g1[2 * w] + g1[2 * w + 1]);
}

template <typename T>
void upsample_nearest_forward(const T* x, T* y, const Geom5& in, const Geom5& out, const int64_t* sd, const int64_t* sh,
                              const int64_t* sw) {
  const UnpoolRows isa = unpool_rows();
  const int64_t Wo = out.W, Ho = out.H, Do = out.D, C = in.C;
  if (!in.cl) {
    bool twice = Wo == 2 * in.W, same = Wo == in.W;
    for (int64_t w = 0; w < Wo; ++w) {
      twice = twice && sw[w] == (w >> 1);
      same = same && sw[w] == w;
    }
    const int64_t rows = in.N * C * Do * Ho;
    const bool stream = static_cast<size_t>(out.numel()) * sizeof(T) >= kStreamMinBytes;
    for_blocks(rows, std::max<int64_t>(1, 4096 / std::max<int64_t>(Wo, 1)), [&](int64_t r0, int64_t r1) {
      int64_t prev_src = -1;
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t oh = r % Ho, od = (r / Ho) % Do, nc = r / (Ho * Do);
        const int64_t src_row = (nc * in.D + sd[od]) * in.H + sh[oh];
        T* yr = y + r * Wo;
        if (src_row == prev_src) {
          std::memcpy(yr, yr - Wo, sizeof(T) * Wo);
          continue;
        }
        prev_src = src_row;
        const T* xr = x + src_row * in.W;
        if (same) {
          std::memcpy(yr, xr, sizeof(T) * Wo);
        } else if (twice) {
          // the next output row usually reads the same input row: write both from one read
          const bool pair = r + 1 < r1 && (r + 1) % Ho != 0 && sh[oh + 1] == sh[oh];
          dup2_row(isa, xr, yr, pair ? yr + Wo : static_cast<T*>(nullptr), in.W, stream);
          if (pair) ++r;
        } else {
          for (int64_t w = 0; w < Wo; ++w) yr[w] = xr[sw[w]];
        }
      }
      if constexpr (std::is_same<T, float>::value) fence_streams(isa, twice && stream);
    });
  } else {
    const int64_t rows = in.N * Do * Ho;
    for_blocks(rows, 1, [&](int64_t r0, int64_t r1) {
      int64_t prev_src = -1;
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t oh = r % Ho, od = (r / Ho) % Do, n = r / (Ho * Do);
        const int64_t src_row = (n * in.D + sd[od]) * in.H + sh[oh];
        T* yr = y + r * Wo * C;
        if (src_row == prev_src) {
          std::memcpy(yr, yr - Wo * C, sizeof(T) * Wo * C);
          continue;
        }
        prev_src = src_row;
        const T* xr = x + src_row * in.W * C;
        for (int64_t w = 0; w < Wo; ++w) std::memcpy(yr + w * C, xr + sw[w] * C, sizeof(T) * C);
      }
    });
  }
}

template <typename T>
void upsample_nearest_backward(const T* dy, T* dx, const Geom5& in, const Geom5& out, const int64_t* rd,
                               const int64_t* rh, const int64_t* rw) {
  const UnpoolRows isa = unpool_rows();
  const int64_t W = in.W, H = in.H, D = in.D, C = in.C, Wo = out.W, Ho = out.H, Do = out.D;
  // x2 in width (every input column read by exactly the output columns 2w, 2w+1): rows whose
  // cells are 2x2 are summed as (g00 + g01) + (g10 + g11) in both layouts.
  bool wpairs = Wo == 2 * W;
  for (int64_t w = 0; w < W && wpairs; ++w) wpairs = rw[2 * w] == 2 * w && rw[2 * w + 1] == 2 * w + 2;
  const bool stream = static_cast<size_t>(in.numel()) * sizeof(T) >= kStreamMinBytes;
  if (!in.cl) {
    const int64_t rows = in.N * C * D * H;
    for_blocks(rows, std::max<int64_t>(1, 2048 / std::max<int64_t>(W, 1)), [&](int64_t r0, int64_t r1) {
      std::vector<T> acc(W);
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t h = r % H, d = (r / H) % D, nc = r / (H * D);
        if (wpairs && rd[2 * d + 1] - rd[2 * d] == 1 && rh[2 * h + 1] - rh[2 * h] == 2) {
          const T* g0 = dy + ((nc * Do + rd[2 * d]) * Ho + rh[2 * h]) * Wo;
          sum2x2_row(isa, g0, g0 + Wo, dx + r * W, W, stream);
          continue;
        }
        std::fill(acc.begin(), acc.end(), T(0));
        for (int64_t od = rd[2 * d]; od < rd[2 * d + 1]; ++od)
          for (int64_t oh = rh[2 * h]; oh < rh[2 * h + 1]; ++oh) {
            const T* g = dy + ((nc * Do + od) * Ho + oh) * Wo;
            for (int64_t w = 0; w < W; ++w) {
              T s = acc[w];
              for (int64_t ow = rw[2 * w]; ow < rw[2 * w + 1]; ++ow) s += g[ow];
              acc[w] = s;
            }
          }
        std::memcpy(dx + r * W, acc.data(), sizeof(T) * W);
      }
      if constexpr (std::is_same<T, float>::value) fence_streams(isa, stream);
    });
  } else {
    const int64_t rows = in.N * D * H;
    for_blocks(rows, 1, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t h = r % H, d = (r / H) % D, n = r / (H * D);
        const bool pair_rows = wpairs && rd[2 * d + 1] - rd[2 * d] == 1 && rh[2 * h + 1] - rh[2 * h] == 2;
        if constexpr (std::is_same<T, float>::value) {
          const auto k = isa.sum2x2_cl_row;
          if (pair_rows && k) {
            const T* g0 = dy + ((n * Do + rd[2 * d]) * Ho + rh[2 * h]) * Wo * C;
            k(g0, g0 + Wo * C, dx + r * W * C, W, C, stream);
            continue;
          }
        }
        for (int64_t w = 0; w < W; ++w) {
          T* a = dx + (r * W + w) * C;
          if (pair_rows) {  // a 2x2 cell: the order of the NC... x2 path
            const T* g00 = dy + (((n * Do + rd[2 * d]) * Ho + rh[2 * h]) * Wo + rw[2 * w]) * C;
            const T *g01 = g00 + C, *g10 = g00 + Wo * C, *g11 = g10 + C;
            for (int64_t c = 0; c < C; ++c) a[c] = (g00[c] + g01[c]) + (g10[c] + g11[c]);
            continue;
          }
          std::fill(a, a + C, T(0));
          for (int64_t od = rd[2 * d]; od < rd[2 * d + 1]; ++od)
            for (int64_t oh = rh[2 * h]; oh < rh[2 * h + 1]; ++oh)
              for (int64_t ow = rw[2 * w]; ow < rw[2 * w + 1]; ++ow) {
                const T* g = dy + (((n * Do + od) * Ho + oh) * Wo + ow) * C;
                for (int64_t c = 0; c < C; ++c) a[c] += g[c];
              }
        }
      }
      if constexpr (std::is_same<T, float>::value) fence_streams(isa, stream);
    });
  }
}

template <typename T>
bool max_unpool_forward(const T* x, const int64_t* idx, T* y, const Geom5& in, const Geom5& out, int64_t* bad) {
  const int64_t IS = in.spatial(), OS = out.spatial(), C = in.C;
  const uint64_t limit = static_cast<uint64_t>(OS);
  const int64_t tasks = in.cl ? in.N : in.N * C;
  std::vector<int64_t> first(tasks, -1), value(tasks, 0);
  parallel_for(tasks, [&](int64_t t) {
    if (!in.cl) {
      const T* xp = x + t * IS;
      const int64_t* ip = idx + t * IS;
      T* yp = y + t * OS;
      std::fill(yp, yp + OS, T(0));
      for (int64_t i = 0; i < IS; ++i) {
        const int64_t k = ip[i];
        if (static_cast<uint64_t>(k) >= limit) {
          if (first[t] < 0) {
            first[t] = i;
            value[t] = k;
          }
          continue;
        }
        yp[k] = xp[i];
      }
    } else {
      const T* xp = x + t * IS * C;
      const int64_t* ip = idx + t * IS * C;
      T* yp = y + t * OS * C;
      std::fill(yp, yp + OS * C, T(0));
      for (int64_t i = 0; i < IS; ++i)
        for (int64_t c = 0; c < C; ++c) {
          const int64_t k = ip[i * C + c];
          if (static_cast<uint64_t>(k) >= limit) {
            if (first[t] < 0) {
              first[t] = i;
              value[t] = k;
            }
            continue;
          }
          yp[k * C + c] = xp[i * C + c];
        }
    }
  });
  for (int64_t t = 0; t < tasks; ++t)
    if (first[t] >= 0) {
      *bad = value[t];
      return false;
    }
  return true;
}

template <typename T>
bool max_unpool_backward(const T* dy, const int64_t* idx, T* dx, const Geom5& in, const Geom5& out, int64_t* bad) {
  const UnpoolRows isa = unpool_rows();
  const int64_t IS = in.spatial(), OS = out.spatial(), C = in.C;
  const uint64_t limit = static_cast<uint64_t>(OS);
  const int64_t tasks = in.cl ? in.N : in.N * C;
  std::vector<int64_t> first(tasks, -1), value(tasks, 0);
  const bool stream = static_cast<size_t>(in.numel()) * sizeof(T) >= kStreamMinBytes;
  parallel_for(tasks, [&](int64_t t) {
    if (!in.cl) {
      const T* gp = dy + t * OS;
      const int64_t* ip = idx + t * IS;
      T* dp = dx + t * IS;
      if constexpr (std::is_same<T, float>::value) {
        if (const auto k = isa.gather) {
          const int64_t f = k(gp, ip, dp, IS, OS, stream);
          if (f >= 0) {
            first[t] = f;
            value[t] = ip[f];
          }
          fence_streams(isa, stream);
          return;
        }
      }
      for (int64_t i = 0; i < IS; ++i) {
        const int64_t k = ip[i];
        if (static_cast<uint64_t>(k) >= limit) {
          if (first[t] < 0) {
            first[t] = i;
            value[t] = k;
          }
          dp[i] = T(0);
          continue;
        }
        dp[i] = gp[k];
      }
    } else {
      const T* gp = dy + t * OS * C;
      const int64_t* ip = idx + t * IS * C;
      T* dp = dx + t * IS * C;
      for (int64_t i = 0; i < IS * C; ++i) {
        const int64_t k = ip[i];
        if (static_cast<uint64_t>(k) >= limit) {
          if (first[t] < 0) {
            first[t] = i;
            value[t] = k;
          }
          dp[i] = T(0);
          continue;
        }
        dp[i] = gp[k * C + i % C];
      }
    }
  });
  for (int64_t t = 0; t < tasks; ++t)
    if (first[t] >= 0) {
      *bad = value[t];
      return false;
    }
  return true;
}

template <typename T>
void bed_of_nails_forward(const T* x, T* y, const Geom5& in, const Geom5& out, int64_t sd, int64_t sh, int64_t sw) {
  const int64_t Wo = out.W, Ho = out.H, Do = out.D, C = in.C;
  const int64_t per_row = in.cl ? Wo * C : Wo;
  const int64_t rows = in.cl ? in.N * Do * Ho : in.N * C * Do * Ho;
  for_blocks(rows, std::max<int64_t>(1, 4096 / std::max<int64_t>(per_row, 1)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t oh = r % Ho, od = (r / Ho) % Do, nc = r / (Ho * Do);
      T* yr = y + r * per_row;
      std::fill(yr, yr + per_row, T(0));
      if (oh % sh != 0 || od % sd != 0) continue;
      const int64_t src_row = (nc * in.D + od / sd) * in.H + oh / sh;
      if (!in.cl) {
        const T* xr = x + src_row * in.W;
        for (int64_t w = 0; w < in.W; ++w) yr[w * sw] = xr[w];
      } else {
        const T* xr = x + src_row * in.W * C;
        for (int64_t w = 0; w < in.W; ++w) std::memcpy(yr + w * sw * C, xr + w * C, sizeof(T) * C);
      }
    }
  });
}

template <typename T>
void bed_of_nails_backward(const T* dy, T* dx, const Geom5& in, const Geom5& out, int64_t sd, int64_t sh, int64_t sw) {
  const int64_t W = in.W, H = in.H, D = in.D, C = in.C;
  const int64_t rows = in.cl ? in.N * D * H : in.N * C * D * H;
  const int64_t per_row = in.cl ? W * C : W;
  for_blocks(rows, std::max<int64_t>(1, 4096 / std::max<int64_t>(per_row, 1)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t h = r % H, d = (r / H) % D, nc = r / (H * D);
      const int64_t src_row = (nc * out.D + d * sd) * out.H + h * sh;
      T* dr = dx + r * per_row;
      if (!in.cl) {
        const T* g = dy + src_row * out.W;
        for (int64_t w = 0; w < W; ++w) dr[w] = g[w * sw];
      } else {
        const T* g = dy + src_row * out.W * C;
        for (int64_t w = 0; w < W; ++w) std::memcpy(dr + w * C, g + w * sw * C, sizeof(T) * C);
      }
    }
  });
}

#define CNNOPS_UNPOOL_INSTANTIATE(T)                                                                                   \
  template void upsample_nearest_forward<T>(const T*, T*, const Geom5&, const Geom5&, const int64_t*, const int64_t*,  \
                                            const int64_t*);                                                           \
  template void upsample_nearest_backward<T>(const T*, T*, const Geom5&, const Geom5&, const int64_t*, const int64_t*, \
                                             const int64_t*);                                                          \
  template bool max_unpool_forward<T>(const T*, const int64_t*, T*, const Geom5&, const Geom5&, int64_t*);             \
  template bool max_unpool_backward<T>(const T*, const int64_t*, T*, const Geom5&, const Geom5&, int64_t*);            \
  template void bed_of_nails_forward<T>(const T*, T*, const Geom5&, const Geom5&, int64_t, int64_t, int64_t);          \
  template void bed_of_nails_backward<T>(const T*, T*, const Geom5&, const Geom5&, int64_t, int64_t, int64_t);
CNNOPS_UNPOOL_INSTANTIATE(float)
CNNOPS_UNPOOL_INSTANTIATE(double)
#undef CNNOPS_UNPOOL_INSTANTIATE

}  // namespace cpu
}  // namespace cnnops
