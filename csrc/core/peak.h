// Machine ceilings measured on the spot, for benchmarks to report a fraction of: the fp32 FMA
// rate (independent register-resident FMA chains on every thread) and a streaming copy bandwidth.
#pragma once

#include "core/cpu_features.h"

namespace cnnops {

// The FMA loop of `level` (clamped to what the CPU supports): AVX2 ymm or AVX-512 zmm FMAs.
// On AMD Zen 4 both give the same rate (a zmm FMA issues as two 256-bit halves); on Intel
// server cores with two 512-bit FMA units the AVX-512 loop reaches twice the AVX2 one.
double measure_fma_peak_gflops(int threads, double seconds, SimdLevel level);
// ... of the current level.
double measure_fma_peak_gflops(int threads, double seconds);
double measure_copy_bandwidth_gbs(int threads, double seconds);
// The ISA loops (peak_avx2.cpp, peak_avx512.cpp): return FLOPs done in `iters` iterations.
double fma_loop_avx2(long iters, float seed);
double fma_loop_avx512(long iters, float seed);

}  // namespace cnnops
