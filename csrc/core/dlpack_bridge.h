// The bridge between Python arrays and cnnops::Tensor, through DLPack, without copies.
//  - from_python: calls obj.__dlpack__() (asking for a versioned capsule first), takes ownership
//    of the managed tensor and returns a view of it.
//    A CUDA producer is asked for its data on the current cnnops stream (DLPack's stream
//    argument), so the kernels never race with work the producer has queued elsewhere.
//  - Array: the Python object every op returns; it exposes __dlpack__/__dlpack_device__ so that
//    numpy/torch/cupy/jax .from_dlpack turn it into the caller's array type zero-copy.
#pragma once
#include <pybind11/pybind11.h>

#include "core/tensor.h"

namespace cnnops {

Tensor from_python(pybind11::handle obj, const char* op, const char* argname);

// `stream`: the CUDA stream the array's producer queued its work on (0, the legacy default
// stream, for CPU arrays); a consumer asking for it through __dlpack__(stream=...) is made to wait
// for that work.
struct Array {
  Tensor t;
  std::uintptr_t stream = 0;
};

void register_array(pybind11::module_& m);
pybind11::object to_python(Tensor t);

}  // namespace cnnops
