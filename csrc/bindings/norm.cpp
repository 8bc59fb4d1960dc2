// Batch normalisation; arguments arrive parsed by python/cnnops/norm.py.
#include "ops/norm.h"

#include "bindings/common.h"

namespace cnnops {

void bind_norm(py::module_& m) {
  m.def(
      "batch_norm",
      [](const std::string& op, py::object input, py::object weight, py::object bias, py::object mean, py::object var,
         double eps) {
        const char* o = op.c_str();
        Tensor x = from_python(input, o, "input");
        const OptionalTensor w = optional_tensor(weight, o, "weight"), b = optional_tensor(bias, o, "bias");
        const OptionalTensor mu = optional_tensor(mean, o, "mean"), v = optional_tensor(var, o, "var");
        BatchNormResult r;
        {
          py::gil_scoped_release nogil;
          r = batch_norm(o, x, w.get(), b.get(), mu.get(), v.get(), eps);
        }
        return py::make_tuple(to_python(std::move(r.output)), to_python(std::move(r.mean)),
                              to_python(std::move(r.var)));
      },
      py::arg("op"), py::arg("input"), py::arg("weight"), py::arg("bias"), py::arg("mean"), py::arg("var"),
      py::arg("eps"));
  m.def(
      "batch_norm_backward",
      [](const std::string& op, py::object grad_output, py::object input, py::object weight, py::object mean,
         py::object var, double eps, bool batch_stats, std::array<bool, 3> needs) {
        const char* o = op.c_str();
        Tensor dy = from_python(grad_output, o, "grad_output");
        Tensor x = from_python(input, o, "input");
        const OptionalTensor w = optional_tensor(weight, o, "weight");
        Tensor mu = from_python(mean, o, "mean");
        Tensor v = from_python(var, o, "var");
        BatchNormGrads r;
        {
          py::gil_scoped_release nogil;
          r = batch_norm_backward(o, dy, x, w.get(), mu, v, eps, batch_stats, needs[0], needs[1], needs[2]);
        }
        py::object gi = r.has_input ? to_python(std::move(r.grad_input)) : py::none();
        py::object gw = r.has_weight ? to_python(std::move(r.grad_weight)) : py::none();
        py::object gb = r.has_bias ? to_python(std::move(r.grad_bias)) : py::none();
        return py::make_tuple(gi, gw, gb);
      },
      py::arg("op"), py::arg("grad_output"), py::arg("input"), py::arg("weight"), py::arg("mean"), py::arg("var"),
      py::arg("eps"), py::arg("batch_stats"), py::arg("needs"));
}

}  // namespace cnnops
