// A minimal tensor view: data pointer, dtype, device, shape and strides (in elements), plus a
// shared owner that keeps the memory alive (a DLPack producer's buffer or our own allocation).
// Kernels take contiguous tensors; `contiguous()` copies a strided view when needed, never
// touching the caller's memory.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace cnnops {

// Floating types are what the kernels compute in; the integer types carry indices (pooling
// argmax, NMS keep lists, class ids) and Bool/UInt8 carry masks.
enum class DType { Float32, Float64, Float16, BFloat16, Int64, Int32, UInt8, Bool };
inline bool is_floating(DType t) {
  return t == DType::Float32 || t == DType::Float64 || t == DType::Float16 || t == DType::BFloat16;
}
enum class DeviceType { CPU, CUDA };

struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;
  bool operator==(const Device& o) const { return type == o.type && index == o.index; }
  bool operator!=(const Device& o) const { return !(*this == o); }
};

size_t dtype_size(DType t);
std::string dtype_name(DType t);
std::string device_name(const Device& d);

struct Tensor {
  void* data = nullptr;
  DType dtype = DType::Float32;
  Device device;
  std::vector<int64_t> shape;
  std::vector<int64_t> strides;  // elements
  std::shared_ptr<void> owner;
  bool readonly = false;

  int64_t ndim() const { return static_cast<int64_t>(shape.size()); }
  int64_t size(int64_t d) const { return shape[d < 0 ? d + ndim() : d]; }
  int64_t numel() const;
  bool is_contiguous() const;
  template <typename T> T* ptr() const { return static_cast<T*>(data); }
};

std::vector<int64_t> contiguous_strides(const std::vector<int64_t>& shape);

// Fresh contiguous tensor (64-byte aligned on the CPU). Contents uninitialised.
Tensor empty(const std::vector<int64_t>& shape, DType dtype, Device device);
// Host blocks of 1 MB or more are recycled through a cache (see tensor.cpp); these empty it and
// report its size.
void empty_cache();
// Tests: fill every new host output with NaN (0xFF bytes) before a kernel writes it.
void set_poison_outputs(bool on);
size_t cached_bytes();
// `t` itself when already contiguous, else a contiguous copy.
Tensor contiguous(const Tensor& t);

// Memory the caller owns for the outputs of the op this thread runs next: XLA's result buffers
// when the op runs as an XLA custom call (bindings/xla_ffi.cpp). While an OutputScope lives,
// empty() on this thread hands each request for a host tensor the first unclaimed destination of
// exactly that shape and dtype, if 64-byte aligned as empty()'s own blocks are, instead of
// allocating. Ops allocate their outputs before their workspaces, so the outputs are written in
// place; the caller still compares what the op returned with each destination and copies a
// result that landed elsewhere.
struct OutputDestination {
  void* data = nullptr;
  DType dtype = DType::Float32;
  std::vector<int64_t> shape;
  bool claimed = false;
};
class OutputScope {
 public:
  explicit OutputScope(std::vector<OutputDestination>* destinations);
  ~OutputScope();
  OutputScope(const OutputScope&) = delete;
  OutputScope& operator=(const OutputScope&) = delete;

 private:
  std::vector<OutputDestination>* previous_;
};

}  // namespace cnnops
