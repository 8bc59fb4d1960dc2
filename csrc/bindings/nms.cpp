// Non-max suppression: python/cnnops/nms.py parses the options; `op` names the function.
#include "ops/nms.h"
#include "bindings/common.h"
#ifdef CNNOPS_WITH_CUDA
#include "ops/cuda/nms.h"
#endif

namespace cnnops {

void bind_nms(py::module_& m) {
  // Optional arrays (idxs) come as None; optional numbers as a has_* flag with the value.
  m.def(
      "nms",
      [](const std::string& op, py::object boxes, py::object scores, py::object idxs, double iou_threshold,
         bool has_score_threshold, double score_threshold, int64_t max_output, const std::string& criterion,
         double beta, bool padded) {
        const char* o = op.c_str();
        Tensor b = from_python(boxes, o, "boxes");
        Tensor s = from_python(scores, o, "scores");
        const OptionalTensor c = optional_tensor(idxs, o, "idxs");
        NmsOptions opt;
        opt.iou_threshold = iou_threshold;
        opt.has_score_threshold = has_score_threshold;
        opt.score_threshold = score_threshold;
        opt.max_output = max_output;
        opt.criterion = criterion == "diou" ? NmsCriterion::DIoU : NmsCriterion::IoU;
        opt.beta = beta;
        std::pair<Tensor, Tensor> r;
        {
          py::gil_scoped_release nogil;
          if (padded) r = nms_padded(o, b, s, c.get(), opt);
          else r.first = nms(o, b, s, c.get(), opt);
        }
        if (padded) return py::object(py::make_tuple(to_python(std::move(r.first)), to_python(std::move(r.second))));
        return to_python(std::move(r.first));
      },
      py::arg("op"), py::arg("boxes"), py::arg("scores"), py::arg("idxs"), py::arg("iou_threshold"),
      py::arg("has_score_threshold"), py::arg("score_threshold"), py::arg("max_output"), py::arg("criterion"),
      py::arg("beta"), py::arg("padded"));

  m.def(
      "soft_nms",
      [](const std::string& op, py::object boxes, py::object scores, double iou_threshold, double sigma,
         double score_threshold, const std::string& method, int64_t max_output) {
        const char* o = op.c_str();
        Tensor b = from_python(boxes, o, "boxes");
        Tensor s = from_python(scores, o, "scores");
        std::pair<Tensor, Tensor> r;
        {
          py::gil_scoped_release nogil;
          r = soft_nms(o, b, s, iou_threshold, sigma, score_threshold, method, max_output);
        }
        return py::make_tuple(to_python(std::move(r.first)), to_python(std::move(r.second)));
      },
      py::arg("op"), py::arg("boxes"), py::arg("scores"), py::arg("iou_threshold"), py::arg("sigma"),
      py::arg("score_threshold"), py::arg("method"), py::arg("max_output"));

  m.def(
      "matrix_nms",
      [](const std::string& op, py::object boxes, py::object scores, py::object idxs, const std::string& method,
         double sigma, bool has_score_threshold, double score_threshold, int64_t top_k, int64_t max_output) {
        const char* o = op.c_str();
        Tensor b = from_python(boxes, o, "boxes");
        Tensor s = from_python(scores, o, "scores");
        const OptionalTensor c = optional_tensor(idxs, o, "idxs");
        std::pair<Tensor, Tensor> r;
        {
          py::gil_scoped_release nogil;
          r = matrix_nms(o, b, s, c.get(), method, sigma, has_score_threshold, score_threshold, top_k, max_output);
        }
        return py::make_tuple(to_python(std::move(r.first)), to_python(std::move(r.second)));
      },
      py::arg("op"), py::arg("boxes"), py::arg("scores"), py::arg("idxs"), py::arg("method"), py::arg("sigma"),
      py::arg("has_score_threshold"), py::arg("score_threshold"), py::arg("top_k"), py::arg("max_output"));

  m.def(
      "fast_cluster_nms",
      [](const std::string& op, py::object boxes, py::object scores, py::object idxs, double iou_threshold,
         bool has_score_threshold, double score_threshold, int64_t top_k, int64_t max_output, bool cluster) {
        const char* o = op.c_str();
        Tensor b = from_python(boxes, o, "boxes");
        Tensor s = from_python(scores, o, "scores");
        const OptionalTensor c = optional_tensor(idxs, o, "idxs");
        return run_released([&] {
          return fast_cluster_nms(o, b, s, c.get(), iou_threshold, has_score_threshold, score_threshold, top_k,
                                  max_output, cluster);
        });
      },
      py::arg("op"), py::arg("boxes"), py::arg("scores"), py::arg("idxs"), py::arg("iou_threshold"),
      py::arg("has_score_threshold"), py::arg("score_threshold"), py::arg("top_k"), py::arg("max_output"),
      py::arg("cluster"));

#ifdef CNNOPS_WITH_CUDA
  // Tests: the byte budget of one row block of the CUDA suppression mask; returns the previous one.
  m.def("_cuda_nms_mask_budget", [](int64_t bytes) { return cuda::set_nms_mask_budget(bytes); }, py::arg("bytes"));
#endif
}

}  // namespace cnnops
