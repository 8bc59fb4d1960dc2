// One row of a pairwise IoU-family matrix, written once and compiled twice: by boxes.cpp for the
// portable baseline and by boxes_avx2.cpp with -mavx2 -mfma. The includer defines CNNOPS_ISA
// (the namespace that keeps the two copies apart). The loop over boxes2 reads their columns
// unit-stride and evaluates geom::metric with the kind fixed at compile time, so the compiler
// turns it into SIMD code for all four kinds (CIoU's aspect angles are precomputed per box).
#include "ops/boxes.h"

namespace cnnops {
namespace cpu {
namespace CNNOPS_ISA {

// flatten: everything the loop calls is inlined into it (with LTO the inline helpers of box_geom.h
// could otherwise be merged across the two ISA builds and called out of line); noinline: the loop is
// vectorised on its own. `a` is taken by value: through a reference GCC 12 could not rule out that
// the stores to `out` change it and left the CIoU loop scalar.
#if defined(__GNUC__)
#define CNNOPS_FLATTEN __attribute__((flatten, noinline))
#else
#define CNNOPS_FLATTEN
#endif

template <typename T, geom::IouKind K>
CNNOPS_FLATTEN static void row_loop(const geom::Box<T> a, T area_a, const BoxColumns<T>& c, int64_t m, T* out,
                                    T off, T eps_pen) {
  const T *x1 = c.x1, *y1 = c.y1, *x2 = c.x2, *y2 = c.y2, *ar = c.area, *ang = c.angle;
  const T ang_a = K == geom::IouKind::CIoU ? geom::aspect_angle(a, off) : T(0);
  for (int64_t j = 0; j < m; ++j) {
    const T ang_b = K == geom::IouKind::CIoU ? ang[j] : T(0);
    out[j] = geom::metric<T, K>(a, area_a, ang_a, geom::Box<T>{x1[j], y1[j], x2[j], y2[j]}, ar[j], ang_b, off, T(0),
                                eps_pen);
  }
}

template <typename T>
void pairwise_row(geom::IouKind kind, const geom::Box<T>& a, T area_a, const BoxColumns<T>& c, int64_t m, T* out,
                  T off, T eps_pen) {
  switch (kind) {
    case geom::IouKind::IoU: return row_loop<T, geom::IouKind::IoU>(a, area_a, c, m, out, off, eps_pen);
    case geom::IouKind::GIoU: return row_loop<T, geom::IouKind::GIoU>(a, area_a, c, m, out, off, eps_pen);
    case geom::IouKind::DIoU: return row_loop<T, geom::IouKind::DIoU>(a, area_a, c, m, out, off, eps_pen);
    case geom::IouKind::CIoU: return row_loop<T, geom::IouKind::CIoU>(a, area_a, c, m, out, off, eps_pen);
  }
}

template void pairwise_row<float>(geom::IouKind, const geom::Box<float>&, float, const BoxColumns<float>&, int64_t,
                                  float*, float, float);
template void pairwise_row<double>(geom::IouKind, const geom::Box<double>&, double, const BoxColumns<double>&,
                                   int64_t, double*, double, double);

#undef CNNOPS_FLATTEN

}  // namespace CNNOPS_ISA
}  // namespace cpu
}  // namespace cnnops
