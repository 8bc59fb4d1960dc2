// The block scheduler of the SIMT emulator (see simt.h): runs the threads of one block as fibers
// until each reaches a barrier or returns, releases the barriers whose threads have all arrived,
// and repeats; a round that can release nothing is a deadlock. Blocks are spread over the OpenMP
// threads; each OS thread keeps its fibers (and their stacks) from block to block. Each thread
// also keeps its cp.async copies (async.h) until it waits for them; one that returns with copies
// outstanding is an error.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/parallel.h"
#include "core/simt/fiber.h"
#include "core/simt/simt.h"

namespace cnnops {
namespace simt {

namespace {

enum class Wait { None, Block, Warp, Done };

// One cp.async: `bytes` to dst, of which the first `src_bytes` come from src and the rest are zeros.
struct AsyncCopy {
  void* dst;
  const void* src;
  int bytes, src_bytes;
};

struct EmuThread {
  std::unique_ptr<Fiber> fiber;
  ThreadState state;
  Wait wait = Wait::None;
  unsigned mask = 0;  // the lanes a Warp wait is for
  // cp.async copies not yet performed, in issue order; group_ends[g] is the end (in `copies`) of
  // committed group g, oldest first; copies past the last end are in the open group.
  std::vector<AsyncCopy> copies;
  std::vector<size_t> group_ends;
};

// Everything one OS thread needs to run blocks; reused from block to block.
struct Runner {
  std::vector<std::unique_ptr<EmuThread>> threads;
  size_t stack_bytes = 0;
  BlockState block;
  std::vector<unsigned char> dynamic_shared;
  const std::function<void()>* body = nullptr;
  EmuThread* current = nullptr;
  std::exception_ptr error;
};

thread_local Runner* t_runner = nullptr;

std::string dim_str(const dim3& d) { return str("(", d.x, ", ", d.y, ", ", d.z, ")"); }

Runner& runner() {
  if (!t_runner) throw std::logic_error("SIMT emulator: a device function was called outside simt::launch");
  return *t_runner;
}

void thread_entry(void* arg) {
  auto* self = static_cast<EmuThread*>(arg);
  Runner& r = *t_runner;
  try {
    (*r.body)();
    if (!self->copies.empty()) {
      const size_t committed = self->group_ends.empty() ? 0 : self->group_ends.back();
      throw AsyncCopyError(str("SIMT emulator: thread ", dim_str(self->state.thread_idx), " of block ",
                               dim_str(r.block.block_idx), " returned with ", self->copies.size(),
                               " cp.async copies never waited for (", self->copies.size() - committed,
                               " not committed): commit and wait for every copy (cnnops_cp_async_wait<0>) "
                               "before the data is used or the thread returns"));
    }
  } catch (...) {
    if (!r.error) r.error = std::current_exception();
  }
  self->wait = Wait::Done;
  self->fiber->switch_to(Fiber::thread_fiber());  // never resumed: reset() restarts from the entry
}

// Threads (by linear index) in state `w`, as a short list for messages.
std::string list_of(const Runner& r, int n, Wait w) {
  std::string s;
  int shown = 0, total = 0;
  for (int i = 0; i < n; ++i) {
    if (r.threads[i]->wait != w) continue;
    ++total;
    if (shown < 8) s += (shown++ ? ", " : "") + std::to_string(i);
  }
  if (total > shown) s += str(", ... (", total, " threads)");
  return s;
}

[[noreturn]] void deadlock(const Runner& r, int n, const std::string& what) {
  throw Deadlock(str("SIMT emulator: deadlock in block ", dim_str(r.block.block_idx), " of a ",
                     dim_str(r.block.block_dim), " block: ", what, " (threads at __syncthreads: [",
                     list_of(r, n, Wait::Block), "], at a warp barrier: [", list_of(r, n, Wait::Warp), "], returned: [",
                     list_of(r, n, Wait::Done), "])"));
}

// Releases the warp barriers whose lanes have all arrived; false when none could be.
bool release_warps(Runner& r, int n) {
  bool released = false;
  for (int w0 = 0; w0 < n; w0 += 32) {
    const int w1 = std::min(n, w0 + 32);
    for (int i = w0; i < w1; ++i) {
      EmuThread& t = *r.threads[i];
      if (t.wait != Wait::Warp) continue;
      if (!(t.mask >> (i - w0) & 1u))
        deadlock(r, n,
                 str("thread ", i, " waits at a warp barrier whose mask ", t.mask, " that leaves out its own lane"));
      bool all = true;
      for (int l = 0; l < w1 - w0 && all; ++l)
        if (t.mask >> l & 1u) all = r.threads[w0 + l]->wait == Wait::Warp;
      if (!all) continue;
      for (int l = 0; l < w1 - w0; ++l)
        if (t.mask >> l & 1u) r.threads[w0 + l]->wait = Wait::None;
      released = true;
    }
  }
  return released;
}

void run_block(Runner& r, const dim3& bidx, int n) {
  r.block.block_idx = bidx;
  if (!r.dynamic_shared.empty()) std::fill(r.dynamic_shared.begin(), r.dynamic_shared.end(), 0xff);  // no stale data
  const dim3 bd = r.block.block_dim;
  for (int i = 0; i < n; ++i) {
    EmuThread& t = *r.threads[i];
    t.state.thread_idx = dim3(i % bd.x, i / bd.x % bd.y, i / (bd.x * bd.y));
    t.state.linear = i;
    t.state.lane = i % 32;
    t.state.warp = i / 32;
    t.wait = Wait::None;
    t.copies.clear();
    t.group_ends.clear();
    t.fiber->reset();
  }
  for (;;) {
    for (int i = 0; i < n; ++i) {
      EmuThread& t = *r.threads[i];
      if (t.wait != Wait::None) continue;
      r.current = &t;
      t.fiber->resume_from(Fiber::thread_fiber());
      if (r.error) std::rethrow_exception(r.error);
    }
    int done = 0, at_block = 0, at_warp = 0;
    for (int i = 0; i < n; ++i) {
      const Wait w = r.threads[i]->wait;
      done += w == Wait::Done;
      at_block += w == Wait::Block;
      at_warp += w == Wait::Warp;
    }
    if (done == n) return;
    if (at_warp && release_warps(r, n)) continue;
    if (at_warp)
      deadlock(r, n, "a warp barrier (__syncwarp, shuffle, ballot or vote) waits for a lane that never comes");
    if (done) deadlock(r, n, "__syncthreads reached by some threads while others have returned");
    for (int i = 0; i < n; ++i) r.threads[i]->wait = Wait::None;  // every thread is at __syncthreads
  }
}

}  // namespace

ThreadState& this_thread() { return runner().current->state; }
BlockState& this_block() { return runner().block; }

void sync_block() {
  Runner& r = runner();
  EmuThread& t = *r.current;
  t.wait = Wait::Block;
  Fiber::thread_fiber().resume_from(*t.fiber);
}

void sync_warp(unsigned mask) {
  Runner& r = runner();
  EmuThread& t = *r.current;
  t.wait = Wait::Warp;
  t.mask = mask;
  Fiber::thread_fiber().resume_from(*t.fiber);
}

const unsigned char* this_lane_xchg(int lane) {
  Runner& r = runner();
  const int i = r.current->state.warp * 32 + lane;
  return r.threads[i]->state.xchg;
}

unsigned ballot(unsigned mask, int predicate) {
  ThreadState& me = this_thread();
  const int p = predicate != 0;
  std::memcpy(me.xchg, &p, sizeof(int));
  sync_warp(mask);
  unsigned bits = 0;
  for (int l = 0; l < 32; ++l) {
    if (!(mask >> l & 1u)) continue;
    int v;
    std::memcpy(&v, this_lane_xchg(l), sizeof(int));
    bits |= static_cast<unsigned>(v) << l;
  }
  sync_warp(mask);
  return bits;
}

void require_full_warp(const char* what) {
  Runner& r = runner();
  const dim3 bd = r.block.block_dim;
  const int n = static_cast<int>(bd.x * bd.y * bd.z), warp = r.current->state.warp;
  if ((warp + 1) * 32 > n)
    throw std::runtime_error(str("SIMT emulator: ", what, " needs a full warp of 32 threads, but warp ", warp,
                                 " of a block of ", n, " threads has ", n - warp * 32));
}

void cp_async(void* dst, const void* src, int bytes, int src_bytes) {
  EmuThread& t = *runner().current;
  if (bytes != 4 && bytes != 8 && bytes != 16)
    throw AsyncCopyError(str("SIMT emulator: cp.async copies 4, 8 or 16 bytes, not ", bytes));
  if (src_bytes < 0 || src_bytes > bytes)
    throw AsyncCopyError(str("SIMT emulator: cp.async of ", bytes, " bytes with ", src_bytes,
                             " source bytes (expected 0 to ", bytes, ")"));
  const auto offset = [bytes](const void* p) { return reinterpret_cast<uintptr_t>(p) % static_cast<unsigned>(bytes); };
  if (offset(dst) != 0 || (src_bytes > 0 && offset(src) != 0))
    throw AsyncCopyError(str("SIMT emulator: cp.async of ", bytes, " bytes needs ", bytes,
                             "-byte aligned addresses, got a destination ", offset(dst), " and a source ", offset(src),
                             " bytes past such a boundary (thread ", dim_str(t.state.thread_idx), " of block ",
                             dim_str(runner().block.block_idx), ")"));
  std::memset(dst, 0xff, static_cast<size_t>(bytes));
  t.copies.push_back(AsyncCopy{dst, src, bytes, src_bytes});
}

void cp_async_commit() {
  EmuThread& t = *runner().current;
  t.group_ends.push_back(t.copies.size());
}

void cp_async_wait(int pending) {
  EmuThread& t = *runner().current;
  const size_t groups = t.group_ends.size(), keep = static_cast<size_t>(pending < 0 ? 0 : pending);
  if (groups <= keep) return;
  const size_t done = groups - keep, end = t.group_ends[done - 1];
  for (size_t i = 0; i < end; ++i) {
    const AsyncCopy& c = t.copies[i];
    auto* d = static_cast<unsigned char*>(c.dst);
    if (c.src_bytes > 0) std::memcpy(d, c.src, static_cast<size_t>(c.src_bytes));
    std::memset(d + c.src_bytes, 0, static_cast<size_t>(c.bytes - c.src_bytes));
  }
  t.copies.erase(t.copies.begin(), t.copies.begin() + static_cast<std::ptrdiff_t>(end));
  t.group_ends.erase(t.group_ends.begin(), t.group_ends.begin() + static_cast<std::ptrdiff_t>(done));
  for (size_t& e : t.group_ends) e -= end;
}

void launch_body(dim3 grid, dim3 block, size_t dynamic_shared_bytes, const std::function<void()>& body,
                 size_t stack_bytes) {
  const int64_t n = static_cast<int64_t>(block.x) * block.y * block.z;
  if (n < 1 || n > 1024)
    throw ValueError(str("SIMT emulator: expected 1 to 1024 threads per block, got ", dim_str(block)));
  const int64_t blocks = static_cast<int64_t>(grid.x) * grid.y * grid.z;
  parallel_for(blocks, [&](int64_t b) {
    static thread_local Runner runner_of_thread;
    Runner& r = runner_of_thread;
    if (r.stack_bytes != stack_bytes) r.threads.clear();  // fibers of another stack size
    r.stack_bytes = stack_bytes;
    while (static_cast<int64_t>(r.threads.size()) < n) {
      auto t = std::make_unique<EmuThread>();
      t->fiber = std::make_unique<Fiber>(stack_bytes, thread_entry, t.get());
      r.threads.push_back(std::move(t));
    }
    r.block.block_dim = block;
    r.block.grid_dim = grid;
    r.dynamic_shared.assign(dynamic_shared_bytes, 0);
    r.block.dynamic_shared = r.dynamic_shared.empty() ? nullptr : r.dynamic_shared.data();
    r.body = &body;
    r.error = nullptr;
    Runner* outer = t_runner;
    t_runner = &r;
    try {
      run_block(r,
                dim3(static_cast<unsigned>(b % grid.x), static_cast<unsigned>(b / grid.x % grid.y),
                     static_cast<unsigned>(b / (static_cast<int64_t>(grid.x) * grid.y))),
                static_cast<int>(n));
    } catch (...) {
      t_runner = outer;
      throw;
    }
    t_runner = outer;
  });
}

}  // namespace simt
}  // namespace cnnops
