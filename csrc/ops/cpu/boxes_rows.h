// The inner loops of the IoU family, written once and compiled twice: by boxes.cpp for the
// portable baseline and by boxes_avx2.cpp with -mavx2 -mfma: one row of a pairwise matrix, and a
// chunk of element-wise losses (forward and backward). The includer defines CNNOPS_ISA
// (the namespace that keeps the two copies apart). The loop over boxes2 reads their columns
// unit-stride and evaluates geom::metric with the kind fixed at compile time, so the compiler
// turns it into SIMD code for all four kinds (CIoU's aspect angles are precomputed per box). The
// forward loss loop reads the (N, 4) pairs as interleaved groups of four and is vectorised the same
// way for IoU, GIoU and DIoU (CIoU calls atan2 per pair). The backward loop runs
// geom::loss_pair_grad (ops/box_geom.h, shared with the CUDA kernels), written branch-free (0/1
// weights, bit masks), but GCC 12 still keeps one reciprocal conditional under its default
// -ftrapping-math and leaves it scalar: about 50 ns per pair on the loaded 2-core machine.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "ops/cpu/boxes.h"

namespace cnnops {
namespace cpu {
namespace CNNOPS_ISA {

// flatten: everything the loop calls is inlined into it (with LTO the inline helpers of box_geom.h
// could otherwise be merged across the two ISA builds and called out of line); noinline: the loop is
// vectorised on its own. `a` is taken by value: through a reference GCC 12 cannot rule out that
// the stores to `out` change it and leaves the CIoU loop scalar.
#if defined(__GNUC__)
#define CNNOPS_FLATTEN __attribute__((flatten, noinline))
#else
#define CNNOPS_FLATTEN
#endif

// One row of a pairwise matrix; eps is the caller's, placed as torchvision's pairwise functions
// place it (geom::pairwise_eps).
template <typename T, geom::IouKind K>
CNNOPS_FLATTEN static void row_loop(const geom::Box<T> a, T area_a, const BoxColumns<T>& c, int64_t m, T* out, T off,
                                    T eps) {
  const T *x1 = c.x1, *y1 = c.y1, *x2 = c.x2, *y2 = c.y2, *ar = c.area, *ang = c.angle;
  const T ang_a = K == geom::IouKind::CIoU ? geom::aspect_angle(a, off) : T(0);
  const geom::MetricEps<T> e = geom::pairwise_eps<T, K>(eps);
  for (int64_t j = 0; j < m; ++j) {
    const T ang_b = K == geom::IouKind::CIoU ? ang[j] : T(0);
    out[j] = geom::metric<T, K>(a, area_a, ang_a, geom::Box<T>{x1[j], y1[j], x2[j], y2[j]}, ar[j], ang_b, off, e);
  }
}

template <typename T>
void pairwise_row(geom::IouKind kind, const geom::Box<T>& a, T area_a, const BoxColumns<T>& c, int64_t m, T* out, T off,
                  T eps) {
  switch (kind) {
    case geom::IouKind::IoU: return row_loop<T, geom::IouKind::IoU>(a, area_a, c, m, out, off, eps);
    case geom::IouKind::GIoU: return row_loop<T, geom::IouKind::GIoU>(a, area_a, c, m, out, off, eps);
    case geom::IouKind::DIoU: return row_loop<T, geom::IouKind::DIoU>(a, area_a, c, m, out, off, eps);
    case geom::IouKind::CIoU: return row_loop<T, geom::IouKind::CIoU>(a, area_a, c, m, out, off, eps);
  }
}

// ---- element-wise losses ----

template <typename T, geom::IouKind K>
CNNOPS_FLATTEN static void loss_loop(const T* b1, const T* b2, int64_t n, T off, T eps, T* out) {
  for (int64_t i = 0; i < n; ++i) {
    const geom::Box<T> a = geom::load_sorted(b1 + 4 * i), b = geom::load_sorted(b2 + 4 * i);
    out[i] =
        T(1) - geom::metric<T, K>(a, geom::box_area(a, off), b, geom::box_area(b, off), off, geom::loss_eps<T, K>(eps));
  }
}

template <typename T, geom::IouKind K>
CNNOPS_FLATTEN static void loss_backward_loop(const T* gout, bool per_pair, const T* b1, const T* b2, int64_t n, T off,
                                              T eps, T* g1, T* g2) {
  if (per_pair) {
    for (int64_t i = 0; i < n; ++i)
      geom::loss_pair_grad<T, K>(b1 + 4 * i, b2 + 4 * i, off, eps, gout[i], g1 + 4 * i, g2 + 4 * i);
  } else {
    const T g = gout[0];
    for (int64_t i = 0; i < n; ++i)
      geom::loss_pair_grad<T, K>(b1 + 4 * i, b2 + 4 * i, off, eps, g, g1 + 4 * i, g2 + 4 * i);
  }
}

// Per-pair losses 1 - metric of n pairs into out[n].
template <typename T>
void loss_chunk(geom::IouKind kind, const T* b1, const T* b2, int64_t n, T off, T eps, T* out) {
  switch (kind) {
    case geom::IouKind::IoU: return loss_loop<T, geom::IouKind::IoU>(b1, b2, n, off, eps, out);
    case geom::IouKind::GIoU: return loss_loop<T, geom::IouKind::GIoU>(b1, b2, n, off, eps, out);
    case geom::IouKind::DIoU: return loss_loop<T, geom::IouKind::DIoU>(b1, b2, n, off, eps, out);
    case geom::IouKind::CIoU: return loss_loop<T, geom::IouKind::CIoU>(b1, b2, n, off, eps, out);
  }
}

// Gradients of n pairs; gout has n values (per_pair) or one broadcast value.
template <typename T>
void loss_backward_chunk(geom::IouKind kind, const T* gout, bool per_pair, const T* b1, const T* b2, int64_t n, T off,
                         T eps, T* g1, T* g2) {
  switch (kind) {
    case geom::IouKind::IoU:
      return loss_backward_loop<T, geom::IouKind::IoU>(gout, per_pair, b1, b2, n, off, eps, g1, g2);
    case geom::IouKind::GIoU:
      return loss_backward_loop<T, geom::IouKind::GIoU>(gout, per_pair, b1, b2, n, off, eps, g1, g2);
    case geom::IouKind::DIoU:
      return loss_backward_loop<T, geom::IouKind::DIoU>(gout, per_pair, b1, b2, n, off, eps, g1, g2);
    case geom::IouKind::CIoU:
      return loss_backward_loop<T, geom::IouKind::CIoU>(gout, per_pair, b1, b2, n, off, eps, g1, g2);
  }
}

#define CNNOPS_BOXES_ROWS_INSTANTIATE(T)                                                                         \
  template void pairwise_row<T>(geom::IouKind, const geom::Box<T>&, T, const BoxColumns<T>&, int64_t, T*, T, T); \
  template void loss_chunk<T>(geom::IouKind, const T*, const T*, int64_t, T, T, T*);                             \
  template void loss_backward_chunk<T>(geom::IouKind, const T*, bool, const T*, const T*, int64_t, T, T, T*, T*);
CNNOPS_BOXES_ROWS_INSTANTIATE(float)
CNNOPS_BOXES_ROWS_INSTANTIATE(double)
#undef CNNOPS_BOXES_ROWS_INSTANTIATE

#undef CNNOPS_FLATTEN

}  // namespace CNNOPS_ISA
}  // namespace cpu
}  // namespace cnnops
