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
#include "ops/pool.h"
#include "ops/pool_fractional.h"
#include "ops/unpool.h"
#include "ops/boxes.h"
#include "ops/nms.h"

namespace py = pybind11;
using namespace cnnops;

#ifndef CNNOPS_VERSION
#define CNNOPS_VERSION "0.0.0"
#endif
#ifndef CNNOPS_BUILD_INFO
#define CNNOPS_BUILD_INFO "unknown"
#endif

// Runs `f` (which returns a Tensor) with the GIL released and hands the result to Python.
template <typename F>
static py::object run_released(F&& f) {
  Tensor t;
  {
    py::gil_scoped_release nogil;
    t = f();
  }
  return to_python(std::move(t));
}

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

static PoolParams pool_params(const char* op, const std::string& kind, int nd, bool channels_last,
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
    } catch (const MemoryError& e) {
      PyErr_SetString(PyExc_MemoryError, str(current_op(), ": ", e.what()).c_str());
    } catch (const std::bad_alloc&) {
      PyErr_SetString(PyExc_MemoryError, str(current_op(), ": out of memory").c_str());
    } catch (const std::length_error& e) {
      PyErr_SetString(PyExc_MemoryError, str(current_op(), ": a buffer would exceed the addressable size (",
                                             e.what(), ")").c_str());
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
  m.def("_set_poison_outputs", &set_poison_outputs, py::arg("on"),
        "tests: fill every new host output with NaN before the kernel writes it");
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
        return run_released([&] { return conv(o, x, w, has_b ? &b : nullptr, p); });
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
        return run_released([&] { return conv_transpose(o, x, w, has_b ? &b : nullptr, p, out_spatial); });
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

  // ---- pooling (max / avg / lp, plain or adaptive; 1-D, 2-D, 3-D) ----
  m.def(
      "pool",
      [](const std::string& op, py::object input, const std::string& kind, int nd, bool channels_last,
         VecI kernel, VecI stride, VecI pad, VecI dilation, bool ceil_mode, bool count_include_pad,
         int64_t divisor_override, double norm_type, VecI output_size, bool return_indices, bool tf_indices) {
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
        Tensor ix;
        const bool has_ix = !indices.is_none();
        if (has_ix) ix = from_python(indices, o, "indices");
        const PoolParams p = pool_params(o, kind, nd, channels_last, kernel, stride, pad, dilation, ceil_mode,
                                         count_include_pad, divisor_override, norm_type, output_size);
        return run_released([&] { return pool_backward(o, dy, x, has_ix ? &ix : nullptr, p); });
      },
      py::arg("op"), py::arg("grad_output"), py::arg("input"), py::arg("indices"), py::arg("kind"), py::arg("nd"),
      py::arg("channels_last"), py::arg("kernel"), py::arg("stride"), py::arg("pad"), py::arg("dilation"),
      py::arg("ceil_mode"), py::arg("count_include_pad"), py::arg("divisor_override"), py::arg("norm_type"),
      py::arg("output_size"));
  // ---- unpooling and nearest upsampling (1-D, 2-D, 3-D; `channels_last` for N...C layouts) ----
  {
    using VecD = std::vector<double>;
    m.def(
        "upsample_nearest",
        [](const std::string& op, py::object input, int nd, bool channels_last, VecI out_size, VecD scales,
           bool exact) {
          const char* o = op.c_str();
          Tensor x = from_python(input, o, "input");
          return run_released([&] { return upsample_nearest(o, x, nd, channels_last, out_size, scales, exact); });
        },
        py::arg("op"), py::arg("input"), py::arg("nd"), py::arg("channels_last"), py::arg("out_size"),
        py::arg("scales"), py::arg("exact"));
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
      py::arg("op"), py::arg("input"), py::arg("samples"), py::arg("nd"), py::arg("channels_last"),
      py::arg("kernel"), py::arg("out_size"), py::arg("sequences"), py::arg("overlapping"));
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
  // ---- boxes: utilities and the IoU family (`op` names the Python function in messages) ----
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
        return run_released([&] {
          return fast_cluster_nms(o, b, s, has_c ? &c : nullptr, iou_threshold, has_score_threshold, score_threshold,
                                  top_k, max_output, cluster);
        });
      },
      py::arg("op"), py::arg("boxes"), py::arg("scores"), py::arg("idxs"), py::arg("iou_threshold"),
      py::arg("has_score_threshold"), py::arg("score_threshold"), py::arg("top_k"), py::arg("max_output"),
      py::arg("cluster"));
}
