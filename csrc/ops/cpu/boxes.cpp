// CPU loops of the box utilities and the IoU family (forward and backward).
//
// Work split:
//  * pairwise (N x M): boxes2 are first unpacked into structure-of-arrays columns (x1, y1, x2, y2,
//    area; corners sorted), then threads take blocks of rows of the output (dynamic schedule);
//    within a row the loop over boxes2 runs the branch-free formula of box_geom.h on those
//    columns, which the compiler vectorises (8 float lanes with AVX2: the same template is
//    compiled again in boxes_avx2.cpp and chosen at run time). The output is written once.
//  * element-wise losses and their backward: threads take fixed chunks of pairs; a reduced loss
//    is summed per chunk in double and the chunk sums are added in chunk order, so the result does
//    not depend on the thread count.
// A pair costs ~20 flops and one division (8 lanes), so the pairwise ops are bound by the output
// stores. The loss forward is vectorised for IoU, GIoU and DIoU, the backward runs scalar (see
// boxes_rows.h), and CIoU adds two atan2 per pair.
// float32 box_iou 10k x 1k: 51% of copy bandwidth (benchmarks/results/boxes_cpu.md).
#include <algorithm>
#include <cmath>
#include <vector>

#define CNNOPS_ISA portable
#include "ops/cpu/boxes_rows.h"

#include "core/cpu_features.h"
#include "core/parallel.h"

namespace cnnops {
namespace cpu {

#ifdef CNNOPS_HAVE_AVX2_TU
namespace avx2 {
template <typename T>
void pairwise_row(geom::IouKind, const geom::Box<T>&, T, const BoxColumns<T>&, int64_t, T*, T, T);
template <typename T>
void loss_chunk(geom::IouKind, const T*, const T*, int64_t, T, T, T*);
template <typename T>
void loss_backward_chunk(geom::IouKind, const T*, bool, const T*, const T*, int64_t, T, T, T*, T*);
}  // namespace avx2
#endif

using geom::Box;
using geom::IouKind;

// The ISA selector of the family: the row and chunk loops of boxes_rows.h at the highest level
// this process may run.
template <typename T>
struct BoxLoops {
  void (*pairwise_row)(IouKind, const Box<T>&, T, const BoxColumns<T>&, int64_t, T*, T, T);
  void (*loss_chunk)(IouKind, const T*, const T*, int64_t, T, T, T*);
  void (*loss_backward_chunk)(IouKind, const T*, bool, const T*, const T*, int64_t, T, T, T*, T*);
};

template <typename T>
static BoxLoops<T> box_loops() {
#ifdef CNNOPS_HAVE_AVX2_TU
  if (use_avx2()) return {avx2::pairwise_row<T>, avx2::loss_chunk<T>, avx2::loss_backward_chunk<T>};
#endif
  return {portable::pairwise_row<T>, portable::loss_chunk<T>, portable::loss_backward_chunk<T>};
}

template <typename T>
inline Box<T> canonical(const T* p) {
  return geom::load_sorted(p);
}

template <typename T>
void box_convert(const T* in, T* out, int64_t n, BoxFormat in_fmt, BoxFormat out_fmt) {
  parallel_for((n + 4095) / 4096, [&](int64_t c) {
    const int64_t e = std::min(n, (c + 1) * 4096);
    for (int64_t i = c * 4096; i < e; ++i)
      geom::convert_box(in + 4 * i, static_cast<int>(in_fmt), static_cast<int>(out_fmt), out + 4 * i);
  });
}

template <typename T>
void box_area(const T* b, T* out, int64_t n, T off) {
  for (int64_t i = 0; i < n; ++i) out[i] = geom::box_area(canonical(b + 4 * i), off);
}

template <typename T>
void clip_boxes(const T* b, T* out, int64_t n, T height, T width) {
  for (int64_t i = 0; i < n; ++i) geom::clip_box(b + 4 * i, height, width, out + 4 * i);
}

template <typename T>
int64_t small_box_keep(const T* b, int64_t* keep, int64_t n, T min_size, T off) {
  int64_t k = 0;
  for (int64_t i = 0; i < n; ++i)
    if (geom::large_enough(b + 4 * i, min_size, off)) keep[k++] = i;
  return k;
}

template <typename T>
void box_pairwise(IouKind kind, const T* b1, int64_t n, const T* b2, int64_t m, T* out, T off, T eps) {
  if (n == 0 || m == 0) return;
  std::vector<T> cols(6 * static_cast<size_t>(m));
  BoxColumns<T> c{cols.data(),         cols.data() + m,     cols.data() + 2 * m,
                  cols.data() + 3 * m, cols.data() + 4 * m, cols.data() + 5 * m};
  const bool angles = kind == IouKind::CIoU;
  for (int64_t j = 0; j < m; ++j) {
    const Box<T> q = canonical(b2 + 4 * j);
    c.x1[j] = q.x1, c.y1[j] = q.y1, c.x2[j] = q.x2, c.y2[j] = q.y2;
    c.area[j] = geom::box_area(q, off);
    c.angle[j] = angles ? geom::aspect_angle(q, off) : T(0);
  }
  const int64_t rows = std::max<int64_t>(1, 16384 / m);
  const BoxLoops<T> isa = box_loops<T>();
  parallel_for((n + rows - 1) / rows, [&](int64_t t) {
    const int64_t r0 = t * rows, r1 = std::min(n, r0 + rows);
    for (int64_t i = r0; i < r1; ++i) {
      const Box<T> a = canonical(b1 + 4 * i);
      isa.pairwise_row(kind, a, geom::box_area(a, off), c, m, out + i * m, off, eps);
    }
  });
}

// ---- element-wise losses: fixed chunks of pairs, the chunk loops of boxes_rows.h ----

template <typename T>
void box_loss(IouKind kind, const T* b1, const T* b2, int64_t n, T off, T eps, T* out, double* total) {
  const int64_t chunks = (n + kLossChunk - 1) / kLossChunk;
  std::vector<double> part(static_cast<size_t>(chunks), 0.0);
  const BoxLoops<T> isa = box_loops<T>();
  parallel_for(chunks, [&](int64_t c) {
    const int64_t i0 = c * kLossChunk, cnt = std::min(n, i0 + kLossChunk) - i0;
    T local[kLossChunk];
    T* o = out ? out + i0 : local;
    isa.loss_chunk(kind, b1 + 4 * i0, b2 + 4 * i0, cnt, off, eps, o);
    double sum = 0.0;  // in pair order: the total does not depend on the thread count
    for (int64_t i = 0; i < cnt; ++i) sum += static_cast<double>(o[i]);
    part[static_cast<size_t>(c)] = sum;
  });
  double t = 0.0;
  for (double v : part) t += v;
  *total = t;
}

template <typename T>
void box_loss_backward(IouKind kind, const T* gout, int64_t gstride, const T* b1, const T* b2, int64_t n, T off, T eps,
                       T* g1, T* g2) {
  const BoxLoops<T> isa = box_loops<T>();
  parallel_for((n + kLossChunk - 1) / kLossChunk, [&](int64_t c) {
    const int64_t i0 = c * kLossChunk, cnt = std::min(n, i0 + kLossChunk) - i0;
    isa.loss_backward_chunk(kind, gout + (gstride ? i0 : 0), gstride != 0, b1 + 4 * i0, b2 + 4 * i0, cnt, off, eps,
                            g1 + 4 * i0, g2 + 4 * i0);
  });
}

#define CNNOPS_BOXES_INSTANTIATE(T)                                                       \
  template void box_convert<T>(const T*, T*, int64_t, BoxFormat, BoxFormat);              \
  template void box_area<T>(const T*, T*, int64_t, T);                                    \
  template void clip_boxes<T>(const T*, T*, int64_t, T, T);                               \
  template int64_t small_box_keep<T>(const T*, int64_t*, int64_t, T, T);                  \
  template void box_pairwise<T>(IouKind, const T*, int64_t, const T*, int64_t, T*, T, T); \
  template void box_loss<T>(IouKind, const T*, const T*, int64_t, T, T, T*, double*);     \
  template void box_loss_backward<T>(IouKind, const T*, int64_t, const T*, const T*, int64_t, T, T, T*, T*);
CNNOPS_BOXES_INSTANTIATE(float)
CNNOPS_BOXES_INSTANTIATE(double)
#undef CNNOPS_BOXES_INSTANTIATE

}  // namespace cpu
}  // namespace cnnops
