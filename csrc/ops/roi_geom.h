// Per-bin and per-sample arithmetic of the region ops, shared by the CPU kernels
// (ops/cpu/roi.cpp) and the CUDA kernels (ops/cuda/roi.cu) so that both devices compute the same
// sample positions, windows and weights to the last bit. Every expression is written in
// torchvision's order of operations (torchvision/csrc/ops/cpu/roi_align_kernel.cpp and its
// siblings) in the arithmetic type T (float for float32/float16/bfloat16 data, double for
// float64), and the files that include it are compiled without contracting a multiply and an add
// into an FMA, so results equal torchvision's CPU kernels.
#pragma once
#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define CNNOPS_HD __host__ __device__ __forceinline__
#else
#define CNNOPS_HD inline
#endif

namespace cnnops {
namespace roigeom {

// The four region ops.
enum Kind : int { Pool = 0, Align = 1, PsPool = 2, PsAlign = 3 };

// One region, computed on the host by ops/roi.cpp in the kernels' arithmetic type and stored
// exactly (a float is a double without rounding).
struct Region {
  int64_t batch;                // image index
  int64_t grid_h, grid_w;       // align kinds: samples per bin side (<= 0: no samples)
  int64_t istart_h, istart_w;   // pool kinds: the rounded top-left corner
  double start_h, start_w;      // align kinds: the sampling origin
  double bin_h, bin_w;          // bin sizes
  double count;                 // align kinds: the divisor of a bin's sum
  int64_t row0, row1;           // input rows [row0, row1) any bin can read (backward gathers)
};

// ---- align: sample positions and bilinear taps ----

// Coordinate of sample i of bin p along one axis: start + p * bin + (i + 0.5) * bin / grid, with
// (i + 0.5) formed in float as torchvision does.
template <typename T>
CNNOPS_HD T sample_pos(T start, int64_t p, T bin, int64_t i, int64_t grid) {
  return start + static_cast<T>(p) * bin + static_cast<T>(static_cast<float>(i) + 0.5f) * bin / static_cast<T>(grid);
}

// Whether a sample coordinate lies where it reads the input: [-1, size] on its axis (a sample
// outside on either axis contributes nothing).
template <typename T>
CNNOPS_HD bool in_range(T v, int64_t size) {
  return v >= T(-1) && v <= static_cast<T>(size);
}

// The two input indices a sample reads along one axis and their weights (high-side weight l,
// low-side weight h = 1 - l), for a coordinate already known to be in range.
template <typename T>
struct AxisTap {
  int64_t lo, hi;
  T l, h;
};
template <typename T>
CNNOPS_HD AxisTap<T> axis_tap(T v, int64_t size) {
  AxisTap<T> t;
  if (v <= 0) v = 0;
  t.lo = static_cast<int64_t>(v);
  if (t.lo >= size - 1) {
    t.hi = t.lo = size - 1;
    v = static_cast<T>(t.lo);
  } else {
    t.hi = t.lo + 1;
  }
  t.l = v - static_cast<T>(t.lo);
  t.h = T(1) - t.l;
  return t;
}

// The samples of bin p that lie in range on one axis: [first, last) of i in [0, grid). Positions
// are monotone in i (each rounded operation is), so the range is found by bisection, which keeps
// huge adaptive grids cheap: only samples that read the input are visited.
template <typename T>
CNNOPS_HD void sample_range(T start, int64_t p, T bin, int64_t grid, int64_t size, int64_t* first, int64_t* last) {
  if (grid <= 0) {
    *first = *last = 0;
    return;
  }
  const T lo_edge = T(-1), hi_edge = static_cast<T>(size);
  const bool up = bin >= T(0);
  // a = first i inside from the start side; b = first i past the far edge
  int64_t a = 0, b = grid;
  {
    int64_t lo = 0, hi = grid;
    while (lo < hi) {
      const int64_t mid = lo + (hi - lo) / 2;
      const T v = sample_pos(start, p, bin, mid, grid);
      if (up ? v >= lo_edge : v <= hi_edge) hi = mid;
      else lo = mid + 1;
    }
    a = lo;
  }
  {
    int64_t lo = a, hi = grid;
    while (lo < hi) {
      const int64_t mid = lo + (hi - lo) / 2;
      const T v = sample_pos(start, p, bin, mid, grid);
      if (up ? v > hi_edge : v < lo_edge) hi = mid;
      else lo = mid + 1;
    }
    b = lo;
  }
  *first = a;
  *last = b;
}

// ---- pool: integer windows ----

// Window [begin, end) of bin p along one axis of a pool region (istart, bin): torchvision's
// floor/ceil of p * bin and (p + 1) * bin, shifted by the corner and clipped to [0, clip].
// roi_pool clips to the input size; ps_roi_pool's forward clips to size - 1 (torchvision's rule,
// kept so values match; the last row and column are then never pooled).
template <typename T>
CNNOPS_HD void pool_window(int64_t istart, T bin, int64_t p, int64_t clip, int64_t* begin, int64_t* end) {
  int64_t b = static_cast<int64_t>(floor(static_cast<T>(p) * bin)) + istart;
  int64_t e = static_cast<int64_t>(ceil(static_cast<T>(p + 1) * bin)) + istart;
  b = b < 0 ? 0 : (b > clip ? clip : b);
  e = e < 0 ? 0 : (e > clip ? clip : e);
  *begin = b;
  *end = e;
}

}  // namespace roigeom
}  // namespace cnnops
