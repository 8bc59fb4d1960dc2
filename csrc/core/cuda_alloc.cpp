// The caching device allocator, the current stream and checked copies, over the runtime
// primitives of whichever build this is (see cuda.h).
//
// Size classes: requests are rounded up to 512 bytes below 1 MiB and to 2 MiB above, so a block
// freed by one call fits the next call of the same shape exactly. Free blocks wait in a list per
// (device, stream, class); work queued later on the same stream runs after the work that used
// the block, so reuse needs no synchronisation. A request of another stream never takes them.
#include <cstdint>
#include <map>
#include <mutex>
#include <tuple>
#include <vector>

#include "core/cuda.h"
#include "core/error.h"

namespace cnnops {
namespace cuda {

namespace {
thread_local Stream t_stream = 0;

size_t size_class(size_t bytes) {
  constexpr size_t kSmall = size_t(1) << 20, kSmallStep = 512, kLargeStep = size_t(2) << 20;
  if (bytes == 0) bytes = 1;
  if (bytes < kSmall) return (bytes + kSmallStep - 1) / kSmallStep * kSmallStep;
  return (bytes + kLargeStep - 1) / kLargeStep * kLargeStep;
}

struct Pool {
  std::mutex mu;
  // (device, stream, class) -> free blocks
  std::map<std::tuple<int, Stream, size_t>, std::vector<void*>> free;
  std::map<void*, size_t> live;  // block -> class
  std::map<int, size_t> allocated, reserved, raw_count;

  void release_cached(int device_or_all) {  // with mu held
    for (auto it = free.begin(); it != free.end();) {
      const int dev = std::get<0>(it->first);
      if (device_or_all >= 0 && dev != device_or_all) {
        ++it;
        continue;
      }
      for (void* p : it->second) {
        rt::free(p, dev);
        reserved[dev] -= std::get<2>(it->first);
      }
      it = free.erase(it);
    }
  }
};
Pool& pool() {
  static Pool* p = new Pool();  // never destroyed: arrays may outlive static teardown
  return *p;
}
}  // namespace

Stream current_stream() { return t_stream; }
void set_current_stream(Stream s) { t_stream = s; }

void* device_alloc(size_t bytes, int device, Stream s) {
  const size_t cls = size_class(bytes);
  Pool& P = pool();
  std::lock_guard<std::mutex> lock(P.mu);
  auto it = P.free.find({device, s, cls});
  void* p = nullptr;
  if (it != P.free.end() && !it->second.empty()) {
    p = it->second.back();
    it->second.pop_back();
  } else {
    p = rt::malloc(cls, device);
    if (!p) {  // out of memory: give the cache back and try once more
      P.release_cached(device);
      p = rt::malloc(cls, device);
    }
    if (!p) throw_alloc_failure(bytes, "a CUDA array");
    P.reserved[device] += cls;
    ++P.raw_count[device];
  }
  P.live[p] = cls;
  P.allocated[device] += cls;
  return p;
}

void device_free(void* p, int device, Stream s) {
  if (!p) return;
  Pool& P = pool();
  std::lock_guard<std::mutex> lock(P.mu);
  auto it = P.live.find(p);
  if (it == P.live.end()) return;  // not ours
  const size_t cls = it->second;
  P.live.erase(it);
  P.allocated[device] -= cls;
  P.free[{device, s, cls}].push_back(p);
}

void empty_cache() {
  Pool& P = pool();
  std::lock_guard<std::mutex> lock(P.mu);
  P.release_cached(-1);
}

size_t memory_allocated(int device) {
  Pool& P = pool();
  std::lock_guard<std::mutex> lock(P.mu);
  return P.allocated[device];
}

size_t memory_reserved(int device) {
  Pool& P = pool();
  std::lock_guard<std::mutex> lock(P.mu);
  return P.reserved[device];
}

size_t allocation_count(int device) {
  Pool& P = pool();
  std::lock_guard<std::mutex> lock(P.mu);
  return P.raw_count[device];
}

void copy_to_device(void* dst, const void* src, size_t bytes, Stream s, const char* op) {
  if (bytes) rt::memcpy_async(dst, src, bytes, rt::Copy::HostToDevice, s, op);
}

void copy_to_host(void* dst, const void* src, size_t bytes, Stream s, const char* op) {
  if (!bytes) return;
  rt::memcpy_async(dst, src, bytes, rt::Copy::DeviceToHost, s, op);
  rt::stream_synchronize(s, op);
}

void copy_on_device(void* dst, const void* src, size_t bytes, Stream s, const char* op) {
  if (bytes) rt::memcpy_async(dst, src, bytes, rt::Copy::DeviceToDevice, s, op);
}

DeviceGuard::DeviceGuard(int device, const char* op) : now_(device) {
  prev_ = rt::get_device();
  if (prev_ != device) rt::set_device(device, op);
}

DeviceGuard::~DeviceGuard() {
  if (prev_ >= 0 && prev_ != now_) {
    try {
      rt::set_device(prev_, "DeviceGuard");
    } catch (...) {  // a destructor must not throw; the device stays as it is
    }
  }
}

void set_device(int index, const char* op) {
  const int n = device_count();
  if (n == 0)
    throw NotImplemented(str(op, ": no CUDA device is available (",
                             compiled() ? "no GPU or driver" : "cnnops was built without CUDA", ")"));
  CNNOPS_CHECK_VALUE(index >= 0 && index < n, op, ": expected a CUDA device index in [0, ", n, "), got ", index);
}

}  // namespace cuda
}  // namespace cnnops
