// Region ops: RoI Pool, RoI Align, PS RoI Pool, PS RoI Align (forward and backward).
#include "ops/roi.h"
#include "bindings/common.h"

namespace cnnops {

namespace {

// `boxes`: one (K, 5) array, or (per_image) a sequence of (Ki, 4) arrays.
RoiBoxes boxes_arg(py::object boxes, bool per_image, const char* op) {
  RoiBoxes b;
  b.per_image = per_image;
  if (!per_image) {
    b.parts.push_back(from_python(boxes, op, "boxes"));
    return b;
  }
  for (py::handle item : boxes) b.parts.push_back(from_python(py::reinterpret_borrow<py::object>(item), op, "boxes"));
  return b;
}

RoiParams roi_params(const char* op, int kind, int64_t out_h, int64_t out_w, double spatial_scale,
                     int64_t sampling_ratio, bool aligned, bool channels_last) {
  CNNOPS_CHECK_VALUE(kind >= 0 && kind <= 3, op, ": expected a region kind 0..3, got ", kind);
  RoiParams p;
  p.kind = static_cast<roigeom::Kind>(kind);
  p.out_h = out_h;
  p.out_w = out_w;
  p.spatial_scale = spatial_scale;
  p.sampling_ratio = sampling_ratio;
  p.aligned = aligned;
  p.channels_last = channels_last;
  return p;
}

}  // namespace

void bind_roi(py::module_& m) {
  m.def(
      "roi",
      [](const std::string& op, py::object input, py::object boxes, bool per_image, int kind, int64_t out_h,
         int64_t out_w, double spatial_scale, int64_t sampling_ratio, bool aligned, bool channels_last,
         bool return_indices) {
        const char* o = op.c_str();
        Tensor x = from_python(input, o, "input");
        RoiBoxes b = boxes_arg(boxes, per_image, o);
        const RoiParams p = roi_params(o, kind, out_h, out_w, spatial_scale, sampling_ratio, aligned, channels_last);
        RoiResult r;
        {
          py::gil_scoped_release nogil;
          r = roi_forward(o, x, b, p, return_indices);
        }
        py::object idx = r.has_indices ? to_python(std::move(r.indices)) : py::none();
        return py::make_tuple(to_python(std::move(r.output)), idx);
      },
      py::arg("op"), py::arg("input"), py::arg("boxes"), py::arg("per_image"), py::arg("kind"), py::arg("out_h"),
      py::arg("out_w"), py::arg("spatial_scale"), py::arg("sampling_ratio"), py::arg("aligned"),
      py::arg("channels_last"), py::arg("return_indices"));
  m.def(
      "roi_backward",
      [](const std::string& op, py::object grad_output, py::object boxes, bool per_image, py::object indices,
         VecI in_shape, int kind, int64_t out_h, int64_t out_w, double spatial_scale, int64_t sampling_ratio,
         bool aligned, bool channels_last) {
        const char* o = op.c_str();
        Tensor dy = from_python(grad_output, o, "grad_output");
        RoiBoxes b = boxes_arg(boxes, per_image, o);
        const OptionalTensor ix = optional_tensor(indices, o, "indices");
        const RoiParams p = roi_params(o, kind, out_h, out_w, spatial_scale, sampling_ratio, aligned, channels_last);
        return run_released([&] { return roi_backward(o, dy, b, ix.get(), in_shape, p); });
      },
      py::arg("op"), py::arg("grad_output"), py::arg("boxes"), py::arg("per_image"), py::arg("indices"),
      py::arg("in_shape"), py::arg("kind"), py::arg("out_h"), py::arg("out_w"), py::arg("spatial_scale"),
      py::arg("sampling_ratio"), py::arg("aligned"), py::arg("channels_last"));
}

}  // namespace cnnops
