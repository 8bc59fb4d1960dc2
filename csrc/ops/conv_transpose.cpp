// Transposed convolution: argument checks, the plan of the convolution it is the adjoint of, and
// the device branch of each entry point.
#include "ops/conv_transpose.h"

#include <algorithm>
#include <vector>

#include "core/dispatch.h"
#include "core/error.h"
#include "ops/cpu/conv_transpose.h"
#include "ops/cuda/conv.h"

namespace cnnops {

// Checks the transposed op's own view (input (N, C_in, ...), weight (C_in, C_out/groups, ...),
// bias (C_out,), output sizes), then plans the convolution it is the adjoint of: that
// convolution's input is the transposed output (N, C_out, *out_spatial), its output must be the
// transposed input.
static ConvPlan make_transpose_plan(const char* op, const Tensor& x, const Tensor& w, const Tensor* b,
                                    const ConvParams& p, const std::vector<int64_t>& out_spatial,
                                    std::vector<int64_t>& eff) {
  const int nd = p.nd;
  CNNOPS_CHECK_VALUE(nd >= 1 && nd <= 3, op, ": expected 1, 2 or 3 spatial dimensions, got ", nd);
  CNNOPS_CHECK_VALUE(x.ndim() == nd + 2, op, ": expected input with ", nd + 2, " dimensions ",
                     nd == 1   ? "(N, C_in, L)"
                     : nd == 2 ? "(N, C_in, H, W)"
                               : "(N, C_in, D, H, W)",
                     ", got ", x.ndim(), " with shape ", shape_str(x.shape));
  CNNOPS_CHECK_VALUE(w.ndim() == nd + 2, op, ": expected weight with ", nd + 2, " dimensions ",
                     nd == 1   ? "(C_in, C_out/groups, kL)"
                     : nd == 2 ? "(C_in, C_out/groups, R, S)"
                               : "(C_in, C_out/groups, T, R, S)",
                     ", got ", w.ndim(), " with shape ", shape_str(w.shape));
  CNNOPS_CHECK_VALUE(p.groups >= 1, op, ": expected groups >= 1, got ", p.groups);
  CNNOPS_CHECK_VALUE(w.shape[0] == x.shape[1], op, ": expected weight.shape[0] == input channels ", x.shape[1],
                     ", got weight shape ", shape_str(w.shape));
  CNNOPS_CHECK_VALUE(x.shape[1] % p.groups == 0, op,
                     ": expected input channels divisible by groups, got C_in=", x.shape[1], " and groups=", p.groups);
  CNNOPS_CHECK_VALUE(static_cast<int>(out_spatial.size()) == nd, op, ": expected ", nd, " output sizes, got ",
                     out_spatial.size());
  for (int64_t s : out_spatial)
    CNNOPS_CHECK_VALUE(s >= 1, op, ": expected positive output sizes, got ", dims_str(out_spatial.data(), nd));
  const int64_t cout = w.shape[1] * p.groups;
  if (b) {
    check_same_kind(op, "bias", *b, x);
    CNNOPS_CHECK_VALUE(b->ndim() == 1 && b->shape[0] == cout, op, ": expected bias of shape (", cout,
                       ",) (C_out = weight.shape[1] * groups), got ", shape_str(b->shape));
  }
  // Output sizes allowed: base <= out < base + max(stride, dilation), base the size without
  // output_padding. With output_padding >= stride (allowed while < dilation) the convolution of
  // the output is longer than the input ("ext" sizes): the input is then read as if extended
  // with zeros to that length, which changes nothing in the sum.
  // The lower end may be below 1 (padding larger than the kernel's reach); only sizes >= 1 are
  // outputs, as in PyTorch.
  eff.assign(nd, 0);
  for (int i = 0; i < nd; ++i) {
    CNNOPS_CHECK_VALUE(p.stride[i] >= 1 && p.dilation[i] >= 1 && p.pad[2 * i] >= 0 && p.pad[2 * i + 1] >= 0, op,
                       ": expected stride >= 1, dilation >= 1 and non-negative padding, got stride ",
                       tuple_str(p.stride.data(), nd), ", dilation ", tuple_str(p.dilation.data(), nd), ", padding ",
                       tuple_str(p.pad.data(), 2 * nd));
    const char* what = "the transposed output size (input - 1) * stride - padding + dilation * (kernel - 1) + 1";
    const int64_t k = w.shape[2 + i];
    const int64_t pads = checked_add(p.pad[2 * i], p.pad[2 * i + 1], op, "the total padding");
    const int64_t span = checked_mul(x.shape[2 + i] - 1, p.stride[i], op, what);
    const int64_t base = checked_add(span - pads, checked_mul(p.dilation[i], k - 1, op, what), op, what) + 1;
    const int64_t reach = std::max(p.stride[i], p.dilation[i]);
    const int64_t lo = std::max<int64_t>(base, 1), hi = base - 1 + reach;
    CNNOPS_CHECK_VALUE(hi >= 1, op, ": input ", dims_str(x.shape.data() + 2, nd), " gives no output: padding ",
                       tuple_str(p.pad.data(), 2 * nd),
                       " removes more than the transposed convolution produces in dimension ", i, " (at most ", hi,
                       " elements)");
    CNNOPS_CHECK_VALUE(out_spatial[i] >= lo && out_spatial[i] <= hi, op, ": output size ",
                       dims_str(out_spatial.data(), nd), " is not reachable from input ",
                       dims_str(x.shape.data() + 2, nd), ": dimension ", i, " must be in [", lo, ", ", hi, "]");
  }
  std::vector<int64_t> conv_in{x.shape[0], cout};
  conv_in.insert(conv_in.end(), out_spatial.begin(), out_spatial.end());
  checked_numel(conv_in, op, "the number of output elements");
  ConvPlan pl = make_conv_plan(op, conv_in, x, w, nullptr, p);
  eff.assign(pl.out_shape.begin() + 2, pl.out_shape.end());
  return pl;
}

Tensor conv_transpose(const char* op, const Tensor& input, const Tensor& weight, const Tensor* bias,
                      const ConvParams& p, const std::vector<int64_t>& out_spatial) {
  std::vector<int64_t> eff;
  const ConvPlan pl = make_transpose_plan(op, input, weight, bias, p, out_spatial, eff);
  const ConvAlgo algo = choose_conv_algo(op, pl, p.algo, input.device);
  Tensor w = contiguous(weight), b;
  if (bias) b = contiguous(*bias);
  std::vector<int64_t> out_shape{pl.N, pl.C};
  out_shape.insert(out_shape.end(), out_spatial.begin(), out_spatial.end());
  switch (input.device.type) {
    case DeviceType::CPU: {
      Tensor x = contiguous(input), y = empty(out_shape, x.dtype, x.device);
      cpu::conv_transpose_forward(pl, x, w, bias ? &b : nullptr, y, eff, algo);
      return y;
    }
#ifdef CNNOPS_WITH_CUDA
    case DeviceType::CUDA: {
      Tensor y = cuda::conv_empty_like(out_shape, input);
      cuda::conv_transpose_forward(pl, input, w, bias ? &b : nullptr, y, algo);
      return y;
    }
#endif
    default: no_kernel_for_device(op, input.device);
  }
}

ConvGrads conv_transpose_backward(const char* op, const Tensor& grad_output, const Tensor& input, const Tensor& weight,
                                  const ConvParams& p, bool need_input, bool need_weight, bool need_bias) {
  CNNOPS_CHECK_VALUE(grad_output.ndim() == p.nd + 2, op, ": expected grad_output with ", p.nd + 2,
                     " dimensions, got shape ", shape_str(grad_output.shape));
  const std::vector<int64_t> out_spatial(grad_output.shape.begin() + 2, grad_output.shape.end());
  std::vector<int64_t> eff;
  const ConvPlan pl = make_transpose_plan(op, input, weight, nullptr, p, out_spatial, eff);
  const ConvAlgo algo = choose_conv_algo(op, pl, p.algo, input.device);
  std::vector<int64_t> expect{pl.N, pl.C};
  expect.insert(expect.end(), out_spatial.begin(), out_spatial.end());
  check_conv_grad_output(op, grad_output, input, expect, "the transposed output's");
  Tensor w = contiguous(weight);
  switch (input.device.type) {
    case DeviceType::CPU: {
      Tensor dy = contiguous(grad_output), x = contiguous(input);
      ConvGrads out = alloc_conv_grads(x, w, pl.C, need_input, need_weight, need_bias);
      cpu::conv_transpose_backward(pl, dy, x, w, out, eff, algo);
      return out;
    }
#ifdef CNNOPS_WITH_CUDA
    case DeviceType::CUDA: {
      ConvGrads out = alloc_conv_grads(input, w, pl.C, need_input, need_weight, need_bias);
      if (need_input) out.grad_input = cuda::conv_empty_like(input.shape, input);
      cuda::conv_transpose_backward(pl, grad_output, input, w, out, algo);
      return out;
    }
#endif
    default: no_kernel_for_device(op, input.device);
  }
}

}  // namespace cnnops
