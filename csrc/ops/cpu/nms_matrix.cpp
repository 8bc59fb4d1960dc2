// The NMS variants defined on the IoU matrix of the top-k candidates: Matrix NMS (SOLOv2), Fast
// NMS (YOLACT) and Cluster-NMS (Zheng et al.). Their papers form the K x K upper-triangular IoU
// matrix X (X[i][j] = IoU of the i-th and j-th best candidates, i < j, 0 across classes) and
// reduce it column-wise; here the matrix is never stored:
//   * Fast NMS: keep j iff max_{i<j} X[i][j] <= t -> one pass over the pairs, O(K) memory;
//   * Matrix NMS: comp[i] = max_{k<i} X[k][i] (pass 1), decay[j] = min_{i<j} f(X[i][j]) / f(comp[i])
//     (pass 2, the IoUs recomputed) -> two passes, O(K) memory;
//   * Cluster-NMS: keeps only the pairs with X[i][j] > t (a sparse upper-triangular adjacency,
//     O(K + E) memory, E <= K(K-1)/2 when every box overlaps every other) and iterates
//     keep_j <- no kept i < j with X[i][j] > t from "all kept" (the first round is Fast NMS)
//     until nothing changes; the fixed point is greedy NMS's keep set.
// Time is O(K^2) pair tests (non-overlapping pairs are rejected before any division); `top_k`
// caps K. Threads: the columns j are split into chunks handed out dynamically by parallel_for
// (column j costs j pair tests, so chunks are many and small); each column is written by one
// task only, so results do not depend on the thread count.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/parallel.h"
#include "ops/box_geom.h"
#include "ops/cpu/nms.h"

namespace cnnops {
namespace cpu {

namespace {

// The top-k candidates in processing order, boxes gathered with their areas and class ids.
template <typename T>
struct Cands {
  std::vector<int64_t> order;
  std::vector<geom::Box<T>> b;
  std::vector<T> a;
  std::vector<int64_t> cls;
  int64_t k = 0;

  Cands(const T* boxes, const T* scores, const int64_t* c, int64_t n, bool has_thr, double thr, int64_t top_k) {
    order = sort_candidates(scores, n, has_thr, thr);
    if (top_k >= 0 && static_cast<int64_t>(order.size()) > top_k) order.resize(static_cast<size_t>(top_k));
    k = static_cast<int64_t>(order.size());
    b.resize(static_cast<size_t>(k));
    a.resize(static_cast<size_t>(k));
    cls.assign(static_cast<size_t>(k), 0);
    for (int64_t i = 0; i < k; ++i) {
      b[i] = geom::load_box(boxes + 4 * order[i]);
      a[i] = geom::box_area(b[i], T(0));
      if (c) cls[i] = c[order[i]];
    }
  }
  // X[i][j] > t in torchvision's arithmetic (iou_above in ops/box_geom.h); false across classes.
  bool above(int64_t i, int64_t j, const IouCut& t) const {
    return cls[i] == cls[j] &&
           iou_above(b[i].x1, b[i].y1, b[i].x2, b[i].y2, a[i], b[j].x1, b[j].y1, b[j].x2, b[j].y2, a[j], t);
  }
  // X[i][j] in double (0 across classes).
  double iou(int64_t i, int64_t j) const {
    if (cls[i] != cls[j]) return 0.0;
    return static_cast<double>(
        geom::metric<T, geom::IouKind::IoU>(b[i], a[i], b[j], a[j], T(0), geom::MetricEps<T>{0, 0, 0}));
  }
};

// Runs f(j) for every column j in [0, k), in dynamically scheduled chunks.
template <typename F>
void for_columns(int64_t k, F&& f) {
  const int64_t chunk = 32;
  parallel_for((k + chunk - 1) / chunk, [&](int64_t c) {
    const int64_t j1 = std::min(k, (c + 1) * chunk);
    for (int64_t j = c * chunk; j < j1; ++j) f(j);
  });
}

}  // namespace

template <typename T>
void matrix_nms(const T* boxes, const T* scores, const int64_t* cls, int64_t n, int method, double sigma,
                bool has_score_threshold, double score_threshold, int64_t top_k, int64_t max_output,
                std::vector<int64_t>& keep, std::vector<T>& decayed) {
  const Cands<T> c(boxes, scores, cls, n, false, 0.0, top_k);
  const int64_t k = c.k;
  std::vector<double> comp(static_cast<size_t>(k), 0.0), dec(static_cast<size_t>(k), 1.0);
  for_columns(k, [&](int64_t j) {
    double m = 0.0;
    for (int64_t i = 0; i < j; ++i) m = std::max(m, c.iou(i, j));
    comp[j] = m;
  });
  for_columns(k, [&](int64_t j) {
    double d = 1.0;
    for (int64_t i = 0; i < j; ++i) {
      const double x = c.iou(i, j);
      if (!(x > 0.0)) continue;  // f(0) / f(comp) >= 1 never lowers the minimum
      double r;
      if (method == 0) {
        if (!(1.0 - comp[i] > 0.0)) continue;  // an exact duplicate of a better box decays nothing
        r = (1.0 - x) / (1.0 - comp[i]);
      } else {
        r = std::exp(-(x * x - comp[i] * comp[i]) / sigma);
      }
      d = std::min(d, r);
    }
    dec[j] = d;
  });
  std::vector<int64_t> sel;
  std::vector<double> val;
  for (int64_t j = 0; j < k; ++j) {
    const double v = static_cast<double>(scores[c.order[j]]) * dec[j];
    if (has_score_threshold && !(v > score_threshold)) continue;
    sel.push_back(j);
    val.push_back(v);
  }
  std::vector<size_t> r(sel.size());
  std::iota(r.begin(), r.end(), size_t(0));
  std::stable_sort(r.begin(), r.end(), [&](size_t x, size_t y) { return val[x] > val[y]; });
  const size_t cap = max_output < 0 ? r.size() : std::min(r.size(), static_cast<size_t>(max_output));
  keep.resize(cap);
  decayed.resize(cap);
  for (size_t i = 0; i < cap; ++i) {
    keep[i] = c.order[sel[r[i]]];
    decayed[i] = static_cast<T>(val[r[i]]);
  }
}

template <typename T>
std::vector<int64_t> fast_cluster_nms(const T* boxes, const T* scores, const int64_t* cls, int64_t n,
                                      double iou_threshold, bool has_score_threshold, double score_threshold,
                                      int64_t top_k, int64_t max_output, bool cluster) {
  const Cands<T> c(boxes, scores, cls, n, has_score_threshold, score_threshold, top_k);
  const int64_t k = c.k;
  const IouCut cut = make_iou_cut<T>(iou_threshold);
  std::vector<uint8_t> keep(static_cast<size_t>(k), 1);
  if (!cluster) {
    for_columns(k, [&](int64_t j) {
      for (int64_t i = 0; i < j; ++i)
        if (c.above(i, j, cut)) {
          keep[j] = 0;
          break;
        }
    });
  } else {
    // sparse adjacency (CSR by column): the i < j with X[i][j] > t, built per chunk of columns
    const int64_t chunk = 32, nchunks = (k + chunk - 1) / chunk;
    std::vector<std::vector<int32_t>> items(static_cast<size_t>(nchunks));
    std::vector<int64_t> cnt(static_cast<size_t>(k), 0);
    parallel_for(nchunks, [&](int64_t ch) {
      const int64_t j1 = std::min(k, (ch + 1) * chunk);
      for (int64_t j = ch * chunk; j < j1; ++j)
        for (int64_t i = 0; i < j; ++i)
          if (c.above(i, j, cut)) {
            items[ch].push_back(static_cast<int32_t>(i));
            ++cnt[j];
          }
    });
    std::vector<int64_t> start(static_cast<size_t>(k + 1), 0);
    for (int64_t j = 0; j < k; ++j) start[j + 1] = start[j] + cnt[j];
    std::vector<int32_t> adj(static_cast<size_t>(start[k]));
    for (int64_t ch = 0; ch < nchunks; ++ch)
      std::copy(items[ch].begin(), items[ch].end(), adj.begin() + start[ch * chunk]);
    items.clear();
    std::vector<uint8_t> nxt(static_cast<size_t>(k));
    for (int64_t it = 0; it <= k; ++it) {
      bool changed = false;
      for (int64_t j = 0; j < k; ++j) {
        uint8_t kj = 1;
        for (int64_t e = start[j]; e < start[j + 1]; ++e)
          if (keep[adj[e]]) {
            kj = 0;
            break;
          }
        nxt[j] = kj;
        changed |= kj != keep[j];
      }
      keep.swap(nxt);
      if (!changed) break;
    }
  }
  std::vector<int64_t> out;
  const int64_t cap = max_output < 0 ? k : max_output;
  for (int64_t j = 0; j < k && static_cast<int64_t>(out.size()) < cap; ++j)
    if (keep[j]) out.push_back(c.order[j]);
  return out;
}

template void matrix_nms<float>(const float*, const float*, const int64_t*, int64_t, int, double, bool, double, int64_t,
                                int64_t, std::vector<int64_t>&, std::vector<float>&);
template void matrix_nms<double>(const double*, const double*, const int64_t*, int64_t, int, double, bool, double,
                                 int64_t, int64_t, std::vector<int64_t>&, std::vector<double>&);
template std::vector<int64_t> fast_cluster_nms<float>(const float*, const float*, const int64_t*, int64_t, double, bool,
                                                      double, int64_t, int64_t, bool);
template std::vector<int64_t> fast_cluster_nms<double>(const double*, const double*, const int64_t*, int64_t, double,
                                                       bool, double, int64_t, int64_t, bool);

}  // namespace cpu
}  // namespace cnnops
