// Pooling (max / avg / lp, plain or adaptive; 1-D, 2-D, 3-D) and fractional max pooling.
#include "ops/pool.h"
#include "bindings/common.h"
#include "bindings/params.h"
#include "ops/pool_fractional.h"

namespace cnnops {

PoolParams pool_params(const char* op, const std::string& kind, int nd, bool channels_last,
                       const std::vector<int64_t>& kernel, const std::vector<int64_t>& stride,
                       const std::vector<int64_t>& pad, const std::vector<int64_t>& dilation, bool ceil_mode,
                       bool count_include_pad, int64_t divisor_override, double norm_type,
                       const std::vector<int64_t>& output_size) {
  CNNOPS_CHECK_VALUE(nd >= 1 && nd <= 3, op, ": expected 1, 2 or 3 spatial dimensions, got ", nd);
  PoolParams p;
  p.nd = nd;
  if (kind == "max") p.kind = PoolKind::Max;
  else if (kind == "avg") p.kind = PoolKind::Avg;
  else if (kind == "lp") p.kind = PoolKind::Lp;
  else throw ValueError(str(op, ": expected pooling kind 'max', 'avg' or 'lp', got '", kind, "'"));
  p.channels_last = channels_last;
  p.adaptive = !output_size.empty();
  const size_t n = static_cast<size_t>(nd);
  if (p.adaptive) {
    CNNOPS_CHECK_VALUE(output_size.size() == n, op, ": expected ", nd, " output sizes, got ", output_size.size());
  } else {
    CNNOPS_CHECK_VALUE(kernel.size() == n && stride.size() == n && dilation.size() == n && pad.size() == 2 * n, op,
                       ": expected ", nd, " kernel sizes, strides and dilations and ", 2 * nd, " pads");
  }
  for (int i = 0; i < nd; ++i) {
    if (p.adaptive) {
      p.out[i] = output_size[i];
      continue;
    }
    p.kernel[i] = kernel[i];
    p.stride[i] = stride[i];
    p.dilation[i] = dilation[i];
    p.pad[2 * i] = pad[2 * i];
    p.pad[2 * i + 1] = pad[2 * i + 1];
  }
  p.ceil_mode = ceil_mode;
  p.count_include_pad = count_include_pad;
  p.divisor_override = divisor_override;
  p.norm_type = norm_type;
  return p;
}

void bind_pool(py::module_& m) {
  m.def(
      "pool",
      [](const std::string& op, py::object input, const std::string& kind, int nd, bool channels_last, VecI kernel,
         VecI stride, VecI pad, VecI dilation, bool ceil_mode, bool count_include_pad, int64_t divisor_override,
         double norm_type, VecI output_size, bool return_indices, bool tf_indices) {
        const char* o = op.c_str();
        Tensor x = from_python(input, o, "input");
        PoolParams p = pool_params(o, kind, nd, channels_last, kernel, stride, pad, dilation, ceil_mode,
                                   count_include_pad, divisor_override, norm_type, output_size);
        p.return_indices = return_indices;
        p.tf_indices = tf_indices;
        PoolResult r;
        {
          py::gil_scoped_release nogil;
          r = pool(o, x, p);
        }
        py::object idx = r.has_indices ? to_python(std::move(r.indices)) : py::none();
        return py::make_tuple(to_python(std::move(r.output)), idx);
      },
      py::arg("op"), py::arg("input"), py::arg("kind"), py::arg("nd"), py::arg("channels_last"), py::arg("kernel"),
      py::arg("stride"), py::arg("pad"), py::arg("dilation"), py::arg("ceil_mode"), py::arg("count_include_pad"),
      py::arg("divisor_override"), py::arg("norm_type"), py::arg("output_size"), py::arg("return_indices"),
      py::arg("tf_indices"));

  m.def(
      "pool_backward",
      [](const std::string& op, py::object grad_output, py::object input, py::object indices, const std::string& kind,
         int nd, bool channels_last, VecI kernel, VecI stride, VecI pad, VecI dilation, bool ceil_mode,
         bool count_include_pad, int64_t divisor_override, double norm_type, VecI output_size) {
        const char* o = op.c_str();
        Tensor dy = from_python(grad_output, o, "grad_output");
        Tensor x = from_python(input, o, "input");
        const OptionalTensor ix = optional_tensor(indices, o, "indices");
        const PoolParams p = pool_params(o, kind, nd, channels_last, kernel, stride, pad, dilation, ceil_mode,
                                         count_include_pad, divisor_override, norm_type, output_size);
        return run_released([&] { return pool_backward(o, dy, x, ix.get(), p); });
      },
      py::arg("op"), py::arg("grad_output"), py::arg("input"), py::arg("indices"), py::arg("kind"), py::arg("nd"),
      py::arg("channels_last"), py::arg("kernel"), py::arg("stride"), py::arg("pad"), py::arg("dilation"),
      py::arg("ceil_mode"), py::arg("count_include_pad"), py::arg("divisor_override"), py::arg("norm_type"),
      py::arg("output_size"));
  // ---- fractional max pooling (PyTorch samples or explicit pooling sequences) ----
  m.def(
      "fractional_max_pool",
      [](const std::string& op, py::object input, py::object samples, int nd, bool channels_last, VecI kernel,
         VecI out_size, std::vector<VecI> sequences, bool overlapping) {
        const char* o = op.c_str();
        Tensor x = from_python(input, o, "input");
        Tensor s;
        const bool torch_rule = !samples.is_none();
        if (torch_rule) s = from_python(samples, o, "_random_samples");
        FractionalResult r;
        {
          py::gil_scoped_release nogil;
          r = torch_rule ? fractional_max_pool_samples(o, x, s, nd, channels_last, kernel, out_size)
                         : fractional_max_pool_sequences(o, x, nd, channels_last, sequences, overlapping);
        }
        return py::make_tuple(to_python(std::move(r.output)), to_python(std::move(r.indices)));
      },
      py::arg("op"), py::arg("input"), py::arg("samples"), py::arg("nd"), py::arg("channels_last"), py::arg("kernel"),
      py::arg("out_size"), py::arg("sequences"), py::arg("overlapping"));
  m.def(
      "fractional_max_pool_backward",
      [](const std::string& op, py::object grad_output, py::object input, py::object indices, int nd,
         bool channels_last) {
        const char* o = op.c_str();
        Tensor dy = from_python(grad_output, o, "grad_output");
        Tensor x = from_python(input, o, "input");
        Tensor ix = from_python(indices, o, "indices");
        return run_released([&] { return fractional_max_pool_backward(o, dy, x, ix, nd, channels_last); });
      },
      py::arg("op"), py::arg("grad_output"), py::arg("input"), py::arg("indices"), py::arg("nd"),
      py::arg("channels_last"));
}

}  // namespace cnnops
