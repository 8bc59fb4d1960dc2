// CPU drivers of pooling: the dtype switch around the max and sum kernels (ops/cpu/pool.cpp),
// the argmax recomputed when the backward gets no indices, and TensorFlow's index flattening.
#include "core/dispatch.h"
#include "core/parallel.h"
#include "ops/cpu/pool.h"

namespace cnnops {
namespace cpu {

// TensorFlow's argmax flattening (y * W + x) * C + c from PyTorch's per-plane y * W + x.
static void to_tf_indices(int64_t* idx, const PoolGeom& g) {
  const int64_t P = g.out_plane(), C = g.C;
  parallel_for(g.N, [&](int64_t n) {
    int64_t* b = idx + n * P * C;
    if (g.channels_last) {
      for (int64_t o = 0; o < P; ++o)
        for (int64_t c = 0; c < C; ++c) b[o * C + c] = b[o * C + c] * C + c;
    } else {
      for (int64_t c = 0; c < C; ++c)
        for (int64_t o = 0; o < P; ++o) b[c * P + o] = b[c * P + o] * C + c;
    }
  });
}

template <typename T>
static void run_forward(const Tensor& x, PoolResult& r, const PoolGeom& g) {
  if (g.kind == PoolKind::Max)
    pool_max_forward<T>(x.ptr<T>(), r.output.ptr<T>(), r.has_indices ? r.indices.ptr<int64_t>() : nullptr, g);
  else pool_sum_forward<T>(x.ptr<T>(), r.output.ptr<T>(), g);
}

template <typename T>
static bool run_backward(const Tensor& dy, const Tensor& x, const int64_t* idx, Tensor& dx, const PoolGeom& g) {
  if (g.kind != PoolKind::Max) {
    pool_sum_backward<T>(dy.ptr<T>(), x.ptr<T>(), dx.ptr<T>(), g);
    return true;
  }
  if (idx) return pool_max_backward<T>(dy.ptr<T>(), idx, dx.ptr<T>(), g);
  // no indices: recompute the argmax (into scratch values and indices)
  Tensor y = empty(dy.shape, dy.dtype, dy.device);
  Tensor i = empty(dy.shape, DType::Int64, dy.device);
  pool_max_forward<T>(x.ptr<T>(), y.ptr<T>(), i.ptr<int64_t>(), g);
  return pool_max_backward<T>(dy.ptr<T>(), i.ptr<int64_t>(), dx.ptr<T>(), g);
}

void pool_forward(const PoolGeom& g, const Tensor& x, PoolResult& r, bool tf_indices) {
  dispatch_float(x.dtype, current_op(), [&](auto tag) { run_forward<decltype(tag)>(x, r, g); });
  if (r.has_indices && tf_indices) to_tf_indices(r.indices.ptr<int64_t>(), g);
}

bool pool_backward(const PoolGeom& g, const Tensor& dy, const Tensor& x, const Tensor* indices, Tensor& dx) {
  const int64_t* ip = indices ? indices->ptr<int64_t>() : nullptr;
  return dispatch_float(x.dtype, current_op(), [&](auto tag) { return run_backward<decltype(tag)>(dy, x, ip, dx, g); });
}

}  // namespace cpu
}  // namespace cnnops
