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

// The device check of an op that has kernels for both devices: CUDA arrays need a build with
// CUDA kernels (they cannot exist otherwise, but a foreign DLPack producer could hand one in).
inline void require_kernel(const char* op, const Tensor& t) {
#ifndef CNNOPS_WITH_CUDA
  if (t.device.type != DeviceType::CPU) no_kernel_for_device(op, t.device);
#else
  (void)op;
  (void)t;
#endif
}

// TypeError unless `t` is on `ref`'s device: "<op>: expected <name> on the input's device cuda:0,
// got cpu".
inline void check_same_device(const char* op, const Tensor& ref, const char* ref_name, const Tensor& t,
                              const char* name) {
  CNNOPS_CHECK_TYPE(t.device == ref.device, op, ": expected ", name, " on the ", ref_name, "'s device ",
                    device_name(ref.device), ", got ", device_name(t.device));
}

// The dtypes a pooling-family kernel takes: float32/float64 everywhere, float16/bfloat16 on CUDA
// (computed in float32).
inline bool pool_dtype_ok(const Tensor& t) {
  if (t.dtype == DType::Float32 || t.dtype == DType::Float64) return true;
  return t.device.type == DeviceType::CUDA && (t.dtype == DType::Float16 || t.dtype == DType::BFloat16);
}
inline const char* pool_dtypes(const Tensor& t) {
  return t.device.type == DeviceType::CUDA ? "float32, float64, float16 or bfloat16"
                                           : "float32 or float64 (float16 and bfloat16 on CUDA arrays)";
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
