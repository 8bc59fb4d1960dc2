// Parameter structs built from the flat arguments every front end passes (the pybind11 functions
// and the XLA FFI handlers take the same names): defined beside their pybind11 functions in
// csrc/bindings/conv.cpp and pool.cpp.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "ops/conv.h"
#include "ops/pool.h"

namespace cnnops {

ConvParams conv_params(int nd, const std::vector<int64_t>& stride, const std::vector<int64_t>& pad,
                       const std::vector<int64_t>& dilation, int64_t groups, const std::string& padding_mode,
                       const std::string& algo, const std::string& precision, const char* op);

PoolParams pool_params(const char* op, const std::string& kind, int nd, bool channels_last,
                       const std::vector<int64_t>& kernel, const std::vector<int64_t>& stride,
                       const std::vector<int64_t>& pad, const std::vector<int64_t>& dilation, bool ceil_mode,
                       bool count_include_pad, int64_t divisor_override, double norm_type,
                       const std::vector<int64_t>& output_size);

}  // namespace cnnops
