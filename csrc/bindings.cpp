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

namespace py = pybind11;
using namespace cnnops;

#ifndef CNNOPS_VERSION
#define CNNOPS_VERSION "0.0.0"
#endif
#ifndef CNNOPS_BUILD_INFO
#define CNNOPS_BUILD_INFO "unknown"
#endif

static Conv2dParams conv2d_params(std::array<int64_t, 2> stride, std::array<int64_t, 4> pad,
                                  std::array<int64_t, 2> dilation, int64_t groups, const std::string& padding_mode,
                                  const std::string& algo, const char* op) {
  Conv2dParams p;
  p.stride = stride;
  p.pad = pad;
  p.dilation = dilation;
  p.groups = groups;
  p.mode = parse_pad_mode(padding_mode, op);
  p.algo = parse_conv_algo(algo, op);
  return p;
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

  // ---- conv2d ----
  m.def(
      "conv2d",
      [](py::object input, py::object weight, py::object bias, std::array<int64_t, 2> stride,
         std::array<int64_t, 4> pad, std::array<int64_t, 2> dilation, int64_t groups, const std::string& padding_mode,
         const std::string& algo) {
        const char* op = "conv2d";
        Tensor x = from_python(input, op, "input");
        Tensor w = from_python(weight, op, "weight");
        Tensor b;
        bool has_b = !bias.is_none();
        if (has_b) b = from_python(bias, op, "bias");
        Conv2dParams p = conv2d_params(stride, pad, dilation, groups, padding_mode, algo, op);
        Tensor y;
        {
          py::gil_scoped_release nogil;
          y = conv2d(x, w, has_b ? &b : nullptr, p);
        }
        return to_python(std::move(y));
      },
      py::arg("input"), py::arg("weight"), py::arg("bias"), py::arg("stride"), py::arg("pad"), py::arg("dilation"),
      py::arg("groups"), py::arg("padding_mode"), py::arg("algo"));

  m.def(
      "conv2d_algo",
      [](py::object input, py::object weight, std::array<int64_t, 2> stride, std::array<int64_t, 4> pad,
         std::array<int64_t, 2> dilation, int64_t groups, const std::string& padding_mode, const std::string& algo) {
        const char* op = "conv2d";
        Tensor x = from_python(input, op, "input");
        Tensor w = from_python(weight, op, "weight");
        Conv2dParams p = conv2d_params(stride, pad, dilation, groups, padding_mode, algo, op);
        Conv2dGeom g = conv2d_check(op, x, w, nullptr, p);
        return conv_algo_name(conv2d_choose_algo(g, p.algo, op));
      },
      py::arg("input"), py::arg("weight"), py::arg("stride"), py::arg("pad"), py::arg("dilation"), py::arg("groups"),
      py::arg("padding_mode"), py::arg("algo"));

  m.def(
      "conv2d_backward",
      [](py::object grad_output, py::object input, py::object weight, std::array<int64_t, 2> stride,
         std::array<int64_t, 4> pad, std::array<int64_t, 2> dilation, int64_t groups, const std::string& padding_mode,
         const std::string& algo, std::array<bool, 3> needs) {
        const char* op = "conv2d_backward";
        Tensor dy = from_python(grad_output, op, "grad_output");
        Tensor x = from_python(input, op, "input");
        Tensor w = from_python(weight, op, "weight");
        Conv2dParams p = conv2d_params(stride, pad, dilation, groups, padding_mode, algo, op);
        Conv2dGrads gr;
        {
          py::gil_scoped_release nogil;
          gr = conv2d_backward(dy, x, w, p, needs[0], needs[1], needs[2]);
        }
        py::object gi = gr.has_input ? to_python(gr.grad_input) : py::none();
        py::object gw = gr.has_weight ? to_python(gr.grad_weight) : py::none();
        py::object gb = gr.has_bias ? to_python(gr.grad_bias) : py::none();
        return py::make_tuple(gi, gw, gb);
      },
      py::arg("grad_output"), py::arg("input"), py::arg("weight"), py::arg("stride"), py::arg("pad"),
      py::arg("dilation"), py::arg("groups"), py::arg("padding_mode"), py::arg("algo"), py::arg("needs"));
}
