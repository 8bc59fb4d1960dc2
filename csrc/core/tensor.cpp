#include "core/tensor.h"

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>

#include "core/cuda.h"
#include "core/error.h"

namespace cnnops {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::Float32: return 4;
    case DType::Float64: return 8;
    case DType::Float16: return 2;
    case DType::BFloat16: return 2;
    case DType::Int64: return 8;
    case DType::Int32: return 4;
    case DType::UInt8: return 1;
    case DType::Bool: return 1;
  }
  return 0;
}

std::string dtype_name(DType t) {
  switch (t) {
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
    case DType::Float16: return "float16";
    case DType::BFloat16: return "bfloat16";
    case DType::Int64: return "int64";
    case DType::Int32: return "int32";
    case DType::UInt8: return "uint8";
    case DType::Bool: return "bool";
  }
  return "?";
}

std::string device_name(const Device& d) {
  return d.type == DeviceType::CPU ? std::string("cpu") : str("cuda:", d.index);
}

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

std::vector<int64_t> contiguous_strides(const std::vector<int64_t>& shape) {
  std::vector<int64_t> st(shape.size());
  int64_t acc = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    st[i] = acc;
    acc *= shape[i];
  }
  return st;
}

bool Tensor::is_contiguous() const {
  int64_t acc = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    if (shape[i] != 1 && strides[i] != acc) return false;
    acc *= shape[i];
  }
  return true;
}

// ---- host allocation with a cache of large blocks ----
// Outputs of a few MB or more are taken from a cache of recently freed blocks instead of fresh
// pages: a fresh mmap'd block costs one page fault per 4 KB on first touch (a 25 MB output takes
// 6,500 faults, enough to triple a 6 ms depthwise convolution when another library frees and
// re-maps memory between calls). Blocks are reused when they are at most 25% larger than
// asked; the cache holds at most kCacheLimit bytes; empty_cache() returns them to the system.
namespace {
constexpr size_t kCacheMin = size_t(1) << 20;
constexpr size_t kCacheLimit = size_t(1) << 30;

struct HostCache {
  std::mutex mu;
  std::multimap<size_t, void*> blocks;
  size_t bytes = 0;
  ~HostCache() { release(); }
  void release() {
    std::lock_guard<std::mutex> lock(mu);
    for (auto& kv : blocks) std::free(kv.second);
    blocks.clear();
    bytes = 0;
  }
};
HostCache& host_cache() {
  static HostCache* cache = new HostCache();  // never destroyed: arrays may outlive static teardown
  return *cache;
}

// Test switch: fill every new host output with 0xFF bytes (NaN in floating point, -1 in
// integers) so that an element a kernel forgets to write cannot pass for a right value.
std::atomic<bool> g_poison{false};

#ifdef CNNOPS_SANITIZE
// Sanitizer build: each block has exactly the size asked and is freed as soon as its array
// goes, so AddressSanitizer sees every array's true end and any use after free.
void* host_alloc(size_t& bytes) {
  void* p = nullptr;
  if (posix_memalign(&p, 64, bytes) != 0) throw_alloc_failure(bytes, "an output");
  return p;
}

void host_free(void* p, size_t) { std::free(p); }
#else
void* host_alloc(size_t& bytes) {
  bytes = bytes < 64 ? 64 : (bytes + 4095) / 4096 * 4096;
  if (bytes >= kCacheMin) {
    HostCache& hc = host_cache();
    std::lock_guard<std::mutex> lock(hc.mu);
    auto it = hc.blocks.lower_bound(bytes);
    if (it != hc.blocks.end() && it->first <= bytes + bytes / 4) {
      void* p = it->second;
      bytes = it->first;
      hc.bytes -= it->first;
      hc.blocks.erase(it);
      return p;
    }
  }
  void* p = std::aligned_alloc(64, bytes);
  if (!p) throw_alloc_failure(bytes, "an output");
  return p;
}

void host_free(void* p, size_t bytes) {
  if (bytes >= kCacheMin) {
    HostCache& hc = host_cache();
    std::lock_guard<std::mutex> lock(hc.mu);
    if (hc.bytes + bytes <= kCacheLimit) {
      hc.blocks.emplace(bytes, p);
      hc.bytes += bytes;
      return;
    }
  }
  std::free(p);
}
#endif
}  // namespace

void empty_cache() { host_cache().release(); }

void set_poison_outputs(bool on) { g_poison.store(on, std::memory_order_relaxed); }

static thread_local std::string t_current_op;

void set_current_op(const char* op) { t_current_op = op ? op : ""; }

const char* current_op() { return t_current_op.c_str(); }

void throw_alloc_failure(size_t bytes, const char* what) {
  throw MemoryError(str("cannot allocate ", bytes, " bytes for ", what));
}

size_t cached_bytes() {
  HostCache& hc = host_cache();
  std::lock_guard<std::mutex> lock(hc.mu);
  return hc.bytes;
}

static thread_local std::vector<OutputDestination>* t_destinations = nullptr;

OutputScope::OutputScope(std::vector<OutputDestination>* destinations) : previous_(t_destinations) {
  t_destinations = destinations;
}

OutputScope::~OutputScope() { t_destinations = previous_; }

static OutputDestination* claim_destination(const std::vector<int64_t>& shape, DType dtype) {
  if (!t_destinations) return nullptr;
  for (OutputDestination& d : *t_destinations) {
    if (!d.claimed && d.dtype == dtype && d.shape == shape && reinterpret_cast<uintptr_t>(d.data) % 64 == 0) {
      d.claimed = true;
      return &d;
    }
  }
  return nullptr;
}

Tensor empty(const std::vector<int64_t>& shape, DType dtype, Device device) {
  Tensor t;
  t.dtype = dtype;
  t.device = device;
  t.shape = shape;
  t.strides = contiguous_strides(shape);
  // Shapes come from checked plans; this guards the byte count itself against wrap-around.
  size_t bytes = dtype_size(dtype);
  for (int64_t s : shape) {
    if (s < 0 || (s > 0 && bytes > SIZE_MAX / 2 / static_cast<size_t>(s)))
      throw MemoryError(str("cannot allocate an output of shape ", shape_str(shape), " and dtype ", dtype_name(dtype)));
    bytes *= static_cast<size_t>(s);
  }
  if (device.type == DeviceType::CPU) {
    if (OutputDestination* d = claim_destination(shape, dtype)) {
      t.data = d->data;
      t.owner = std::shared_ptr<void>(t.data, [](void*) {});
      if (bytes && g_poison.load(std::memory_order_relaxed)) std::memset(t.data, 0xFF, bytes);
      return t;
    }
    size_t alloc = bytes;
    t.data = host_alloc(alloc);
    if (g_poison.load(std::memory_order_relaxed)) std::memset(t.data, 0xFF, alloc);
    t.owner = std::shared_ptr<void>(t.data, [alloc](void* q) { host_free(q, alloc); });
  } else {
    // stream-ordered: the block returns to the free list of the stream that produced it
    const cuda::Stream s = cuda::current_stream();
    t.data = cuda::device_alloc(bytes, device.index, s);
    t.owner = std::shared_ptr<void>(t.data, [idx = device.index, s](void* q) { cuda::device_free(q, idx, s); });
    if (g_poison.load(std::memory_order_relaxed)) cuda::rt::memset_async(t.data, 0xFF, bytes, s, "empty");
  }
  return t;
}

// Strided N-d copy on the CPU: the innermost dimension is a tight loop, the rest an odometer.
template <typename T>
static void strided_copy(const Tensor& src, Tensor& dst) {
  const int64_t nd = src.ndim();
  const int64_t n = src.numel();
  if (n == 0) return;
  if (nd == 0) {
    *dst.ptr<T>() = *src.ptr<T>();
    return;
  }
  const T* s = src.ptr<T>();
  T* d = dst.ptr<T>();
  const int64_t inner = src.shape[nd - 1], inner_stride = src.strides[nd - 1];
  std::vector<int64_t> idx(nd, 0);
  for (int64_t done = 0; done < n; done += inner) {
    int64_t off = 0;
    for (int64_t k = 0; k < nd - 1; ++k) off += idx[k] * src.strides[k];
    const T* row = s + off;
    for (int64_t i = 0; i < inner; ++i) d[i] = row[i * inner_stride];
    d += inner;
    for (int64_t k = nd - 2; k >= 0; --k) {
      if (++idx[k] < src.shape[k]) break;
      idx[k] = 0;
    }
  }
}

Tensor contiguous(const Tensor& t) {
  if (t.is_contiguous()) return t;
  Tensor out = empty(t.shape, t.dtype, t.device);
  if (t.device.type == DeviceType::CUDA) {
#ifdef CNNOPS_WITH_CUDA
    cuda::strided_copy(t, out);
    return out;
#else
    throw NotImplemented(str(current_op(), ": cnnops was built without CUDA support (no nvcc at build time)"));
#endif
  }
  switch (dtype_size(t.dtype)) {
    case 8: strided_copy<uint64_t>(t, out); break;
    case 4: strided_copy<uint32_t>(t, out); break;
    case 2: strided_copy<uint16_t>(t, out); break;
    default: strided_copy<uint8_t>(t, out); break;
  }
  return out;
}

}  // namespace cnnops
