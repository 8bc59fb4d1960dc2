// Unpooling and nearest upsampling (1-D, 2-D, 3-D; `channels_last` for N...C layouts).
#include "ops/unpool.h"
#include "bindings/common.h"

namespace cnnops {

void bind_unpool(py::module_& m) {
  m.def(
      "upsample_nearest",
      [](const std::string& op, py::object input, int nd, bool channels_last, VecI out_size, VecD scales, bool exact) {
        const char* o = op.c_str();
        Tensor x = from_python(input, o, "input");
        return run_released([&] { return upsample_nearest(o, x, nd, channels_last, out_size, scales, exact); });
      },
      py::arg("op"), py::arg("input"), py::arg("nd"), py::arg("channels_last"), py::arg("out_size"), py::arg("scales"),
      py::arg("exact"));
  m.def(
      "upsample_nearest_backward",
      [](const std::string& op, py::object grad_output, int nd, bool channels_last, VecI in_size, VecD scales,
         bool exact) {
        const char* o = op.c_str();
        Tensor dy = from_python(grad_output, o, "grad_output");
        return run_released(
            [&] { return upsample_nearest_backward(o, dy, nd, channels_last, in_size, scales, exact); });
      },
      py::arg("op"), py::arg("grad_output"), py::arg("nd"), py::arg("channels_last"), py::arg("in_size"),
      py::arg("scales"), py::arg("exact"));
  m.def(
      "max_unpool",
      [](const std::string& op, py::object input, py::object indices, int nd, bool channels_last, VecI out_size) {
        const char* o = op.c_str();
        Tensor x = from_python(input, o, "input");
        Tensor ix = from_python(indices, o, "indices");
        return run_released([&] { return max_unpool(o, x, ix, nd, channels_last, out_size); });
      },
      py::arg("op"), py::arg("input"), py::arg("indices"), py::arg("nd"), py::arg("channels_last"),
      py::arg("out_size"));
  m.def(
      "max_unpool_backward",
      [](const std::string& op, py::object grad_output, py::object indices, int nd, bool channels_last) {
        const char* o = op.c_str();
        Tensor dy = from_python(grad_output, o, "grad_output");
        Tensor ix = from_python(indices, o, "indices");
        return run_released([&] { return max_unpool_backward(o, dy, ix, nd, channels_last); });
      },
      py::arg("op"), py::arg("grad_output"), py::arg("indices"), py::arg("nd"), py::arg("channels_last"));
  m.def(
      "bed_of_nails",
      [](const std::string& op, py::object input, int nd, bool channels_last, VecI scale) {
        const char* o = op.c_str();
        Tensor x = from_python(input, o, "input");
        return run_released([&] { return bed_of_nails(o, x, nd, channels_last, scale); });
      },
      py::arg("op"), py::arg("input"), py::arg("nd"), py::arg("channels_last"), py::arg("scale"));
  m.def(
      "bed_of_nails_backward",
      [](const std::string& op, py::object grad_output, int nd, bool channels_last, VecI scale) {
        const char* o = op.c_str();
        Tensor dy = from_python(grad_output, o, "grad_output");
        return run_released([&] { return bed_of_nails_backward(o, dy, nd, channels_last, scale); });
      },
      py::arg("op"), py::arg("grad_output"), py::arg("nd"), py::arg("channels_last"), py::arg("scale"));
}

}  // namespace cnnops
