// CPU drivers of the transposed convolution. Its forward is the input gradient of the
// convolution it is the adjoint of, its input gradient that convolution's forward, its weight
// gradient the convolution's with image and output swapped; when output_padding makes the
// transposed output longer than the convolution of the input reaches, the input is read as if
// zero-extended (`extend`) and the input gradient cropped back (`copy_box`).
#include "ops/cpu/conv_transpose.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/dispatch.h"
#include "core/parallel.h"
#include "ops/cpu/conv.h"

namespace cnnops {
namespace cpu {

// Copies the leading `box` corner of each of `planes` N-d planes from src (spatial sizes `ss`)
// to dst (sizes `ds`).
template <typename T>
static void copy_box(const T* src, const std::vector<int64_t>& ss, T* dst, const std::vector<int64_t>& ds,
                     const std::vector<int64_t>& box, int64_t planes) {
  const int nd = static_cast<int>(box.size());
  int64_t sn = 1, dn = 1, rows = 1;
  for (int i = 0; i < nd; ++i) {
    sn *= ss[i];
    dn *= ds[i];
    if (i + 1 < nd) rows *= box[i];
  }
  parallel_for(planes, [&](int64_t q) {
    for (int64_t r = 0; r < rows; ++r) {
      int64_t so = 0, dof = 0, rem = r;
      for (int i = nd - 2; i >= 0; --i) {  // row index -> outer coordinates
        const int64_t ci = rem % box[i];
        rem /= box[i];
        int64_t sstride = 1, dstride = 1;
        for (int j = i + 1; j < nd; ++j) {
          sstride *= ss[j];
          dstride *= ds[j];
        }
        so += ci * sstride;
        dof += ci * dstride;
      }
      std::memcpy(dst + q * dn + dof, src + q * sn + so, sizeof(T) * box[nd - 1]);
    }
  });
}

// x (N, C, *spatial) itself, or a copy zero-extended at the end to the spatial sizes `to`.
template <typename T>
static Tensor extend(const Tensor& x, const std::vector<int64_t>& to, int64_t channels) {
  const std::vector<int64_t> from(x.shape.begin() + 2, x.shape.end());
  if (from == to) return x;
  std::vector<int64_t> shape{x.shape[0], channels};
  shape.insert(shape.end(), to.begin(), to.end());
  Tensor e = empty(shape, x.dtype, x.device);
  std::fill(e.ptr<T>(), e.ptr<T>() + e.numel(), T(0));
  copy_box<T>(x.ptr<T>(), from, e.ptr<T>(), to, from, x.shape[0] * channels);
  return e;
}

void conv_transpose_forward(const ConvPlan& pl, const Tensor& x, const Tensor& w, const Tensor* b, Tensor& y,
                            const std::vector<int64_t>& eff, ConvAlgo algo) {
  if (pl.N == 0) return;
  dispatch_float(x.dtype, current_op(), [&](auto tag) {
    using T = decltype(tag);
    lowered_grad_input<T>(pl, extend<T>(x, eff, pl.K).template ptr<T>(), w.ptr<T>(), y.ptr<T>(), algo,
                          b ? b->ptr<T>() : nullptr);
  });
}

void conv_transpose_backward(const ConvPlan& pl, const Tensor& dy, const Tensor& x, const Tensor& w, ConvGrads& out,
                             const std::vector<int64_t>& eff, ConvAlgo algo) {
  const std::vector<int64_t> in_spatial(x.shape.begin() + 2, x.shape.end());
  if (pl.N == 0) return zero_param_grads(out);
  dispatch_float(x.dtype, current_op(), [&](auto tag) {
    using T = decltype(tag);
    if (out.has_input) {
      if (eff == in_spatial) {
        lowered_forward<T>(pl, dy.ptr<T>(), w.ptr<T>(), nullptr, out.grad_input.ptr<T>(), algo);
      } else {
        std::vector<int64_t> eshape{pl.N, pl.K};
        eshape.insert(eshape.end(), eff.begin(), eff.end());
        Tensor ge = empty(eshape, x.dtype, x.device);
        lowered_forward<T>(pl, dy.ptr<T>(), w.ptr<T>(), nullptr, ge.ptr<T>(), algo);
        copy_box<T>(ge.ptr<T>(), eff, out.grad_input.ptr<T>(), in_spatial, in_spatial, pl.N * pl.K);
      }
    }
    if (out.has_weight)
      lowered_grad_weight<T>(pl, extend<T>(x, eff, pl.K).template ptr<T>(), dy.ptr<T>(), out.grad_weight.ptr<T>(),
                             algo);
    if (out.has_bias) {
      int64_t spatial = 1;
      for (size_t i = 2; i < dy.shape.size(); ++i) spatial *= dy.shape[i];
      grad_bias_sum<T>(dy.ptr<T>(), out.grad_bias.ptr<T>(), pl.N, pl.C, spatial);
    }
  });
}

}  // namespace cpu
}  // namespace cnnops
