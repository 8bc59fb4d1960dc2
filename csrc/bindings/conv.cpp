// Convolution and transposed convolution (1-D, 2-D, 3-D); `op` names the Python function in
// messages, and every argument arrives parsed by python/cnnops/conv.py and conv_transpose.py.
#include "ops/conv.h"
#include "bindings/common.h"
#include "bindings/params.h"
#include "ops/conv_transpose.h"

namespace cnnops {

ConvParams conv_params(int nd, const std::vector<int64_t>& stride, const std::vector<int64_t>& pad,
                       const std::vector<int64_t>& dilation, int64_t groups, const std::string& padding_mode,
                       const std::string& algo, const std::string& precision, const char* op) {
  CNNOPS_CHECK_VALUE(nd >= 1 && nd <= 3, op, ": expected 1, 2 or 3 spatial dimensions, got ", nd);
  CNNOPS_CHECK_VALUE(static_cast<int>(stride.size()) == nd && static_cast<int>(dilation.size()) == nd &&
                         static_cast<int>(pad.size()) == 2 * nd,
                     op, ": expected ", nd, " strides, ", nd, " dilations and ", 2 * nd, " pads");
  ConvParams p;
  p.nd = nd;
  for (int i = 0; i < nd; ++i) {
    p.stride[i] = stride[i];
    p.dilation[i] = dilation[i];
    p.pad[2 * i] = pad[2 * i];
    p.pad[2 * i + 1] = pad[2 * i + 1];
  }
  p.groups = groups;
  p.mode = parse_pad_mode(padding_mode, op);
  p.algo = parse_conv_algo(algo, op);
  p.precision = parse_precision(precision, op);
  return p;
}

static py::tuple grads_to_python(const ConvGrads& gr) {
  py::object gi = gr.has_input ? to_python(gr.grad_input) : py::none();
  py::object gw = gr.has_weight ? to_python(gr.grad_weight) : py::none();
  py::object gb = gr.has_bias ? to_python(gr.grad_bias) : py::none();
  return py::make_tuple(gi, gw, gb);
}

void bind_conv(py::module_& m) {
  m.def(
      "conv",
      [](const std::string& op, py::object input, py::object weight, py::object bias, int nd, VecI stride, VecI pad,
         VecI dilation, int64_t groups, const std::string& padding_mode, const std::string& algo,
         const std::string& precision) {
        const char* o = op.c_str();
        Tensor x = from_python(input, o, "input");
        Tensor w = from_python(weight, o, "weight");
        const OptionalTensor b = optional_tensor(bias, o, "bias");
        const ConvParams p = conv_params(nd, stride, pad, dilation, groups, padding_mode, algo, precision, o);
        return run_released([&] { return conv(o, x, w, b.get(), p); });
      },
      py::arg("op"), py::arg("input"), py::arg("weight"), py::arg("bias"), py::arg("nd"), py::arg("stride"),
      py::arg("pad"), py::arg("dilation"), py::arg("groups"), py::arg("padding_mode"), py::arg("algo"),
      py::arg("precision") = "fp32");

  m.def(
      "conv_algo",
      [](const std::string& op, py::object input, py::object weight, int nd, VecI stride, VecI pad, VecI dilation,
         int64_t groups, const std::string& padding_mode, const std::string& algo, const std::string& precision) {
        const char* o = op.c_str();
        Tensor x = from_python(input, o, "input");
        Tensor w = from_python(weight, o, "weight");
        return conv_algo_name(
            conv_algo(o, x, w, conv_params(nd, stride, pad, dilation, groups, padding_mode, algo, precision, o)));
      },
      py::arg("op"), py::arg("input"), py::arg("weight"), py::arg("nd"), py::arg("stride"), py::arg("pad"),
      py::arg("dilation"), py::arg("groups"), py::arg("padding_mode"), py::arg("algo"), py::arg("precision") = "fp32");

  m.def(
      "conv_backward",
      [](const std::string& op, py::object grad_output, py::object input, py::object weight, int nd, VecI stride,
         VecI pad, VecI dilation, int64_t groups, const std::string& padding_mode, const std::string& algo,
         std::array<bool, 3> needs, const std::string& precision) {
        const char* o = op.c_str();
        Tensor dy = from_python(grad_output, o, "grad_output");
        Tensor x = from_python(input, o, "input");
        Tensor w = from_python(weight, o, "weight");
        const ConvParams p = conv_params(nd, stride, pad, dilation, groups, padding_mode, algo, precision, o);
        ConvGrads gr;
        {
          py::gil_scoped_release nogil;
          gr = conv_backward(o, dy, x, w, p, needs[0], needs[1], needs[2]);
        }
        return grads_to_python(gr);
      },
      py::arg("op"), py::arg("grad_output"), py::arg("input"), py::arg("weight"), py::arg("nd"), py::arg("stride"),
      py::arg("pad"), py::arg("dilation"), py::arg("groups"), py::arg("padding_mode"), py::arg("algo"),
      py::arg("needs"), py::arg("precision") = "fp32");

  // ---- transposed convolution ----
  m.def(
      "conv_transpose",
      [](const std::string& op, py::object input, py::object weight, py::object bias, int nd, VecI stride, VecI pad,
         VecI dilation, int64_t groups, VecI out_spatial, const std::string& algo, const std::string& precision) {
        const char* o = op.c_str();
        Tensor x = from_python(input, o, "input");
        Tensor w = from_python(weight, o, "weight");
        const OptionalTensor b = optional_tensor(bias, o, "bias");
        const ConvParams p = conv_params(nd, stride, pad, dilation, groups, "zeros", algo, precision, o);
        return run_released([&] { return conv_transpose(o, x, w, b.get(), p, out_spatial); });
      },
      py::arg("op"), py::arg("input"), py::arg("weight"), py::arg("bias"), py::arg("nd"), py::arg("stride"),
      py::arg("pad"), py::arg("dilation"), py::arg("groups"), py::arg("out_spatial"), py::arg("algo"),
      py::arg("precision") = "fp32");

  m.def(
      "conv_transpose_backward",
      [](const std::string& op, py::object grad_output, py::object input, py::object weight, int nd, VecI stride,
         VecI pad, VecI dilation, int64_t groups, const std::string& algo, std::array<bool, 3> needs,
         const std::string& precision) {
        const char* o = op.c_str();
        Tensor dy = from_python(grad_output, o, "grad_output");
        Tensor x = from_python(input, o, "input");
        Tensor w = from_python(weight, o, "weight");
        const ConvParams p = conv_params(nd, stride, pad, dilation, groups, "zeros", algo, precision, o);
        ConvGrads gr;
        {
          py::gil_scoped_release nogil;
          gr = conv_transpose_backward(o, dy, x, w, p, needs[0], needs[1], needs[2]);
        }
        return grads_to_python(gr);
      },
      py::arg("op"), py::arg("grad_output"), py::arg("input"), py::arg("weight"), py::arg("nd"), py::arg("stride"),
      py::arg("pad"), py::arg("dilation"), py::arg("groups"), py::arg("algo"), py::arg("needs"),
      py::arg("precision") = "fp32");
}

}  // namespace cnnops
