// Boxes: utilities and the IoU family; `op` names the Python function in messages.
#include "ops/boxes.h"
#include "bindings/common.h"

namespace cnnops {

void bind_boxes(py::module_& m) {
  m.def(
      "box_check",
      [](const std::string& op, py::object boxes, const std::string& name, const std::string& fmt, bool canonicalize) {
        const char* o = op.c_str();
        Tensor b = from_python(boxes, o, name.c_str());
        const BoxFormat f = parse_box_format(fmt, o, "format");
        py::gil_scoped_release nogil;
        check_boxes(o, contiguous(b), name.c_str(), f, canonicalize);
      },
      py::arg("op"), py::arg("boxes"), py::arg("name"), py::arg("fmt"), py::arg("canonicalize"),
      "(N, 4) float32/float64 CPU boxes, finite, corners ordered unless canonicalize; raises otherwise");
  m.def(
      "box_convert",
      [](const std::string& op, py::object boxes, const std::string& in_fmt, const std::string& out_fmt,
         bool canonicalize) {
        const char* o = op.c_str();
        Tensor b = from_python(boxes, o, "boxes");
        const BoxFormat fi = parse_box_format(in_fmt, o, "in_fmt"), fo = parse_box_format(out_fmt, o, "out_fmt");
        return run_released([&] { return box_convert(o, b, fi, fo, canonicalize); });
      },
      py::arg("op"), py::arg("boxes"), py::arg("in_fmt"), py::arg("out_fmt"), py::arg("canonicalize"));
  m.def(
      "box_area",
      [](const std::string& op, py::object boxes, double offset, bool canonicalize) {
        const char* o = op.c_str();
        Tensor b = from_python(boxes, o, "boxes");
        return run_released([&] { return box_area(o, b, offset, canonicalize); });
      },
      py::arg("op"), py::arg("boxes"), py::arg("offset"), py::arg("canonicalize"));
  m.def(
      "clip_boxes_to_image",
      [](const std::string& op, py::object boxes, double height, double width, bool canonicalize) {
        const char* o = op.c_str();
        Tensor b = from_python(boxes, o, "boxes");
        return run_released([&] { return clip_boxes_to_image(o, b, height, width, canonicalize); });
      },
      py::arg("op"), py::arg("boxes"), py::arg("height"), py::arg("width"), py::arg("canonicalize"));
  m.def(
      "remove_small_boxes",
      [](const std::string& op, py::object boxes, double min_size, double offset, bool canonicalize) {
        const char* o = op.c_str();
        Tensor b = from_python(boxes, o, "boxes");
        return run_released([&] { return remove_small_boxes(o, b, min_size, offset, canonicalize); });
      },
      py::arg("op"), py::arg("boxes"), py::arg("min_size"), py::arg("offset"), py::arg("canonicalize"));
  m.def(
      "box_pairwise",
      [](const std::string& op, const std::string& kind, py::object boxes1, py::object boxes2, double offset,
         double eps, bool canonicalize) {
        const char* o = op.c_str();
        const geom::IouKind k = parse_iou_kind(kind, o);
        Tensor b1 = from_python(boxes1, o, "boxes1");
        Tensor b2 = from_python(boxes2, o, "boxes2");
        return run_released([&] { return box_pairwise(o, k, b1, b2, offset, eps, canonicalize); });
      },
      py::arg("op"), py::arg("kind"), py::arg("boxes1"), py::arg("boxes2"), py::arg("offset"), py::arg("eps"),
      py::arg("canonicalize"));
  m.def(
      "box_loss",
      [](const std::string& op, const std::string& kind, py::object boxes1, py::object boxes2,
         const std::string& reduction, double eps, double offset, bool canonicalize) {
        const char* o = op.c_str();
        const geom::IouKind k = parse_iou_kind(kind, o);
        const Reduction r = parse_reduction(reduction, o);
        Tensor b1 = from_python(boxes1, o, "boxes1");
        Tensor b2 = from_python(boxes2, o, "boxes2");
        return run_released([&] { return box_loss(o, k, b1, b2, r, eps, offset, canonicalize); });
      },
      py::arg("op"), py::arg("kind"), py::arg("boxes1"), py::arg("boxes2"), py::arg("reduction"), py::arg("eps"),
      py::arg("offset"), py::arg("canonicalize"));
  m.def(
      "box_loss_backward",
      [](const std::string& op, const std::string& kind, py::object grad_output, py::object boxes1, py::object boxes2,
         const std::string& reduction, double eps, double offset, bool canonicalize) {
        const char* o = op.c_str();
        const geom::IouKind k = parse_iou_kind(kind, o);
        const Reduction r = parse_reduction(reduction, o);
        Tensor go = from_python(grad_output, o, "grad_output");
        Tensor b1 = from_python(boxes1, o, "boxes1");
        Tensor b2 = from_python(boxes2, o, "boxes2");
        std::pair<Tensor, Tensor> g;
        {
          py::gil_scoped_release nogil;
          g = box_loss_backward(o, k, go, b1, b2, r, eps, offset, canonicalize);
        }
        return py::make_tuple(to_python(std::move(g.first)), to_python(std::move(g.second)));
      },
      py::arg("op"), py::arg("kind"), py::arg("grad_output"), py::arg("boxes1"), py::arg("boxes2"),
      py::arg("reduction"), py::arg("eps"), py::arg("offset"), py::arg("canonicalize"));
}

}  // namespace cnnops
