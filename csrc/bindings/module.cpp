// The only PYBIND11_MODULE: error translation, build and runtime information, CUDA queries, and
// one bind_<family>(m) call per op family (csrc/bindings/<family>.cpp). Arguments arrive already
// parsed by the Python layer (python/cnnops/*.py); kernels run with the GIL released.
#include <omp.h>

#include "bindings/common.h"
#include "core/cpu_features.h"
#include "core/cuda.h"
#include "core/parallel.h"
#include "core/peak.h"
#include "core/simt/fiber.h"
#include "core/simt/selftest.h"
#include "ops/cpu/gemm.h"

#ifndef CNNOPS_VERSION
#define CNNOPS_VERSION "0.0.0"
#endif
#ifndef CNNOPS_BUILD_INFO
#define CNNOPS_BUILD_INFO "unknown"
#endif

using namespace cnnops;

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
      PyErr_SetString(PyExc_MemoryError,
                      str(current_op(), ": a buffer would exceed the addressable size (", e.what(), ")").c_str());
    }
  });

  register_array(m);

  // ---- build / runtime info ----
  m.attr("__version__") = CNNOPS_VERSION;
  m.def("build_info", [] { return std::string(CNNOPS_BUILD_INFO); });
  m.def("simd_level", [] { return simd_level_name(simd_level()); });
  m.def("set_simd_level", [](const std::string& s) {
    SimdLevel level;
    if (!parse_simd_level(s, &level))
      throw ValueError(str("set_simd_level: expected 'portable', 'avx2' or 'avx512', got '", s, "'"));
    set_simd_level(level);
    return simd_level_name(simd_level());
  });
  m.def("cpu_has_avx2_fma", &cpu_has_avx2_fma);
  m.def("cpu_has_avx512", &cpu_has_avx512, "AVX-512 F/BW/VL/DQ usable (CPU and OS) and compiled in");
  m.def("get_num_threads", &num_threads);
  m.def("set_num_threads", &set_num_threads, py::arg("n"));
  m.def("empty_cache", &empty_cache, "return cached host blocks to the system");
  m.def("cached_bytes", &cached_bytes, "bytes held in the host block cache");
  m.def("_set_poison_outputs", &set_poison_outputs, py::arg("on"),
        "tests: fill every new host output with NaN before the kernel writes it");
  m.def("openmp_version", [] { return static_cast<int>(_OPENMP); });

  // ---- the SIMT emulator's self-tests (tests/test_simt.py) ----
  m.def(
      "_simt_selftest",
      [](const std::string& name, py::object x, double arg) {
        Tensor t = from_python(x, "_simt_selftest", "x");
        return run_released([&] { return simt::selftest(name, t, arg); });
      },
      py::arg("name"), py::arg("x"), py::arg("arg") = 0.0);
  m.def(
      "_simt_switch_ns", [](int rounds) { return simt::measure_switch_ns(rounds); }, py::arg("rounds") = 100000,
      "nanoseconds per fiber switch of the SIMT emulator");

  m.def(
      "measure_fma_peak_gflops",
      [](int threads, double seconds, const std::string& isa) {
        SimdLevel level = simd_level();
        if (!isa.empty() && !parse_simd_level(isa, &level))
          throw ValueError(
              str("measure_fma_peak_gflops: expected isa 'portable', 'avx2' or 'avx512', got '", isa, "'"));
        py::gil_scoped_release nogil;
        return measure_fma_peak_gflops(threads > 0 ? threads : num_threads(), seconds, level);
      },
      py::arg("threads") = 0, py::arg("seconds") = 0.5, py::arg("isa") = "",
      "fp32 FMA rate in GFLOP/s over register-resident chains (best of repeats) with the FMA "
      "instructions of `isa` (default: the current SIMD level; clamped to what the CPU supports)");
  // ---- the packed GEMM of the current SIMD level, alone (tests/test_simd_levels.py) ----
  m.def(
      "_gemm",
      [](py::object a_obj, py::object b_obj, py::object c_obj, bool accumulate) {
        const Tensor a = from_python(a_obj, "_gemm", "a"), b = from_python(b_obj, "_gemm", "b");
        const Tensor c = from_python(c_obj, "_gemm", "c");
        if (a.ndim() != 2 || b.ndim() != 2 || c.ndim() != 2 || !a.is_contiguous() || !b.is_contiguous() ||
            !c.is_contiguous() || c.readonly)
          throw ValueError("_gemm: expected contiguous 2-D arrays a (M, K), b (K, N) and a writable c (M, >= N)");
        if (a.dtype != b.dtype || a.dtype != c.dtype || (a.dtype != DType::Float32 && a.dtype != DType::Float64))
          throw ValueError("_gemm: expected a, b and c of one dtype, float32 or float64");
        const int64_t M = a.size(0), K = a.size(1), N = b.size(1), ldc = c.size(1);
        if (b.size(0) != K || c.size(0) != M || ldc < N)
          throw ValueError(
              str("_gemm: shapes do not fit: a ", M, "x", K, ", b ", b.size(0), "x", N, ", c ", c.size(0), "x", ldc));
        py::gil_scoped_release nogil;
        if (a.dtype == DType::Float32)
          cpu::gemm<float>(M, N, K, a.ptr<float>(), K, 1, b.ptr<float>(), N, 1, c.ptr<float>(), ldc, accumulate);
        else cpu::gemm<double>(M, N, K, a.ptr<double>(), K, 1, b.ptr<double>(), N, 1, c.ptr<double>(), ldc, accumulate);
      },
      py::arg("a"), py::arg("b"), py::arg("c"), py::arg("accumulate") = false,
      "tests: c[:, :N] (+)= a @ b through the packed GEMM of the current SIMD level, in place; the "
      "columns of c past N are left as they are");
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
  m.def("cuda_emulated", &cuda::emulated);
  m.def("cuda_current_stream", [] { return static_cast<uint64_t>(cuda::current_stream()); });
  m.def("cuda_set_stream", [](uint64_t s) { cuda::set_current_stream(static_cast<cuda::Stream>(s)); });
  m.def("cuda_synchronize", [](int device) {
    cuda::set_device(device, "cuda.synchronize");
    py::gil_scoped_release nogil;
    cuda::rt::device_synchronize(device, "cuda.synchronize");
  });
  m.def("cuda_stream_synchronize", [](uint64_t s) {
    py::gil_scoped_release nogil;
    cuda::rt::stream_synchronize(static_cast<cuda::Stream>(s), "cuda.Stream.synchronize");
  });
  m.def("cuda_empty_cache", &cuda::empty_cache);
  m.def("cuda_memory_allocated", &cuda::memory_allocated);
  m.def("cuda_memory_reserved", &cuda::memory_reserved);
  m.def("cuda_allocation_count", &cuda::allocation_count);

  bind_conv(m);
  bind_pool(m);
  bind_unpool(m);
  bind_boxes(m);
  bind_nms(m);
  bind_roi(m);
  bind_norm(m);
#ifdef CNNOPS_WITH_XLA_FFI
  bind_xla_ffi(m);
#endif
}
