// Entry points of the SIMT emulator's self-test kernels (selftest.cpp), bound as
// cnnops._C._simt_selftest for tests/test_simt.py.
#pragma once
#include <string>

#include "core/tensor.h"

namespace cnnops {
namespace simt {

// Runs self-test kernel `name` on the contiguous float32 array `input` and returns its output
// (arg: threads per block for block_sum, the threshold for compact, the number of bins for
// atomics, the bytes per copy for cp_async_pipeline, the misuse for cp_async_misuse, the operand
// type for mma_fragments and mma_tile, the B layout for gemm_f16). tests/test_simt.py documents
// each kernel's input and output.
Tensor selftest(const std::string& name, const Tensor& input, double arg);

}  // namespace simt
}  // namespace cnnops
