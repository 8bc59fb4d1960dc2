// CPU kernels of batch normalisation (declarations) over contiguous (N, C, S) data, S the product
// of the spatial sizes (1 for an (N, C) input). See norm.cpp for how the work is split.
#pragma once
#include <cstdint>

namespace cnnops {
namespace cpu {

// y from x. mean_in/var_in null: the batch statistics are computed and written to mean/var;
// otherwise mean/var receive copies of them. w/b null: 1 and 0.
template <typename T>
void batch_norm_forward(const T* x, T* y, int64_t N, int64_t C, int64_t S, const T* w, const T* b, const T* mean_in,
                        const T* var_in, T* mean, T* var, double eps);

// dx (null: not wanted), dw, db (null: not wanted) from dy and x at (w, mean, var).
template <typename T>
void batch_norm_backward(const T* dy, const T* x, T* dx, T* dw, T* db, int64_t N, int64_t C, int64_t S, const T* w,
                         const T* mean, const T* var, double eps, bool batch_stats);

}  // namespace cpu
}  // namespace cnnops
