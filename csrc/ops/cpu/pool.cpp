// CPU pooling kernels: max (with PyTorch's NaN rule and argmax), average / LP (window sums), and
// their backward passes, for (N, C, D, H, W) and (N, D, H, W, C) layouts (1-D/2-D as unit sizes).
//
// Work split
//  - channels-first forward and backward: one task per run of whole (n, c) planes (runs sized
//    to ~16K input elements so tiny planes such as 7x7 do not pay one task each), handed out
//    dynamically; inside a plane, outputs in order, taps from the per-dimension window lists.
//    2-D pooling with dilation 1 has row-separable fast paths: the window's rows are reduced
//    into a row buffer with contiguous, vectorisable loops, then the buffer is reduced
//    horizontally (max: max_rows_plane / max_rows_idx_plane here, AVX2 versions for 2x2/2 and
//    3x3/2 in pool_avx2.cpp; sums: pool_rows.h, built portable and AVX2). Global average pooling
//    is a plane reduction (plane_means; on AVX2 eight planes at a time, see pool_rows.h).
//  - channels-last: forward tasks are output rows (n, od, oh); the innermost loop runs over
//    the C contiguous channels (vectorisable compares/blends or adds).
//  - backward is a scatter in a fixed order inside a task that owns its whole slice of grad_input
//    (a plane, or an image's block of channels): grad_input is zeroed, then each output's
//    gradient is added to its argmax / window in output order. No two tasks touch the same
//    element, so the result is bitwise identical for any thread count.
//  - outputs of 8 MB or more (max forward values/indices, max and average grad_input) are made
//    in a cache-resident scratch plane and copied out with non-temporal stores, which saves the
//    read that write-allocation would add.
// (32, 64, 112, 112) float32, max 3x3/2: forward 64%, backward 87% of copy bandwidth (benchmarks/results/pool_cpu.md).
#define CNNOPS_ISA portable
#include "ops/cpu/pool.h"
#include "ops/cpu/pool_rows.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <type_traits>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "core/cpu_features.h"
#include "core/parallel.h"

namespace cnnops {
namespace cpu {

#ifdef CNNOPS_HAVE_AVX2_TU
namespace avx2 {
template <typename T, bool LP> void sum_rows_plane(const T*, T*, const PoolGeom&, const T*, T*);
template <typename T> void avg_rows_backward_plane(const T*, T*, const PoolGeom&, const T*, T*);
template <typename T> void plane_means(const T*, T*, int64_t, int64_t, T);
}  // namespace avx2
#endif

// The ISA selector of the family: the row kernels of pool_rows.h at the highest level this
// process may run, and the AVX2 stride-2 max rows (float only; null without AVX2).
template <typename T>
struct PoolRows {
  void (*sum_rows)(const T*, T*, const PoolGeom&, const T*, T*);
  void (*lp_rows)(const T*, T*, const PoolGeom&, const T*, T*);
  void (*avg_rows_backward)(const T*, T*, const PoolGeom&, const T*, T*);
  void (*plane_means)(const T*, T*, int64_t, int64_t, T);
  void (*max_rows_s2)(const float*, float*, int64_t*, const PoolGeom&, float*, int32_t*);
};

template <typename T>
static PoolRows<T> pool_rows() {
#ifdef CNNOPS_HAVE_AVX2_TU
  if (use_avx2())
    return {avx2::sum_rows_plane<T, false>, avx2::sum_rows_plane<T, true>, avx2::avg_rows_backward_plane<T>,
            avx2::plane_means<T>, avx2::max_rows_s2_plane};
#endif
  return {portable::sum_rows_plane<T, false>, portable::sum_rows_plane<T, true>, portable::avg_rows_backward_plane<T>,
          portable::plane_means<T>, nullptr};
}

template <typename T, bool LP>
static void sum_rows(const T* x, T* y, const PoolGeom& g, const T* dtab, T* buf) {
  const PoolRows<T> k = pool_rows<T>();
  (LP ? k.lp_rows : k.sum_rows)(x, y, g, dtab, buf);
}

template <typename T>
static void plane_means(const T* x, T* y, int64_t planes, int64_t P, T d) {
  pool_rows<T>().plane_means(x, y, planes, P, d);
}

template <typename T>
static void avg_rows_backward(const T* dy, T* dx, const PoolGeom& g, const T* dtab, T* buf) {
  pool_rows<T>().avg_rows_backward(dy, dx, g, dtab, buf);
}

namespace {

constexpr int64_t kTaskElems = 16384;  // input elements per channels-first task (at least one plane)
constexpr int64_t kChanBlock = 64;     // channels per channels-last backward task

// Outputs of this many bytes or more are written plane by plane from a cache-resident scratch
// with non-temporal stores: a plain store to a line not in cache first reads it (write-allocate),
// which for the max backward is a third of all memory traffic. Smaller outputs stay cached.
constexpr int64_t kStreamBytes = int64_t(8) << 20;

void stream_copy(void* dst, const void* src, size_t bytes) {
#if defined(__SSE2__)
  char* d = static_cast<char*>(dst);
  const char* s = static_cast<const char*>(src);
  size_t head = (16 - (reinterpret_cast<uintptr_t>(d) & 15)) & 15;
  if (head > bytes) head = bytes;
  std::memcpy(d, s, head);
  d += head;
  s += head;
  bytes -= head;
  for (; bytes >= 16; bytes -= 16, d += 16, s += 16)
    _mm_stream_si128(reinterpret_cast<__m128i*>(d), _mm_loadu_si128(reinterpret_cast<const __m128i*>(s)));
  std::memcpy(d, s, bytes);
#else
  std::memcpy(dst, src, bytes);
#endif
}

// Uninitialised per-task scratch (a std::vector would zero it first).
template <typename T>
std::unique_ptr<T[]> scratch(int64_t n) {
  return std::unique_ptr<T[]>(n > 0 ? new T[n] : nullptr);
}

void stream_fence() {
#if defined(__SSE2__)
  _mm_sfence();
#endif
}

int64_t planes_per_task(const PoolGeom& g) {
  return std::max<int64_t>(1, kTaskElems / std::max<int64_t>(1, g.in_plane()));
}

// Runs f(first_plane, end_plane) over runs of whole planes.
template <typename F>
void for_planes(const PoolGeom& g, F&& f) {
  const int64_t planes = g.N * g.C, per = planes_per_task(g);
  const int64_t tasks = (planes + per - 1) / per;
  parallel_for(tasks, [&](int64_t t) { f(t * per, std::min(planes, (t + 1) * per)); });
}

template <typename T>
inline bool beats(T v, T best) {
  return v > best || v != v;
}  // PyTorch: larger, or NaN

template <typename T>
inline T pow_p(T v, double p) {
  if (p == 1.0) return v;
  if (p == 2.0) return v * v;
  return static_cast<T>(std::pow(v, static_cast<T>(p)));
}

template <typename T>
inline T root_p(T s, double p) {
  if (p == 1.0) return s;
  if (p == 2.0) return std::sqrt(s);
  return static_cast<T>(std::pow(s, static_cast<T>(1.0 / p)));
}

inline int64_t divisor(const PoolGeom& g, int64_t od, int64_t oh, int64_t ow) {
  if (g.divisor_override > 0) return g.divisor_override;
  return g.size[0][od] * g.size[1][oh] * g.size[2][ow];
}

// Calls f(i) for every valid tap (flat spatial index) of output (od, oh, ow), in scan order.
template <typename F>
inline void for_taps(const PoolGeom& g, int64_t od, int64_t oh, int64_t ow, F&& f) {
  const int64_t H = g.in[1], W = g.in[2];
  const int64_t bd = g.begin[0][od], cd = g.count[0][od], bh = g.begin[1][oh], ch = g.count[1][oh];
  const int64_t bw = g.begin[2][ow], cw = g.count[2][ow];
  for (int64_t jd = 0; jd < cd; ++jd)
    for (int64_t jh = 0; jh < ch; ++jh) {
      const int64_t row = ((bd + jd * g.dil[0]) * H + bh + jh * g.dil[1]) * W + bw;
      for (int64_t jw = 0; jw < cw; ++jw) f(row + jw * g.dil[2]);
    }
}

inline int64_t first_tap(const PoolGeom& g, int64_t od, int64_t oh, int64_t ow) {
  return (g.begin[0][od] * g.in[1] + g.begin[1][oh]) * g.in[2] + g.begin[2][ow];
}

// ---- 2-D channels-first max pooling rows (portable; pool_avx2.cpp has the AVX2 version) ---------
// For output row oh, the window's input rows are reduced elementwise into `buf` (width W plus
// the left/right padding, padded entries holding -inf), then each output is the maximum of kw
// consecutive buffer entries starting at ow * sw.

template <typename T>
void max_rows_plane(const T* x, T* y, const PoolGeom& g, T* buf) {
  const int64_t W = g.in[2], OH = g.out[1], OW = g.out[2];
  const int64_t kw = g.kw, sw = g.sw, pw = g.pw;
  const int64_t BW = (OW - 1) * sw + kw;  // buffer width covering every window
  for (int64_t i = 0; i < BW; ++i) buf[i] = -std::numeric_limits<T>::infinity();
  T* b = buf + pw;                            // b[w] <-> input column w
  const int64_t wend = std::min(W, BW - pw);  // columns of the input any window reads
  for (int64_t oh = 0; oh < OH; ++oh) {
    const int64_t bh = g.begin[1][oh], ch = g.count[1][oh];
    const T* r0 = x + bh * W;
    for (int64_t w = 0; w < wend; ++w) b[w] = r0[w];
    for (int64_t j = 1; j < ch; ++j) {
      const T* r = x + (bh + j) * W;
      for (int64_t w = 0; w < wend; ++w) b[w] = beats(r[w], b[w]) ? r[w] : b[w];
    }
    T* yr = y + oh * OW;
    for (int64_t ow = 0; ow < OW; ++ow) {
      const T* q = buf + ow * sw;
      T m = q[0];
      for (int64_t j = 1; j < kw; ++j) m = beats(q[j], m) ? q[j] : m;
      yr[ow] = m;
    }
  }
}

// Argmax version: the vertical pass keeps, per column, the winning value and its flat position
// r * W + c (PyTorch's scan order: first maximum, last NaN); the horizontal pass compares the
// candidates of the window's valid columns, breaking ties by position, so the winner is the one
// a row-major scan over the window keeps. Both passes are branch-free selects (random data would
// mispredict every other compare); positions are 32-bit for float so the vertical select
// vectorises with the values (planes of 2^31 elements or more take the generic path).
template <typename T>
using pos_t = typename std::conditional<sizeof(T) == 4, int32_t, int64_t>::type;

template <typename T>
void max_rows_idx_plane(const T* x, T* y, int64_t* idx, const PoolGeom& g, T* vbuf, pos_t<T>* pbuf) {
  using I = pos_t<T>;
  const int64_t W = g.in[2], OH = g.out[1], OW = g.out[2];
  const int64_t* bws = g.begin[2].data();
  const int64_t* cws = g.count[2].data();
  for (int64_t oh = 0; oh < OH; ++oh) {
    const int64_t bh = g.begin[1][oh], ch = g.count[1][oh];
    const T* r0 = x + bh * W;
    const I p0 = static_cast<I>(bh * W);
    for (int64_t w = 0; w < W; ++w) {
      vbuf[w] = r0[w];
      pbuf[w] = p0 + static_cast<I>(w);
    }
    for (int64_t j = 1; j < ch; ++j) {
      const T* r = x + (bh + j) * W;
      const I pr = static_cast<I>((bh + j) * W);
      for (int64_t w = 0; w < W; ++w) {
        const T v = r[w], b = vbuf[w];
        const bool take = (v > b) | (v != v);
        vbuf[w] = take ? v : b;
        pbuf[w] = take ? pr + static_cast<I>(w) : pbuf[w];
      }
    }
    T* yr = y + oh * OW;
    int64_t* ir = idx + oh * OW;
    for (int64_t ow = 0; ow < OW; ++ow) {
      const int64_t b = bws[ow], e = b + cws[ow];
      T best = vbuf[b];
      I bp = pbuf[b];
      for (int64_t c = b + 1; c < e; ++c) {
        const T v = vbuf[c];
        const I q = pbuf[c];
        const bool vn = v != v, bn = best != best;
        // NaN: the last NaN in row-major order; otherwise larger, or equal and earlier
        const bool take = (vn & (!bn | (q > bp))) | (!vn & ((v > best) | ((v == best) & (q < bp))));
        best = take ? v : best;
        bp = take ? q : bp;
      }
      yr[ow] = best;
      ir[ow] = bp;
    }
  }
}

// One window covering each whole plane (global pooling, adaptive to 1, kernel = input).
bool whole_plane(const PoolGeom& g) {
  if (g.channels_last || g.out_plane() != 1) return false;
  for (int s = 0; s < 3; ++s)
    if (g.begin[s][0] != 0 || g.count[s][0] != g.in[s] || g.dil[s] != 1) return false;
  return true;
}

// Sum pooling rows (pool_rows.h): channels first, unit depth whose one window holds the plane
// (a window of only depth padding is not a row problem), dilation 1; any windows in the plane.
bool sum_rows_path(const PoolGeom& g) {
  return !g.channels_last && g.in[0] == 1 && g.out[0] == 1 && g.count[0][0] == 1 && g.dil[1] == 1 && g.dil[2] == 1;
}

// Divisor of every output of a unit-depth problem, row-major (OH x OW).
template <typename T>
std::vector<T> divisor_table(const PoolGeom& g) {
  std::vector<T> t(g.out[1] * g.out[2]);
  for (int64_t oh = 0; oh < g.out[1]; ++oh)
    for (int64_t ow = 0; ow < g.out[2]; ++ow) t[oh * g.out[2] + ow] = static_cast<T>(divisor(g, 0, oh, ow));
  return t;
}

bool rows_path(const PoolGeom& g) {
  return g.regular && !g.channels_last && g.dil[1] == 1 && g.dil[2] == 1 && g.in[0] == 1;
}

// The AVX2 row kernel: float, stride 2 along the width, kernel width 2 or 3, plane < 2^31.
// Windows the stride-2 max rows kernel handles.
bool s2_rows(const PoolGeom& g) {
  return rows_path(g) && g.sw == 2 && (g.kw == 2 || g.kw == 3) && g.in_plane() < (int64_t(1) << 31);
}

}  // namespace

// Channels-first float max pooling with stride-2 windows of width 2 or 3: the AVX2 row kernel
// plane by plane; large results go through a per-task scratch plane and streaming stores.
static void max_forward_s2_rows(decltype(PoolRows<float>::max_rows_s2) s2, const float* x, float* y, int64_t* idx,
                                const PoolGeom& g) {
  const int64_t P = g.in_plane(), Q = g.out_plane(), OW = g.out[2];
  const bool st = g.N * g.C * Q * (idx ? 12 : 4) >= kStreamBytes;
  for_planes(g, [&](int64_t p0, int64_t p1) {
    const int64_t BW = (OW - 1) * 2 + g.kw + 24;
    std::vector<float> buf(BW);
    std::vector<int32_t> pbuf(idx ? BW : 0);
    const auto ys = scratch<float>(st ? Q : 0);
    const auto is = scratch<int64_t>(st && idx ? Q : 0);
    for (int64_t pl = p0; pl < p1; ++pl) {
      float* yp = st ? ys.get() : y + pl * Q;
      int64_t* ip = idx ? (st ? is.get() : idx + pl * Q) : nullptr;
      s2(x + pl * P, yp, ip, g, buf.data(), pbuf.data());
      if (st) {
        stream_copy(y + pl * Q, yp, sizeof(float) * Q);
        if (idx) stream_copy(idx + pl * Q, ip, sizeof(int64_t) * Q);
      }
    }
    if (st) stream_fence();
  });
}

// ---- max forward --------------------------------------------------------------------------------

// Channels-last max pooling: one task per output row of one image; channels innermost, the
// argmax kept for blocks of kChanBlock channels in local arrays.
template <typename T>
static void max_forward_channels_last(const T* x, T* y, int64_t* idx, const PoolGeom& g) {
  const int64_t P = g.in_plane(), Q = g.out_plane(), C = g.C;
  const int64_t OD = g.out[0], OH = g.out[1], OW = g.out[2];
  const T ninf = -std::numeric_limits<T>::infinity();
  parallel_for(g.N * OD * OH, [&](int64_t t) {
    const int64_t n = t / (OD * OH), od = (t / OH) % OD, oh = t % OH;
    const T* xn = x + n * P * C;
    for (int64_t ow = 0; ow < OW; ++ow) {
      const int64_t o = (n * Q + (od * OH + oh) * OW + ow) * C;
      T* yo = y + o;
      int64_t* io = idx ? idx + o : nullptr;
      const int64_t f = first_tap(g, od, oh, ow);
      if (!io) {
        for (int64_t c = 0; c < C; ++c) yo[c] = ninf;
        for_taps(g, od, oh, ow, [&](int64_t i) {
          const T* xi = xn + i * C;
          for (int64_t c = 0; c < C; ++c) yo[c] = beats(xi[c], yo[c]) ? xi[c] : yo[c];
        });
        continue;
      }
      // with the argmax: blocks of channels kept in local arrays (no aliasing with the outputs,
      // so the compare/select loop stays in registers and vectorises)
      for (int64_t c0 = 0; c0 < C; c0 += kChanBlock) {
        const int64_t cn = std::min<int64_t>(kChanBlock, C - c0);
        T bv[kChanBlock];
        int64_t bi[kChanBlock];
        for (int64_t c = 0; c < cn; ++c) {
          bv[c] = ninf;
          bi[c] = f;
        }
        for_taps(g, od, oh, ow, [&](int64_t i) {
          const T* xi = xn + i * C + c0;
          for (int64_t c = 0; c < cn; ++c) {
            const T v = xi[c];
            const int64_t m = -static_cast<int64_t>((v > bv[c]) | (v != v));  // all ones: take
            bv[c] = m ? v : bv[c];
            bi[c] = (i & m) | (bi[c] & ~m);
          }
        });
        for (int64_t c = 0; c < cn; ++c) {
          yo[c0 + c] = bv[c];
          io[c0 + c] = bi[c];
        }
      }
    }
  });
}

template <typename T>
void pool_max_forward(const T* x, T* y, int64_t* idx, const PoolGeom& g) {
  const int64_t P = g.in_plane(), Q = g.out_plane(), C = g.C;
  const int64_t OD = g.out[0], OH = g.out[1], OW = g.out[2];
  const T ninf = -std::numeric_limits<T>::infinity();
  if (!g.channels_last) {
    if constexpr (std::is_same<T, float>::value) {
      const auto s2 = pool_rows<float>().max_rows_s2;
      if (s2 && s2_rows(g)) return max_forward_s2_rows(s2, x, y, idx, g);
    }
    if (!idx && rows_path(g)) {
      for_planes(g, [&](int64_t p0, int64_t p1) {
        std::vector<T> buf((OW - 1) * g.sw + g.kw);
        for (int64_t pl = p0; pl < p1; ++pl) max_rows_plane<T>(x + pl * P, y + pl * Q, g, buf.data());
      });
      return;
    }
    if (sum_rows_path(g) && P < (int64_t(1) << 31)) {
      // any dilation-1 unit-depth windows (padding, ceil_mode, adaptive): argmax rows; without
      // indices wanted, into a per-task scratch row
      for_planes(g, [&](int64_t p0, int64_t p1) {
        std::vector<T> vbuf(g.in[2]);
        std::vector<pos_t<T>> pbuf(g.in[2]);
        const auto iscr = scratch<int64_t>(idx ? 0 : Q);
        for (int64_t pl = p0; pl < p1; ++pl)
          max_rows_idx_plane<T>(x + pl * P, y + pl * Q, idx ? idx + pl * Q : iscr.get(), g, vbuf.data(), pbuf.data());
      });
      return;
    }
    for_planes(g, [&](int64_t p0, int64_t p1) {
      for (int64_t pl = p0; pl < p1; ++pl) {
        const T* xp = x + pl * P;
        T* yp = y + pl * Q;
        int64_t* ip = idx ? idx + pl * Q : nullptr;
        int64_t o = 0;
        for (int64_t od = 0; od < OD; ++od)
          for (int64_t oh = 0; oh < OH; ++oh)
            for (int64_t ow = 0; ow < OW; ++ow, ++o) {
              T best = ninf;
              int64_t bi = first_tap(g, od, oh, ow);
              for_taps(g, od, oh, ow, [&](int64_t i) {
                const T v = xp[i];
                const bool t = beats(v, best);  // selects, not branches: random data mispredicts
                best = t ? v : best;
                bi = t ? i : bi;
              });
              yp[o] = best;
              if (ip) ip[o] = bi;
            }
      }
    });
    return;
  }
  max_forward_channels_last(x, y, idx, g);
}

// ---- average / LP forward -----------------------------------------------------------------------

template <typename T>
void pool_sum_forward(const T* x, T* y, const PoolGeom& g) {
  const int64_t P = g.in_plane(), Q = g.out_plane(), C = g.C;
  const int64_t OD = g.out[0], OH = g.out[1], OW = g.out[2];
  const bool lp = g.kind == PoolKind::Lp;
  const double p = g.norm_type;
  const T kprod = static_cast<T>(g.kprod);
  if (!g.channels_last) {
    if (!lp && whole_plane(g)) {
      const T d = static_cast<T>(divisor(g, 0, 0, 0));
      for_planes(g, [&](int64_t p0, int64_t p1) { plane_means<T>(x + p0 * P, y + p0, p1 - p0, P, d); });
      return;
    }
    if (sum_rows_path(g)) {
      const std::vector<T> dtab = divisor_table<T>(g);
      for_planes(g, [&](int64_t p0, int64_t p1) {
        std::vector<T> buf(g.in[2]);
        for (int64_t pl = p0; pl < p1; ++pl) {
          if (lp) sum_rows<T, true>(x + pl * P, y + pl * Q, g, dtab.data(), buf.data());
          else sum_rows<T, false>(x + pl * P, y + pl * Q, g, dtab.data(), buf.data());
        }
      });
      return;
    }
    for_planes(g, [&](int64_t p0, int64_t p1) {
      for (int64_t pl = p0; pl < p1; ++pl) {
        const T* xp = x + pl * P;
        T* yp = y + pl * Q;
        int64_t o = 0;
        for (int64_t od = 0; od < OD; ++od)
          for (int64_t oh = 0; oh < OH; ++oh)
            for (int64_t ow = 0; ow < OW; ++ow, ++o) {
              T s = 0;
              if (lp) for_taps(g, od, oh, ow, [&](int64_t i) { s += pow_p(xp[i], p); });
              else for_taps(g, od, oh, ow, [&](int64_t i) { s += xp[i]; });
              const T a = s / static_cast<T>(divisor(g, od, oh, ow));
              yp[o] = lp ? root_p(a * kprod, p) : a;
            }
      }
    });
    return;
  }
  parallel_for(g.N * OD * OH, [&](int64_t t) {
    const int64_t n = t / (OD * OH), od = (t / OH) % OD, oh = t % OH;
    const T* xn = x + n * P * C;
    for (int64_t ow = 0; ow < OW; ++ow) {
      T* yo = y + (n * Q + (od * OH + oh) * OW + ow) * C;
      for (int64_t c = 0; c < C; ++c) yo[c] = 0;
      for_taps(g, od, oh, ow, [&](int64_t i) {
        const T* xi = xn + i * C;
        if (lp)
          for (int64_t c = 0; c < C; ++c) yo[c] += pow_p(xi[c], p);
        else
          for (int64_t c = 0; c < C; ++c) yo[c] += xi[c];
      });
      const T d = static_cast<T>(divisor(g, od, oh, ow));
      if (lp)
        for (int64_t c = 0; c < C; ++c) yo[c] = root_p(yo[c] / d * kprod, p);
      else
        for (int64_t c = 0; c < C; ++c) yo[c] = yo[c] / d;
    }
  });
}

// ---- max backward -------------------------------------------------------------------------------

template <typename T>
bool pool_max_backward(const T* dy, const int64_t* idx, T* dx, const PoolGeom& g) {
  const int64_t P = g.in_plane(), Q = g.out_plane(), C = g.C;
  std::atomic<bool> bad{false};
  if (!g.channels_last) {
    const bool st = g.N * g.C * P * static_cast<int64_t>(sizeof(T)) >= kStreamBytes;
    for_planes(g, [&](int64_t p0, int64_t p1) {
      bool b = false;
      const auto sp = scratch<T>(st ? P : 0);
      for (int64_t pl = p0; pl < p1; ++pl) {
        T* dp = st ? sp.get() : dx + pl * P;
        const T* gp = dy + pl * Q;
        const int64_t* ip = idx + pl * Q;
        std::memset(dp, 0, sizeof(T) * P);
        for (int64_t o = 0; o < Q; ++o) {
          const int64_t i = ip[o];
          if (static_cast<uint64_t>(i) < static_cast<uint64_t>(P)) dp[i] += gp[o];
          else b = true;
        }
        if (st) stream_copy(dx + pl * P, dp, sizeof(T) * P);
      }
      if (st) stream_fence();
      if (b) bad.store(true, std::memory_order_relaxed);
    });
    return !bad.load();
  }
  const int64_t nb = (C + kChanBlock - 1) / kChanBlock;
  parallel_for(g.N * nb, [&](int64_t t) {
    const int64_t n = t / nb, c0 = (t % nb) * kChanBlock, c1 = std::min(C, c0 + kChanBlock);
    T* dn = dx + n * P * C;
    const T* gn = dy + n * Q * C;
    const int64_t* in_ = idx + n * Q * C;
    bool b = false;
    for (int64_t i = 0; i < P; ++i)
      for (int64_t c = c0; c < c1; ++c) dn[i * C + c] = 0;
    for (int64_t o = 0; o < Q; ++o)
      for (int64_t c = c0; c < c1; ++c) {
        const int64_t i = in_[o * C + c];
        if (static_cast<uint64_t>(i) < static_cast<uint64_t>(P)) dn[i * C + c] += gn[o * C + c];
        else b = true;
      }
    if (b) bad.store(true, std::memory_order_relaxed);
  });
  return !bad.load();
}

// ---- average / LP backward ----------------------------------------------------------------------
// Average: every tap of a window gets grad / divisor. LP: y = (s * kprod / divisor)^(1/p) with
// s = sum x^p, so dy/dx_i = (kprod / divisor) * x_i^(p-1) * y^(1-p); taken as 0 where the window
// sum is 0 (the derivative is unbounded or undefined there).

template <typename T>
inline T lp_coef(T s, const PoolGeom& g, int64_t d, T go) {
  const double p = g.norm_type;
  const T k = static_cast<T>(g.kprod) / static_cast<T>(d);
  const T a = s / static_cast<T>(d) * static_cast<T>(g.kprod);  // y^p
  if (a == T(0)) return T(0);
  const T y = root_p(a, p);
  return go * k * (y / a);
}

template <typename T>
inline T pow_pm1(T v, double p) {
  if (p == 1.0) return T(1);
  if (p == 2.0) return v;
  return static_cast<T>(std::pow(v, static_cast<T>(p - 1.0)));
}

template <typename T>
void pool_sum_backward(const T* dy, const T* x, T* dx, const PoolGeom& g) {
  const int64_t P = g.in_plane(), Q = g.out_plane(), C = g.C;
  const int64_t OD = g.out[0], OH = g.out[1], OW = g.out[2];
  const bool lp = g.kind == PoolKind::Lp;
  const double p = g.norm_type;
  if (!lp && whole_plane(g)) {
    const T d = static_cast<T>(divisor(g, 0, 0, 0));
    for_planes(g, [&](int64_t p0, int64_t p1) {
      for (int64_t pl = p0; pl < p1; ++pl) {
        const T v = dy[pl] / d;
        T* dp = dx + pl * P;
        for (int64_t i = 0; i < P; ++i) dp[i] = v;
      }
    });
    return;
  }
  if (!g.channels_last && !lp && sum_rows_path(g)) {
    const std::vector<T> dtab = divisor_table<T>(g);
    const bool st = g.N * g.C * P * static_cast<int64_t>(sizeof(T)) >= kStreamBytes;
    for_planes(g, [&](int64_t p0, int64_t p1) {
      std::vector<T> buf(g.in[2]);
      const auto sp = scratch<T>(st ? P : 0);
      for (int64_t pl = p0; pl < p1; ++pl) {
        T* dp = st ? sp.get() : dx + pl * P;
        avg_rows_backward<T>(dy + pl * Q, dp, g, dtab.data(), buf.data());
        if (st) stream_copy(dx + pl * P, dp, sizeof(T) * P);
      }
      if (st) stream_fence();
    });
    return;
  }
  if (!g.channels_last) {
    for_planes(g, [&](int64_t p0, int64_t p1) {
      for (int64_t pl = p0; pl < p1; ++pl) {
        const T* xp = x + pl * P;
        const T* gp = dy + pl * Q;
        T* dp = dx + pl * P;
        std::memset(dp, 0, sizeof(T) * P);
        int64_t o = 0;
        for (int64_t od = 0; od < OD; ++od)
          for (int64_t oh = 0; oh < OH; ++oh)
            for (int64_t ow = 0; ow < OW; ++ow, ++o) {
              const int64_t d = divisor(g, od, oh, ow);
              if (lp) {
                T s = 0;
                for_taps(g, od, oh, ow, [&](int64_t i) { s += pow_p(xp[i], p); });
                const T c = lp_coef(s, g, d, gp[o]);
                for_taps(g, od, oh, ow, [&](int64_t i) { dp[i] += c * pow_pm1(xp[i], p); });
              } else {
                const T c = gp[o] / static_cast<T>(d);
                for_taps(g, od, oh, ow, [&](int64_t i) { dp[i] += c; });
              }
            }
      }
    });
    return;
  }
  const int64_t nb = (C + kChanBlock - 1) / kChanBlock;
  parallel_for(g.N * nb, [&](int64_t t) {
    const int64_t n = t / nb, c0 = (t % nb) * kChanBlock, c1 = std::min(C, c0 + kChanBlock);
    const T* xn = x + n * P * C;
    const T* gn = dy + n * Q * C;
    T* dn = dx + n * P * C;
    T coef[kChanBlock];
    for (int64_t i = 0; i < P; ++i)
      for (int64_t c = c0; c < c1; ++c) dn[i * C + c] = 0;
    int64_t o = 0;
    for (int64_t od = 0; od < OD; ++od)
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow, ++o) {
          const int64_t d = divisor(g, od, oh, ow);
          const T* go = gn + o * C;
          if (lp) {
            for (int64_t c = c0; c < c1; ++c) coef[c - c0] = 0;
            for_taps(g, od, oh, ow, [&](int64_t i) {
              for (int64_t c = c0; c < c1; ++c) coef[c - c0] += pow_p(xn[i * C + c], p);
            });
            for (int64_t c = c0; c < c1; ++c) coef[c - c0] = lp_coef(coef[c - c0], g, d, go[c]);
            for_taps(g, od, oh, ow, [&](int64_t i) {
              for (int64_t c = c0; c < c1; ++c) dn[i * C + c] += coef[c - c0] * pow_pm1(xn[i * C + c], p);
            });
          } else {
            for (int64_t c = c0; c < c1; ++c) coef[c - c0] = go[c] / static_cast<T>(d);
            for_taps(g, od, oh, ow, [&](int64_t i) {
              for (int64_t c = c0; c < c1; ++c) dn[i * C + c] += coef[c - c0];
            });
          }
        }
  });
}

template void pool_max_forward<float>(const float*, float*, int64_t*, const PoolGeom&);
template void pool_max_forward<double>(const double*, double*, int64_t*, const PoolGeom&);
template void pool_sum_forward<float>(const float*, float*, const PoolGeom&);
template void pool_sum_forward<double>(const double*, double*, const PoolGeom&);
template bool pool_max_backward<float>(const float*, const int64_t*, float*, const PoolGeom&);
template bool pool_max_backward<double>(const double*, const int64_t*, double*, const PoolGeom&);
template void pool_sum_backward<float>(const float*, const float*, float*, const PoolGeom&);
template void pool_sum_backward<double>(const double*, const double*, double*, const PoolGeom&);

}  // namespace cpu
}  // namespace cnnops
