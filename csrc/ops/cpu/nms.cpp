// Greedy NMS (plain, class-aware, DIoU) and Soft-NMS on the CPU, fused: no N x N IoU matrix and
// no bitmask; memory is O(N) (the candidate order, the boxes gathered in that order, the kept
// boxes and a uniform grid over them).
//
// Greedy NMS walks the candidates once in descending score order; candidate i is kept iff no box
// kept before it has IoU > t with it. That is the same keep set as "each kept box suppresses
// every later box", but each candidate only meets the kept boxes that could overlap it:
//   * sort once: scores become order-preserving integer keys (float32: key and index packed in
//     one uint64, sorted by a stable 3-pass radix sort on the key, so ties keep ascending index;
//     float64: (key, index) pairs through std::sort);
//   * the boxes are gathered in that order into structure-of-arrays (x1, y1, x2, y2, area); a
//     kept box is stored as one 24-byte record (coordinates, area, link), one cache line a test;
//   * IoU > t bounds how far apart two centres can be: |dx| < w (1 - t) for t >= 1/2 and
//     |dx| < w (1/t - 1) / 2 below (w the candidate's width; same in y; see centre_reach), and
//     never more than (w + widest box) / 2. Each kept box is linked into the one cell of a
//     uniform grid holding its centre (cells about as wide as that reach, at most 2N + 16 cells),
//     and a candidate tests only the kept boxes whose cells its reach window covers, stopping at
//     the first suppressor. The cell mapping is monotone, the window is widened by 1e-6 relative
//     plus 1e-5 of the largest coordinate against rounding, so no suppressor is missed: the result
//     is the plain O(N * kept) walk's, bit for bit. Zero-area boxes can neither suppress nor be
//     suppressed (IoU 0) and are kept without a test. Up to kLinearMax candidates the kept list is
//     scanned directly.
//   * the test "IoU > t" is torchvision's: inter, union and inter / union rounded to the input
//     dtype, the quotient compared with t as a double (iou_above in box_geom.h). A pair whose exact
//     quotient lies below the smallest value that can round above t is rejected by an exact sign
//     test without dividing, so the division runs about once per suppressed candidate, not once
//     per test. DIoU-NMS evaluates its criterion in the input dtype the same way (DiouAbove).
//     A union of 0 cannot occur with a positive intersection; an overflowing one gives NaN or 0
//     and "not suppressed", as in torchvision.
// Threads: greedy NMS of one set is sequential (each decision depends on the ones before); the
// class-aware form runs its classes as independent tasks through parallel_for (largest class
// first) from kNmsParallelMin candidates on, the padded batched form its images (same rule).
// Measured (2-core AMD EPYC VM, float32, benchmarks/results/nms_cpu.md): the kernel reads 20 bytes
// per box and does a handful of flops per pair test, so its FLOP and bandwidth fractions are
// tiny (0.01-0.1 GB/s against a ~20 GB/s streaming copy); the time is the data-dependent walk.
// At 100k boxes the radix sort takes ~2 ms and the gather ~2 ms; the walk the rest (~40 ms for
// the clustered input, ~150 ms for the uniform one, where 30k-73k boxes are kept and every
// candidate has dozens of kept neighbours within its reach).
//
// Soft-NMS is O(N^2) time by its definition (every selection decays all remaining scores) and
// O(N) memory. Its IoU is computed in the input dtype as torchvision's box_iou computes it, and the
// linear method's cut compares that rounded value with iou_threshold as a double, like iou_above.
#include "ops/cpu/nms.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "core/parallel.h"
#include "ops/box_geom.h"

namespace cnnops {
namespace cpu {

namespace {

constexpr int64_t kLinearMax = 48;    // up to this many candidates, scan the kept list directly
// Class-aware NMS runs its classes on the thread pool only from kNmsParallelMin candidates on:
// below it, waking the second thread costs more than the work. Measured on the shared 2-core VM
// (batched_nms, 20k boxes, 80 classes): 1.9 ms on one thread, 9-24 ms on two (the second
// thread is rarely scheduled promptly there; OMP_WAIT_POLICY=passive brings it back to 2 ms).
constexpr int64_t kMaxGridSide = 2048;

template <typename T>
struct Soa {
  std::vector<T> x1, y1, x2, y2, a;
  void resize(size_t n) {
    x1.resize(n);
    y1.resize(n);
    x2.resize(n);
    y2.resize(n);
    a.resize(n);
  }
  void set(size_t i, const T* b) {
    x1[i] = b[0];
    y1[i] = b[1];
    x2[i] = b[2];
    y2[i] = b[3];
    a[i] = (b[2] - b[0]) * (b[3] - b[1]);
  }
  void copy(size_t i, const Soa& s, size_t j) {
    x1[i] = s.x1[j];
    y1[i] = s.y1[j];
    x2[i] = s.x2[j];
    y2[i] = s.y2[j];
    a[i] = s.a[j];
  }
};

// A box with its area; the kept boxes carry the link of their grid cell's list, so one test
// touches one cache line.
template <typename T>
struct BoxA {
  T x1, y1, x2, y2, a;
  int32_t next;
};

template <typename T>
inline BoxA<T> box_at(const Soa<T>& c, int64_t i) {
  return BoxA<T>{c.x1[i], c.y1[i], c.x2[i], c.y2[i], c.a[i], -1};
}

// IoU(k, c) > t in torchvision's arithmetic (see iou_above in ops/box_geom.h).
template <typename T>
struct IouAbove {
  IouCut cut;
  bool operator()(const BoxA<T>& k, const BoxA<T>& c) const {
    return iou_above(k.x1, k.y1, k.x2, k.y2, k.a, c.x1, c.y1, c.x2, c.y2, c.a, cut);
  }
};

// DIoU(k, c) - (rho^2 / c^2)^beta > t in torchvision's arithmetic (geom::diou_above). DIoU > t
// implies IoU > t, so the IoU reach of the grid stays valid.
template <typename T>
struct DiouAbove {
  IouCut cut;
  double beta;
  bool operator()(const BoxA<T>& k, const BoxA<T>& c) const {
    return geom::diou_above(k.x1, k.y1, k.x2, k.y2, k.a, c.x1, c.y1, c.x2, c.y2, c.a, cut, beta);
  }
};

// How far (in units of the candidate's own width or height) the centre of a box can lie from a
// candidate's centre when their IoU exceeds t. IoU > t forces the overlap ow along x above
// t * w_k and t * w_i (inter / area <= ow / width for either box), and ow <= (w_i + w_k) / 2 - dx,
// so dx < (w_i + w_k) / 2 - t * max(w_i, w_k) with w_k in (t w_i, w_i / t); the largest value is
// w_i (1 - t) for t >= 1/2 and w_i (1/t - 1) / 2 below. t = 0 gives no bound (any overlap);
// the grid then uses dx < (w_i + max w) / 2 as well, which always holds for overlapping boxes.
inline double centre_reach(double t) {
  if (t >= 0.5) return 1.0 - t;
  if (t > 0.0) return (1.0 / t - 1.0) * 0.5;
  return 1e300;
}

// Uniform grid over the candidates' extent holding each kept box once, in the cell of its centre
// (singly linked lists in two flat arrays). A candidate visits the cells its reach window covers.
struct Grid {
  double x0 = 0, y0 = 0, inv_w = 0, inv_h = 0, reach = 0, max_w = 0, max_h = 0, margin = 0;
  int64_t gx = 1, gy = 1;
  std::vector<int32_t> head;

  int64_t cell_x(double x) const {
    const double v = (x - x0) * inv_w;
    return v <= 0 ? 0 : std::min<int64_t>(gx - 1, static_cast<int64_t>(v));
  }
  int64_t cell_y(double y) const {
    const double v = (y - y0) * inv_h;
    return v <= 0 ? 0 : std::min<int64_t>(gy - 1, static_cast<int64_t>(v));
  }

  template <typename T>
  void build(const Soa<T>& c, int64_t n, double t) {
    double mnx = c.x1[0], mny = c.y1[0], mxx = c.x2[0], mxy = c.y2[0], sw = 0, sh = 0, big = 0;
    for (int64_t i = 0; i < n; ++i) {
      mnx = std::min<double>(mnx, c.x1[i]);
      mny = std::min<double>(mny, c.y1[i]);
      mxx = std::max<double>(mxx, c.x2[i]);
      mxy = std::max<double>(mxy, c.y2[i]);
      const double w = static_cast<double>(c.x2[i]) - c.x1[i], h = static_cast<double>(c.y2[i]) - c.y1[i];
      sw += w;
      sh += h;
      max_w = std::max(max_w, w);
      max_h = std::max(max_h, h);
    }
    big = std::max(std::max(std::fabs(mnx), std::fabs(mxx)), std::max(std::fabs(mny), std::fabs(mxy)));
    // rounding of the coordinates in T moves a decision by a few ulps of the largest coordinate
    margin = 1e-5 * big + 1e-30;
    reach = centre_reach(t);
    x0 = mnx;
    y0 = mny;
    const double spx = mxx - mnx, spy = mxy - mny;
    // cells about as wide as the reach window of an average box (at least a quarter of the box)
    const double f = std::min(2.0, std::max(0.25, reach));
    double cw = std::max(f * sw / n, spx / kMaxGridSide), ch = std::max(f * sh / n, spy / kMaxGridSide);
    const double limit = 2.0 * n + 16;
    for (;;) {
      gx = (cw > 0 && spx > 0) ? std::min<int64_t>(kMaxGridSide, static_cast<int64_t>(spx / cw) + 1) : 1;
      gy = (ch > 0 && spy > 0) ? std::min<int64_t>(kMaxGridSide, static_cast<int64_t>(spy / ch) + 1) : 1;
      if (static_cast<double>(gx) * gy <= limit) break;
      const double s = std::sqrt(static_cast<double>(gx) * gy / limit) * 1.01;
      cw *= s;
      ch *= s;
    }
    inv_w = (gx > 1) ? 1.0 / cw : 0.0;
    inv_h = (gy > 1) ? 1.0 / ch : 0.0;
    head.assign(static_cast<size_t>(gx * gy), -1);
  }

  // Cell window of a candidate (centre cx, cy, size w, h): every kept centre that can have
  // IoU > t with it lies inside.
  void window(double cx, double cy, double w, double h, int64_t& ax, int64_t& bx, int64_t& ay, int64_t& by) const {
    const double rx = std::min(w * reach, 0.5 * (w + max_w)) * (1 + 1e-6) + margin;
    const double ry = std::min(h * reach, 0.5 * (h + max_h)) * (1 + 1e-6) + margin;
    ax = cell_x(cx - rx);
    bx = cell_x(cx + rx);
    ay = cell_y(cy - ry);
    by = cell_y(cy + ry);
  }

  // Links kept box `id` into the list of its centre's cell; returns the previous head.
  int32_t insert(int32_t id, double cx, double cy) {
    const int64_t cell = cell_y(cy) * gx + cell_x(cx);
    const int32_t old = head[cell];
    head[cell] = id;
    return old;
  }
};

// Greedy NMS over candidates already in processing order (c, n): appends kept positions (0..n-1,
// increasing) to `kept`, at most max_keep of them. `t` bounds the reach of a kept box (the IoU
// threshold; DIoU > t implies IoU > t, so the same bound serves DIoU).
template <typename T, typename Test>
void greedy_sorted(const Soa<T>& c, int64_t n, int64_t max_keep, double t, const Test& test,
                   std::vector<int64_t>& kept) {
  if (n <= 0 || max_keep == 0) return;
  const int64_t cap = std::min(n, max_keep);
  std::vector<BoxA<T>> k;
  k.reserve(static_cast<size_t>(cap));
  auto scan_all = [&](const BoxA<T>& b) {
    for (const BoxA<T>& q : k)
      if (test(q, b)) return true;
    return false;
  };
  if (n <= kLinearMax) {
    for (int64_t i = 0; i < n && static_cast<int64_t>(kept.size()) < cap; ++i) {
      const BoxA<T> b = box_at(c, i);
      if (scan_all(b)) continue;
      k.push_back(b);
      kept.push_back(i);
    }
    return;
  }
  Grid g;
  g.build(c, n, t);
  for (int64_t i = 0; i < n && static_cast<int64_t>(kept.size()) < cap; ++i) {
    BoxA<T> b = box_at(c, i);
    const double w = static_cast<double>(b.x2) - b.x1, h = static_cast<double>(b.y2) - b.y1;
    if (!(w > 0) || !(h > 0)) {  // zero area: IoU 0 with everything, kept and never a suppressor
      kept.push_back(i);
      continue;
    }
    const double cx = 0.5 * (static_cast<double>(b.x1) + b.x2);
    const double cy = 0.5 * (static_cast<double>(b.y1) + b.y2);
    int64_t ax, bx, ay, by;
    g.window(cx, cy, w, h, ax, bx, ay, by);
    bool sup = false;
    if ((bx - ax + 1) * (by - ay + 1) > static_cast<int64_t>(k.size())) {  // window wider than the kept list
      sup = scan_all(b);
    } else {
      for (int64_t y = ay; y <= by && !sup; ++y)
        for (int64_t x = ax; x <= bx && !sup; ++x)
          for (int32_t e = g.head[y * g.gx + x]; e >= 0; e = k[e].next)
            if (test(k[e], b)) {
              sup = true;
              break;
            }
    }
    if (!sup) {
      b.next = g.insert(static_cast<int32_t>(k.size()), cx, cy);
      k.push_back(b);
      kept.push_back(i);
    }
  }
}

template <typename T>
void greedy_dispatch(const Soa<T>& c, int64_t n, const NmsOptions& o, int64_t max_keep, std::vector<int64_t>& kept) {
  const IouCut cut = make_iou_cut<T>(o.iou_threshold);
  if (o.criterion == NmsCriterion::DIoU)
    greedy_sorted(c, n, max_keep, o.iou_threshold, DiouAbove<T>{cut, o.beta}, kept);
  else greedy_sorted(c, n, max_keep, o.iou_threshold, IouAbove<T>{cut}, kept);
}

inline uint32_t ordered_bits(float v) {
  v += 0.0f;  // -0 -> +0
  uint32_t u;
  std::memcpy(&u, &v, 4);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
inline uint64_t ordered_bits(double v) {
  v += 0.0;
  uint64_t u;
  std::memcpy(&u, &v, 8);
  return (u & 0x8000000000000000ull) ? ~u : (u | 0x8000000000000000ull);
}

// Stable LSD radix sort of packed (key << 32 | index) values by their high 32 bits: three passes
// of 11 bits, a pass skipped when every value falls in one bucket. Equal keys keep their input
// order (ascending index), as the packed comparison would give.
void radix_sort_hi32(std::vector<uint64_t>& a) {
  const size_t n = a.size();
  std::vector<uint64_t> tmp(n);
  std::vector<uint32_t> cnt(3 * 2048, 0);
  for (uint64_t v : a) {
    const uint32_t k = static_cast<uint32_t>(v >> 32);
    ++cnt[k & 2047];
    ++cnt[2048 + ((k >> 11) & 2047)];
    ++cnt[4096 + (k >> 22)];
  }
  uint64_t* src = a.data();
  uint64_t* dst = tmp.data();
  for (int pass = 0; pass < 3; ++pass) {
    uint32_t* c = cnt.data() + 2048 * pass;
    const int shift = 32 + 11 * pass;
    if (c[(src[0] >> shift) & 2047] == n) continue;  // all in one bucket
    uint32_t sum = 0;
    for (int b = 0; b < 2048; ++b) {
      const uint32_t t = c[b];
      c[b] = sum;
      sum += t;
    }
    for (size_t i = 0; i < n; ++i) dst[c[(src[i] >> shift) & 2047]++] = src[i];
    std::swap(src, dst);
  }
  if (src != a.data()) std::memcpy(a.data(), src, n * sizeof(uint64_t));
}

}  // namespace

template <typename T>
std::vector<int64_t> sort_candidates(const T* scores, int64_t n, bool has_thr, double thr) {
  std::vector<int64_t> order;
  if (sizeof(T) == 4 && n < (int64_t(1) << 32)) {
    // one uint64 per candidate: descending score in the high half, the index in the low half
    std::vector<uint64_t> keys;
    keys.reserve(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      if (has_thr && !(static_cast<double>(scores[i]) > thr)) continue;
      const uint64_t hi = ~ordered_bits(static_cast<float>(scores[i]));
      keys.push_back((hi << 32) | static_cast<uint64_t>(i));
    }
    if (keys.size() >= 1024) radix_sort_hi32(keys);
    else std::sort(keys.begin(), keys.end());
    order.resize(keys.size());
    for (size_t i = 0; i < keys.size(); ++i) order[i] = static_cast<int64_t>(keys[i] & 0xffffffffu);
    return order;
  }
  std::vector<std::pair<uint64_t, int64_t>> keys;
  keys.reserve(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    if (has_thr && !(static_cast<double>(scores[i]) > thr)) continue;
    keys.emplace_back(~ordered_bits(static_cast<double>(scores[i])), i);
  }
  std::sort(keys.begin(), keys.end());
  order.resize(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) order[i] = keys[i].second;
  return order;
}

template <typename T>
std::vector<int64_t> greedy_nms(const T* boxes, const T* scores, const int64_t* cls, int64_t n, const NmsOptions& o,
                                bool parallel) {
  const std::vector<int64_t> order = sort_candidates(scores, n, o.has_score_threshold, o.score_threshold);
  const int64_t m = static_cast<int64_t>(order.size());
  const int64_t max_keep = o.max_output < 0 ? m : o.max_output;
  std::vector<int64_t> out;
  if (m == 0 || max_keep == 0) return out;
  if (!cls) {
    Soa<T> c;
    c.resize(static_cast<size_t>(m));
    for (int64_t i = 0; i < m; ++i) c.set(static_cast<size_t>(i), boxes + 4 * order[i]);
    std::vector<int64_t> kept;
    greedy_dispatch(c, m, o, max_keep, kept);
    out.resize(kept.size());
    for (size_t i = 0; i < kept.size(); ++i) out[i] = order[kept[i]];
    return out;
  }
  // Class-aware: dense class ids, a stable counting sort of the score order into per-class
  // buckets, one greedy NMS per class (tasks), then the kept flags read back in score order.
  int64_t lo = cls[order[0]], hi = lo;
  for (int64_t i = 1; i < m; ++i) {
    lo = std::min(lo, cls[order[i]]);
    hi = std::max(hi, cls[order[i]]);
  }
  std::vector<int64_t> dense(static_cast<size_t>(m));
  int64_t ncls;
  if (static_cast<uint64_t>(hi) - static_cast<uint64_t>(lo) < static_cast<uint64_t>(2 * m + 1024)) {
    std::vector<int64_t> map(static_cast<size_t>(hi - lo + 1), -1);
    ncls = 0;
    for (int64_t i = 0; i < m; ++i) {
      int64_t& d = map[static_cast<size_t>(cls[order[i]] - lo)];
      if (d < 0) d = ncls++;
      dense[i] = d;
    }
  } else {
    std::vector<int64_t> u(static_cast<size_t>(m));
    for (int64_t i = 0; i < m; ++i) u[i] = cls[order[i]];
    std::sort(u.begin(), u.end());
    u.erase(std::unique(u.begin(), u.end()), u.end());
    ncls = static_cast<int64_t>(u.size());
    for (int64_t i = 0; i < m; ++i) dense[i] = std::lower_bound(u.begin(), u.end(), cls[order[i]]) - u.begin();
  }
  std::vector<int64_t> start(static_cast<size_t>(ncls + 1), 0);
  for (int64_t i = 0; i < m; ++i) ++start[dense[i] + 1];
  for (int64_t c = 0; c < ncls; ++c) start[c + 1] += start[c];
  std::vector<int64_t> pos(static_cast<size_t>(m));  // bucketed -> position in `order`
  {
    std::vector<int64_t> fill(start.begin(), start.end() - 1);
    for (int64_t i = 0; i < m; ++i) pos[fill[dense[i]]++] = i;
  }
  std::vector<int64_t> tasks(static_cast<size_t>(ncls));
  std::iota(tasks.begin(), tasks.end(), 0);
  std::stable_sort(tasks.begin(), tasks.end(),
                   [&](int64_t a, int64_t b) { return start[a + 1] - start[a] > start[b + 1] - start[b]; });
  std::vector<uint8_t> flag(static_cast<size_t>(m), 0);
  auto run_class = [&](int64_t t) {
    const int64_t c = tasks[t], b0 = start[c], cnt = start[c + 1] - b0;
    Soa<T> s;
    s.resize(static_cast<size_t>(cnt));
    for (int64_t i = 0; i < cnt; ++i) s.set(static_cast<size_t>(i), boxes + 4 * order[pos[b0 + i]]);
    std::vector<int64_t> kept;
    greedy_dispatch(s, cnt, o, max_keep, kept);
    for (int64_t p : kept) flag[pos[b0 + p]] = 1;
  };
  if (parallel && m >= kNmsParallelMin) {
    parallel_for(ncls, run_class);
  } else {
    for (int64_t t = 0; t < ncls; ++t) run_class(t);
  }
  for (int64_t i = 0; i < m && static_cast<int64_t>(out.size()) < max_keep; ++i)
    if (flag[i]) out.push_back(order[i]);
  return out;
}

template <typename T>
void soft_nms(const T* boxes, const T* scores, int64_t n, double iou_threshold, double sigma, double score_threshold,
              int method, int64_t max_output, std::vector<int64_t>& keep, std::vector<T>& kept_scores) {
  keep.clear();
  kept_scores.clear();
  // live candidates, in index order; s holds their current (decayed) scores in double
  std::vector<int64_t> live;
  std::vector<double> s;
  for (int64_t i = 0; i < n; ++i)
    if (static_cast<double>(scores[i]) > score_threshold) {
      live.push_back(i);
      s.push_back(static_cast<double>(scores[i]));
    }
  const int64_t cap = max_output < 0 ? n : max_output;
  while (!live.empty() && static_cast<int64_t>(keep.size()) < cap) {
    size_t best = 0;  // first maximum: ties go to the lower index
    for (size_t j = 1; j < live.size(); ++j)
      if (s[j] > s[best]) best = j;
    const int64_t mi = live[best];
    keep.push_back(mi);
    kept_scores.push_back(static_cast<T>(s[best]));
    const T* bm = boxes + 4 * mi;
    const T am = geom::box_area(bm, T(0));
    size_t w = 0;
    for (size_t j = 0; j < live.size(); ++j) {
      if (j == best) continue;
      const T* bj = boxes + 4 * live[j];
      double sj = s[j];
      const double iou = static_cast<double>(geom::iou(bm, am, bj, geom::box_area(bj, T(0)), T(0)));
      if (iou > 0) {
        if (method == 0) {
          if (iou > iou_threshold) sj *= 1.0 - iou;
        } else {
          sj *= std::exp(-(iou * iou) / sigma);
        }
      }
      if (!(sj > score_threshold)) continue;
      live[w] = live[j];
      s[w] = sj;
      ++w;
    }
    live.resize(w);
    s.resize(w);
  }
}

template std::vector<int64_t> sort_candidates<float>(const float*, int64_t, bool, double);
template std::vector<int64_t> sort_candidates<double>(const double*, int64_t, bool, double);
template std::vector<int64_t> greedy_nms<float>(const float*, const float*, const int64_t*, int64_t, const NmsOptions&,
                                                bool);
template std::vector<int64_t> greedy_nms<double>(const double*, const double*, const int64_t*, int64_t,
                                                 const NmsOptions&, bool);
template void soft_nms<float>(const float*, const float*, int64_t, double, double, double, int, int64_t,
                              std::vector<int64_t>&, std::vector<float>&);
template void soft_nms<double>(const double*, const double*, int64_t, double, double, double, int, int64_t,
                               std::vector<int64_t>&, std::vector<double>&);

}  // namespace cpu
}  // namespace cnnops
