// Fibers for the SIMT emulator: user-space execution contexts, each on its own stack, switched by
// hand-written code rather than the kernel. One CUDA thread of an emulated block is one fiber; the
// block's scheduler (scheduler.cpp) switches to a fiber, which runs until it reaches a barrier
// (or ends) and switches back.
//
// The switch saves the callee-saved registers on the current stack, stores the stack pointer and
// loads the other one (x86-64 System V: rbx, rbp, r12-r15; 14 instructions, no system call), and
// falls back to ucontext on other targets (swapcontext also saves the signal mask: a system call
// per switch). Stacks are mmap'ed with an inaccessible guard page below them, so a kernel that
// overflows its fiber stack faults instead of corrupting a neighbour. Measured on the 2-core AMD
// EPYC (cnnops._C._simt_switch_ns): 9-16 ns per switch, against 300 ns with swapcontext
// (CNNOPS_SIMT_UCONTEXT forces that path).
#pragma once
#include <cstddef>

namespace cnnops {
namespace simt {

class Fiber {
 public:
  // A fiber that runs entry(arg) on a stack of `stack_bytes` (rounded up to whole pages) the first
  // time it is switched to. entry must not return: it ends by switching back for good.
  Fiber(size_t stack_bytes, void (*entry)(void*), void* arg);
  ~Fiber();
  Fiber(const Fiber&) = delete;
  Fiber& operator=(const Fiber&) = delete;

  // Makes the fiber runnable from its entry again (the stack is reused).
  void reset();
  // Runs this fiber until it switches back to `from` (which records where to resume).
  void resume_from(Fiber& from);
  // Saves the current context into *this and continues `to`.
  void switch_to(Fiber& to);

  // Calls the entry (the first code a new fiber runs; used by the switch's start-up code).
  void run_entry() { entry_(arg_); }

  // A fiber standing for the OS thread's own stack (the scheduler): no stack of its own.
  static Fiber& thread_fiber();

 private:
  Fiber();  // the thread's own context
  void prepare();

  void* sp_ = nullptr;      // saved stack pointer (hand-written switch) or ucontext_t*
  void* stack_ = nullptr;   // mapping, guard page first
  size_t map_bytes_ = 0;
  void (*entry_)(void*) = nullptr;
  void* arg_ = nullptr;
};

// Nanoseconds per switch (there and back counts two), measured on this machine.
double measure_switch_ns(int rounds);

}  // namespace simt
}  // namespace cnnops
