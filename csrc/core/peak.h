// Machine ceilings measured on the spot, for benchmarks to report a fraction of: the fp32 FMA
// rate (independent register-resident FMA chains on every thread) and a streaming copy bandwidth.
#pragma once

namespace cnnops {

double measure_fma_peak_gflops(int threads, double seconds);
double measure_copy_bandwidth_gbs(int threads, double seconds);
// The AVX2 loop (peak_avx2.cpp): returns FLOPs done in `iters` iterations.
double fma_loop_avx2(long iters, float seed);

}  // namespace cnnops
