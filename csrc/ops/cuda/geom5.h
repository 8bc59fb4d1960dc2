// The (N, C, D, H, W) view of the pooling family (ops/pool.h's Geom5) as the CUDA kernels take it:
// by value, with the decoding of a flat element index into coordinates. Included by .cu files only.
#pragma once
#include <cstdint>

#include "core/cuda_kernel.h"
#include "ops/pool.h"

namespace cnnops {
namespace cuda {

// One side (input or output) of an op, by value.
struct Shape {
  int64_t N, C, D, H, W;
  bool cl;
};

inline Shape shape_of(const Geom5& g) { return Shape{g.N, g.C, g.D, g.H, g.W, g.cl}; }

struct Coord {
  int64_t n, c, d, h, w;
};

// The coordinates of flat element i of a contiguous tensor laid out as s.
__device__ __forceinline__ Coord coord_of(int64_t i, const Shape& s) {
  Coord q;
  if (s.cl) {
    q.c = i % s.C;
    i /= s.C;
  }
  q.w = i % s.W;
  i /= s.W;
  q.h = i % s.H;
  i /= s.H;
  q.d = i % s.D;
  i /= s.D;
  if (s.cl) {
    q.n = i;
  } else {
    q.c = i % s.C;
    q.n = i / s.C;
  }
  return q;
}

}  // namespace cuda
}  // namespace cnnops
