// Thread count and a parallel-for over independent tasks. Every kernel takes its thread count
// from cnnops::num_threads() (OMP_NUM_THREADS at import, then set_num_threads), passed as an
// explicit num_threads clause so the setting holds whichever Python thread calls the kernel.
#pragma once
#include <omp.h>
#include <atomic>
#include <cstdint>
#include <exception>

namespace cnnops {

int num_threads();
void set_num_threads(int n);

// Runs f(task) for task in [0, ntasks), tasks handed out dynamically one at a time. An exception
// thrown by a task (a failed scratch allocation, say) must not leave the OpenMP region, where it
// would end the process: the first one is kept, the tasks not yet started are skipped, and it is
// rethrown on the calling thread once every thread has left the region.
template <typename F>
void parallel_for(int64_t ntasks, F&& f) {
  int nt = num_threads();
  if (ntasks <= 1 || nt <= 1) {
    for (int64_t t = 0; t < ntasks; ++t) f(t);
    return;
  }
  if (nt > ntasks) nt = static_cast<int>(ntasks);
  std::exception_ptr error;
  std::atomic<bool> failed{false};
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
  for (int64_t t = 0; t < ntasks; ++t) {
    if (failed.load(std::memory_order_relaxed)) continue;
    try {
      f(t);
    } catch (...) {
#pragma omp critical(cnnops_parallel_for_error)
      if (!error) error = std::current_exception();
      failed.store(true, std::memory_order_relaxed);
    }
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace cnnops
