// Thread count and a parallel-for over independent tasks. Every kernel takes its thread count
// from cnnops::num_threads() (OMP_NUM_THREADS at import, then set_num_threads), passed as an
// explicit num_threads clause so the setting holds whichever Python thread calls the kernel.
#pragma once
#include <cstdint>
#include <omp.h>

namespace cnnops {

int num_threads();
void set_num_threads(int n);

// Runs f(task) for task in [0, ntasks), tasks handed out dynamically one at a time.
template <typename F>
void parallel_for(int64_t ntasks, F&& f) {
  int nt = num_threads();
  if (ntasks <= 1 || nt <= 1) {
    for (int64_t t = 0; t < ntasks; ++t) f(t);
    return;
  }
  if (nt > ntasks) nt = static_cast<int>(ntasks);
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
  for (int64_t t = 0; t < ntasks; ++t) f(t);
}

}  // namespace cnnops
