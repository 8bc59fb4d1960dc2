// Entry points of the SIMT emulator's self-test kernels (selftest.cpp), bound as
// cnnops._C._simt_selftest for tests/test_simt.py.
#pragma once
#include <string>

#include "core/tensor.h"

namespace cnnops {
namespace simt {

// Runs self-test kernel `name` on the contiguous float32 array `input` (arg: threads per block
// for block_sum, the threshold for compact) and returns its output.
Tensor selftest(const std::string& name, const Tensor& input, double arg);

}  // namespace simt
}  // namespace cnnops
