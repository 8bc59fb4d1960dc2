// Exceptions thrown by the C++ core; bindings.cpp maps them to Python's ValueError / TypeError /
// NotImplementedError. Messages name the op, what was expected and what came.
#pragma once
#include <stdexcept>
#include <string>
#include <vector>

namespace cnnops {

struct ValueError : std::runtime_error { using std::runtime_error::runtime_error; };
struct TypeError : std::runtime_error { using std::runtime_error::runtime_error; };
struct NotImplemented : std::runtime_error { using std::runtime_error::runtime_error; };

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

inline std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  if (shape.size() == 1) s += ",";
  return s + ")";
}

#define CNNOPS_CHECK_VALUE(cond, ...) \
  do { if (!(cond)) throw ::cnnops::ValueError(::cnnops::str(__VA_ARGS__)); } while (0)
#define CNNOPS_CHECK_TYPE(cond, ...) \
  do { if (!(cond)) throw ::cnnops::TypeError(::cnnops::str(__VA_ARGS__)); } while (0)

}  // namespace cnnops
