#include "core/parallel.h"

#include <atomic>

#include "core/error.h"

namespace cnnops {

static std::atomic<int> g_threads{0};

int num_threads() {
  int n = g_threads.load(std::memory_order_relaxed);
  if (n <= 0) {
    n = omp_get_max_threads();  // honours OMP_NUM_THREADS
    g_threads.store(n, std::memory_order_relaxed);
  }
  return n;
}

void set_num_threads(int n) {
  CNNOPS_CHECK_VALUE(n >= 1, "set_num_threads: expected a thread count >= 1, got ", n);
  g_threads.store(n, std::memory_order_relaxed);
}

}  // namespace cnnops
