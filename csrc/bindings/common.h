// Shared by the bind_<family> files: argument conversion and the GIL-released call.
#pragma once
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/dlpack_bridge.h"
#include "core/error.h"
#include "core/tensor.h"

namespace cnnops {
namespace py = pybind11;

using VecI = std::vector<int64_t>;
using VecD = std::vector<double>;

// Runs `f` (which returns a Tensor) with the GIL released and hands the result to Python.
template <typename F>
py::object run_released(F&& f) {
  Tensor t;
  {
    py::gil_scoped_release nogil;
    t = f();
  }
  return to_python(std::move(t));
}

// An optional array argument: null when Python passed None.
struct OptionalTensor {
  Tensor t;
  bool present = false;
  const Tensor* get() const { return present ? &t : nullptr; }
};
inline OptionalTensor optional_tensor(py::object obj, const char* op, const char* name) {
  OptionalTensor o;
  if (!obj.is_none()) {
    o.t = from_python(obj, op, name);
    o.present = true;
  }
  return o;
}

// One per family (csrc/bindings/<family>.cpp, transposed convolution with conv); module.cpp
// calls them all.
void bind_conv(py::module_& m);
void bind_pool(py::module_& m);
void bind_unpool(py::module_& m);
void bind_boxes(py::module_& m);
void bind_nms(py::module_& m);
void bind_roi(py::module_& m);
void bind_norm(py::module_& m);
// XLA FFI handlers (xla_ffi.cpp), in builds that found jaxlib's headers (CNNOPS_WITH_XLA_FFI).
void bind_xla_ffi(py::module_& m);

}  // namespace cnnops
