// The two switches every op makes after checking its arguments: on the dtype (a small template
// called with a float or a double tag) and on the device (one branch per entry point; a device
// without a kernel is one NotImplementedError, worded the same for every op).
#pragma once
#include "core/error.h"
#include "core/tensor.h"

namespace cnnops {

// NotImplementedError: "<op>: no <device> kernel; ...". Thrown by the device branch of an entry
// point for a device the op has no kernel for.
[[noreturn]] inline void no_kernel_for_device(const char* op, const Device& d) {
  throw NotImplemented(str(op, ": no kernel for arrays on ", device_name(d),
                           " in this build (the op runs on CPU arrays: move the inputs to the CPU)"));
}

// The device branch of an op that has kernels for the CPU only.
inline void require_cpu_kernel(const char* op, const Tensor& t) {
  if (t.device.type != DeviceType::CPU) no_kernel_for_device(op, t.device);
}

// f(float{}) or f(double{}) by dtype; any other dtype is a TypeError naming the op (entry points
// check dtypes first with their own wording, so this is a guard, not the user's message).
template <typename F>
decltype(auto) dispatch_float(DType dt, const char* op, F&& f) {
  switch (dt) {
    case DType::Float32: return f(float{});
    case DType::Float64: return f(double{});
    default: throw TypeError(str(op, ": expected float32 or float64, got ", dtype_name(dt)));
  }
}

}  // namespace cnnops
