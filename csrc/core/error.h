// Exceptions thrown by the C++ core; bindings.cpp maps them to Python's ValueError / TypeError /
// NotImplementedError. Messages name the op, what was expected and what came.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace cnnops {

struct ValueError : std::runtime_error { using std::runtime_error::runtime_error; };
struct TypeError : std::runtime_error { using std::runtime_error::runtime_error; };
struct NotImplemented : std::runtime_error { using std::runtime_error::runtime_error; };

namespace detail {
inline void append(std::ostringstream&) {}
template <typename T, typename... Rest>
void append(std::ostringstream& os, const T& v, const Rest&... rest) {
  os << v;
  append(os, rest...);
}
}  // namespace detail

template <typename... Args>
std::string str(const Args&... args) {
  std::ostringstream os;
  detail::append(os, args...);
  return os.str();
}

inline std::string shape_str(const std::vector<int64_t>& s) {
  std::ostringstream os;
  os << "(";
  for (size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  if (s.size() == 1) os << ",";
  os << ")";
  return os.str();
}

#define CNNOPS_CHECK_VALUE(cond, ...) \
  do { if (!(cond)) throw ::cnnops::ValueError(::cnnops::str(__VA_ARGS__)); } while (0)
#define CNNOPS_CHECK_TYPE(cond, ...) \
  do { if (!(cond)) throw ::cnnops::TypeError(::cnnops::str(__VA_ARGS__)); } while (0)

}  // namespace cnnops
