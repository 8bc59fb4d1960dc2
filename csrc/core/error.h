// Exceptions thrown by the C++ core; bindings.cpp maps them to Python's ValueError / TypeError /
// NotImplementedError. Messages name the op, what was expected and what came.
#pragma once
#include <stdexcept>
#include <string>
#include <vector>

namespace cnnops {

struct ValueError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct TypeError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct NotImplemented : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// A failed allocation; the message says how much was asked for. The bindings turn it (and
// std::bad_alloc) into Python's MemoryError, prefixed with the name of the op being run.
struct MemoryError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The public name of the op the calling thread is running ("conv2d"), recorded when the bindings
// convert its first array argument, so that errors raised deep in a kernel (an allocation that
// fails) still name it.
void set_current_op(const char* op);
const char* current_op();

// Allocation failure: a MemoryError naming the size.
[[noreturn]] void throw_alloc_failure(size_t bytes, const char* what);

// Message building without iostreams: some toolchains link libstdc++ statically, and an
// ostringstream in such a module can crash once another copy of libstdc++ is loaded.
namespace detail {
inline void append(std::string& s, const std::string& v) { s += v; }
inline void append(std::string& s, const char* v) { s += v; }
inline void append(std::string& s, char v) { s += v; }
inline void append(std::string& s, bool v) { s += v ? "true" : "false"; }
template <typename T>
inline void append(std::string& s, const T& v) {
  s += std::to_string(v);  // integers and floating point
}
inline void append_all(std::string&) {}
template <typename T, typename... Rest>
void append_all(std::string& s, const T& v, const Rest&... rest) {
  append(s, v);
  append_all(s, rest...);
}
}  // namespace detail

template <typename... Args>
std::string str(const Args&... args) {
  std::string s;
  detail::append_all(s, args...);
  return s;
}

// Size arithmetic on user integers: the exact result, or a ValueError naming the op and what was
// being computed when it does not fit in int64 (a stride of 2**62 times a kernel extent, say).
inline int64_t checked_add(int64_t a, int64_t b, const char* op, const char* what) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r)) throw ValueError(str(op, ": ", what, " overflows a 64-bit integer"));
  return r;
}
inline int64_t checked_mul(int64_t a, int64_t b, const char* op, const char* what) {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r)) throw ValueError(str(op, ": ", what, " overflows a 64-bit integer"));
  return r;
}
// Number of elements of `shape`, checked.
inline int64_t checked_numel(const std::vector<int64_t>& shape, const char* op, const char* what) {
  int64_t n = 1;
  for (int64_t s : shape) n = checked_mul(n, s, op, what);
  return n;
}

// An output of `elements` x `elem_bytes` must have a byte size that fits in int64 (checked before
// anything is sized by it); larger but representable requests fail later as MemoryError.
inline void check_output_bytes(int64_t elements, int64_t elem_bytes, const char* op) {
  checked_mul(elements, elem_bytes, op, "the output size in bytes");
}

inline std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  if (shape.size() == 1) s += ",";
  return s + ")";
}

// "(1, 2, 3)" of n values ("(1,)" for one), and "1x2x3" of nd sizes.
inline std::string tuple_str(const int64_t* v, int n) { return shape_str(std::vector<int64_t>(v, v + n)); }
inline std::string dims_str(const int64_t* v, int nd) {
  std::string s;
  for (int i = 0; i < nd; ++i) s += (i ? "x" : "") + std::to_string(v[i]);
  return s;
}

#define CNNOPS_CHECK_VALUE(cond, ...)                                    \
  do {                                                                   \
    if (!(cond)) throw ::cnnops::ValueError(::cnnops::str(__VA_ARGS__)); \
  } while (0)
#define CNNOPS_CHECK_TYPE(cond, ...)                                    \
  do {                                                                  \
    if (!(cond)) throw ::cnnops::TypeError(::cnnops::str(__VA_ARGS__)); \
  } while (0)

}  // namespace cnnops
