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
}
