// One row of a pairwise IoU-family matrix, written once and compiled twice: by boxes.cpp for the
// portable baseline and by boxes_avx2.cpp with -mavx2 -mfma. The includer defines CNNOPS_ISA
// (the namespace that keeps the two copies apart). The loop over boxes2 reads their columns
// unit-stride and evaluates geom::metric with the kind fixed at compile time, so the compiler
// turns it into SIMD code (IoU, GIoU, DIoU; CIoU calls atan2 per pair and stays scalar).
#include "ops/boxes.h"

namespace cnnops {
namespace cpu {
namespace CNNOPS_ISA {

template <typename T, geom::IouKind K>
static void row_loop(const geom::Box<T>& a, T area_a, const BoxColumns<T>& c, int64_t m, T* out, T off, T eps_pen) {
  const T *x1 = c.x1, *y1 = c.y1, *x2 = c.x2, *y2 = c.y2, *ar = c.area;
  for (int64_t j = 0; j < m; ++j)
    out[j] = geom::metric<T, K>(a, area_a, geom::Box<T>{x1[j], y1[j], x2[j], y2[j]}, ar[j], off, T(0), eps_pen);
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

}  // namespace CNNOPS_ISA
}  // namespace cpu
}  // namespace cnnops
