// Batch normalisation: argument checks and the device/dtype switch (kernels: ops/cpu/norm.cpp).
#include "ops/norm.h"

#include <cmath>

#include "core/dispatch.h"
#include "core/error.h"
#include "ops/cpu/norm.h"

namespace cnnops {
namespace {

// (N, C, S) of an (N, C, *) input, after the checks every entry point makes on it.
struct NormGeom {
  int64_t N = 0, C = 0, S = 1;
};

NormGeom check_input(const char* op, const Tensor& x, double eps) {
  CNNOPS_CHECK_TYPE(x.dtype == DType::Float32 || x.dtype == DType::Float64, op,
                    ": expected input with dtype float32 or float64, got ", dtype_name(x.dtype));
  require_cpu_kernel(op, x);
  CNNOPS_CHECK_VALUE(x.ndim() >= 2, op, ": expected input of shape (N, C, *) with at least 2 dimensions, got shape ",
                     shape_str(x.shape));
  CNNOPS_CHECK_VALUE(x.shape[1] >= 1, op, ": expected at least one channel, got input shape ", shape_str(x.shape));
  CNNOPS_CHECK_VALUE(std::isfinite(eps) && eps >= 0, op, ": expected a finite eps >= 0, got ", eps);
  NormGeom g;
  g.N = x.shape[0];
  g.C = x.shape[1];
  for (int64_t d = 2; d < x.ndim(); ++d) g.S *= x.shape[d];
  return g;
}

// A per-channel vector argument: (C,), the input's dtype and device.
void check_channel_vector(const char* op, const char* name, const Tensor& t, const Tensor& x) {
  CNNOPS_CHECK_TYPE(t.dtype == x.dtype, op, ": expected ", name, " with the input's dtype ", dtype_name(x.dtype),
                    ", got ", dtype_name(t.dtype));
  check_same_device(op, x, "input", t, name);
  CNNOPS_CHECK_VALUE(t.ndim() == 1 && t.shape[0] == x.shape[1], op, ": expected ", name, " of shape (", x.shape[1],
                     ",) (one value per channel), got shape ", shape_str(t.shape));
}

template <typename T>
const T* data_or_null(const Tensor* t) {
  return t ? t->ptr<T>() : nullptr;
}

}  // namespace

BatchNormResult batch_norm(const char* op, const Tensor& input, const Tensor* weight, const Tensor* bias,
                           const Tensor* mean, const Tensor* var, double eps) {
  const NormGeom g = check_input(op, input, eps);
  CNNOPS_CHECK_VALUE((mean == nullptr) == (var == nullptr), op, ": expected mean and var both or neither, got only ",
                     mean ? "mean" : "var");
  const Tensor* vecs[] = {weight, bias, mean, var};
  const char* names[] = {"weight", "bias", "mean", "var"};
  Tensor owned[4];
  for (int i = 0; i < 4; ++i) {
    if (!vecs[i]) continue;
    check_channel_vector(op, names[i], *vecs[i], input);
    owned[i] = contiguous(*vecs[i]);
    vecs[i] = &owned[i];
  }
  CNNOPS_CHECK_VALUE(mean || g.N * g.S >= 1, op, ": expected at least one value per channel for the batch statistics, ",
                     "got input shape ", shape_str(input.shape));
  const Tensor x = contiguous(input);
  BatchNormResult r;
  r.output = empty(x.shape, x.dtype, x.device);
  r.mean = empty({g.C}, x.dtype, x.device);
  r.var = empty({g.C}, x.dtype, x.device);
  dispatch_float(x.dtype, op, [&](auto tag) {
    using T = decltype(tag);
    cpu::batch_norm_forward<T>(x.ptr<T>(), r.output.ptr<T>(), g.N, g.C, g.S, data_or_null<T>(vecs[0]),
                               data_or_null<T>(vecs[1]), data_or_null<T>(vecs[2]), data_or_null<T>(vecs[3]),
                               r.mean.ptr<T>(), r.var.ptr<T>(), eps);
  });
  return r;
}

BatchNormGrads batch_norm_backward(const char* op, const Tensor& grad_output, const Tensor& input, const Tensor* weight,
                                   const Tensor& mean, const Tensor& var, double eps, bool batch_stats, bool need_input,
                                   bool need_weight, bool need_bias) {
  const NormGeom g = check_input(op, input, eps);
  CNNOPS_CHECK_TYPE(grad_output.dtype == input.dtype, op, ": expected grad_output with the input's dtype ",
                    dtype_name(input.dtype), ", got ", dtype_name(grad_output.dtype));
  check_same_device(op, input, "input", grad_output, "grad_output");
  CNNOPS_CHECK_VALUE(grad_output.shape == input.shape, op, ": expected grad_output of the input's shape ",
                     shape_str(input.shape), ", got ", shape_str(grad_output.shape));
  if (weight) check_channel_vector(op, "weight", *weight, input);
  check_channel_vector(op, "mean", mean, input);
  check_channel_vector(op, "var", var, input);
  const Tensor x = contiguous(input), dy = contiguous(grad_output), m = contiguous(mean), v = contiguous(var);
  const Tensor w = weight ? contiguous(*weight) : Tensor{};
  BatchNormGrads r;
  if (need_input) r.grad_input = empty(x.shape, x.dtype, x.device);
  if (need_weight) r.grad_weight = empty({g.C}, x.dtype, x.device);
  if (need_bias) r.grad_bias = empty({g.C}, x.dtype, x.device);
  r.has_input = need_input;
  r.has_weight = need_weight;
  r.has_bias = need_bias;
  if (!need_input && !need_weight && !need_bias) return r;
  dispatch_float(x.dtype, op, [&](auto tag) {
    using T = decltype(tag);
    cpu::batch_norm_backward<T>(dy.ptr<T>(), x.ptr<T>(), need_input ? r.grad_input.ptr<T>() : nullptr,
                                need_weight ? r.grad_weight.ptr<T>() : nullptr,
                                need_bias ? r.grad_bias.ptr<T>() : nullptr, g.N, g.C, g.S,
                                weight ? w.ptr<T>() : nullptr, m.ptr<T>(), v.ptr<T>(), eps, batch_stats);
  });
  return r;
}

}  // namespace cnnops
