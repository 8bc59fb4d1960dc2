// The only PYBIND11_MODULE: one m.def per entry point. Arguments arrive already parsed by the
// Python layer (python/cnnops/*.py); kernels run with the GIL released.
#include <omp.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "core/cpu_features.h"
#include "core/cuda.h"
#include "core/dlpack_bridge.h"
#include "core/error.h"
#include "core/parallel.h"
#include "core/peak.h"
#include "ops/conv.h"
#include "ops/nms.h"

namespace py = pybind11;
using namespace cnnops;

#ifndef CNNOPS_VERSION
#define CNNOPS_VERSION "0.0.0"
#endif
#ifndef CNNOPS_BUILD_INFO
#define CNNOPS_BUILD_INFO "unknown"
#endif

static ConvParams conv_params(int nd, const std::vector<int64_t>& stride, const std::vector<int64_t>& pad,
                              const std::vector<int64_t>& dilation, int64_t groups, const std::string& padding_mode,
                              const std::string& algo, const char* op) {
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
  return p;
}

static py::tuple grads_to_python(const ConvGrads& gr) {
  py::object gi = gr.has_input ? to_python(gr.grad_input) : py::none();
  py::object gw = gr.has_weight ? to_python(gr.grad_weight) : py::none();
  py::object gb = gr.has_bias ? to_python(gr.grad_bias) : py::none();
  return py::make_tuple(gi, gw, gb);
}

PYBIND11_MODULE(_C, m) {
  m.doc() = "cnnops C++/CUDA kernels (use the cnnops package, not this module directly)";

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const ValueError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const TypeError& e) {
      PyErr_SetString(PyExc_TypeError, e.what());
    } catch (const NotImplemented& e) {
      PyErr_SetString(PyExc_NotImplementedError, e.what());
    }
  });

  register_array(m);

  // ---- build / runtime info ----
  m.attr("__version__") = CNNOPS_VERSION;
  m.def("build_info", [] { return std::string(CNNOPS_BUILD_INFO); });
  m.def("simd_level", [] { return simd_level_name(simd_level()); });
  m.def("set_simd_level", [](const std::string& s) {
    if (s == "portable") set_simd_level(SimdLevel::Portable);
    else if (s == "avx2+fma" || s == "avx2") set_simd_level(SimdLevel::AVX2_FMA);
    else throw ValueError(str("set_simd_level: expected 'portable' or 'avx2', got '", s, "'"));
    return simd_level_name(simd_level());
  });
  m.def("cpu_has_avx2_fma", &cpu_has_avx2_fma);
  m.def("get_num_threads", &num_threads);
  m.def("set_num_threads", &set_num_threads, py::arg("n"));
  m.def("empty_cache", &empty_cache, "return cached host blocks to the system");
  m.def("cached_bytes", &cached_bytes, "bytes held in the host block cache");
  m.def("openmp_version", [] { return static_cast<int>(_OPENMP); });

  m.def(
      "measure_fma_peak_gflops",
      [](int threads, double seconds) {
        py::gil_scoped_release nogil;
        return measure_fma_peak_gflops(threads > 0 ? threads : num_threads(), seconds);
      },
      py::arg("threads") = 0, py::arg("seconds") = 0.5,
      "fp32 FMA rate in GFLOP/s over register-resident chains (best of repeats)");
  m.def(
      "measure_copy_bandwidth_gbs",
      [](int threads, double seconds) {
        py::gil_scoped_release nogil;
        return measure_copy_bandwidth_gbs(threads > 0 ? threads : num_threads(), seconds);
      },
      py::arg("threads") = 0, py::arg("seconds") = 0.5, "streaming copy bandwidth (read + write) in GB/s");

  // ---- CUDA ----
  m.def("cuda_compiled", &cuda::compiled);
  m.def("cuda_device_count", &cuda::device_count);
  m.def("cuda_is_available", &cuda::is_available);
  m.def("cuda_device_name", &cuda::device_name, py::arg("index") = 0);
  m.def("cuda_runtime_version", &cuda::runtime_version);

  // ---- convolution (1-D, 2-D, 3-D; `op` names the Python function in messages) ----
  using VecI = std::vector<int64_t>;
  m.def(
      "conv",
      [](const std::string& op, py::object input, py::object weight, py::object bias, int nd, VecI stride, VecI pad,
         VecI dilation, int64_t groups, const std::string& padding_mode, const std::string& algo) {
        const char* o = op.c_str();
        Tensor x = from_python(input, o, "input");
        Tensor w = from_python(weight, o, "weight");
        Tensor b;
        const bool has_b = !bias.is_none();
        if (has_b) b = from_python(bias, o, "bias");
        const ConvParams p = conv_params(nd, stride, pad, dilation, groups, padding_mode, algo, o);
        Tensor y;
        {
          py::gil_scoped_release nogil;
          y = conv(o, x, w, has_b ? &b : nullptr, p);
        }
        return to_python(std::move(y));
      },
      py::arg("op"), py::arg("input"), py::arg("weight"), py::arg("bias"), py::arg("nd"), py::arg("stride"),
      py::arg("pad"), py::arg("dilation"), py::arg("groups"), py::arg("padding_mode"), py::arg("algo"));

  m.def(
      "conv_algo",
      [](const std::string& op, py::object input, py::object weight, int nd, VecI stride, VecI pad, VecI dilation,
         int64_t groups, const std::string& padding_mode, const std::string& algo) {
        const char* o = op.c_str();
        Tensor x = from_python(input, o, "input");
        Tensor w = from_python(weight, o, "weight");
        return conv_algo_name(conv_algo(o, x, w, conv_params(nd, stride, pad, dilation, groups, padding_mode, algo, o)));
      },
      py::arg("op"), py::arg("input"), py::arg("weight"), py::arg("nd"), py::arg("stride"), py::arg("pad"),
      py::arg("dilation"), py::arg("groups"), py::arg("padding_mode"), py::arg("algo"));

  m.def(
      "conv_backward",
      [](const std::string& op, py::object grad_output, py::object input, py::object weight, int nd, VecI stride,
         VecI pad, VecI dilation, int64_t groups, const std::string& padding_mode, const std::string& algo,
         std::array<bool, 3> needs) {
        const char* o = op.c_str();
        Tensor dy = from_python(grad_output, o, "grad_output");
        Tensor x = from_python(input, o, "input");
        Tensor w = from_python(weight, o, "weight");
        const ConvParams p = conv_params(nd, stride, pad, dilation, groups, padding_mode, algo, o);
        ConvGrads gr;
        {
          py::gil_scoped_release nogil;
          gr = conv_backward(o, dy, x, w, p, needs[0], needs[1], needs[2]);
        }
        return grads_to_python(gr);
      },
      py::arg("op"), py::arg("grad_output"), py::arg("input"), py::arg("weight"), py::arg("nd"), py::arg("stride"),
      py::arg("pad"), py::arg("dilation"), py::arg("groups"), py::arg("padding_mode"), py::arg("algo"),
      py::arg("needs"));

  // ---- transposed convolution ----
  m.def(
      "conv_transpose",
      [](const std::string& op, py::object input, py::object weight, py::object bias, int nd, VecI stride, VecI pad,
         VecI dilation, int64_t groups, VecI out_spatial, const std::string& algo) {
        const char* o = op.c_str();
        Tensor x = from_python(input, o, "input");
        Tensor w = from_python(weight, o, "weight");
        Tensor b;
        const bool has_b = !bias.is_none();
        if (has_b) b = from_python(bias, o, "bias");
        const ConvParams p = conv_params(nd, stride, pad, dilation, groups, "zeros", algo, o);
        Tensor y;
        {
          py::gil_scoped_release nogil;
          y = conv_transpose(o, x, w, has_b ? &b : nullptr, p, out_spatial);
        }
        return to_python(std::move(y));
      },
      py::arg("op"), py::arg("input"), py::arg("weight"), py::arg("bias"), py::arg("nd"), py::arg("stride"),
      py::arg("pad"), py::arg("dilation"), py::arg("groups"), py::arg("out_spatial"), py::arg("algo"));

  m.def(
      "conv_transpose_backward",
      [](const std::string& op, py::object grad_output, py::object input, py::object weight, int nd, VecI stride,
         VecI pad, VecI dilation, int64_t groups, const std::string& algo, std::array<bool, 3> needs) {
        const char* o = op.c_str();
        Tensor dy = from_python(grad_output, o, "grad_output");
        Tensor x = from_python(input, o, "input");
        Tensor w = from_python(weight, o, "weight");
        const ConvParams p = conv_params(nd, stride, pad, dilation, groups, "zeros", algo, o);
        ConvGrads gr;
        {
          py::gil_scoped_release nogil;
          gr = conv_transpose_backward(o, dy, x, w, p, needs[0], needs[1], needs[2]);
        }
        return grads_to_python(gr);
      },
      py::arg("op"), py::arg("grad_output"), py::arg("input"), py::arg("weight"), py::arg("nd"), py::arg("stride"),
      py::arg("pad"), py::arg("dilation"), py::arg("groups"), py::arg("algo"), py::arg("needs"));

  // ---- non-max suppression (python/cnnops/nms.py parses the options; `op` names the function) ----
  // Optional arrays (idxs) come as None; optional numbers as a has_* flag with the value.
  m.def(
      "nms",
      [](const std::string& op, py::object boxes, py::object scores, py::object idxs, double iou_threshold,
         bool has_score_threshold, double score_threshold, int64_t max_output, const std::string& criterion,
         double beta, bool padded) {
        const char* o = op.c_str();
        Tensor b = from_python(boxes, o, "boxes");
        Tensor s = from_python(scores, o, "scores");
        Tensor c;
        const bool has_c = !idxs.is_none();
        if (has_c) c = from_python(idxs, o, "idxs");
        cpu::NmsOptions opt;
        opt.iou_threshold = iou_threshold;
        opt.has_score_threshold = has_score_threshold;
        opt.score_threshold = score_threshold;
        opt.max_output = max_output;
        opt.criterion = criterion == "diou" ? cpu::NmsCriterion::DIoU : cpu::NmsCriterion::IoU;
        opt.beta = beta;
        std::pair<Tensor, Tensor> r;
        {
          py::gil_scoped_release nogil;
          if (padded)
            r = nms_padded(o, b, s, has_c ? &c : nullptr, opt);
          else
            r.first = nms(o, b, s, has_c ? &c : nullptr, opt);
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
        Tensor c;
        const bool has_c = !idxs.is_none();
        if (has_c) c = from_python(idxs, o, "idxs");
        std::pair<Tensor, Tensor> r;
        {
          py::gil_scoped_release nogil;
          r = matrix_nms(o, b, s, has_c ? &c : nullptr, method, sigma, has_score_threshold, score_threshold, top_k,
                         max_output);
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
        Tensor c;
        const bool has_c = !idxs.is_none();
        if (has_c) c = from_python(idxs, o, "idxs");
        Tensor r;
        {
          py::gil_scoped_release nogil;
          r = fast_cluster_nms(o, b, s, has_c ? &c : nullptr, iou_threshold, has_score_threshold, score_threshold,
                               top_k, max_output, cluster);
        }
        return to_python(std::move(r));
      },
      py::arg("op"), py::arg("boxes"), py::arg("scores"), py::arg("idxs"), py::arg("iou_threshold"),
      py::arg("has_score_threshold"), py::arg("score_threshold"), py::arg("top_k"), py::arg("max_output"),
      py::arg("cluster"));
}
