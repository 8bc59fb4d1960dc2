// Greedy NMS (plain, class-aware, DIoU) and Soft-NMS on the CPU, fused: no N x N IoU matrix and
// no bitmask; memory is O(N) (the candidate order, the boxes gathered in that order, the kept
// boxes and a uniform grid over them).
//
// Greedy NMS walks the candidates once in descending score order; candidate i is kept iff no box
// kept before it has IoU > t with it. That is the same keep set as "each kept box suppresses
// every later box", but each candidate only meets the kept boxes that could overlap it:
//   * sort once: scores become order-preserving integer keys (float32: key and index packed in
//     one uint64, so a plain integer sort gives score-descending, index-ascending order);
//   * the boxes are gathered in that order into structure-of-arrays (x1, y1, x2, y2, area);
//   * IoU > t >= 0 needs a positive intersection, so kept boxes are entered into the cells of a
//     uniform grid (cell ~ the mean box size, at most 4N + 16 cells) that they cover and a
//     candidate only tests the kept boxes listed in its own cells. Two boxes with a positive
//     intersection share at least the cell of an intersection point (the cell mapping is
//     monotone in each coordinate), so nothing is missed. Boxes covering more than 16 cells go to
//     a short list every candidate scans; zero-area boxes can neither suppress nor be suppressed
//     (IoU 0) and are kept without a test. Under kLinearMax candidates the kept list is scanned
//     directly.
//   * the test "IoU > t" is `fma(t, union, -inter) < 0` in double: inter and union are computed
//     in the input dtype exactly as torchvision computes them (w = min(x2) - max(x1), inter = w*h,
//     union = area_kept + area_cand - inter) and the single-rounding fma gives the sign of the
//     exact real t*union - inter, i.e. the exact comparison inter/union > t, with no division.
//     torchvision rounds inter/union to the dtype first, so the two can only differ when the IoU
//     is within half an ulp of t. union = 0 gives inter = 0 and "not suppressed" (IoU 0).
// Threads: greedy NMS of one set is sequential (each decision depends on the ones before); the
// class-aware form runs its classes as independent tasks through parallel_for (largest class
// first), the padded batched form its images. On the 2-core machine the plain form is bound by
// the sort and the gather (a few passes over 24 bytes per box at a fraction of the streaming
// bandwidth, see benchmarks/results/nms_cpu.md), not by arithmetic.
//
// Soft-NMS is O(N^2) time by its definition (every selection decays all remaining scores) and
// O(N) memory; non-overlapping pairs are rejected before any division.
#include "ops/cpu/nms.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "core/parallel.h"
#include "ops/cpu/box_geom.h"

namespace cnnops {
namespace cpu {

namespace {

constexpr int64_t kLinearMax = 256;   // below this many candidates, scan the kept list directly
constexpr int64_t kMaxCellsPerBox = 16;
constexpr int64_t kMaxGridSide = 2048;

template <typename T>
struct Soa {
  std::vector<T> x1, y1, x2, y2, a;
  void resize(size_t n) {
    x1.resize(n); y1.resize(n); x2.resize(n); y2.resize(n); a.resize(n);
  }
  void set(size_t i, const T* b) {
    x1[i] = b[0]; y1[i] = b[1]; x2[i] = b[2]; y2[i] = b[3];
    a[i] = (b[2] - b[0]) * (b[3] - b[1]);
  }
  void copy(size_t i, const Soa& s, size_t j) {
    x1[i] = s.x1[j]; y1[i] = s.y1[j]; x2[i] = s.x2[j]; y2[i] = s.y2[j]; a[i] = s.a[j];
  }
};

// IoU(k, c) > t, exactly (see the header comment).
template <typename T>
struct IouAbove {
  double t;
  bool operator()(const Soa<T>& k, size_t j, const Soa<T>& c, size_t i) const {
    return iou_above(k.x1[j], k.y1[j], k.x2[j], k.y2[j], k.a[j], c.x1[i], c.y1[i], c.x2[i], c.y2[i], c.a[i], t);
  }
};

// DIoU(k, c) = IoU - (rho^2 / c^2)^beta > t, in double. DIoU <= IoU, so with t >= 0 only
// overlapping pairs can pass and the grid stays valid.
template <typename T>
struct DiouAbove {
  double t, beta;
  bool operator()(const Soa<T>& k, size_t j, const Soa<T>& c, size_t i) const {
    const T w = std::min(k.x2[j], c.x2[i]) - std::max(k.x1[j], c.x1[i]);
    if (!(w > T(0))) return false;
    const T h = std::min(k.y2[j], c.y2[i]) - std::max(k.y1[j], c.y1[i]);
    if (!(h > T(0))) return false;
    const double inter = static_cast<double>(w) * static_cast<double>(h);
    const double uni = static_cast<double>(k.a[j]) + static_cast<double>(c.a[i]) - inter;
    const double iou = uni > 0 ? inter / uni : 0.0;
    const double cw = static_cast<double>(std::max(k.x2[j], c.x2[i])) - std::min(k.x1[j], c.x1[i]);
    const double ch = static_cast<double>(std::max(k.y2[j], c.y2[i])) - std::min(k.y1[j], c.y1[i]);
    const double dx = 0.5 * ((static_cast<double>(k.x1[j]) + k.x2[j]) - (static_cast<double>(c.x1[i]) + c.x2[i]));
    const double dy = 0.5 * ((static_cast<double>(k.y1[j]) + k.y2[j]) - (static_cast<double>(c.y1[i]) + c.y2[i]));
    const double c2 = cw * cw + ch * ch;
    double pen = c2 > 0 ? (dx * dx + dy * dy) / c2 : 0.0;
    if (beta != 1.0) pen = std::pow(pen, beta);
    return iou - pen > t;
  }
};

// Uniform grid over the candidates' extent, holding the kept boxes as singly linked lists.
struct Grid {
  double x0 = 0, y0 = 0, inv_w = 0, inv_h = 0;
  int64_t gx = 1, gy = 1;
  std::vector<int32_t> head, next, item, big;

  int64_t cell_x(double x) const { return std::min<int64_t>(gx - 1, static_cast<int64_t>((x - x0) * inv_w)); }
  int64_t cell_y(double y) const { return std::min<int64_t>(gy - 1, static_cast<int64_t>((y - y0) * inv_h)); }

  template <typename T>
  void build(const Soa<T>& c, int64_t n) {
    double mnx = c.x1[0], mny = c.y1[0], mxx = c.x2[0], mxy = c.y2[0], sw = 0, sh = 0;
    for (int64_t i = 0; i < n; ++i) {
      mnx = std::min<double>(mnx, c.x1[i]);
      mny = std::min<double>(mny, c.y1[i]);
      mxx = std::max<double>(mxx, c.x2[i]);
      mxy = std::max<double>(mxy, c.y2[i]);
      sw += static_cast<double>(c.x2[i]) - c.x1[i];
      sh += static_cast<double>(c.y2[i]) - c.y1[i];
    }
    x0 = mnx;
    y0 = mny;
    const double spx = mxx - mnx, spy = mxy - mny;
    double cw = std::max(sw / n, spx / kMaxGridSide), ch = std::max(sh / n, spy / kMaxGridSide);
    const double limit = 4.0 * n + 16;
    for (;;) {
      gx = (cw > 0 && spx > 0) ? std::min<int64_t>(kMaxGridSide, static_cast<int64_t>(spx / cw) + 1) : 1;
      gy = (ch > 0 && spy > 0) ? std::min<int64_t>(kMaxGridSide, static_cast<int64_t>(spy / ch) + 1) : 1;
      if (static_cast<double>(gx) * gy <= limit) break;
      const double f = std::sqrt(static_cast<double>(gx) * gy / limit) * 1.01;
      cw *= f;
      ch *= f;
    }
    inv_w = (gx > 1) ? 1.0 / cw : 0.0;
    inv_h = (gy > 1) ? 1.0 / ch : 0.0;
    head.assign(static_cast<size_t>(gx * gy), -1);
    next.clear();
    item.clear();
    big.clear();
  }

  void insert(int32_t id, int64_t cx0, int64_t cx1, int64_t cy0, int64_t cy1) {
    if ((cx1 - cx0 + 1) * (cy1 - cy0 + 1) > kMaxCellsPerBox) {
      big.push_back(id);
      return;
    }
    for (int64_t y = cy0; y <= cy1; ++y)
      for (int64_t x = cx0; x <= cx1; ++x) {
        const int64_t cell = y * gx + x;
        next.push_back(head[cell]);
        item.push_back(id);
        head[cell] = static_cast<int32_t>(item.size() - 1);
      }
  }
};

// Greedy NMS over candidates already in processing order (c, n): appends kept positions (0..n-1,
// increasing) to `kept`, at most max_keep of them.
template <typename T, typename Test>
void greedy_sorted(const Soa<T>& c, int64_t n, int64_t max_keep, const Test& test, std::vector<int64_t>& kept) {
  if (n <= 0 || max_keep == 0) return;
  Soa<T> k;
  const int64_t cap = std::min(n, max_keep);
  k.resize(static_cast<size_t>(cap));
  int64_t nk = 0;
  auto keep = [&](int64_t i) {
    k.copy(static_cast<size_t>(nk), c, static_cast<size_t>(i));
    ++nk;
    kept.push_back(i);
  };
  if (n <= kLinearMax) {
    for (int64_t i = 0; i < n && nk < cap; ++i) {
      bool sup = false;
      for (int64_t j = 0; j < nk && !sup; ++j) sup = test(k, j, c, i);
      if (!sup) keep(i);
    }
    return;
  }
  Grid g;
  g.build(c, n);
  for (int64_t i = 0; i < n && nk < cap; ++i) {
    if (!(c.x2[i] > c.x1[i]) || !(c.y2[i] > c.y1[i])) {  // zero area: IoU 0 with everything
      keep(i);
      continue;
    }
    const int64_t cx0 = g.cell_x(c.x1[i]), cx1 = g.cell_x(c.x2[i]);
    const int64_t cy0 = g.cell_y(c.y1[i]), cy1 = g.cell_y(c.y2[i]);
    bool sup = false;
    if ((cx1 - cx0 + 1) * (cy1 - cy0 + 1) > nk) {  // a huge candidate: cheaper to scan every kept box
      for (int64_t j = 0; j < nk && !sup; ++j) sup = test(k, j, c, i);
    } else {
      for (int64_t y = cy0; y <= cy1 && !sup; ++y)
        for (int64_t x = cx0; x <= cx1 && !sup; ++x)
          for (int32_t e = g.head[y * g.gx + x]; e >= 0 && !sup; e = g.next[e]) sup = test(k, g.item[e], c, i);
      for (size_t b = 0; b < g.big.size() && !sup; ++b) sup = test(k, g.big[b], c, i);
    }
    if (!sup) {
      g.insert(static_cast<int32_t>(nk), cx0, cx1, cy0, cy1);
      keep(i);
    }
  }
}

template <typename T>
void greedy_dispatch(const Soa<T>& c, int64_t n, const NmsOptions& o, int64_t max_keep, std::vector<int64_t>& kept) {
  if (o.criterion == NmsCriterion::DIoU)
    greedy_sorted(c, n, max_keep, DiouAbove<T>{o.iou_threshold, o.beta}, kept);
  else
    greedy_sorted(c, n, max_keep, IouAbove<T>{o.iou_threshold}, kept);
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
    std::sort(keys.begin(), keys.end());
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
  if (parallel) {
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
template std::vector<int64_t> greedy_nms<float>(const float*, const float*, const int64_t*, int64_t,
                                                const NmsOptions&, bool);
template std::vector<int64_t> greedy_nms<double>(const double*, const double*, const int64_t*, int64_t,
                                                 const NmsOptions&, bool);
template void soft_nms<float>(const float*, const float*, int64_t, double, double, double, int, int64_t,
                              std::vector<int64_t>&, std::vector<float>&);
template void soft_nms<double>(const double*, const double*, int64_t, double, double, double, int, int64_t,
                               std::vector<int64_t>&, std::vector<double>&);

}  // namespace cpu
}  // namespace cnnops
